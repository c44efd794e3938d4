"""``pipelines.storage``: the committed ``dagster.yaml``'s SQLite storages keep their engines
and one connection per file, and that never costs a write. Checked on real instances under a
temporary ``DAGSTER_HOME``: a run opens a handful of SQLite connections instead of one per
query; another instance (another process) sees every event; a file deleted behind a kept
connection (a wipe by another process) is reopened, never written into the deleted inode; a
forked child never shares its parent's connection; an untested Dagster version falls back to
Dagster's own behaviour; a history written by Dagster's default storage is read as it is."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy import event
from sqlalchemy.pool import Pool

import pipelines.storage as storage_mod
from pipelines.storage import (
    KeptEngineSqliteEventLogStorage,
    KeptEngineSqliteRunStorage,
    KeptEngineSqliteScheduleStorage,
    _Engines,
    engines_kept,
)
from tests.pipelines.live import prepare_home


@dg.op
def chatty(context: dg.OpExecutionContext) -> int:
    for i in range(20):
        context.log.info(f"line {i}")
    return 1


@dg.job
def chatty_job() -> None:
    chatty()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    prepare_home(home)  # the committed dagster.yaml
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _connections_opened(fn: object) -> int:
    """How many DBAPI connections any SQLAlchemy pool opened while ``fn()`` ran."""
    opened = 0

    def on_connect(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(Pool, "connect", on_connect)
    try:
        fn()  # type: ignore[operator]
    finally:
        event.remove(Pool, "connect", on_connect)
    return opened


def _messages_in_fresh_process(home: Path, run_id: str) -> list[str]:
    code = (
        "import dagster as dg, json, sys\n"
        "with dg.DagsterInstance.get() as i:\n"
        "    print(json.dumps([e.message for e in i.all_logs(sys.argv[1])]))\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", code, run_id], env=env, capture_output=True, text=True, check=True
    )
    import json

    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_committed_instance_keeps_engines_and_another_process_sees_every_event(
    home: Path,
) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, KeptEngineSqliteRunStorage)
        assert isinstance(instance.event_log_storage, KeptEngineSqliteEventLogStorage)
        assert isinstance(instance.schedule_storage, KeptEngineSqliteScheduleStorage)
        chatty_job.execute_in_process(instance=instance)  # files created, engines warm
        results: list[dg.ExecuteInProcessResult] = []
        opened = _connections_opened(
            lambda: results.append(chatty_job.execute_in_process(instance=instance))
        )
        run_id = results[0].run_id
        stored = instance.all_logs(run_id)
        assert len(stored) > 30  # 20 log lines and the run's own events
        # Dagster's own SQLite storage opens one connection per query (hundreds for this run):
        # here the run's new shard and the overlapping threads' extra connections only
        assert opened <= 10, opened
    assert (home / "history" / "runs.db").exists()  # Dagster's default layout
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert not list((home / "storage").glob("*.db"))  # compute logs' folder: no database
    assert (home / "schedules" / "schedules.db").exists()
    seen = _messages_in_fresh_process(home, run_id)
    assert [m for m in seen if m.startswith("line ")] == [f"line {i}" for i in range(20)]


def test_engines_are_bounded_least_recently_used_first(tmp_path: Path) -> None:
    engines = _Engines(limit=3)
    urls = [f"sqlite:///{tmp_path}/{n}.db" for n in range(5)]
    first = engines.get(urls[0])
    for url in urls[1:]:
        engines.get(url)
    assert len(engines) == 3
    assert engines.get(urls[4]) is engines.get(urls[4])  # kept
    assert engines.get(urls[0]) is not first  # dropped, then created again


def test_a_file_deleted_behind_a_kept_connection_is_reopened_not_written_into(
    home: Path,
) -> None:
    with dg.DagsterInstance.get() as instance:
        run_id = chatty_job.execute_in_process(instance=instance).run_id
        run = instance.get_run_by_id(run_id)
        assert run is not None
        for suffix in ("", "-wal", "-shm"):  # what SqliteEventLogStorage.wipe deletes
            path = home / "history" / "runs" / f"{run_id}.db{suffix}"
            if path.exists():
                path.unlink()
        instance.report_engine_event("written after the file was deleted", run)
    # a fresh process reads the file on disk: the event is there, not in the deleted inode
    assert _messages_in_fresh_process(home, run_id) == ["written after the file was deleted"]


def test_a_forked_child_never_shares_its_parents_connections(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        run_id = chatty_job.execute_in_process(instance=instance).run_id
        run = instance.get_run_by_id(run_id)
        assert run is not None
        kept = instance.event_log_storage._engines  # type: ignore[attr-defined]
        assert any(e.pool.checkedin() for e in kept._engines.values())  # the parent's
        pid = os.fork()
        if pid == 0:  # the child: fresh pools, then a write through them
            code = 0
            try:
                if any(e.pool.checkedin() for e in kept._engines.values()):
                    code = 3  # it would have reused the parent's open SQLite connection
                else:
                    instance.report_engine_event("from the child", run)
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        instance.report_engine_event("from the parent", run)
    seen = _messages_in_fresh_process(home, run_id)
    assert seen[-2:] == ["from the child", "from the parent"]


def test_an_untested_dagster_version_falls_back_to_dagsters_own_behaviour(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_mod, "_WARNED", False)
    with pytest.warns(UserWarning, match="tested with dagster"):
        assert engines_kept("0.0.1") is False
    assert engines_kept() is True  # the installed version is the tested one
    monkeypatch.setattr(storage_mod, "engines_kept", lambda version=None: False)
    with dg.DagsterInstance.get() as instance:
        assert instance.event_log_storage._engines is None  # type: ignore[attr-defined]
        results: list[dg.ExecuteInProcessResult] = []
        opened = _connections_opened(
            lambda: results.append(chatty_job.execute_in_process(instance=instance))
        )
        assert results[0].success
        assert opened > 40  # Dagster's own: a connection per query
        assert len(instance.all_logs(results[0].run_id)) > 30


def test_a_history_written_by_dagsters_default_storage_is_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        config.pop(key)
    default_home = home.parent / "default"
    default_home.mkdir()
    (default_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(default_home)) as instance:
        assert type(instance.event_log_storage).__name__ != "KeptEngineSqliteEventLogStorage"
        run_id = chatty_job.execute_in_process(instance=instance).run_id
    (default_home / "dagster.yaml").write_text((home / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(default_home))  # the storages' default base_dir
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning on the tested version
        with dg.DagsterInstance.from_config(str(default_home)) as instance:
            assert isinstance(instance.event_log_storage, KeptEngineSqliteEventLogStorage)
            messages = [e.user_message for e in instance.all_logs(run_id)]
            assert [m for m in messages if m.startswith("line ")] == [
                f"line {i}" for i in range(20)
            ]
            assert instance.get_run_by_id(run_id) is not None
