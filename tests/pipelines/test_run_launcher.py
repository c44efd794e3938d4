"""``WarmRunLauncher`` with real run-worker processes on a real (temporary) instance: lane runs
start warm after the first one, other runs are left to the default launcher, a changed module is
never run stale, termination cancels the run, and a killed worker is reported failed; a reused
PID is never taken for the worker, a worker on another host or in a restarted container is
judged by its lease and never signalled, and an untested Dagster version is refused."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil
import pytest

from assets.tags import BAR_LANE, HOST_TAG, PID_TAG, START_TAG
from pipelines.run_launcher import (
    TESTED_DAGSTER_VERSIONS,
    ForkedWorker,
    WarmRunLauncher,
    Zygote,
    check_dagster_version,
)
from pipelines.run_lease import WorkerIdentity, read_lease
from pipelines.run_worker import stale_modules

LANE = BAR_LANE

JOBS = """
import os, time
import dagster as dg

VERSION = {version}

@dg.op
def mark(context) -> None:
    path = os.path.join(os.environ["MARKS"], context.run_id)
    with open(path, "w") as handle:
        handle.write(f"{{VERSION}} {{os.getpid()}}")

@dg.op
def wait_for_stop(context) -> None:
    stop = os.path.join(os.environ["MARKS"], "stop")
    with open(os.path.join(os.environ["MARKS"], "waiting"), "w") as handle:
        handle.write(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not os.path.exists(stop) and time.monotonic() < deadline:
        time.sleep(0.05)

@dg.job(executor_def=dg.in_process_executor)
def quick():
    mark()

@dg.job(executor_def=dg.in_process_executor)
def sleepy():
    wait_for_stop()
"""


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A code location of its own in ``tmp_path`` (the working directory its workers use)."""
    module = f"warm_jobs_{os.getpid()}_{time.monotonic_ns()}"
    source = tmp_path / f"{module}.py"
    source.write_text(JOBS.format(version=1))
    old = time.time() - 60  # written "before" any worker loads it
    os.utime(source, (old, old))
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MARKS", str(marks))
    monkeypatch.chdir(tmp_path)  # the code pointer's working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield source
    sys.modules.pop(module, None)


@contextmanager
def _warm(home: Path, **config: object) -> Iterator[dg.DagsterInstance]:
    """A temporary instance in ``home`` whose launcher is WarmRunLauncher with ``config``."""
    launcher = {"module": "pipelines.run_launcher", "class": "WarmRunLauncher"}
    overrides = {"run_launcher": {**launcher, "config": {"lane_tags": LANE, **config}}}
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as inst:
        yield inst


@pytest.fixture
def warm_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    overrides = {
        "run_launcher": {
            "module": "pipelines.run_launcher",
            "class": "WarmRunLauncher",
            # a module that cannot be imported is only a failed warm-up: every run still runs
            "config": {"lane_tags": LANE, "preload_modules": ["json", "no_such_module_here"]},
        }
    }
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=overrides) as inst:
        yield inst


def _launch(instance: dg.DagsterInstance, code: Path, job: str, tags: dict[str, str]) -> str:
    module = importlib.import_module(code.stem)
    recon = dg.reconstructable(getattr(module, job))
    run = instance.create_run_for_job(
        job_def=recon.get_definition(), tags=tags, job_code_origin=recon.get_python_origin()
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run.run_id


def _wait(instance: dg.DagsterInstance, run_id: str, timeout_s: float = 60) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} still {run.status} after {timeout_s} s")


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_lane_runs_start_warm_after_the_first_and_run_in_the_tagged_worker(
    warm_instance: dg.DagsterInstance, code: Path
) -> None:
    assert isinstance(warm_instance.run_launcher, WarmRunLauncher)
    marks = Path(os.environ["MARKS"])
    starts, pids = [], []
    for _ in range(3):
        run_id = _launch(warm_instance, code, "quick", LANE)
        run = _wait(warm_instance, run_id)
        assert run.is_success, run.status
        starts.append(run.tags[START_TAG])
        pids.append(int(run.tags[PID_TAG]))
        version, pid = (marks / run_id).read_text().split()
        assert (version, int(pid)) == ("1", pids[-1])  # the op ran in the tagged worker
        time.sleep(0.5)  # give the next spare a moment; it would be warm regardless
    assert starts == ["cold", "warm", "warm"]
    assert len(set(pids)) == 3  # one process per run, as with Dagster's own launcher


