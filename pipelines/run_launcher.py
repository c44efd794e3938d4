"""``WarmRunLauncher``: Dagster's default run launcher, with bar runs handed to a run worker that
has already loaded the code location (configured in ``dagster.yaml``).

Why: with the default launcher a bar run starts in a new process (spawned by the code server)
that imports Dagster (~1.0 s) and then the code location (~0.7 s) before its first step, which
was most of the ~2.5 s between a bar's run being created and its orders being acknowledged. The
bar lane is a steady stream of identical runs, so this launcher keeps ``spares`` (default 1)
spare workers (:mod:`pipelines.run_worker`) per code location that have done those imports in
advance, hands the next bar run to the oldest (the most likely done loading), and starts its
replacement at once. The run is executed by Dagster's own
run-worker code (``dagster api execute_run``), with the same events, compute logs, step
concurrency pools and failure handling as any other run.

What is different from the default launcher, and how it is covered:

- Only runs carrying every tag in ``lane_tags`` (default ``allocator/lane: bar``) go to a worker;
  every other run (rebalances, backfills, anything launched from the UI without the tag) goes
  through :class:`dagster.DefaultRunLauncher` unchanged. Re-executions of a bar run copy its
  tags, so they use a worker too.
- The first bar run after a launcher starts (per process: the daemon, the webserver) is a cold
  start of the same worker unless :meth:`WarmRunLauncher.prewarm` was called (the gateway does
  when it has loaded the code location); spares exist only after that, so a process that never
  launches a bar run (or prewarms) never starts one.
- A spare loaded its code when it started. If a module of the code location changed on disk
  since, the worker does not run the old code: it becomes the stock ``dagster api execute_run``
  (``exec``), which loads the code afresh. A spare that died is replaced by a cold start.
- Which process runs a bar run is recorded in full (:class:`pipelines.run_lease.WorkerIdentity`:
  host, kernel boot id, PID namespace, PID, process start time), and the worker renews a lease
  (a heartbeat in the instance's key-value store) while its run lasts. Any process that opens
  the instance judges the worker the same way: on its own machine and PID namespace by the PID
  *and* the start time (a reused PID is another process), elsewhere (another host, a restarted
  container, a rebooted machine) by the lease's age (``heartbeat_timeout_seconds``).
- Termination (UI "Terminate", ``instance.run_launcher.terminate``) sends SIGINT to a local
  worker that is verifiably the one recorded (which is how Dagster interrupts its own run
  workers; the run ends CANCELED). A remote worker is never signalled: the request goes through
  the instance and the worker interrupts itself at its next heartbeat.
- Run monitoring (``run_monitoring`` in ``dagster.yaml``) asks this launcher whether a bar run's
  worker process is still alive, so a bar run whose worker was killed is marked failed instead
  of holding the bar lane forever. Runs launched through the code server are not checked (the
  default launcher checks nothing either).
- It relies on private Dagster modules (``dagster._core.launcher``, ``dagster._grpc``,
  ``dagster._cli.api``, ...), so it refuses to load on a Dagster version it was not tested with
  (:data:`TESTED_DAGSTER_VERSIONS`): the error says how to fall back to the default launcher.
- Spares are forked from one *zygote* per code location (:class:`Zygote`, ``python -m
  pipelines.run_worker --zygote``): a worker that loaded the code once and forks a ready spare
  on request in milliseconds, so the replacement of a spare that took a bar is ready before the
  next bar even when bars come back to back. While the zygote loads, a launch never waits for
  it (a thread forks the spares when it is ready). A zygote whose code changed on disk, that
  failed to load, that died or that would fork with a thread running is replaced; after
  ``ZYGOTE_FAILURES_KEPT`` failures the spares are started as interpreters of their own.
- Spares read their next run from a pipe held by the launching process: when it ends, they see
  end of input and exit, and the zygote sees its socket close and exits too. A forked spare
  shares the zygote's loaded pages until it writes them; ``dagster.yaml`` keeps two spares.

Tags written on each bar run: ``allocator/run_worker_pid``, ``…_host``, ``…_boot_id``,
``…_pid_ns``, ``…_started_at`` (the identity) and ``allocator/run_worker_start`` (``warm`` or
``cold``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import psutil

from pipelines.dagster_versions import TESTED_DAGSTER_VERSIONS


def check_dagster_version(version: str | None = None) -> None:
    """Refuse a Dagster version outside :data:`TESTED_DAGSTER_VERSIONS` (default: the installed
    one), with the way back to Dagster's own launcher."""
    version = dg.__version__ if version is None else version
    if version not in TESTED_DAGSTER_VERSIONS:
        raise dg.DagsterInvariantViolationError(
            f"pipelines.run_launcher.WarmRunLauncher was tested with dagster "
            f"{', '.join(sorted(TESTED_DAGSTER_VERSIONS))} only, and this is dagster {version}: "
            "it uses private Dagster modules that may have changed. To run on this version, "
            "fall back to Dagster's default launcher: delete the `run_launcher` block from "
            "$DAGSTER_HOME/dagster.yaml (and from dagster.yaml / dagster.postgres.yaml in the "
            "project); bar runs then start cold, about 1.2 s slower each. Or run "
            "tests/pipelines/test_run_launcher.py and test_daemon.py on this version and add it "
            "to TESTED_DAGSTER_VERSIONS in pipelines/dagster_versions.py."
        )


