"""The rebalance schedule: the close of every XNYS session.

The rule set runs daily (bench and breaker changes apply from the next session); the engine
itself recomputes base weights every 60 sessions and on bench changes (SPEC §4), so the
schedule only has to run once per session, idempotently (``run_key`` = the session).
"""

import datetime as dt

import dagster as dg

from allocator.calendar import SessionCalendar
from assets.tags import REBALANCE_LANE, SESSION_TAG
from pipelines.jobs import rebalance_job

CLOSE_CRON = "30 16 * * 1-5"  # 16:30 New York: after the 16:00 close (early closes included)
TIMEZONE = "America/New_York"


def is_session(day: dt.date, calendar: str = "XNYS") -> bool:
    cal = SessionCalendar.load(calendar, day, day)
    return str(day) in {str(s)[:10] for s in cal.sessions}


@dg.schedule(
    job=rebalance_job,
    cron_schedule=CLOSE_CRON,
    execution_timezone=TIMEZONE,
    description="Rule set at the close of every XNYS session (one run per session).",
)
def rebalance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    when = context.scheduled_execution_time
    if when is None:
        return dg.SkipReason("no scheduled time")
    day = when.date()
    if not is_session(day):
        return dg.SkipReason(f"{day} is not an XNYS session")
    return dg.RunRequest(
        run_key=f"rebalance-{day.isoformat()}",
        tags={SESSION_TAG: day.isoformat(), **REBALANCE_LANE},
    )
