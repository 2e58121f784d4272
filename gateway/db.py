"""Engines, sessions and migrations.

``Store`` owns one engine per database URL for the life of the process (Radicale builds its
storage twice; both must share one pool). ``store.transaction()`` is the unit of work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(Exception):
    """The store cannot be opened (bad URL, unreachable server, unusable file)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (CalDAV) run while a writer commits; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Savepoint journals of a large batch (an IMAP import) would spill to files in TMPDIR
    # beyond 64 KiB; the gateway's temporary data is bounded by its batches, so memory.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock at BEGIN so two writers queue up instead of failing on upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, immediate: bool = True) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database.url {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is disabled so BEGIN IMMEDIATE is ours.
        event.listen(engine, "connect", lambda conn, _r: setattr(conn, "isolation_level", None))
        if immediate:
            event.listen(engine, "begin", _sqlite_begin)
        else:
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise StoreError(
        f"database.url {url!r}: only sqlite:/// and postgresql+psycopg:// are supported"
    )


class Store:
    """A database: its engine, a session factory and the migration state."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: reads get their own engine with deferred BEGIN, so WAL readers never wait
        # for the write lock that every transaction() takes at BEGIN.
        if self.engine.dialect.name == "sqlite":
            self.read_engine = make_engine(url, immediate=False)
        else:
            self.read_engine = self.engine
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (nothing is committed)."""
        with self.read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    # --- migrations ---

    def _alembic(self) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = self.engine
        return config

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self._alembic()).get_current_head()

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def needs_upgrade(self) -> bool:
        return self.current_revision() != self.head_revision()

    def upgrade(self) -> None:
        command.upgrade(self._alembic(), "head")

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def shared_store(url: str) -> Store:
    """The process-wide Store for ``url`` (one engine and pool per database)."""
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = Store(url)
        return store


def close_shared(url: str) -> None:
    """Dispose of the process-wide Store for ``url``, if one was opened."""
    with _stores_lock:
        store = _stores.pop(url, None)
    if store is not None:
        store.dispose()