check_dagster_version()  # before the private imports below, which may fail on another version

from dagster._check import CheckError  # noqa: E402
from dagster._core.launcher import (  # noqa: E402
    CheckRunHealthResult,
    LaunchRunContext,
    WorkerStatus,
)
from dagster._serdes import ConfigurableClassData, serialize_value  # noqa: E402

from assets.tags import BAR_LANE, PID_TAG, START_TAG  # noqa: E402
from pipelines.run_lease import (  # noqa: E402
    Lease,
    WorkerIdentity,
    read_lease,
    request_cancel,
    write_lease,
)

DEFAULT_LANE_TAGS = BAR_LANE
WORKER_MODULE = "pipelines.run_worker"
DEFAULT_HEARTBEAT_S = 2.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 20.0
DEFAULT_SPARES = 1
# The read ends of the spares' "done loading" pipes, by worker PID (closed at hand-over).
_READY_FDS: dict[int, int] = {}


ZYGOTE_LOAD_WAIT_S = 120.0  # how long a prewarm waits for a zygote to load the code
ZYGOTE_REPLY_WAIT_S = 10.0  # how long a fork may take to be answered
ZYGOTE_FAILURES_KEPT = 3  # zygotes of one code location that may fail before spares go alone


def _close_ready(pid: int) -> None:
    fd = _READY_FDS.pop(pid, None)
    if fd is not None:
        os.close(fd)


class ForkedWorker:
    """A spare forked by a :class:`Zygote`: the part of ``subprocess.Popen`` the launcher uses.

    It is the zygote's child, not this process's, so its exit status cannot be collected here:
    :meth:`poll` judges it by its PID *and* its start time (a reused PID is another process) and
    returns -1 once it has ended.
    """

    def __init__(self, pid: int, stdin_fd: int) -> None:
        self.pid = pid
        self.stdin: Any = os.fdopen(stdin_fd, "w", encoding="utf-8")
        self.returncode: int | None = None
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._process, self.returncode = None, -1

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                assert self._process is not None
                if not self._process.is_running() or self._process.status() == psutil.STATUS_ZOMBIE:
                    self.returncode = -1
            except psutil.NoSuchProcess:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"spare {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code

    def kill(self) -> None:
        if self.poll() is None and self._process is not None:
            # psutil re-checks the start time: a reused PID is never signalled
            with contextlib.suppress(psutil.NoSuchProcess):
                self._process.kill()


