"""The ledger's database: how it is opened, and its schema at the migrations' head.

The ledger opens the URL it is given; which one is decided once, by
:func:`allocator.settings.load_settings` (none given:
:func:`allocator.settings.default_ledger_url`). SQLite runs in WAL mode with a busy timeout and
``BEGIN IMMEDIATE`` writes, so that strategies can submit intents while a bar runs in another
process; PostgreSQL is the same code by URL (``postgresql+psycopg://user@host:port/db``).
:class:`Database` is the base of every part of ``resources.ledger.Ledger``: it holds the engine
and brings the schema to the Alembic head on open. It also keeps the few dialect helpers the
parts share, and :func:`shown_url` (a URL as it may be printed).

This is what makes SPEC §9's "the journal is the truth" hold across crashes: every write of the
ledger is one transaction on this engine, so a crash leaves it as it was before the call or
after it.

Why one module for the engine and the dialects: the rest of the ledger is written once in
SQLAlchemy Core; only here does SQLite differ from PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from allocator.settings import default_ledger_url

__all__ = ["MIGRATIONS", "Database", "make_engine", "migration_state", "shown_url"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def shown_url(url: str) -> str:
    """``url`` as it may be printed: only the scheme when it carries credentials (``@``)."""
    return url.split("://", 1)[0] + "://…" if "@" in url else url


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE``) or PostgreSQL."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below rule
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return sa.create_engine(url, pool_pre_ping=True)
    raise ValueError(f"ledger URL must be sqlite:/// or postgresql+psycopg://, got {url!r}")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _head_revision() -> str:
    """The migration scripts' head revision (read once per process)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic head revision under {MIGRATIONS}")
    return head


def migration_state(url: str) -> tuple[str | None, str]:
    """``(the ledger's revision, the scripts' head)`` of the ledger at ``url``, read without
    migrating or creating anything (``allocator doctor``); the revision is ``None`` for a
    database with no ``alembic_version`` table (never migrated).

    Raises
    ------
    FileNotFoundError
        ``url`` is a SQLite file that does not exist (opening it would create it).
    sqlalchemy.exc.DBAPIError
        The database cannot be reached.
    """
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:" and not Path(database).exists():
            raise FileNotFoundError(database)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None, _head_revision()
            stamped = [
                r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ]
    finally:
        engine.dispose()
    return (stamped[0] if len(stamped) == 1 else ",".join(stamped) or None), _head_revision()


class Database:
    """The ledger's engine on ``url`` (none: :func:`~allocator.settings.default_ledger_url`);
    the schema is upgraded on open unless ``upgrade`` is false."""

    def __init__(self, url: str | None = None, *, upgrade: bool = True) -> None:
        self.url = url or default_ledger_url()
        self.engine: Engine = make_engine(self.url)
        if upgrade:
            self.upgrade()

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to ``head`` (idempotent). A ledger already at head
        is recognised with one query (Alembic's own check costs ~7 ms, and a bar run opens the
        ledger about ten times)."""
        try:
            with self.engine.connect() as conn:
                stamped = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            if [r[0] for r in stamped] == [_head_revision()]:
                return
        except sa.exc.DBAPIError:  # no alembic_version table yet: a new ledger
            pass
        cfg = _alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def now() -> datetime:
    """The wall clock in UTC: when a row was written (never a trading decision)."""
    return datetime.now(UTC)


def insert_ignore(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, skipping those whose primary key is already there."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(pg_stmt, list(rows))
    elif dialect == "sqlite":
        lite_stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(lite_stmt, list(rows))
    else:  # pragma: no cover - only the two supported backends
        raise ValueError(f"unsupported ledger backend {dialect}")


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    """``items`` in slices of at most ``size`` (bound parameters per ``IN`` list)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