@pytest.mark.slow
def test_prewarmed_spares_start_even_the_first_run_warm_and_two_back_to_back_runs_too(
    tmp_path: Path, code: Path
) -> None:
    with _warm(tmp_path / "home2", spares=2) as inst:
        launcher = inst.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        module = importlib.import_module(code.stem)
        assert launcher.prewarm(dg.reconstructable(module.quick).get_python_origin())
        ((first, second),) = launcher._spares.values()  # two spares, before any run
        assert launcher.wait_spares(60)  # both say they are done loading
        # two runs launched back to back: each takes a loaded spare (the replacement of the
        # first is still loading when the second arrives), oldest first
        run_ids = [_launch(inst, code, "quick", LANE), _launch(inst, code, "quick", LANE)]
        runs = [_wait(inst, run_id) for run_id in run_ids]
        assert [r.tags[START_TAG] for r in runs] == ["warm", "warm"]
        assert [int(r.tags[PID_TAG]) for r in runs] == [first.pid, second.pid]
        assert all(r.is_success for r in runs)
        (spares,) = launcher._spares.values()
        assert len(spares) == 2
        assert {first.pid, second.pid}.isdisjoint(w.pid for w in spares)


@pytest.mark.slow
def test_a_process_that_monitors_a_lane_run_prewarms_its_code_locations_spares(
    tmp_path: Path, code: Path
) -> None:
    # The daemon never launched a bar yet (the gateway did): its run monitoring of the lane
    # run is what names the code location, so its own first sensor launch starts warm.
    with (
        _warm(tmp_path / "home3", prewarm_monitored_runs=True) as gateway,
        dg.DagsterInstance.from_ref(gateway.get_ref()) as daemon_side,
    ):
        run = _wait(gateway, _launch(gateway, code, "quick", LANE))
        launcher = daemon_side.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        assert not launcher._spares
        launcher.check_run_worker_health(run)  # starts them, and returns at once
        assert launcher.wait_spares(60)
        ((spare,),) = launcher._spares.values()
        other = _launch(daemon_side, code, "quick", LANE)
        done = _wait(daemon_side, other)
        assert done.tags[START_TAG] == "warm"
        assert int(done.tags[PID_TAG]) == spare.pid


def test_the_number_of_spares_is_bounded() -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="spares must lie in"):
        WarmRunLauncher(spares=0)


@pytest.mark.slow
def test_a_run_without_the_lane_tags_is_left_to_the_default_launcher(
    warm_instance: dg.DagsterInstance, code: Path
) -> None:
    # The default launcher needs a code server (a workspace); without one it refuses, and the
    # run fails before any worker of ours is started: proof that it took the default path.
    with pytest.raises(Exception, match="workspace"):
        _launch(warm_instance, code, "quick", {"allocator/lane": "rebalance"})
    runs = warm_instance.get_runs()
    assert runs[0].status == dg.DagsterRunStatus.FAILURE
    assert PID_TAG not in runs[0].tags


