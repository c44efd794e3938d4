"""Bars launched at once: the gateway requests a complete bar's run through the Dagster instance.

When the gateway stores the intent that completes a bar (every active strategy has submitted
for the first bar of the inbox, and the bar lane is free: no open bar, no halt), it does what
the bar sensor would do on its next look, without waiting for the daemon's loop:

1. :func:`complete_bar` finds the bar (the sensor's own rule, :func:`pipelines.sensors.ready_bars`,
   without the deadline: a bar past its deadline stays the sensor's);
2. :func:`request_bar_run` creates a ``bar_job`` run of the code location, tagged exactly as the
   sensor tags its request (``allocator/bar``, ``allocator/lane=bar``) plus the sensor's own
   ``dagster/run_key`` (:func:`pipelines.sensors.retry_run_key`) and ``dagster/sensor_name``
   tags, and ``allocator/launched_by=gateway``; then seals the bar
   (``seal_bar(bar, by="gateway")``); then submits the run to the instance (its run coordinator
   and run launcher, the warm one of ``dagster.yaml`` included).

Why in that order: the run exists (``NOT_STARTED``, which the sensor counts as in flight)
before the bar is sealed, so the sensor never sees a sealed bar without a run and requests it a
second time; and a sensor request that races the gateway anyway carries the same run key, which
the daemon finds on the gateway's run (:func:`dagster._daemon.sensor.fetch_existing_runs`
matches the run key, the sensor's name and the code location), so the bar still runs once. A
bar the sensor sealed first (``sealed_by`` is not the gateway) or that is settled already: the
created run is deleted unsubmitted. The sensor stays the deadline path and the backstop: if the
gateway is down, slow, or its run fails, the sensor sees the open bar and runs the lane as
before (retries under ``BAR#retryN``).

:class:`BarLauncher` owns one Dagster instance (``DAGSTER_HOME``) and one workspace of the code
location (a code server process, as the daemon and the webserver have) for the gateway's life,
loaded in the background when the app starts, and checks for a complete bar on a thread of its
own each time the app stores intents, so no reply waits for a launch. Without ``DAGSTER_HOME``
it stays off and says so once: the sensor launches every bar. While it runs, it renews its
presence in the instance every :data:`pipelines.sensors.GATEWAY_HEARTBEAT_S` seconds, and the
bar sensor leaves complete bars to it for a grace (the sensor's module doc); it clears the
presence when it stops.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from allocator.execution.ledger import BarState
from allocator.execution.records import parse_bar
from allocator.settings import INSTALL_ROOT, Settings
from assets.tags import BAR_LANE, BAR_TAG
from gateway.heap import freeze_long_lived
from pipelines.sensors import (
    GATEWAY_HEARTBEAT_S,
    bar_runs_in_flight,
    clear_gateway_presence,
    latest_bar_run,
    retry_run_key,
    write_gateway_presence,
)

if TYPE_CHECKING:
    from resources.ledger import Ledger

__all__ = [
    "LAUNCHED_BY_TAG",
    "SEALED_BY",
    "BarLauncher",
    "Launch",
    "complete_bar",
    "load_workspace",
    "request_bar_run",
]

_log = logging.getLogger("gateway.launch")

SEALED_BY = "gateway"
LAUNCHED_BY_TAG = "allocator/launched_by"
RUN_KEY_TAG = "dagster/run_key"  # dagster._core.storage.tags.RUN_KEY_TAG
SENSOR_NAME_TAG = "dagster/sensor_name"  # dagster._core.storage.tags.SENSOR_NAME_TAG
SENSOR_NAME = "bar_sensor"
CODE_MODULE = "pipelines.definitions"
LOCATION_NAME = "allocator"  # pyproject.toml [tool.dg.project] code_location_name
PREWARM_WAIT_S = 120.0  # how long the launcher waits for its workers to load before it is ready


@dataclass(frozen=True, slots=True)
class Launch:
    """A run the gateway launched: the bar and the run's id."""

    bar: str
    run_id: str


