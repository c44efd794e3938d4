"""Shared fixtures: the ledger on both stores.

``ledger_url`` is parametrised over a fresh SQLite file and the PostgreSQL server of
``scripts/pg.sh`` (URL in ``ALLOCATOR_TEST_PG_URL``; each test gets an empty schema). Without
that variable the PostgreSQL half is skipped with the reason — or fails when ``CI`` is set, so
that CI cannot pass on SQLite alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_env import required_url

PG_ENV = "ALLOCATOR_TEST_PG_URL"
DAGSTER_PG_ENV = "ALLOCATOR_TEST_DAGSTER_PG_URL"


def _worker_database(url: str, worker: str) -> str:
    """``url`` on a database of its own for this pytest-xdist worker, created when missing
    (the tests reset their database's schema, so two workers must never share one)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = sa.create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).first()
            if exists is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core) each worker gets its own
    PostgreSQL databases; subprocesses the tests start inherit the rewritten URLs."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    for variable in (PG_ENV, DAGSTER_PG_ENV):
        url = os.environ.get(variable, "").strip()
        if url:
            os.environ[variable] = _worker_database(url, worker)


def _postgres_url() -> str:
    return required_url(PG_ENV, "url")


def _reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty ledger database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    url = _postgres_url()
    _reset_postgres(url)
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[object]:
    """An open, migrated :class:`resources.ledger.Ledger` on each backend."""
    from resources.ledger import Ledger

    store = Ledger(ledger_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def private_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Point ``ALLOCATOR_LEDGER_URL`` at a fresh SQLite ledger, never the project's default."""
    folder = tmp_path_factory.mktemp("ledger")
    url = f"sqlite:///{folder / 'ledger.sqlite'}"
    monkeypatch.setenv("ALLOCATOR_LEDGER_URL", url)
    return url


@pytest.fixture
def world(tmp_path: Path) -> object:
    """The pipelines' small world (``tests/pipelines/world.py``)."""
    from tests.pipelines.world import write_world

    return write_world(tmp_path / "world")


@pytest.fixture
def instance() -> Iterator[object]:
    """An ephemeral Dagster instance."""
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst
