"""Database engines and model metadata shared by the services.

Each service owns its tables. On PostgreSQL they live in the service's own schema (the connection's search_path
is set to it, so models and migrations stay schema-free); on SQLite every service's tables share one file, so
table names are unique across services. SQLite runs in WAL mode with a busy timeout and foreign keys on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class _SqliteWriters:
    """The write turn on one SQLite file. One thread of this process at a time holds it (a lock), and one process
    at a time (an advisory lock on a file beside the database: `<database>.writers`). A writer that finds the
    turn taken gets it within about two milliseconds of its release; SQLite's own busy handler, which the turn
    spares, sleeps up to 100 ms a time between looks. A writer that waits longer than the busy timeout goes on
    without the file's lock (SQLite then decides, as before). SQLite in memory is one process's own: only the
    thread lock."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._held = False

    def _take_file(self) -> None:
        if self._fd is None:
            self._fd = os.open(f"{self._path}.writers", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._held = True
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._depth == 0 and self._path is not None:
                self._take_file()
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._held = False
        self._lock.release()


# One write turn per SQLite file in this process (see Database.transaction).
_sqlite_writers: dict[str, _SqliteWriters] = {}
_sqlite_writers_lock = threading.Lock()


def _sqlite_writer_lock(url: str) -> _SqliteWriters:
    database = make_url(url).database or ":memory:"
    key = database if database == ":memory:" else str(Path(database).resolve())
    with _sqlite_writers_lock:
        found = _sqlite_writers.get(key)
        if found is None:
            found = _sqlite_writers[key] = _SqliteWriters(None if database == ":memory:" else Path(key))
        return found


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def make_base() -> type[DeclarativeBase]:
    """A declarative base with its own metadata (one per service) and the naming convention."""

    class Base(DeclarativeBase):
        metadata = new_metadata()

    return Base


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if dialect.name != "sqlite" else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_service_engine(url: str, schema: str, pool_size: int = 10) -> Engine:
    """An engine for one service: SQLite tuned for concurrent processes, or PostgreSQL in the service's schema."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN drive transactions (pysqlite's own handling defers them badly).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Bulk work (uploads, generation, resets) writes thousands of rows a batch: a 64 MB page cache keeps
            # the indexes it probes in memory, and checkpointing the WAL every 64 MB rather than every 4 MB (the
            # default) makes its commits about twice as fast.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # Writers take the write lock up front, so two of them queue on the busy timeout instead of failing
            # mid-way; readers (Database.read) begin deferred and never block anyone in WAL mode.
            readonly = connection.get_execution_options().get("portal_readonly", False)
            connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")
    return create_engine(
        url,
        connect_args={"options": f"-csearch_path={schema}"},
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


class Database:
    """One service's engine and sessions. Storage code runs in worker threads so the event loop keeps serving."""

    def __init__(self, url: str, schema: str, pool_size: int = 10) -> None:
        self.url = url
        self.schema = schema
        self.engine = create_service_engine(url, schema, pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(portal_readonly=True), expire_on_commit=False)
        self._writer = _sqlite_writer_lock(url) if is_sqlite(url) else contextlib.nullcontext()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on any error.

        On SQLite one writer at a time holds the file's write lock, and one that finds it taken sleeps and polls
        (the busy timeout: up to 100 ms a turn once it has waited a while). Writers of this code, in any process,
        take turns instead (`_SqliteWriters`) and start the moment the one before commits: a bulk job's next
        batch follows its last at once, whichever process wrote in between."""
        with self._writer, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries only (never committed)."""
        with self._readers() as session:
            yield session

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def dispose(self) -> None:
        self.engine.dispose()
