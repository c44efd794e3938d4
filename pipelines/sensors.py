"""The bar sensor: one ``bar_job`` run per bar of the intent inbox.

A bar is ready when every active strategy (not benched in the latest published allocation;
every registered strategy before the first allocation) has submitted an intent for it, or when
``bar_deadline_seconds`` have passed since its first intent. ``run_key`` is the bar, and the
cursor is the last bar launched (a retry of a failed bar has a run key of its own).

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

Sealing and the lane (docs/decisions/0012-live-bar-path.md): the sensor seals a bar
(``seal_bar(bar, by="bar_sensor")``) before it returns its ``RunRequest``, so an intent that
arrives after the request is refused ``late``. It never requests a later bar while a sealed bar
is open (``Ledger.open_bars``: not settled nor abandoned). When the open bar's latest bar-lane
run (tag ``allocator/bar``) FAILED, was CANCELED, or ended with the bar still open, the sensor
counts it (``record_bar_failure``: the stored error starts with the run's id, so a run is
counted once; a lease the run still holds is given up) and schedules the retry
``[execution] retry_backoff_s × 2**attempts`` later (capped at an hour); once due it requests
the bar again with a new ``run_key`` per attempt
(:func:`retry_run_key`: the bar, then ``BAR#retry1``, ``BAR#retry2`` ...), tagged like the
first. After ``[execution] max_bar_retries`` failed retries it halts the lane (``halt_lane``,
the reason names the bar and its last error) and requests nothing until ``allocator bar retry``
or ``allocator bar abandon``. A bar sealed but never launched (the daemon died between the seal
and the launch) is open with no run: it is requested again. Each failure and halt is also
reported as a runless evaluation of the ``bar_lane_ok`` check (:mod:`assets.lane`), and the
skip reason says what the lane waits for.

Leaving a complete bar to the gateway (issue 12): the strategy gateway's launcher
(:class:`gateway.launch.BarLauncher`) requests a bar's run itself as soon as it stores the intent
that completes it, and says it is alive with a heartbeat in the instance's key-value store
(:func:`write_gateway_presence`, every :data:`GATEWAY_HEARTBEAT_S`). While that heartbeat is
fresh (:data:`GATEWAY_PRESENCE_FRESH_S`), a bar this sensor sees *complete* is left to the
gateway for ``sensor_gateway_grace_s`` (1 s, ``ALLOCATOR_BAR_SENSOR_GATEWAY_GRACE``) from the
poll that first saw it complete; the gateway's run then appears in flight and the sensor asks
nothing. If the grace passes with no run (the gateway is stuck, crashed after its last
heartbeat, or declined), the sensor seals and requests the bar as before, so it stays the
backstop, and a bar past its deadline is never left to anyone. Without this the sensor won the
race for about one bar in seven (it reads the inbox every 0.2 s; the gateway launches about
40 ms after the completing intent), and those bars ran through the daemon's run launcher, whose
workers are separate from the gateway's.

A bar another runner holds (``allocator bar run`` outside Dagster: the bar's lease,
:mod:`allocator.execution.lease`, held by a live owner) is not requested: two runners of one
bar would both send. A run of the bar is any bar-lane run whose ``allocator/bar`` tag, or its
parent's, names it (a re-execution through the Python API included: :func:`latest_bar_run`).
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from allocator.config import MAX_RETRY_DELAY_S, ExecutionConfig
from allocator.execution.lease import LeaseOwner, lease_is_live
from allocator.execution.ledger import BarState, BarStatus
from allocator.execution.records import parse_bar
from allocator.settings import Settings
from assets.lane import lane_evaluation
from assets.tags import BAR_LANE, BAR_TAG, bar_key_of_run, lease_label
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


GATEWAY_PRESENCE_KEY = "allocator/gateway_bar_launcher"
GATEWAY_HEARTBEAT_S = 2.0  # how often a running gateway's launcher renews its presence
GATEWAY_PRESENCE_FRESH_S = 10.0  # a presence older than this is a gateway that is gone


def write_gateway_presence(instance: dg.DagsterInstance, at: float | None = None) -> None:
    """Record that a gateway's bar launcher is running (``at``: default now, epoch seconds)."""
    stamp = time.time() if at is None else at
    instance.run_storage.set_cursor_values({GATEWAY_PRESENCE_KEY: repr(stamp)})


