"""Dagster's SQLite instance storage, with its SQLAlchemy engines kept (``dagster.yaml``).

Why: Dagster's SQLite run, event-log and schedule storages create a new SQLAlchemy engine for
every connection (``create_engine(..., poolclass=NullPool)`` inside ``connect``). An engine owns
SQLAlchemy's compiled-statement cache and the dialect that keys it, so every statement of every
connection was compiled afresh: in a bar run (~150 events, ~670 connections) compiling SQL and
creating engines took about a third of the run's CPU, most of it before the orders went out.

These subclasses keep one engine per database file (the event log has one file per run: the
engines of the most recent :data:`ENGINES_KEPT` files are kept), each with one pooled
connection (:class:`_Engines` says how a kept connection never outlives its file or crosses a
fork). Everything else is Dagster's own code: the same files in WAL mode, the same busy timeout,
the same layout under ``$DAGSTER_HOME`` (an existing instance's history is read as it is), the
same migrations. Measured in-process on a bar run: about half the run's wall time.

Overriding ``connect`` / ``_connect`` reaches into Dagster's SQLite storage classes, so the
override is used only on the Dagster versions it was tested with
(:data:`pipelines.dagster_versions.TESTED_DAGSTER_VERSIONS`); on any other version these classes
warn once and behave exactly as Dagster's (a new engine per connection), so an upgrade of
Dagster never breaks the instance, it only loses the speed-up.

Configured in ``dagster.yaml`` (the three storages of an instance)::

    run_storage:
      module: pipelines.storage
      class: KeptEngineSqliteRunStorage
    event_log_storage:
      module: pipelines.storage
      class: KeptEngineSqliteEventLogStorage
    schedule_storage:
      module: pipelines.storage
      class: KeptEngineSqliteScheduleStorage

``base_dir`` is optional in each: by default Dagster's own layout, ``$DAGSTER_HOME/history``
(``runs.db``), ``$DAGSTER_HOME/history/runs`` (the event log) and ``$DAGSTER_HOME/schedules``.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from pipelines.dagster_versions import TESTED_DAGSTER_VERSIONS

__all__ = [
    "ENGINES_KEPT",
    "KeptEngineSqliteEventLogStorage",
    "KeptEngineSqliteRunStorage",
    "KeptEngineSqliteScheduleStorage",
    "engines_kept",
]

ENGINES_KEPT = 32
"""How many database files' engines one process keeps (least recently used dropped first).
The event log has a file per run; a long-lived daemon or webserver touches thousands."""

_WARNED = False


def engines_kept(version: str | None = None) -> bool:
    """Whether engines are kept on this Dagster version (``version``: default the installed one).
    On an untested version: ``False``, with a warning (once per process)."""
    global _WARNED
    version = dg.__version__ if version is None else version
    if version in TESTED_DAGSTER_VERSIONS:
        return True
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            "pipelines.storage was tested with dagster "
            f"{', '.join(sorted(TESTED_DAGSTER_VERSIONS))} only, and this is dagster {version}: "
            "its SQLite storages behave exactly as "
            "Dagster's own (a new SQLAlchemy engine per connection, slower). Run "
            "tests/pipelines/test_storage.py on this version and add it to "
            "pipelines/dagster_versions.py to keep the engines.",
            stacklevel=2,
        )
    return False


class _Engines:
    """Engines by connection string, the ``limit`` most recently used kept (thread-safe).

    Each engine pools one open SQLite connection (more are opened when threads overlap, and
    closed when returned): reopening the file and SQLite's WAL checkpoint when its last
    connection closes cost about as much as compiling the SQL did. Two guards keep a kept
    connection from outliving its file:

    - at every checkout the file's inode is compared with the one the connection opened; a
      file deleted or replaced since (Dagster's ``wipe``, from this or another process) makes
      the pool drop that connection and open the file afresh, so nothing is written into a
      deleted file;
    - in a forked child every pool is reset without closing the parent's connections
      (SQLAlchemy's recipe for ``os.fork``), so parent and child never share a connection.
    """

    def __init__(self, limit: int = ENGINES_KEPT, **engine_kwargs: Any) -> None:
        self._limit = limit
        self._kwargs = engine_kwargs
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            engine = self._engines.get(conn_string)
            if engine is None:
                engine = self._create(conn_string)
                self._engines[conn_string] = engine
                while len(self._engines) > self._limit:
                    _, dropped = self._engines.popitem(last=False)
                    dropped.dispose()  # closes its idle connection
            else:
                self._engines.move_to_end(conn_string)
            return engine

    def _create(self, conn_string: str) -> Engine:
        connect_args = {**self._kwargs.get("connect_args", {}), "check_same_thread": False}
        kwargs = {**self._kwargs, "connect_args": connect_args}
        # pool_size=1: one connection kept; max_overflow=-1: a thread that finds it in use opens
        # another, closed when returned (what NullPool did for every connection)
        engine = create_engine(conn_string, pool_size=1, max_overflow=-1, **kwargs)
        path = engine.url.database or ""

        @event.listens_for(engine, "connect")
        def _opened(dbapi_connection: Any, record: Any) -> None:
            record.info["inode"] = _inode(path)

        @event.listens_for(engine, "checkout")
        def _still_there(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            if record.info.get("inode") != _inode(path):
                raise DisconnectionError(f"{path} was deleted or replaced since it was opened")

        return engine

    def __len__(self) -> int:
        return len(self._engines)

    def clear(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def _after_fork(self) -> None:
        # the child gets fresh pools; the parent's connections stay open for the parent
        self._lock = threading.Lock()
        for engine in self._engines.values():
            engine.dispose(close=False)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


_ALL: weakref.WeakSet[_Engines] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for engines in list(_ALL):
        engines._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def _base_dir(config_value: Mapping[str, Any], subdir: str) -> str:
    base = config_value.get("base_dir")
    if base:
        return str(base)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise dg.DagsterInvariantViolationError(
            f"pipelines.storage: no base_dir configured and DAGSTER_HOME is not set (the default "
            f"is $DAGSTER_HOME/{subdir})"
        )
    return os.path.join(os.path.abspath(home), subdir)


_CONFIG = {"base_dir": dg.Field(dg.StringSource, is_required=False)}


class _KeptEngineStorage:
    """What the run and schedule storages share: one database file (``_conn_string``), its
    engine kept. A mixin placed before the Dagster class, whose ``connect`` is the fallback."""

    _conn_string: str
    _SUBDIR = ""  # the default base_dir under $DAGSTER_HOME

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]
        self._engines = _Engines() if engines_kept() else None

    @classmethod
    def config_type(cls) -> Any:
        return _CONFIG

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Any:
        # Dagster's from_local migrates the file, then builds ``cls``
        return cls.from_local(_base_dir(config_value, cls._SUBDIR), inst_data=inst_data)  # type: ignore[attr-defined]

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        if self._engines is None:
            with super().connect() as conn:  # type: ignore[misc]
                yield conn
            return
        with self._engines.get(self._conn_string).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        if self._engines is not None:
            self._engines.clear()
        super().dispose()  # type: ignore[misc]


class KeptEngineSqliteRunStorage(_KeptEngineStorage, SqliteRunStorage):
    """Dagster's SQLite run storage (``history/runs.db``), with its engine kept."""

    _SUBDIR = "history"


class KeptEngineSqliteScheduleStorage(_KeptEngineStorage, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage (``schedules/schedules.db``: sensor ticks), with its
    engine kept."""

    _SUBDIR = "schedules"


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (``index.db`` and one ``<run_id>.db`` per run), with the
    engines of the :data:`ENGINES_KEPT` most recently used files kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines = (
            _Engines(connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            if engines_kept()
            else None
        )
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> Any:
        return _CONFIG

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> KeptEngineSqliteEventLogStorage:
        return cls(_base_dir(config_value, os.path.join("history", "runs")), inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        if self._engines is None:
            with super()._connect(shard) as conn:
                yield conn
            return
        # As Dagster's own: under the storage's lock (its watcher threads share it), the file
        # created and migrated on first use in this process, one transaction per connection.
        with self._db_lock:
            engine = self._engines.get(self.conn_string_for_shard(shard))
            if shard in self._initialized_dbs and not os.path.exists(self.path_for_shard(shard)):
                # deleted since (a wipe by another process): created and migrated again, where
                # Dagster's own storage would fail on its missing tables
                self._initialized_dbs.discard(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def wipe(self) -> None:
        if self._engines is not None:
            self._engines.clear()  # close the kept connections before their files go
        super().wipe()

    def dispose(self) -> None:
        if self._engines is not None:
            self._engines.clear()
        super().dispose()
