"""The Dagster instance's storage on both backends.

``dagster_storage`` is parametrised over the committed ``dagster.yaml`` (SQLite files in the
test's ``DAGSTER_HOME``) and the production ``dagster.postgres.yaml`` on a database of its own,
created for the test on the server of ``ALLOCATOR_TEST_DAGSTER_PG_URL`` and dropped after it.
Without that variable the PostgreSQL half is skipped with the reason, or fails when ``CI`` is
set (the rule of ``ledger_url`` in ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_env import required_url
from tests.pipelines.live import (
    DAGSTER_PG_ENV,
    SQLITE,
    Storage,
    fresh_postgres_database,
    postgres_storage,
)


def _dagster_pg_url() -> str:
    url = required_url(DAGSTER_PG_ENV, "dagster-url")
    driver = url.split("://", 1)[0]
    if driver != "postgresql+psycopg2":
        pytest.fail(
            f"{DAGSTER_PG_ENV} must be a postgresql+psycopg2:// URL, not {driver}://: "
            "dagster-postgres needs psycopg2 (SQLAlchemy 2.1 reads postgresql:// as psycopg 3)"
        )
    return url


@pytest.fixture
def dagster_pg_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database for one Dagster instance."""
    with fresh_postgres_database(_dagster_pg_url()) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dagster_storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """The instance file and environment of each storage backend, starting empty."""
    if request.param == "sqlite":
        yield SQLITE
        return
    with fresh_postgres_database(_dagster_pg_url()) as url:
        yield postgres_storage(url)
