"""A real Dagster deployment on a temporary ``DAGSTER_HOME``: the committed ``dagster.yaml`` (or
the production ``dagster.postgres.yaml`` on a fresh PostgreSQL database), ``dagster-daemon run``
(sensor, run coordinator, run launcher) on the code location, and helpers to submit bars and
wait for their runs. Used by the end-to-end test and the latency benchmark."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # the venv running the tests has the dagster CLIs


# The PostgreSQL server for the Dagster storage tests (`bash scripts/pg.sh dagster-url`, exported
# by `make test`); each test gets a database of its own on it.
DAGSTER_PG_ENV = "ALLOCATOR_TEST_DAGSTER_PG_URL"
PG_URL_VAR = "DAGSTER_PG_URL"  # read by dagster.postgres.yaml


@dataclass(frozen=True)
class Storage:
    """Which instance file a ``DAGSTER_HOME`` gets, and the environment its processes need."""

    name: str
    yaml: str
    env: Mapping[str, str] = field(default_factory=dict)


SQLITE = Storage("sqlite", "dagster.yaml")


def postgres_storage(url: str) -> Storage:
    return Storage("postgres", "dagster.postgres.yaml", {PG_URL_VAR: url})


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url`` (a SQLAlchemy URL whose user may
    create databases); yields its URL and drops it on exit."""
    import sqlalchemy as sa

    base = sa.make_url(server_url)
    name = f"{base.database or 'dagster'}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:  # FORCE: a run worker may still hold a connection
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def prepare_home(home: Path, storage: Storage = SQLITE) -> None:
    """``home`` as a ``DAGSTER_HOME`` with the project's instance file for ``storage``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / storage.yaml, home / "dagster.yaml")


def live_env(
    home: Path, world_env: dict[str, str], interval_s: int = 5, storage: Storage = SQLITE
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(world_env)
    env.update(storage.env)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "ALLOCATOR_SENSORS_RUNNING": "1",
            "ALLOCATOR_BAR_SENSOR_INTERVAL": str(interval_s),
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


@contextmanager
def daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the code location; stopped (its process group) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster-daemon"), "run", "-m", "pipelines.definitions", "-a", "defs"],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def runs_for_bar(
    instance: dg.DagsterInstance, bar: str, job_name: str = "bar_job"
) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(filters=dg.RunsFilter(job_name=job_name, tags={"allocator/bar": bar}))
    )


def wait_for_bar(
    instance: dg.DagsterInstance, bar: str, timeout_s: float = 90.0, job_name: str = "bar_job"
) -> dg.DagsterRun:
    """The bar's run once it finished; raise if it failed or did not finish in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in runs_for_bar(instance, bar, job_name):
            if run.is_finished:
                if not run.is_success:
                    raise AssertionError(f"bar {bar}: run {run.run_id} ended {run.status}")
                return run
        time.sleep(0.2)
    raise TimeoutError(f"bar {bar}: no finished run within {timeout_s} s")
