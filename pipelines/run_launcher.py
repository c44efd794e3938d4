"""``WarmRunLauncher``: Dagster's default run launcher, with bar runs handed to a run worker that
has already loaded the code location (configured in ``dagster.yaml``).

Why: with the default launcher a bar run starts in a new process (spawned by the code server)
that imports Dagster (~1.0 s) and then the code location (~0.7 s) before its first step, which
was most of the ~2.5 s between a bar's run being created and its orders being acknowledged. The
bar lane is a steady stream of identical runs, so this launcher keeps one spare worker
(:mod:`pipelines.run_worker`) per code location that has done those imports in advance, hands
it the next bar run, and starts the next spare at once. The run is executed by Dagster's own
run-worker code (``dagster api execute_run``), with the same events, compute logs, step
concurrency pools and failure handling as any other run.

What is different from the default launcher, and how it is covered:

- Only runs carrying every tag in ``lane_tags`` (default ``allocator/lane: bar``) go to a worker;
  every other run (rebalances, backfills, anything launched from the UI without the tag) goes
  through :class:`dagster.DefaultRunLauncher` unchanged. Re-executions of a bar run copy its
  tags, so they use a worker too.
- The first bar run after a launcher starts (per process: the daemon, the webserver) is a cold
  start of the same worker; spares exist only after that, so a process that never launches a
  bar run never starts one.
- A spare loaded its code when it started. If a module of the code location changed on disk
  since, the worker does not run the old code: it becomes the stock ``dagster api execute_run``
  (``exec``), which loads the code afresh. A spare that died is replaced by a cold start.
- Termination (UI "Terminate", ``instance.run_launcher.terminate``) sends SIGINT to the worker,
  which is how Dagster interrupts its own run workers; the run ends CANCELED.
- Run monitoring (``run_monitoring`` in ``dagster.yaml``) asks this launcher whether a bar run's
  worker process is still alive, so a bar run whose worker was killed is marked failed instead
  of holding the bar lane forever. Runs launched through the code server are not checked (the
  default launcher checks nothing either).
- Spares read their next run from a pipe: when the launching process ends, they see end of
  input and exit. Each spare costs one idle Python process (~220 MB).

Tags written on each bar run: ``allocator/run_worker_pid``, ``allocator/run_worker_host`` and
``allocator/run_worker_start`` (``warm`` or ``cold``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._check import CheckError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._serdes import ConfigurableClassData, serialize_value

from assets.tags import BAR_LANE, HOST_TAG, PID_TAG, START_TAG

DEFAULT_LANE_TAGS = BAR_LANE
WORKER_MODULE = "pipelines.run_worker"
# Workers still running their run when their launcher was disposed (reaped later, like
# subprocess's own list of abandoned children).
_DETACHED: list[subprocess.Popen[str]] = []


class WarmRunLauncher(dg.DefaultRunLauncher):
    """Launches runs with ``lane_tags`` in a run worker started in advance; others as the
    default launcher does."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        lane_tags: Mapping[str, str] | None = None,
        preload_modules: Sequence[str] = (),
    ) -> None:
        super().__init__(inst_data=inst_data)
        self._lane_tags = dict(DEFAULT_LANE_TAGS if lane_tags is None else lane_tags)
        self._preload = list(preload_modules)
        self._lock = threading.Lock()
        self._spares: dict[str, subprocess.Popen[str]] = {}  # serialized repo origin -> spare
        self._workers: dict[str, subprocess.Popen[str]] = {}  # run id -> its worker
        self._host = socket.gethostname()

    @classmethod
    def config_type(cls) -> Any:
        return {
            "lane_tags": dg.Field(dg.Permissive(), is_required=False),
            "preload_modules": dg.Field([str], is_required=False, default_value=[]),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> WarmRunLauncher:
        tags = config_value.get("lane_tags")
        return cls(
            inst_data=inst_data,
            lane_tags=None if tags is None else dict(tags),
            preload_modules=config_value.get("preload_modules", []),
        )

    # --- launching ---------------------------------------------------------------------------

    def in_lane(self, run: dg.DagsterRun) -> bool:
        return bool(self._lane_tags) and all(
            run.tags.get(k) == v for k, v in self._lane_tags.items()
        )

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        ref = self._instance_ref()
        if origin is None or ref is None or not self.in_lane(run):
            super().launch_run(context)
            return
        from dagster._grpc.types import ExecuteRunArgs

        run_args = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=ref)
        args = serialize_value(run_args)
        repo = origin.repository_origin
        key = serialize_value(repo)
        spec = json.dumps(
            {"origin": key, "instance_ref": serialize_value(ref), "preload": self._preload}
        )
        with self._lock:
            self._reap()
            worker, start = self._spares.pop(key, None), "warm"
            for _ in range(2):  # a spare that died (before or during the hand-over): go cold
                if worker is None or worker.poll() is not None:
                    worker, start = self._start_worker(spec, repo), "cold"
                tags = {PID_TAG: str(worker.pid), HOST_TAG: self._host, START_TAG: start}
                self._instance.add_run_tags(run.run_id, tags)
                if self._hand_over(worker, args):
                    break
                worker = None
            else:
                raise dg.DagsterError(
                    f"no run worker took run {run.run_id}: a cold-started one exited at once;"
                    " see the launching process's stderr"
                )
            self._workers[run.run_id] = worker
            self._run_ids.add(run.run_id)
            self._spares[key] = self._start_worker(spec, repo)  # the next run's

    def _instance_ref(self) -> Any:
        """The instance's reference for another process; ``None`` for an in-memory instance,
        whose runs a separate process could not see."""
        try:
            return self._instance.get_ref()
        except (CheckError, dg.DagsterInvariantViolationError):
            return None

    def _start_worker(self, spec: str, repo: Any) -> subprocess.Popen[str]:
        executable = repo.executable_path or sys.executable
        cwd = repo.code_pointer.working_directory or None
        worker = subprocess.Popen(
            [executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            cwd=cwd,
            text=True,
            encoding="utf-8",
        )
        assert worker.stdin is not None
        worker.stdin.write(spec + "\n")
        worker.stdin.flush()
        return worker

    @staticmethod
    def _hand_over(worker: subprocess.Popen[str], args: str) -> bool:
        assert worker.stdin is not None
        try:
            worker.stdin.write(args + "\n")
            worker.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def _reap(self) -> None:
        _DETACHED[:] = [w for w in _DETACHED if w.poll() is None]
        for run_id, worker in list(self._workers.items()):
            if worker.poll() is not None:
                del self._workers[run_id]

    # --- termination and health --------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if PID_TAG not in run.tags:
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        pid = int(run.tags[PID_TAG])
        if not self._alive(run_id, pid, run.tags.get(HOST_TAG)):
            self._instance.report_engine_event(
                f"Run worker {pid} is no longer running: nothing to interrupt.", run
            )
            return False
        os.kill(pid, signal.SIGINT)  # Dagster's run workers turn SIGINT into a clean cancel
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if PID_TAG not in run.tags:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "launched through the code server: not checked"
            )
        host = run.tags.get(HOST_TAG)
        if host != self._host:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker on {host}: not checked")
        pid = int(run.tags[PID_TAG])
        if self._alive(run.run_id, pid, host):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone", run_worker_id=str(pid)
        )

    def _alive(self, run_id: str, pid: int, host: str | None) -> bool:
        with self._lock:
            worker = self._workers.get(run_id)
            if worker is not None:
                return worker.poll() is None  # our child: poll() also reaps it
        if host is not None and host != self._host:
            return True  # cannot tell from here
        cmdline = f"/proc/{pid}/cmdline"
        if os.path.exists("/proc"):
            try:
                with open(cmdline, "rb") as handle:
                    argv = handle.read()
            except OSError:
                return False
            # the worker, or the stock worker it exec'd into (same pid)
            return WORKER_MODULE.encode() in argv or b"execute_run" in argv
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def dispose(self) -> None:
        """Stop the spares (no run was handed to them); leave running workers to finish their
        runs (they are kept referenced, and reaped by the next launch in this process)."""
        with self._lock:
            for spare in self._spares.values():
                spare.kill()
                spare.wait()
                if spare.stdin is not None:
                    spare.stdin.close()
            self._spares.clear()
            _DETACHED.extend(w for w in self._workers.values() if w.poll() is None)
            self._workers.clear()
        super().dispose()
