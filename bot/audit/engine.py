"""Build the audit database engine: driver choice, SQLite locking, short timeouts.

SQLite runs in WAL mode, whose wal-index is a memory-mapped ``-shm`` file: every new
connection and every BEGIN first checks that file (``bot.audit.shm_guard``), because a
truncated or unwritable one kills the process with SIGBUS instead of raising.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.audit.shm_guard import ShmGuard
from bot.errors import ConfigError

# Execution option that makes the next SQLite transaction take the write lock at BEGIN.
WRITE_LOCK = "audit_write_lock"
SQLITE_BUSY_SECONDS = 15.0  # bot.audit.sqlite_append's too (the CLI's writer)
PG_CONNECT_TIMEOUT_SECONDS = 5
# The drivers the package installs; any other one would fail later on a missing module.
DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


def parse_database_url(url: str | URL) -> URL:
    """Parse ``DATABASE_URL``; plain ``postgresql://`` means psycopg 3 (the driver we ship)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError("DATABASE_URL is not a valid database URL") from None
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    if parsed.drivername not in DRIVERS:
        raise ConfigError(
            f"DATABASE_URL: unsupported database driver {parsed.drivername!r} "
            f"(use one of: {', '.join(DRIVERS)})"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for the audit store; opens no connection until first use."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS}
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    connect_args = {"timeout": SQLITE_BUSY_SECONDS}
    connect_args.update(kwargs.pop("connect_args", {}))
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    guard = _shm_guard(url)
    event.listen(engine, "connect", lambda dbapi, record: _sqlite_on_connect(dbapi, guard))
    event.listen(engine, "begin", lambda connection: _sqlite_on_begin(connection, guard))
    return engine


def _shm_guard(url: URL) -> ShmGuard | None:
    """The guard of the database file's ``-shm``; None for an in-memory database (no file)."""
    database = url.database or ""
    if database.startswith("file:"):  # a URI filename (``?uri=true``)
        database = database.removeprefix("file:")
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return ShmGuard(database)


def _sqlite_on_connect(dbapi_connection: Any, guard: ShmGuard | None) -> None:
    if guard is not None:
        guard.check()  # before the PRAGMA below opens the WAL and maps the -shm
    # pysqlite's own transaction handling defers BEGIN until the first write, so
    # two writers could both read the same chain head. Turn it off and emit BEGIN
    # ourselves (SQLAlchemy's "serializable isolation / savepoints" pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (verify, export) run while a writer appends.
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection, guard: ShmGuard | None) -> None:
    if guard is not None:
        guard.check()  # every statement runs in a transaction: this is before each use
    if connection.get_execution_options().get(WRITE_LOCK):
        # Take the database write lock now, waiting up to the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
