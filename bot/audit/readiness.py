"""Readiness as "this process can write an audit row now": a rolled-back write, bounded, cached.

``SELECT 1`` answers while PostgreSQL refuses INSERT (a revoked grant, a read-only standby
after a fail-over) and while SQLite's files are read-only, yet every change the bot makes
needs its audit row first. So the probe does what an append does, inside a transaction it
rolls back: INSERT a row into ``audit_events`` and touch the chain head. Nothing is kept;
PostgreSQL's sequence is not used (the probe row carries its own id).

Bounded: the database is asked under short lock and statement timeouts, in a thread the
caller waits on for ``timeout`` seconds at most (a hung server must not hang ``/readyz``),
and never more than one probe runs at a time. Cached: the answer stands for ``cache_for``
seconds, so probes (every replica, every few seconds) cannot hammer the database. A change
of the answer is logged, in one line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, update

from bot.audit.failures import DB_ERRORS, describe
from bot.audit.models import EVENTS, HEAD_ID, ChainHead

log = logging.getLogger(__name__)

# kubelet's default probe timeout is 1 s: answer within it, even when the database hangs.
PROBE_TIMEOUT_SECONDS = 0.8
PROBE_CACHE_SECONDS = 2.0
LOCK_WAIT_MS = 500  # a writer holds the chain head for milliseconds
PROBE_ROW_ID = -1  # never a real id (they start at 1), and rolled back anyway


class WriteProbe:
    """``ReadyCheck``: True when an audit row could be written right now (see module doc)."""

    def __init__(
        self,
        engine: Engine,
        *,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        cache_for: float = PROBE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``timeout``: the longest a caller waits; ``cache_for``: how long an answer stands."""
        self._engine = engine
        self._timeout = timeout
        self._cache_for = cache_for
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: tuple[float, str | None] | None = None  # (when, problem or None)
        self._running: threading.Event | None = None
        self._logged: str | None = None

    def __call__(self) -> bool:
        """Ready: the last answer if fresh, else a new probe, waited on ``timeout`` at most."""
        with self._lock:
            if self._answer is not None and self._clock() - self._answer[0] < self._cache_for:
                return self._answer[1] is None
            if self._running is None:  # one probe at a time, even when one hangs
                self._running = threading.Event()
                threading.Thread(target=self._probe, name="readiness-probe", daemon=True).start()
            done = self._running
        if not done.wait(self._timeout):
            self._record(f"no answer within {self._timeout:g} s")
            return False
        with self._lock:
            return self._answer is not None and self._answer[1] is None

    def _probe(self) -> None:
        try:
            problem = write_problem(self._engine)
        except Exception as err:  # a probe must answer, whatever the driver raised
            problem = describe(err)
        self._record(problem)
        with self._lock:
            done, self._running = self._running, None
        if done is not None:
            done.set()

    def _record(self, problem: str | None) -> None:
        """Keep the answer; log when it changes (one line each way)."""
        with self._lock:
            self._answer = (self._clock(), problem)
            if problem == self._logged:
                return
            before, self._logged = self._logged, problem
        if problem is not None:
            log.warning("not ready: the audit database cannot take an audit row: %s", problem)
        elif before is not None:
            log.warning("ready again: the audit database takes audit rows")


def write_problem(engine: Engine) -> str | None:
    """Why an audit row cannot be written now (one line), or None: INSERT, then ROLLBACK."""
    try:
        with engine.connect() as conn, _short_busy_wait(conn), conn.begin() as transaction:
            if conn.dialect.name == "postgresql":  # both end with the transaction
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {2 * LOCK_WAIT_MS}")
            conn.execute(EVENTS.insert().values(**_probe_row()))
            conn.execute(update(ChainHead).where(ChainHead.id == HEAD_ID).values(seq=ChainHead.seq))
            transaction.rollback()
    except DB_ERRORS as err:
        return describe(err)
    return _files_problem(engine)


@contextmanager
def _short_busy_wait(conn: Connection) -> Iterator[None]:
    """SQLite: wait LOCK_WAIT_MS (not the 15 s busy timeout) for the write lock, then restore.

    Set on the driver's connection, outside any transaction: the pool hands it on.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    (before,) = dbapi.execute("PRAGMA busy_timeout").fetchone()
    dbapi.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
    try:
        yield
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {int(before)}")


def _files_problem(engine: Engine) -> str | None:
    """SQLite: a rolled-back INSERT never reaches the files; check they can be written."""
    database = (engine.url.database or "").removeprefix("file:")
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        return None
    path = os.path.abspath(database)
    for name in (path, path + "-wal"):
        if os.path.exists(name) and not os.access(
            name, os.W_OK, effective_ids=os.access in os.supports_effective_ids
        ):
            return f"{name} is not writable (read-only file system, immutable file or permissions)"
    return None


def _probe_row() -> dict[str, Any]:
    return {
        "id": PROBE_ROW_ID,
        "seq": -1,
        "at": datetime.now(UTC),
        "actor": "readiness",
        "source": "scheduler",
        "action": "readiness.probe",
        "parameters": {},
        "outcome": "ok",
        "summary": "rolled back",
        "prev_hash": "0" * 64,
        "hash": "readiness-probe",
    }
