"""The bar sensor: one ``bar_job`` run per bar of the intent inbox.

A bar is ready when every active strategy (not benched in the latest published allocation;
every registered strategy before the first allocation) has submitted an intent for it, or when
``bar_deadline_seconds`` have passed since its first intent. ``run_key`` is the bar, and the
cursor is the last bar launched, so a bar never runs twice from the sensor.

Latency: ``dagster-daemon`` evaluates sensors at most once per loop, and its loop period is a
constant of Dagster (``MIN_INTERVAL_LOOP_TIME = 5`` s in ``dagster._daemon.sensor``, not
configurable). A plain 5 s sensor therefore waits 0-5 s (2.5 s on average) before a bar is seen.
So each evaluation *holds*: it re-reads the inbox every ``sensor_poll_s`` seconds (0.2,
``ALLOCATOR_BAR_SENSOR_POLL``) for up to ``sensor_hold_s`` seconds (4.8: one daemon loop,
``ALLOCATOR_BAR_SENSOR_HOLD``), both read from the ``settings`` resource, and returns as soon
as a bar is ready. ``minimum_interval_seconds`` is 1 (``ALLOCATOR_BAR_SENSOR_INTERVAL``) so that
every daemon loop evaluates it (with 5, the "elapsed < 5 s" test skipped every other loop and
the period became 10 s).

:func:`build_bar_sensor` makes the sensor from the :class:`allocator.settings.Settings` record
(interval, default status from ``ALLOCATOR_SENSORS_RUNNING``, and the job it launches: the
latency benchmark's baseline points it at the multiprocess twin with ``ALLOCATOR_BAR_JOB``);
:data:`bar_sensor` is the one with the record's defaults.

No overlap: the instance launches runs at once (default run coordinator, no queue on the hot
path), so the sensor itself requests one bar at a time and only while no bar-lane run is queued
or in progress; a bar that becomes ready while its predecessor runs is requested as soon as that
run ends (within the same held evaluation).
"""

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from allocator.settings import Settings
from assets.tags import BAR_LANE, BAR_TAG
from pipelines.jobs import bar_job, bar_job_multiprocess
from resources.dagster_resources import AllocatorSettings, LedgerResource

if TYPE_CHECKING:
    from resources.ledger import Ledger

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def bar_runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Ids of the bar-lane runs queued or in progress (any job: sensor, UI or re-execution)."""
    return [
        r.run_id
        for r in instance.get_runs(
            filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=BAR_LANE), limit=5
        )
    ]


def ready_bars(
    store: "Ledger",
    deadline_s: float,
    now: datetime,
    after: str = "",
    active: set[str] | None = None,
) -> list[tuple[str, str]]:
    """``(bar, why)`` for every unrecorded bar after ``after`` that is ready, in bar order.

    ``active`` defaults to the ledger's active strategies; the inbox is read with one query
    (:meth:`~resources.ledger.Ledger.pending_bars`), cheap enough to repeat every poll."""
    if active is None:
        active = store.active_strategies()
    ready = []
    for pending in store.pending_bars(after):
        if active <= pending.strategies:
            ready.append((pending.bar, "all active strategies submitted"))
        elif (now - pending.first_received_at).total_seconds() >= deadline_s:
            missing = sorted(active - pending.strategies)
            ready.append((pending.bar, f"deadline passed; missing {missing}"))
        else:
            break  # bars run in order: a later bar waits for this one
    return ready


def build_bar_sensor(settings: Settings) -> dg.SensorDefinition:
    """The bar sensor with the record's interval, default status and job (see module doc)."""
    job_name = settings.bar_job

    @dg.sensor(
        name="bar_sensor",
        jobs=[bar_job, bar_job_multiprocess],
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if settings.sensors_running
            else dg.DefaultSensorStatus.STOPPED
        ),
        description=(
            "Launches bar_job once per bar of the intent inbox when the bar is complete, one "
            "bar at a time; each evaluation watches the inbox for one daemon loop."
        ),
    )
    def _bar_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource, settings: AllocatorSettings
    ) -> dg.SensorResult | dg.SkipReason:
        return _evaluate(context, ledger, settings, job_name=job_name)

    return _bar_sensor


def _evaluate(
    context: dg.SensorEvaluationContext,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    *,
    job_name: str,
) -> dg.SensorResult | dg.SkipReason:
    after = context.cursor or ""
    hold_s, poll_s = settings.sensor_hold_s, settings.sensor_poll_s
    until = time.monotonic() + hold_s
    waiting_on: list[str] = []
    with ledger.open() as store:
        active = store.active_strategies()
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
                                job_name=job_name,
                                tags={BAR_TAG: bar, **BAR_LANE},
                            )
                        ],
                        cursor=bar,
                    )
            if time.monotonic() + poll_s >= until:
                break
            time.sleep(poll_s)
    if waiting_on:
        return dg.SkipReason(f"bar {ready[0][0]} is ready; waiting for run(s) {waiting_on}")
    return dg.SkipReason(f"no complete bar after {after or 'the start'}")


bar_sensor = build_bar_sensor(Settings())
