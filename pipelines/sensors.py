"""The bar sensor: one ``bar_job`` run per bar of the intent inbox.

A bar is ready when every active strategy (not benched in the latest published allocation;
every registered strategy before the first allocation) has submitted an intent for it, or when
``bar_deadline_seconds`` have passed since its first intent. ``run_key`` is the bar, and the
cursor is the last bar launched, so a bar never runs twice from the sensor; runs never overlap
(``allocator/lane=bar`` is limited to one run in ``dagster.yaml``).
"""

import os
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from assets.execution import BAR_TAG
from pipelines.jobs import bar_job, bar_job_multiprocess
from resources.dagster_resources import AllocatorSettings, LedgerResource

INTERVAL_S = int(os.environ.get("ALLOCATOR_BAR_SENSOR_INTERVAL", "5"))
# The latency benchmark's baseline points the sensor at the multiprocess twin of bar_job.
BAR_JOB = os.environ.get("ALLOCATOR_BAR_JOB", "bar_job")
DEFAULT_STATUS = (
    dg.DefaultSensorStatus.RUNNING
    if os.environ.get("ALLOCATOR_SENSORS_RUNNING") == "1"
    else dg.DefaultSensorStatus.STOPPED
)


def ready_bars(
    store: object, deadline_s: float, now: datetime, after: str = ""
) -> list[tuple[str, str]]:
    """``(bar, why)`` for every unrecorded bar after ``after`` that is ready, in bar order."""
    from resources.ledger import schema as t

    engine = store.engine  # type: ignore[attr-defined]
    i = t.intents
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(i.c.bar, i.c.strategy, sa.func.min(i.c.received_at))
            .where(i.c.bar > after)
            .group_by(i.c.bar, i.c.strategy)
        ).all()
        done = {r[0] for r in conn.execute(sa.select(t.bars.c.bar).where(t.bars.c.bar > after))}
    published = store.allocations()  # type: ignore[attr-defined]
    if published:
        latest = max(a.date for a in published)
        active = {a.strategy for a in published if a.date == latest and not a.benched}
    else:
        active = set(store.strategies())  # type: ignore[attr-defined]
    by_bar: dict[str, tuple[set[str], datetime]] = {}
    for bar, strategy, first in rows:
        first = first if first.tzinfo else first.replace(tzinfo=UTC)
        names, earliest = by_bar.get(bar, (set(), first))
        names.add(strategy)
        by_bar[bar] = (names, min(earliest, first))
    ready = []
    for bar in sorted(by_bar):
        if bar in done:
            continue
        names, first = by_bar[bar]
        if active <= names:
            ready.append((bar, "all active strategies submitted"))
        elif (now - first).total_seconds() >= deadline_s:
            ready.append((bar, f"deadline passed; missing {sorted(active - names)}"))
        else:
            break  # bars run in order: a later bar waits for this one
    return ready


@dg.sensor(
    jobs=[bar_job, bar_job_multiprocess],
    minimum_interval_seconds=INTERVAL_S,
    default_status=DEFAULT_STATUS,
    description="Launches bar_job once per bar of the intent inbox when the bar is complete.",
)
def bar_sensor(
    context: dg.SensorEvaluationContext, ledger: LedgerResource, settings: AllocatorSettings
) -> dg.SensorResult | dg.SkipReason:
    after = context.cursor or ""
    with ledger.open() as store:
        ready = ready_bars(store, settings.bar_deadline_seconds, datetime.now(UTC), after)
    if not ready:
        return dg.SkipReason(f"no complete bar after {after or 'the start'}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=bar, job_name=BAR_JOB, tags={BAR_TAG: bar, "allocator/lane": "bar"}
            )
            for bar, _ in ready
        ],
        cursor=ready[-1][0],
    )
