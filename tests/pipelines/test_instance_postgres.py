"""The production instance file ``dagster.postgres.yaml``: the settings of ``dagster.yaml`` with
the run, event-log and schedule storage on PostgreSQL, the database named by ``DAGSTER_PG_URL``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.pipelines.live import PG_URL_VAR, PROJECT, SQLITE, postgres_storage, prepare_home


def test_production_file_has_the_default_settings_with_postgres_storage() -> None:
    default = yaml.safe_load((PROJECT / SQLITE.yaml).read_text())
    production = yaml.safe_load((PROJECT / postgres_storage("").yaml).read_text())
    assert "storage" not in default
    # SQLite under DAGSTER_HOME, each database's engine kept (pipelines/storage.py)
    kinds = ("run_storage", "event_log_storage", "schedule_storage")
    assert {k: default.pop(k)["module"] for k in kinds} == dict.fromkeys(kinds, "pipelines.storage")
    assert production.pop("storage") == {"postgres": {"postgres_url": {"env": PG_URL_VAR}}}
    assert production == default


@pytest.mark.postgres
def test_production_instance_stores_runs_events_and_schedules_in_postgres(
    dagster_pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    storage = postgres_storage(dagster_pg_database)
    home = tmp_path / "dagster_home"
    prepare_home(home, storage)
    for key, value in storage.env.items():
        monkeypatch.setenv(key, value)

    @dg.op
    def one() -> int:
        return 1

    @dg.job
    def tiny() -> None:
        one()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert not instance.get_runs()  # a database of its own, empty
        run_id = tiny.execute_in_process(instance=instance).run_id

    # read back through a second instance on the same database
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.job_name == "tiny"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        assert [e.step_key for e in events] == ["one"]
        # the broker sink's pool: dagster.yaml's concurrency settings hold on PostgreSQL too
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