@pytest.mark.slow
def test_a_spare_whose_code_changed_runs_the_new_code(
    warm_instance: dg.DagsterInstance, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    first = _wait(warm_instance, _launch(warm_instance, code, "quick", LANE))
    assert first.is_success
    time.sleep(3)  # the spare has loaded version 1 by now
    code.write_text(JOBS.format(version=2))  # mtime: now, after the spare's load
    sys.modules.pop(code.stem, None)
    importlib.invalidate_caches()
    run = _wait(warm_instance, _launch(warm_instance, code, "quick", LANE))
    assert run.is_success
    assert run.tags[START_TAG] == "warm"  # the spare took it ...
    version, pid = (marks / run.run_id).read_text().split()
    assert version == "2"  # ... and ran the code as it is now, in the same process
    assert int(pid) == int(run.tags[PID_TAG])
    # The fresh interpreter it became renewed the run's lease (the launcher wrote the first at
    # the hand-over; the renewal came after the exec and the imports, well over 0.3 s later).
    lease = read_lease(warm_instance, run.run_id)
    record = warm_instance.get_run_record_by_id(run.run_id)
    assert lease is not None
    assert record is not None
    assert lease.worker.pid == int(pid)
    assert lease.renewed_at > record.create_timestamp.timestamp() + 0.3


@pytest.mark.slow
def test_terminate_cancels_a_lane_run(warm_instance: dg.DagsterInstance, code: Path) -> None:
    marks = Path(os.environ["MARKS"])
    run_id = _launch(warm_instance, code, "sleepy", LANE)
    _wait_for(marks / "waiting")
    assert warm_instance.run_launcher.terminate(run_id)
    run = _wait(warm_instance, run_id)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert not warm_instance.run_launcher.terminate(run_id)  # finished: nothing to terminate


@pytest.mark.slow
def test_health_check_reports_a_killed_worker_failed(
    warm_instance: dg.DagsterInstance, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    launcher = warm_instance.run_launcher
    assert launcher.supports_check_run_worker_health
    run_id = _launch(warm_instance, code, "sleepy", LANE)
    _wait_for(marks / "waiting")
    run = warm_instance.get_run_by_id(run_id)
    assert run is not None
    assert launcher.check_run_worker_health(run).status.value == "RUNNING"
    os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while launcher.check_run_worker_health(run).status.value != "FAILED":
        assert time.monotonic() < deadline, "a killed worker still reported alive"
        time.sleep(0.1)
    # What the daemon's run monitoring does with that answer: the run is marked failed, so it
    # no longer holds the bar lane.
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    record = warm_instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))[0]
    monitor_started_run(warm_instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
    failed = warm_instance.get_run_by_id(run_id)
    assert failed is not None
    assert failed.status == dg.DagsterRunStatus.FAILURE


def test_stale_modules_names_the_changed_project_modules(tmp_path: Path) -> None:
    class Module:
        def __init__(self, name: str, path: Path | None) -> None:
            self.__name__ = name
            self.__file__ = None if path is None else str(path)

    (tmp_path / "pkg").mkdir()
    same, changed, gone = (tmp_path / "pkg" / n for n in ("same.py", "changed.py", "gone.py"))
    for p in (same, changed):
        p.write_text("x = 1\n")
    loaded_at = time.time()
    os.utime(same, (loaded_at - 10, loaded_at - 10))
    os.utime(changed, (loaded_at + 1, loaded_at + 1))
    outside = Path(dg.__file__)  # a library module, not under the root: never checked
    modules = [
        Module("pkg.same", same),
        Module("pkg.changed", changed),
        Module("pkg.gone", gone),
        Module("builtin", None),
        Module("dagster", outside),
    ]
    assert stale_modules(modules, tmp_path, loaded_at) == ["pkg.changed", "pkg.gone"]


def test_an_in_memory_instance_keeps_the_default_path() -> None:
    # A worker in another process could not see an in-memory instance's runs.
    launcher = WarmRunLauncher()
    with dg.DagsterInstance.ephemeral() as instance:
        launcher.register_instance(instance)
        assert launcher._instance_ref() is None
    with dg.instance_for_test() as instance:
        other = WarmRunLauncher()
        other.register_instance(instance)
        assert other._instance_ref() is not None


# --- the worker's identity and lease: reused PIDs, remote workers, Dagster versions ------------

HEARTBEAT_S, TIMEOUT_S = 0.2, 1.5


@pytest.fixture
def lease_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """An instance whose warm launcher renews leases every 0.2 s and times them out after 1.5 s."""
    config = {
        "lane_tags": LANE,
        "heartbeat_interval_seconds": HEARTBEAT_S,
        "heartbeat_timeout_seconds": TIMEOUT_S,
    }
    overrides = {
        "run_launcher": {
            "module": "pipelines.run_launcher",
            "class": "WarmRunLauncher",
            "config": config,
        }
    }
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=overrides) as inst:
        yield inst


def _view_from(instance: dg.DagsterInstance, **where: str) -> WarmRunLauncher:
    """The launcher of another process that opens the same instance (the webserver, a daemon
    on another host or in a restarted container): ``where`` overrides where it runs."""
    other = WarmRunLauncher(
        heartbeat_interval_seconds=HEARTBEAT_S, heartbeat_timeout_seconds=TIMEOUT_S
    )
    other.register_instance(instance)
    other._here = dataclasses.replace(other._here, **where)  # type: ignore[arg-type]
    return other