def clear_gateway_presence(instance: dg.DagsterInstance) -> None:
    """Record that the gateway's bar launcher stopped (the sensor launches every bar again)."""
    instance.run_storage.set_cursor_values({GATEWAY_PRESENCE_KEY: ""})


def gateway_present(instance: dg.DagsterInstance, now: float | None = None) -> bool:
    """Whether a gateway's bar launcher renewed its presence in the last
    :data:`GATEWAY_PRESENCE_FRESH_S` seconds."""
    text = instance.run_storage.get_cursor_values({GATEWAY_PRESENCE_KEY}).get(GATEWAY_PRESENCE_KEY)
    try:
        stamp = float(text or "")
    except ValueError:
        return False
    age = (time.time() if now is None else now) - stamp
    return age <= GATEWAY_PRESENCE_FRESH_S


def bar_runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Ids of the bar-lane runs queued or in progress (any job: sensor, UI or re-execution)."""
    return [
        r.run_id
        for r in instance.get_runs(
            filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=BAR_LANE), limit=5
        )
    ]


COMPLETE = "all active strategies submitted"  # why a bar is ready before its deadline


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
            ready.append((pending.bar, COMPLETE))
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
            "bar at a time, sealing the bar as it asks; a failed bar is retried with backoff "
            "and stops the lane (no later bar) until it is settled or abandoned."
        ),
    )
    def _bar_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource, settings: AllocatorSettings
    ) -> dg.SensorResult | dg.SkipReason:
        return _evaluate(context, ledger, settings, job_name=job_name)

    return _bar_sensor


FAILED_RUN = (
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
    dg.DagsterRunStatus.SUCCESS,  # a run that ended with its bar still open did not settle it
)


_RECENT_BAR_RUNS = 20


def latest_bar_run(instance: dg.DagsterInstance, bar: str) -> dg.DagsterRun | None:
    """The newest run of ``bar``: any bar-lane run (job or re-execution, however launched)
    whose bar is ``bar`` by its tag or its parent's (:func:`assets.tags.bar_key_of_run`).

    A re-execution launched through the Python API has no ``allocator/bar`` tag until its
    first step adds it; one that failed before any step ran never gets it, and is still that
    bar's attempt. Bar runs are serial, so the newest are among the latest bar-lane runs; the
    tag query finds an older tagged one.
    """
    for run in instance.get_runs(filters=dg.RunsFilter(tags=BAR_LANE), limit=_RECENT_BAR_RUNS):
        if bar_key_of_run(instance, run) == bar:
            return run
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BAR_TAG: bar, **BAR_LANE}), limit=1)
    return runs[0] if runs else None


def run_error(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why ``run`` failed: its first step failure's error, else its run-failure message."""
    if run.status is dg.DagsterRunStatus.CANCELED:
        return "the run was canceled"
    if run.status is dg.DagsterRunStatus.SUCCESS:
        return "the run succeeded but did not settle the bar"
    for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        for entry in instance.all_logs(run.run_id, of_type=kind):
            event = entry.dagster_event
            if event is None:
                continue
            data = (
                getattr(event, "step_failure_data", None)
                if kind is dg.DagsterEventType.STEP_FAILURE
                else None
            )
            error = getattr(data, "error", None)
            if error is not None:
                while getattr(error, "cause", None) is not None:  # the user code's own error
                    error = error.cause
                step = event.step_key or "?"
                return f"step {step}: {error.cls_name}: {error.message.strip()}"[:2000]
            if event.message:
                return event.message.strip()[:2000]
    return "the run failed (no error recorded)"


def failure_text(run: dg.DagsterRun, error: str) -> str:
    """The ``last_error`` stored for a failed run: it starts with the run's id (how the sensor
    knows that run's failure is already counted)."""
    return f"run {run.run_id} {run.status.value}: {error}"


def retry_run_key(bar: str, attempts: int) -> str:
    """The run key of a bar's attempt: the bar for the first, ``BAR#retryN`` after N failures."""
    return bar if attempts == 0 else f"{bar}#retry{attempts}"


def retry_delay_s(backoff_s: float, attempts_before: int) -> float:
    """``backoff_s × 2**attempts_before``, capped (``MAX_RETRY_DELAY_S``)."""
    return float(min(backoff_s * float(2 ** min(attempts_before, 30)), MAX_RETRY_DELAY_S))


