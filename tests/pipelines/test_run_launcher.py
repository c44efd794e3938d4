"""``WarmRunLauncher`` with real run-worker processes on a real (temporary) instance: lane runs
start warm after the first one, other runs are left to the default launcher, a changed module is
never run stale, termination cancels the run, and a killed worker is reported failed."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from assets.tags import BAR_LANE, PID_TAG, START_TAG
from pipelines.run_launcher import WarmRunLauncher
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