def _no_signals(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record, instead of sending, every signal this test process would send."""
    sent: list[object] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(
        psutil.Process, "send_signal", lambda self, sig: sent.append((self.pid, sig))
    )
    return sent


def _running(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


@pytest.mark.slow
def test_a_reused_pid_is_another_process_never_taken_for_the_worker(
    warm_instance: dg.DagsterInstance, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    launcher = warm_instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    run_id = _launch(warm_instance, code, "sleepy", LANE)
    _wait_for(marks / "waiting")
    run = _running(warm_instance, run_id)
    worker = WorkerIdentity.from_tags(run.tags)
    assert worker is not None
    assert worker.pid == int(run.tags[PID_TAG])
    assert worker.is_running()
    os.kill(worker.pid, signal.SIGKILL)
    launcher._workers[run_id].wait()  # reaped: the pid is free for reuse
    # The PID is reused by another run worker (after a container restart the next spare can
    # get it): same host, same command line, another start time.
    ((spare,),) = launcher._spares.values()
    assert spare.poll() is None
    warm_instance.add_run_tags(run_id, {PID_TAG: str(spare.pid)})
    run = _running(warm_instance, run_id)
    # Seen from another process of this machine (no child to poll: only the recorded identity).
    view = _view_from(warm_instance)
    health = view.check_run_worker_health(run)
    assert health.status.value == "FAILED"
    assert f"pid {spare.pid}" in (health.msg or "")
    assert "gone" in (health.msg or "")
    assert not view.terminate(run_id)  # nothing to interrupt ...
    time.sleep(0.3)
    assert spare.poll() is None  # ... and the process that took the PID was not signalled
    warm_instance.report_run_failed(run)  # what run monitoring does with that answer


@pytest.mark.slow
@pytest.mark.parametrize(
    "where",
    [{"host": "another-host"}, {"pid_namespace": "pid:[4026532999]"}],
    ids=["worker_on_another_host", "restarted_container"],
)
def test_a_remote_worker_is_judged_by_its_lease_and_cancelled_through_the_instance(
    lease_instance: dg.DagsterInstance,
    code: Path,
    where: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = Path(os.environ["MARKS"])
    run_id = _launch(lease_instance, code, "sleepy", LANE)
    _wait_for(marks / "waiting")
    view = _view_from(lease_instance, **where)
    sent = _no_signals(monkeypatch)
    time.sleep(TIMEOUT_S + 0.5)  # longer than the timeout: only renewals keep the lease young
    health = view.check_run_worker_health(_running(lease_instance, run_id))
    assert health.status.value == "RUNNING", health.msg
    assert "remote run worker" in (health.msg or "")
    assert "heartbeat" in (health.msg or "")
    # Terminate from there: no signal from this process, the worker cancels itself.
    assert view.terminate(run_id)
    monkeypatch.undo()
    run = _wait(lease_instance, run_id, timeout_s=30)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert sent == []


@pytest.mark.slow
def test_a_dead_remote_worker_fails_once_its_lease_times_out(
    lease_instance: dg.DagsterInstance, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    run_id = _launch(lease_instance, code, "sleepy", LANE)
    _wait_for(marks / "waiting")
    view = _view_from(lease_instance, host="another-host")
    run = _running(lease_instance, run_id)
    first = view.check_run_worker_health(run)
    assert first.status.value == "RUNNING", first.msg
    os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)  # the host's own operator, or the OOM killer
    started = time.monotonic()
    while (health := view.check_run_worker_health(run)).status.value != "FAILED":
        assert time.monotonic() - started < TIMEOUT_S + 5, "a dead remote worker kept its lease"
        time.sleep(0.1)
    # only after the timeout: the worker's last renewal (under load it can be more than one
    # beat before the kill, so the time since the kill does not tell) was that old when judged
    lease = read_lease(lease_instance, run_id)
    lease_instance.report_run_failed(run)
    assert lease is not None
    assert time.time() - lease.renewed_at >= TIMEOUT_S
    assert "no heartbeat" in (health.msg or "")


def test_it_refuses_a_dagster_version_it_was_not_tested_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    check_dagster_version(dg.__version__)  # the installed one is tested
    assert dg.__version__ in TESTED_DAGSTER_VERSIONS
    message = r"tested with dagster 1\.13\.27 only, and this is dagster 1\.14\.0.*run_launcher"
    with pytest.raises(dg.DagsterInvariantViolationError, match=message):
        check_dagster_version("1.14.0")
    monkeypatch.setattr(dg, "__version__", "1.14.0")
    with pytest.raises(dg.DagsterInvariantViolationError, match="default launcher"):
        WarmRunLauncher()
    overrides = {"run_launcher": {"module": "pipelines.run_launcher", "class": "WarmRunLauncher"}}
    with (
        dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance,
        pytest.raises(dg.DagsterInvariantViolationError, match=r"1\.14\.0"),
    ):
        instance.run_launcher  # noqa: B018  # what the daemon and the webserver load first


def test_heartbeat_settings_are_checked() -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="heartbeat_timeout_seconds"):
        WarmRunLauncher(heartbeat_interval_seconds=2, heartbeat_timeout_seconds=5)
    with pytest.raises(dg.DagsterInvalidConfigError, match="heartbeat_interval_seconds"):
        WarmRunLauncher(heartbeat_interval_seconds=0)


def test_an_identity_names_one_process_of_one_machine() -> None:
    me = WorkerIdentity.here()
    assert me.is_running()
    assert WorkerIdentity.from_tags(me.tags()) == me
    assert not dataclasses.replace(me, started_at=me.started_at + 1).is_running()  # reused pid
    assert not me.same_machine(dataclasses.replace(me, boot_id="rebooted"))
    assert not me.same_machine(dataclasses.replace(me, host="elsewhere"))
    assert WorkerIdentity.from_tags({PID_TAG: "1"}) is None  # a run from before identities
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert WorkerIdentity.of(child.pid) is None  # gone


def test_a_run_recorded_without_an_identity_is_neither_checked_nor_signalled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bar run launched before identities were recorded: a PID and a host, nothing more.
    with dg.instance_for_test() as instance:
        launcher = WarmRunLauncher()
        launcher.register_instance(instance)
        run = dg.DagsterRun(job_name="legacy", tags={PID_TAG: str(os.getpid()), HOST_TAG: "h"})
        instance.add_run(run)
        health = launcher.check_run_worker_health(run)
        assert health.status.value == "RUNNING"
        assert "not checked" in (health.msg or "")
        sent = _no_signals(monkeypatch)
        assert not launcher.terminate(run.run_id)
        assert sent == []


# --- the zygote: spares forked from one process that loaded the code once -------------------


def _zygote_of(launcher: WarmRunLauncher) -> Zygote:
    (zygote,) = launcher._zygotes.values()
    return zygote


def _prewarmed(inst: dg.DagsterInstance, code: Path) -> WarmRunLauncher:
    """``inst``'s launcher, its spares of ``code``'s location started and loaded."""
    launcher = inst.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    module = importlib.import_module(code.stem)
    assert launcher.prewarm(dg.reconstructable(module.quick).get_python_origin())
    assert launcher.wait_spares(60)
    return launcher


@pytest.mark.slow
def test_spares_are_forked_from_one_zygote_and_run_their_bar_warm(
    tmp_path: Path, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    with _warm(tmp_path / "home", spares=2) as inst:
        launcher = _prewarmed(inst, code)
        zygote = _zygote_of(launcher)
        ((first, second),) = launcher._spares.values()
        for spare in (first, second):
            assert isinstance(spare, ForkedWorker)
            assert psutil.Process(spare.pid).ppid() == zygote.process.pid  # a fork, not a spawn
        run = _wait(inst, _launch(inst, code, "quick", LANE))
        assert run.is_success
        assert run.tags[START_TAG] == "warm"
        assert int(run.tags[PID_TAG]) == first.pid
        assert (marks / run.run_id).read_text().split() == ["1", str(first.pid)]
        # The replacement is forked from the same zygote: no new interpreter was started.
        assert launcher.wait_spares(60)
        (spares,) = launcher._spares.values()
        assert {psutil.Process(w.pid).ppid() for w in spares} == {zygote.process.pid}
        assert _zygote_of(launcher) is zygote


@pytest.mark.slow
def test_a_launcher_disposed_while_its_zygote_loads_leaves_no_process_behind(
    tmp_path: Path, code: Path
) -> None:
    with _warm(tmp_path / "home", spares=2) as inst:
        launcher = inst.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        module = importlib.import_module(code.stem)
        assert launcher.prewarm(dg.reconstructable(module.quick).get_python_origin(), wait=False)
        zygote = _zygote_of(launcher)
        assert zygote.loading  # the filling thread waits for it
        launcher.dispose()
        # The thread wakes up on the stopped zygote's exit and must start nothing.
        assert launcher.wait_spares(60)
        assert zygote.process.poll() is not None
        assert launcher._zygotes == {}
        assert launcher._spares == {}
        workers = [
            c
            for c in psutil.Process().children(recursive=True)
            if "pipelines.run_worker" in " ".join(c.cmdline())
        ]
        assert workers == []


@pytest.mark.slow
def test_a_zygote_whose_code_changed_is_replaced_and_the_new_code_runs_warm(
    tmp_path: Path, code: Path
) -> None:
    marks = Path(os.environ["MARKS"])
    with _warm(tmp_path / "home", spares=1) as inst:
        launcher = _prewarmed(inst, code)
        old = _zygote_of(launcher)
        code.write_text(JOBS.format(version=2))  # after the zygote's load
        sys.modules.pop(code.stem, None)
        importlib.invalidate_caches()
        first = _wait(inst, _launch(inst, code, "quick", LANE))  # the old spare: goes cold
        assert first.is_success
        assert (marks / first.run_id).read_text().split()[0] == "2"
        assert launcher.wait_spares(60)  # its replacement came from a new zygote
        new = _zygote_of(launcher)
        assert new is not old
        assert old.process.poll() is not None  # the stale one exited
        second = _wait(inst, _launch(inst, code, "quick", LANE))
        assert second.tags[START_TAG] == "warm"
        version, pid = (marks / second.run_id).read_text().split()
        assert version == "2"
        assert psutil.Process(int(pid)).ppid() == new.process.pid or not psutil.pid_exists(int(pid))


@pytest.mark.slow
def test_a_killed_zygote_is_replaced_then_given_up_for_spares_of_their_own(
    tmp_path: Path, code: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.run_launcher as launcher_module

    with _warm(tmp_path / "home", spares=1) as inst:
        launcher = inst.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        module = importlib.import_module(code.stem)
        origin = dg.reconstructable(module.quick).get_python_origin()
        assert launcher.prewarm(origin)
        assert launcher.wait_spares(60)
        zygote = _zygote_of(launcher)
        zygote.process.kill()
        zygote.process.wait()
        # A run still takes the spare forked before; its replacement comes from a new zygote.
        run = _wait(inst, _launch(inst, code, "quick", LANE))
        assert run.is_success
        assert run.tags[START_TAG] == "warm"
        assert launcher.wait_spares(60)
        replacement = _zygote_of(launcher)
        assert replacement is not zygote
        assert launcher._zygote_failures == {next(iter(launcher._zygotes)): 1}
        ((spare,),) = launcher._spares.values()
        assert psutil.Process(spare.pid).ppid() == replacement.process.pid
        # Killed again, with two failures allowed: the spares start as interpreters of their own.
        monkeypatch.setattr(launcher_module, "ZYGOTE_FAILURES_KEPT", 2)
        replacement.process.kill()
        replacement.process.wait()
        run = _wait(inst, _launch(inst, code, "quick", LANE))
        assert run.is_success
        assert run.tags[START_TAG] == "warm"
        assert launcher.wait_spares(60)
        ((spare,),) = launcher._spares.values()
        assert not isinstance(spare, ForkedWorker)
        assert psutil.Process(spare.pid).ppid() == os.getpid()
        again = _wait(inst, _launch(inst, code, "quick", LANE))
        assert again.is_success
        assert again.tags[START_TAG] == "warm"


_OWNER = """
import importlib, sys, time
import dagster as dg
sys.path.insert(0, sys.argv[2])
from pipelines.run_launcher import WarmRunLauncher
module = importlib.import_module(sys.argv[1])
with dg.instance_for_test(temp_dir=sys.argv[3], overrides={"run_launcher": {
        "module": "pipelines.run_launcher", "class": "WarmRunLauncher",
        "config": {"spares": 2}}}) as inst:
    launcher = inst.run_launcher
    assert launcher.prewarm(dg.reconstructable(module.quick).get_python_origin())
    assert launcher.wait_spares(60)
    pids = [launcher._zygotes[k].process.pid for k in launcher._zygotes]
    pids += [w.pid for ws in launcher._spares.values() for w in ws]
    print(" ".join(map(str, pids)), flush=True)
    import os
    os._exit(0)  # the owner dies without disposing anything
"""


@pytest.mark.slow
def test_the_zygote_and_its_spares_exit_when_the_launching_process_dies(
    tmp_path: Path, code: Path
) -> None:
    home = tmp_path / "owner-home"
    home.mkdir()
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-c", _OWNER, code.stem, str(tmp_path), str(home)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 3  # the zygote and two spares
    deadline = time.monotonic() + 15
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            p
            for p in pids
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.1)
    assert alive == [], f"still running after their launcher died: {alive}"


def test_a_zygote_refuses_to_fork_with_a_thread_running() -> None:
    import threading

    from pipelines.run_worker import fork_unsafe_threads

    assert "busy-thread" not in fork_unsafe_threads()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="busy-thread")
    thread.start()
    try:
        assert "busy-thread" in fork_unsafe_threads()
    finally:
        stop.set()
        thread.join()