class Zygote:
    """One loaded run worker (``python -m pipelines.run_worker --zygote``) that forks spares.

    Why: a spare started as a new interpreter imports Dagster and the code location, about 3 s
    of CPU, and on a 2-core machine that competes with the very bar run that took the previous
    spare. A fork of a process that has done it costs ~25 ms; the child then only opens the
    instance. The zygote never runs anything itself and forks only while it has no thread but
    its main one (:func:`pipelines.run_worker.fork_unsafe_threads`).

    It reads requests on a socket (:func:`pipelines.run_worker._serve`); when this end closes
    (the launcher is disposed or its process ends) it exits. Its spares are children of its
    own; each still reads its run from a pipe held here, so a spare sees end of input and exits
    when this process ends, as a spare of its own would.
    """

    def __init__(self, spec: str, repo: Any) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready_r, ready_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [repo.executable_path or sys.executable, "-m", WORKER_MODULE, "--zygote"],
                stdin=subprocess.PIPE,
                cwd=repo.code_pointer.working_directory or None,
                text=True,
                encoding="utf-8",
                pass_fds=(ready_w, theirs.fileno()),
            )
        except BaseException:
            ours.close()
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
            theirs_fd = theirs.fileno()
            theirs.close()
        self._sock = ours
        self._loaded = threading.Event()  # set once it is done loading (or has exited)
        threading.Thread(
            target=self._watch_ready, args=(ready_r,), name="zygote-ready", daemon=True
        ).start()
        assert self.process.stdin is not None
        payload = {**json.loads(spec), "ready_fd": ready_w, "zygote_fd": theirs_fd}
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.close()
        self.usable = True  # False once it answered that it will not fork again
        self.stale = False  # it stopped because its code changed on disk (no failure)

    def _watch_ready(self, fd: int) -> None:
        try:
            os.read(fd, 1)  # a byte when loaded; end of file if it exited first
        finally:
            os.close(fd)
            self._loaded.set()

    @property
    def loading(self) -> bool:
        """Whether it is still loading the code (it has neither said it is done nor exited)."""
        return not self._loaded.is_set()

    def loaded(self, timeout_s: float) -> bool:
        """Whether it is done loading and can fork (waiting at most ``timeout_s``)."""
        return self._loaded.wait(max(timeout_s, 0.0)) and self.alive()

    def alive(self) -> bool:
        return self.usable and self.process.poll() is None

    def fork(self) -> tuple[ForkedWorker | None, str]:
        """Fork a spare: the worker and ``"P"``, or ``None`` and why not (a reply letter)."""
        if not self.alive():
            return None, "gone"
        stdin_r, stdin_w = os.pipe()
        ready_r, ready_w = os.pipe()
        reply = ""
        try:
            socket.send_fds(self._sock, [b"F"], [stdin_r, ready_w])
            reply = self._read_line()
        except OSError:
            reply = ""
        finally:
            os.close(stdin_r)
            os.close(ready_w)
        if not reply.startswith("P"):
            os.close(stdin_w)
            os.close(ready_r)
            self.usable = False  # stale, unsafe, failed to load or gone: never asked again
            self.stale = reply[:1] == "S"
            return None, reply[:1] or "gone"
        worker = ForkedWorker(int(reply[1:]), stdin_w)
        _READY_FDS[worker.pid] = ready_r
        return worker, "P"

    def _read_line(self) -> str:
        self._sock.settimeout(ZYGOTE_REPLY_WAIT_S)
        data = b""
        while not data.endswith(b"\n"):
            chunk = self._sock.recv(64)
            if not chunk:
                return ""
            data += chunk
        return data.decode().strip()

    def stop(self) -> None:
        """Close its socket (it exits) and make sure it did."""
        self.usable = False
        self._sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


Worker = subprocess.Popen[str] | ForkedWorker

