"""The bar sensor: one ``bar_job`` run per bar of the intent inbox.

A bar is ready when every active strategy (not benched in the latest published allocation;
every registered strategy before the first allocation) has submitted an intent for it, or when
``bar_deadline_seconds`` have passed since its first intent. ``run_key`` is the bar, and the
cursor is the last bar launched, so a bar never runs twice from the sensor.

Latency: ``dagster-daemon`` evaluates sensors at most once per loop, and its loop period is a
constant of Dagster (``MIN_INTERVAL_LOOP_TIME = 5`` s in ``dagster._daemon.sensor``, not
configurable). A plain 5 s sensor therefore waits 0-5 s (2.5 s on average) before a bar is seen.
So each evaluation *holds*: it re-reads the inbox every ``ALLOCATOR_BAR_SENSOR_POLL`` seconds
(0.2) for up to ``ALLOCATOR_BAR_SENSOR_HOLD`` seconds (4.8: one daemon loop) and returns as soon
as a bar is ready. ``minimum_interval_seconds`` is 1 so that every daemon loop evaluates it
(with 5, the "elapsed < 5 s" test skipped every other loop and the period became 10 s).

No overlap: the instance launches runs at once (default run coordinator, no queue on the hot
path), so the sensor itself requests one bar at a time and only while no bar-lane run is queued
or in progress; a bar that becomes ready while its predecessor runs is requested as soon as that
run ends (within the same held evaluation).
"""

import os
import time
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from assets.tags import BAR_LANE, BAR_TAG
from pipelines.jobs import bar_job, bar_job_multiprocess
from resources.dagster_resources import AllocatorSettings, LedgerResource

INTERVAL_S = int(os.environ.get("ALLOCATOR_BAR_SENSOR_INTERVAL", "1"))
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# The latency benchmark's baseline points the sensor at the multiprocess twin of bar_job.
BAR_JOB = os.environ.get("ALLOCATOR_BAR_JOB", "bar_job")
DEFAULT_STATUS = (
    dg.DefaultSensorStatus.RUNNING
    if os.environ.get("ALLOCATOR_SENSORS_RUNNING") == "1"
    else dg.DefaultSensorStatus.STOPPED
)


def hold_s() -> float:
    """How long one evaluation waits for a ready bar (read at each evaluation; 0 in tests)."""
    return float(os.environ.get("ALLOCATOR_BAR_SENSOR_HOLD", "4.8"))


def poll_s() -> float:
    return float(os.environ.get("ALLOCATOR_BAR_SENSOR_POLL", "0.2"))


def active_strategies(store: object) -> set[str]:
    """Strategies not benched in the latest published allocation (all before the first one)."""
    published = store.allocations()  # type: ignore[attr-defined]
    if published:
        latest = max(a.date for a in published)
        return {a.strategy for a in published if a.date == latest and not a.benched}
    return set(store.strategies())  # type: ignore[attr-defined]


def bar_runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Ids of the bar-lane runs queued or in progress (any job: sensor, UI or re-execution)."""
    return [
        r.run_id
        for r in instance.get_runs(
            filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=BAR_LANE), limit=5
        )
    ]


def ready_bars(
    store: object,
    deadline_s: float,
    now: datetime,
    after: str = "",
    active: set[str] | None = None,
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
    if active is None:
        active = active_strategies(store)
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
    description=(
        "Launches bar_job once per bar of the intent inbox when the bar is complete, one bar "
        "at a time; each evaluation watches the inbox for one daemon loop."
    ),
)
def bar_sensor(
    context: dg.SensorEvaluationContext, ledger: LedgerResource, settings: AllocatorSettings
) -> dg.SensorResult | dg.SkipReason:
    after = context.cursor or ""
    until = time.monotonic() + hold_s()
    waiting_on: list[str] = []
    with ledger.open() as store:
        active = active_strategies(store)
        while True:
            ready = ready_bars(
                store, settings.bar_deadline_seconds, datetime.now(UTC), after, active
            )
            if ready:
                waiting_on = bar_runs_in_flight(context.instance)
                if not waiting_on:
                    bar, why = ready[0]
                    context.log.info(f"bar {bar}: {why}")
                    return dg.SensorResult(
                        run_requests=[
                            dg.RunRequest(
                                run_key=bar,
                                job_name=BAR_JOB,
                                tags={BAR_TAG: bar, **BAR_LANE},
                            )
                        ],
                        cursor=bar,
                    )
            if time.monotonic() + poll_s() >= until:
                break
            time.sleep(poll_s())
    if waiting_on:
        return dg.SkipReason(f"bar {ready[0][0]} is ready; waiting for run(s) {waiting_on}")
    return dg.SkipReason(f"no complete bar after {after or 'the start'}")