def complete_bar(store: Ledger) -> str | None:
    """The bar the gateway may launch now: the first bar of the inbox not yet recorded, when
    every active strategy has submitted for it and the lane is free (no open bar, no halt);
    else ``None``."""
    if store.lane_halt() is not None or store.open_bars():
        return None
    pending = store.pending_bars()
    if not pending:
        return None
    active = store.active_strategies()
    first = pending[0]
    return first.bar if active and active <= first.strategies else None


def load_workspace(
    instance: dg.DagsterInstance, location_name: str = LOCATION_NAME, module: str = CODE_MODULE
) -> Any:
    """A workspace process context of the code location (one code server process, started
    here; close it with ``__exit__``). ``location_name`` must be the daemon's for its run-key
    check to see the gateway's runs (``allocator`` under ``dagster dev`` / ``[tool.dg]``)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name=module,
        attribute=None,
        working_directory=str(INSTALL_ROOT),
        location_name=location_name,
    )
    context = WorkspaceProcessContext(instance, target)
    context.__enter__()
    return context


def request_bar_run(
    instance: dg.DagsterInstance,
    workspace: Any,
    store: Ledger,
    bar: str,
    *,
    job_name: str = "bar_job",
    location_name: str = LOCATION_NAME,
    extra_tags: Mapping[str, str] | None = None,
) -> str | None:
    """Create ``bar``'s run, seal the bar, submit the run; return its id (see the module doc).

    ``None`` (nothing launched) when a bar-lane run is in flight, ``bar`` already has a run,
    the sensor sealed it first, or it is final. ``workspace`` is a
    :func:`load_workspace` context.
    """
    if bar_runs_in_flight(instance) or latest_bar_run(instance, bar) is not None:
        return None
    status = store.bar_status(parse_bar(bar))
    if status is not None:  # sealed by someone else: the sensor's to run
        return None
    context = workspace.create_request_context()
    location = context.get_code_location(location_name)
    repo = next(r for r in location.get_repositories().values() if r.has_job(job_name))
    remote_job = repo.get_full_job(job_name)
    plan = location.get_execution_plan(
        remote_job, {}, step_keys_to_execute=None, known_state=None, instance=instance
    )
    tags = {
        **(remote_job.run_tags or {}),
        BAR_TAG: bar,
        **BAR_LANE,
        RUN_KEY_TAG: retry_run_key(bar, 0),
        SENSOR_NAME_TAG: SENSOR_NAME,
        LAUNCHED_BY_TAG: SEALED_BY,
        **(extra_tags or {}),
    }
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config={},
        resolved_op_selection=remote_job.resolved_op_selection,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        op_selection=None,
        status=dg.DagsterRunStatus.NOT_STARTED,
        root_run_id=None,
        parent_run_id=None,
        tags=tags,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )
    sealed = store.seal_bar(parse_bar(bar), by=SEALED_BY)
    if sealed.sealed_by != SEALED_BY or sealed.state is not BarState.SEALED or sealed.attempts:
        instance.delete_run(run.run_id)
        return None
    instance.submit_run(run.run_id, context)
    return run.run_id


class BarLauncher:
    """The gateway's launcher of complete bars (see the module doc).

    ``notify()`` after storing intents; the check and the launch run on the launcher's thread,
    one at a time. ``launches`` lists what it launched (newest last); ``error`` the last
    failure to load or launch (the sensor then launches the bar).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        location_name: str = LOCATION_NAME,
        instance: dg.DagsterInstance | None = None,
    ) -> None:
        self._settings = settings
        self._location = location_name
        self._instance = instance
        self._workspace: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.launches: list[Launch] = []
        self.error: str = ""

    @property
    def ready(self) -> bool:
        """Whether the instance and the code location are loaded."""
        return self._ready.is_set()

    @property
    def workspace(self) -> Any:
        """The loaded workspace context (``None`` until :attr:`ready`)."""
        return self._workspace

    @property
    def instance(self) -> dg.DagsterInstance | None:
        return self._instance

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="bar-launcher", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Look for a complete bar now (on the launcher's thread)."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._workspace is not None:
            self._workspace.__exit__(None, None, None)
            self._workspace = None
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None

    def _load(self) -> bool:
        try:
            if self._instance is None:
                if not os.environ.get("DAGSTER_HOME"):
                    self.error = "DAGSTER_HOME is not set: the bar sensor launches every bar"
                    _log.warning("bar launcher off: %s", self.error)
                    return False
                self._instance = dg.DagsterInstance.get()
            self._workspace = load_workspace(self._instance, self._location)
        except Exception as exc:  # the sensor still launches the bars
            self.error = f"cannot load the code location: {type(exc).__name__}: {exc}"
            _log.error("bar launcher off: %s", self.error)
            return False
        self._prewarm()
        freeze_long_lived()  # Dagster and the code location, now loaded (gateway/heap.py)
        self._ready.set()
        return True

    def _prewarm(self) -> None:
        """Have the instance's run launcher start its bar-run workers now and wait until they
        have loaded (the warm launcher of ``dagster.yaml`` has ``prewarm`` and ``wait_spares``;
        any other launcher starts each run as it does), so the first bar this gateway launches
        starts warm too."""
        assert self._instance is not None
        prewarm = getattr(self._instance.run_launcher, "prewarm", None)
        if prewarm is None:
            return
        try:
            context = self._workspace.create_request_context()
            location = context.get_code_location(self._location)
            job = self._settings.bar_job
            repo = next(r for r in location.get_repositories().values() if r.has_job(job))
            prewarm(repo.get_full_job(job).get_python_origin())
            wait = getattr(self._instance.run_launcher, "wait_spares", None)
            if wait is not None and not wait(PREWARM_WAIT_S):
                _log.warning("bar-run workers still loading after %s s", PREWARM_WAIT_S)
        except Exception:  # only the first bar's start-up is slower
            _log.exception("could not prewarm the bar-run workers (the first bar starts cold)")

    def _loop(self) -> None:
        if not self._load():
            return
        from resources.ledger import Ledger

        store = Ledger(self._settings.ledger_url, upgrade=False)
        renewed = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - renewed >= GATEWAY_HEARTBEAT_S:
                    renewed = time.monotonic()
                    self._say_present()
                woken = self._wake.wait(max(0.0, renewed + GATEWAY_HEARTBEAT_S - time.monotonic()))
                if self._stop.is_set():
                    break
                if woken:
                    self._wake.clear()
                    self._launch_ready(store)
        finally:
            store.close()
            self._say_gone()

    def _say_present(self) -> None:
        """Renew this launcher's presence, for which the bar sensor leaves complete bars to it
        (:func:`pipelines.sensors.gateway_present`). Best effort: without it the sensor
        launches the bars at once, as it did before the gateway."""
        assert self._instance is not None
        try:
            write_gateway_presence(self._instance)
        except Exception:
            _log.exception("could not renew the gateway's presence (the sensor launches bars)")

    def _say_gone(self) -> None:
        if self._instance is None:
            return
        try:
            clear_gateway_presence(self._instance)
        except Exception:  # its age says the same within GATEWAY_PRESENCE_FRESH_S
            _log.exception("could not clear the gateway's presence")

    def _launch_ready(self, store: Ledger) -> None:
        assert self._instance is not None
        try:
            bar = complete_bar(store)
            if bar is None:
                return
            run_id = request_bar_run(
                self._instance,
                self._workspace,
                store,
                bar,
                job_name=self._settings.bar_job,
                location_name=self._location,
            )
        except Exception as exc:  # logged; the sensor is the backstop
            self.error = f"launch failed: {type(exc).__name__}: {exc}"
            _log.exception("bar launch failed (the bar sensor will launch it)")
            return
        if run_id is not None:
            self.launches.append(Launch(bar=bar, run_id=run_id))
            _log.info("bar %s complete: launched run %s", bar, run_id)