# Workers still running their run when their launcher was disposed (reaped later, like
# subprocess's own list of abandoned children).
_DETACHED: list[Worker] = []


class WarmRunLauncher(dg.DefaultRunLauncher):
    """Launches runs with ``lane_tags`` in a run worker started in advance; others as the
    default launcher does."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        lane_tags: Mapping[str, str] | None = None,
        preload_modules: Sequence[str] = (),
        heartbeat_interval_seconds: float = DEFAULT_HEARTBEAT_S,
        heartbeat_timeout_seconds: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        spares: int = DEFAULT_SPARES,
        prewarm_monitored_runs: bool = False,
    ) -> None:
        check_dagster_version()
        if not 1 <= spares <= 8:
            raise dg.DagsterInvalidConfigError(
                f"WarmRunLauncher.spares must lie in [1, 8], got {spares}", [], None
            )
        if not 0 < heartbeat_interval_seconds <= 60:
            raise dg.DagsterInvalidConfigError(
                "WarmRunLauncher.heartbeat_interval_seconds must lie in (0, 60], got "
                f"{heartbeat_interval_seconds}",
                [],
                None,
            )
        if heartbeat_timeout_seconds < 3 * heartbeat_interval_seconds:
            raise dg.DagsterInvalidConfigError(
                "WarmRunLauncher.heartbeat_timeout_seconds must be at least 3 heartbeat "
                f"intervals ({3 * heartbeat_interval_seconds} s), got {heartbeat_timeout_seconds}",
                [],
                None,
            )
        super().__init__(inst_data=inst_data)
        self._lane_tags = dict(DEFAULT_LANE_TAGS if lane_tags is None else lane_tags)
        self._preload = list(preload_modules)
        self._heartbeat_s = float(heartbeat_interval_seconds)
        self._timeout_s = float(heartbeat_timeout_seconds)
        self._lock = threading.Lock()
        self._n_spares = int(spares)
        self._prewarm_monitored = bool(prewarm_monitored_runs)
        # serialized repo origin -> its spares, oldest (most likely loaded) first
        self._spares: dict[str, list[Worker]] = {}
        self._workers: dict[str, Worker] = {}  # run id -> its worker
        self._zygotes: dict[str, Zygote] = {}  # serialized repo origin -> its zygote
        self._zygote_failures: dict[str, int] = {}
        self._filling: set[str] = set()  # code locations whose spares a thread is forking
        self._disposed = False  # then a filling thread that wakes up starts nothing
        self._here = WorkerIdentity.here()  # where this launcher runs (host, boot, namespace)

    @classmethod
    def config_type(cls) -> Any:
        return {
            "lane_tags": dg.Field(dg.Permissive(), is_required=False),
            "preload_modules": dg.Field([str], is_required=False, default_value=[]),
            "heartbeat_interval_seconds": dg.Field(
                float, is_required=False, default_value=DEFAULT_HEARTBEAT_S
            ),
            "heartbeat_timeout_seconds": dg.Field(
                float, is_required=False, default_value=DEFAULT_HEARTBEAT_TIMEOUT_S
            ),
            "spares": dg.Field(int, is_required=False, default_value=DEFAULT_SPARES),
            "prewarm_monitored_runs": dg.Field(bool, is_required=False, default_value=False),
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
            heartbeat_interval_seconds=config_value.get(
                "heartbeat_interval_seconds", DEFAULT_HEARTBEAT_S
            ),
            heartbeat_timeout_seconds=config_value.get(
                "heartbeat_timeout_seconds", DEFAULT_HEARTBEAT_TIMEOUT_S
            ),
            spares=config_value.get("spares", DEFAULT_SPARES),
            prewarm_monitored_runs=config_value.get("prewarm_monitored_runs", False),
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
        key, spec = self._spec(repo, ref)
        with self._lock:
            self._reap()
            worker, start = self._take_spare(key), "warm"
            if worker is None:  # a loaded zygote's new fork is warm too: it only opens the instance
                worker = self._fork(key)
            for _ in range(2):  # a spare that died (before or during the hand-over): go cold
                if worker is None or worker.poll() is not None:
                    worker, start = self._start_worker(spec, repo), "cold"
                identity = WorkerIdentity.of(worker.pid)
                if identity is None:  # died before it could be named: go cold
                    worker.wait()
                    worker = None
                    continue
                # The lease first (its first heartbeat, renewed by the worker), then the tags
                # that point to it: whoever sees the tags finds a lease.
                write_lease(
                    self._instance,
                    Lease(run_id=run.run_id, worker=identity, renewed_at=time.time()),
                )
                self._instance.add_run_tags(run.run_id, {**identity.tags(), START_TAG: start})
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
            self._top_up(key, spec, repo, wait=False)  # the next runs'

    def prewarm(self, origin: Any, *, wait: bool = True) -> bool:
        """Start the spares of ``origin``'s code location (a job's Python origin) now, so that
        even the first bar run of this process starts warm (the gateway calls it when it has
        loaded the code location). With ``wait`` it returns once the zygote has loaded and the
        spares are forked (at most ``ZYGOTE_LOAD_WAIT_S``); without, a thread forks them.
        ``False`` when the instance cannot be referenced from another process (an in-memory
        instance: its runs are never handed to a worker)."""
        ref = self._instance_ref()
        if ref is None:
            return False
        repo = origin.repository_origin
        key, spec = self._spec(repo, ref)
        if wait:
            with self._lock:
                zygote = None if self._disposed else self._zygote(key, spec, repo)
            if zygote is not None:
                zygote.loaded(ZYGOTE_LOAD_WAIT_S)  # outside the lock: launches go on meanwhile
        with self._lock:
            self._top_up(key, spec, repo, wait=wait)
        return True

    def _prewarm_for(self, run: dg.DagsterRun) -> None:
        """With ``prewarm_monitored_runs``: a lane run this process monitors (the daemon's run
        monitoring, every few seconds) names its code location; start that location's spares if
        this process has none, so the first bar the daemon's sensor launches starts warm too
        (after the gateway launched one). Best effort. Off by default: a process that only
        looks at a run's health should not start processes."""
        origin = run.job_code_origin
        if not self._prewarm_monitored or origin is None or not self.in_lane(run):
            return
        key = serialize_value(origin.repository_origin)
        with self._lock:
            if any(w.poll() is None for w in self._spares.get(key, [])):
                return
        try:
            self.prewarm(origin, wait=False)
        except Exception as exc:  # only a slower first bar
            self._instance.report_engine_event(f"could not prewarm bar-run workers: {exc}", run)

    def _spec(self, repo: Any, ref: Any) -> tuple[str, str]:
        key = serialize_value(repo)
        spec = json.dumps(
            {
                "origin": key,
                "instance_ref": serialize_value(ref),
                "preload": self._preload,
                "heartbeat_s": self._heartbeat_s,
            }
        )
        return key, spec

    def _take_spare(self, key: str) -> Worker | None:
        """The oldest live spare of ``key`` (the one most likely done loading), or ``None``."""
        spares = self._spares.get(key, [])
        while spares:
            spare = spares.pop(0)
            if spare.poll() is None:
                return spare
            _close_ready(spare.pid)
            spare.wait()
        return None

    def _top_up(self, key: str, spec: str, repo: Any, *, wait: bool) -> None:
        """Bring ``key``'s spares back to ``spares`` (the caller holds the lock).

        Forked from the code location's zygote when it has loaded. While it loads, ``wait``
        false leaves the forking to a thread (a launch never waits for a zygote); a zygote that
        cannot fork (it failed to load, its code changed, a thread made forking unsafe) is
        replaced, and after ``ZYGOTE_FAILURES_KEPT`` failures the spares start on their own as
        new interpreters, as before the zygote.
        """
        if self._disposed:
            return
        spares = self._spares.setdefault(key, [])
        for dead in [w for w in spares if w.poll() is not None]:
            _close_ready(dead.pid)
        spares[:] = [w for w in spares if w.poll() is None]
        while len(spares) < self._n_spares:
            zygote = self._zygote(key, spec, repo)
            if zygote is None:
                spares.append(self._start_worker(spec, repo))
                continue
            if zygote.loading:
                if not wait:
                    self._fill_later(key, spec, repo)
                    return
                zygote.loaded(ZYGOTE_LOAD_WAIT_S)
            worker = self._fork(key)
            if worker is not None:
                spares.append(worker)
            elif self._zygote(key, spec, repo) is None:  # out of zygotes: spares of their own
                spares.append(self._start_worker(spec, repo))

    def _zygote(self, key: str, spec: str, repo: Any) -> Zygote | None:
        """``key``'s zygote, started (again) when it has none that can fork; ``None`` once
        ``ZYGOTE_FAILURES_KEPT`` of them failed."""
        zygote = self._zygotes.get(key)
        if zygote is not None and zygote.alive():
            return zygote
        if zygote is not None:  # it died, or will not fork: a failure unless its code changed
            if not zygote.stale:
                self._zygote_failures[key] = self._zygote_failures.get(key, 0) + 1
            zygote.stop()
            del self._zygotes[key]
        if self._zygote_failures.get(key, 0) >= ZYGOTE_FAILURES_KEPT:
            return None
        self._zygotes[key] = zygote = Zygote(spec, repo)
        return zygote

    def _fork(self, key: str) -> ForkedWorker | None:
        """A spare forked now from ``key``'s zygote if it has loaded; else ``None``."""
        zygote = self._zygotes.get(key)
        if zygote is None or not zygote.loaded(0.0):
            return None
        worker, _ = zygote.fork()  # a refusal is counted when the zygote is replaced
        return worker

    def _fill_later(self, key: str, spec: str, repo: Any) -> None:
        """Fork ``key``'s missing spares from a thread once its zygote has loaded."""
        if key in self._filling:
            return
        self._filling.add(key)
        zygote = self._zygotes.get(key)

        def fill() -> None:
            try:
                if zygote is not None:
                    zygote.loaded(ZYGOTE_LOAD_WAIT_S)
                with self._lock:
                    self._top_up(key, spec, repo, wait=True)
            except Exception as exc:  # only slower bars: each then starts cold
                print(f"WarmRunLauncher: spares not started: {exc!r}", file=sys.stderr)
            finally:
                with self._lock:
                    self._filling.discard(key)

        threading.Thread(target=fill, name="warm-run-launcher-spares", daemon=True).start()

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
        ready_r, ready_w = os.pipe()  # the worker writes a byte on it when it is done loading
        try:
            worker = subprocess.Popen(
                [executable, "-m", WORKER_MODULE],
                stdin=subprocess.PIPE,
                cwd=cwd,
                text=True,
                encoding="utf-8",
                pass_fds=(ready_w,),
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        _READY_FDS[worker.pid] = ready_r
        assert worker.stdin is not None
        worker.stdin.write(json.dumps({**json.loads(spec), "ready_fd": ready_w}) + "\n")
        worker.stdin.flush()
        return worker

    def wait_spares(self, timeout_s: float) -> bool:
        """Wait until every spare is done loading (or has exited), at most ``timeout_s``;
        whether they all are. The gateway waits on it after :meth:`prewarm`, so that it reports
        ready only when its first bar can start warm."""
        deadline = time.monotonic() + timeout_s
        while True:  # the spares a thread is still forking first
            with self._lock:
                if not self._filling:
                    spares = [w for ws in self._spares.values() for w in ws]
                    break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        for worker in spares:
            fd = _READY_FDS.get(worker.pid)
            if fd is None:
                continue
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0.0))
            if not readable:
                return False
            _close_ready(worker.pid)
        return True

    @staticmethod
    def _hand_over(worker: Worker, args: str) -> bool:
        _close_ready(worker.pid)
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
        identity = WorkerIdentity.from_tags(run.tags)
        if identity is None:
            self._instance.report_engine_event(
                "Run worker recorded without its identity (boot id, start time): it is not "
                "signalled; stop its process by hand.",
                run,
            )
            return False
        if not identity.same_machine(self._here):
            # Another host, container or boot: its PID means nothing here. Ask through the
            # instance; the worker interrupts itself at its next heartbeat.
            self._instance.report_run_canceling(run)
            request_cancel(self._instance, run_id, by=self._here.describe())
            self._instance.report_engine_event(
                f"Run worker {identity.describe()} is remote: cancellation requested through "
                f"the instance (taken at its next heartbeat, every {self._heartbeat_s:g} s).",
                run,
            )
            return True
        if not self._alive(run_id, identity):
            self._instance.report_engine_event(
                f"Run worker {identity.describe()} is no longer running: nothing to interrupt.",
                run,
            )
            return False
        self._instance.report_run_canceling(run)
        try:
            # psutil re-checks the process's start time before signalling: a PID reused since
            # the check above is refused (NoSuchProcess), never signalled.
            process = psutil.Process(identity.pid)
            if abs(process.create_time() - identity.started_at) > 0.005:
                raise psutil.NoSuchProcess(identity.pid)
            process.send_signal(signal.SIGINT)  # Dagster's run workers cancel cleanly on SIGINT
        except psutil.NoSuchProcess:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        self._prewarm_for(run)
        if PID_TAG not in run.tags:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "launched through the code server: not checked"
            )
        identity = WorkerIdentity.from_tags(run.tags)
        if identity is None:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "worker recorded without its identity: not checked"
            )
        worker_id = identity.describe()
        if identity.same_machine(self._here):
            if self._alive(run.run_id, identity):
                return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker_id)
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"run worker {worker_id} is gone (no process with that pid and start time)",
                run_worker_id=worker_id,
            )
        lease = read_lease(self._instance, run.run_id)
        if lease is not None:
            age = lease.age()
        else:  # written before the tags; missing only if the launcher died in between
            record = self._instance.get_run_record_by_id(run.run_id)
            age = time.time() - record.create_timestamp.timestamp() if record else 0.0
        if age > self._timeout_s:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"remote run worker {worker_id}: no heartbeat for {age:.1f} s "
                f"(timeout {self._timeout_s:g} s)",
                run_worker_id=worker_id,
            )
        return CheckRunHealthResult(
            WorkerStatus.RUNNING,
            f"remote run worker {worker_id}: heartbeat {max(age, 0):.1f} s ago",
            run_worker_id=worker_id,
        )

    def _alive(self, run_id: str, identity: WorkerIdentity) -> bool:
        """Whether the local worker ``identity`` still runs (the caller checked it is local)."""
        with self._lock:
            worker = self._workers.get(run_id)
            if worker is not None and worker.pid == identity.pid and worker.poll() is not None:
                return False  # our child, and it exited: poll() also reaped it
        return identity.is_running()

    def dispose(self) -> None:
        """Stop the spares (no run was handed to them); leave running workers to finish their
        runs (they are kept referenced, and reaped by the next launch in this process)."""
        with self._lock:
            self._disposed = True
            for spare in (w for spares in self._spares.values() for w in spares):
                _close_ready(spare.pid)
                spare.kill()
                spare.wait()
                if spare.stdin is not None:
                    spare.stdin.close()
            self._spares.clear()
            for zygote in self._zygotes.values():
                zygote.stop()
            self._zygotes.clear()
            _DETACHED.extend(w for w in self._workers.values() if w.poll() is None)
            self._workers.clear()
        super().dispose()