@dataclass
class _Evaluation:
    """What one held evaluation decided so far: check evaluations to report, the last skip."""

    events: list[dg.AssetCheckEvaluation] = field(default_factory=list)
    skip: str = ""
    gateway: bool = False  # a gateway's launcher is alive (read once per evaluation)

    def left_to_gateway(self, bar: str, why: str, grace_s: float) -> bool:
        """Whether the complete ``bar`` is still within the gateway's grace (module doc)."""
        if not self.gateway or why != COMPLETE or grace_s <= 0:
            return False
        first = _COMPLETE_SINCE.setdefault(bar, time.monotonic())
        while len(_COMPLETE_SINCE) > _COMPLETE_KEPT:  # the oldest bars first
            del _COMPLETE_SINCE[next(iter(_COMPLETE_SINCE))]
        return time.monotonic() - first < grace_s


# When this process first saw each recent bar complete: kept across evaluations (the sensor's
# code-server process lives on), so a grace longer than one held evaluation still ends. A
# restarted process starts the grace again, at most once.
_COMPLETE_SINCE: dict[str, float] = {}
_COMPLETE_KEPT = 64


def _request(bar: str, attempts: int, job_name: str, cursor: str) -> dg.SensorResult:
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=retry_run_key(bar, attempts),
                job_name=job_name,
                tags={BAR_TAG: bar, **BAR_LANE},
            )
        ],
        cursor=max(cursor, bar),
    )


def _open_bar_step(
    context: dg.SensorEvaluationContext,
    store: "Ledger",
    execution: ExecutionConfig,
    open_bars: list[BarStatus],
    state: _Evaluation,
    *,
    job_name: str,
    after: str,
) -> dg.SensorResult | None:
    """The lane has an open bar (the earliest): record its failed run, halt the lane after the
    last retry, or request it again once due (or for the first time: sealed, never launched)."""
    status = open_bars[0]
    bar = status.bar
    in_flight = bar_runs_in_flight(context.instance)
    if in_flight:
        state.skip = f"bar {bar} is open; waiting for run(s) {in_flight}"
        return None
    latest = latest_bar_run(context.instance, bar)
    counted = latest is not None and (status.last_error or "").startswith(f"run {latest.run_id} ")
    if latest is not None and not counted and latest.status in FAILED_RUN:
        delay = retry_delay_s(execution.retry_backoff_s, status.attempts)
        status = store.record_bar_failure(
            parse_bar(bar),
            failure_text(latest, run_error(context.instance, latest)),
            retry_at=datetime.now(UTC) + timedelta(seconds=delay),
        )
        context.log.warning(f"bar {bar}: attempt {status.attempts} failed: {status.last_error}")
        _free_pool_slots(context, latest)
        status = _free_lease(store, status, latest)
        retries = status.attempts - 1
        if retries >= execution.max_bar_retries:
            store.halt_lane(
                f"bar {bar} failed {status.attempts} time(s) ({retries} retries, "
                f"[execution] max_bar_retries = {execution.max_bar_retries}); last error: "
                f"{status.last_error}",
                bar=parse_bar(bar),
            )
        open_bars = [status, *open_bars[1:]]
        state.events.append(lane_evaluation(store.lane_halt(), open_bars))
        if store.lane_halt() is not None:
            state.skip = _halted(store)
            return None
    if lease_is_live(status, datetime.now(UTC)):
        state.skip = _leased(status)
        return None
    due = status.next_retry_at
    if status.state is BarState.FAILED and due is not None and due > datetime.now(UTC):
        state.skip = (
            f"bar {bar} failed {status.attempts} time(s), next retry at "
            f"{due.isoformat()}: {status.last_error}"
        )
        return None
    why = "retry" if status.attempts else "sealed but never launched"
    context.log.info(f"bar {bar}: requesting it again ({why}, attempt {status.attempts + 1})")
    return _request(bar, status.attempts, job_name, after)


def _leased(status: BarStatus) -> str:
    owner = LeaseOwner.parse(status.lease_owner or "")
    who = f"{owner.label} (pid {owner.pid} on {owner.host})" if owner else status.lease_owner
    until = status.lease_expires_at.isoformat() if status.lease_expires_at else "?"
    return f"bar {status.bar} is being run by {who} (its lease holds until {until})"


def _free_lease(store: "Ledger", status: BarStatus, run: dg.DagsterRun) -> BarStatus:
    """Give up the bar's lease when the ended ``run`` holds it (its worker died with it held),
    so its retry need not wait for the lease's expiry; return the bar's row as it is now."""
    owner = LeaseOwner.parse(status.lease_owner or "")
    if owner is None or owner.label != lease_label(run.run_id):
        return status
    bar = parse_bar(status.bar)
    store.release_bar_lease(bar, str(status.lease_owner))
    return store.bar_status(bar) or status


def _free_pool_slots(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> None:
    """Give back the concurrency-pool slots the ended ``run`` still holds.

    A run worker that died (SIGKILL, the machine) never releases its step's slot of the
    ``broker`` pool (limit 1), so the bar's retry would wait for it for ever. The run has
    ended (run monitoring saw its worker gone, or it failed or was canceled), so its slots are
    free to take; ``run_monitoring.free_slots_after_run_end_seconds`` in ``dagster.yaml`` does
    the same for any run, a little later."""
    storage = context.instance.event_log_storage
    if run.status is dg.DagsterRunStatus.SUCCESS or not storage.supports_global_concurrency_limits:
        return
    storage.free_concurrency_slots_for_run(run.run_id)


def _halted(store: "Ledger") -> str:
    halt = store.lane_halt()
    if halt is None:
        return ""
    return (
        f"the bar lane is halted since {halt.halted_at.isoformat()}: {halt.reason}; "
        "`allocator bar retry BAR` or `allocator bar abandon BAR --reason ...`"
    )


def _step(
    context: dg.SensorEvaluationContext,
    store: "Ledger",
    settings: AllocatorSettings,
    execution: ExecutionConfig,
    state: _Evaluation,
    active: set[str],
    *,
    job_name: str,
    after: str,
) -> dg.SensorResult | None:
    """One look at the lane and the inbox: a run request, or ``None`` with ``state.skip``."""
    halted = _halted(store)
    if halted:
        state.skip = halted
        return None
    open_bars = list(store.open_bars())
    if open_bars:
        return _open_bar_step(
            context, store, execution, open_bars, state, job_name=job_name, after=after
        )
    ready = ready_bars(store, settings.bar_deadline_seconds, datetime.now(UTC), after, active)
    for bar, why in ready:
        waiting_on = bar_runs_in_flight(context.instance)
        if waiting_on:
            state.skip = f"bar {bar} is ready; waiting for run(s) {waiting_on}"
            return None
        if state.left_to_gateway(bar, why, settings.sensor_gateway_grace_s):
            state.skip = (
                f"bar {bar} is complete; left to the gateway, which launches it (this sensor "
                f"does if no run appears within {settings.sensor_gateway_grace_s:g} s)"
            )
            return None
        # Seal when the run is requested (SPEC §7): from now on an intent for it is late.
        sealed = store.seal_bar(parse_bar(bar), by="bar_sensor")
        if sealed.state.is_final:  # settled or abandoned before: nothing to run
            continue
        if lease_is_live(sealed, datetime.now(UTC)):  # `allocator bar run` sealed it first
            state.skip = _leased(sealed)
            return None
        context.log.info(f"bar {bar}: {why}; sealed")
        return _request(bar, sealed.attempts, job_name, after)
    state.skip = f"no complete bar after {after or 'the start'}"
    return None


def _evaluate(
    context: dg.SensorEvaluationContext,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    *,
    job_name: str,
) -> dg.SensorResult | dg.SkipReason:
    after = context.cursor or ""
    hold_s, poll_s = settings.sensor_hold_s, settings.sensor_poll_s
    execution = settings.config().execution
    until = time.monotonic() + hold_s
    state = _Evaluation(
        gateway=settings.sensor_gateway_grace_s > 0 and gateway_present(context.instance)
    )
    with ledger.open() as store:
        active = store.active_strategies()
        while True:
            result = _step(
                context, store, settings, execution, state, active, job_name=job_name, after=after
            )
            if result is not None:
                if state.events:
                    return dg.SensorResult(
                        run_requests=result.run_requests,
                        cursor=result.cursor,
                        asset_events=state.events,
                    )
                return result
            if time.monotonic() + poll_s >= until:
                break
            time.sleep(poll_s)
    if state.events:
        return dg.SensorResult(skip_reason=state.skip, asset_events=state.events)
    return dg.SkipReason(state.skip)


bar_sensor = build_bar_sensor(Settings())
