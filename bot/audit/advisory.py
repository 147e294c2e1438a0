"""Leader election on PostgreSQL: a session advisory lock on a connection of its own.

A ``Claim`` (``bot.runtime.election``): ``pg_try_advisory_lock`` on one dedicated
connection (not the pool's: the lock lives as long as that session), held for the
process's life. Each attempt after the lock is taken checks the connection with a
``SELECT 1``; a lost connection is lost leadership (the server dropped the session, and
with it the lock, so another replica may hold it now). ``release`` unlocks and closes.

A process killed with SIGKILL loses its socket, the server ends the session and the
lock is free at once; a network partition keeps the session (and the lock) until the
server's TCP keepalive gives up, so nobody else leads meanwhile.
"""

from __future__ import annotations

import logging
import threading
import zlib

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from bot.audit.engine import make_engine
from bot.audit.failures import DB_ERRORS, describe
from bot.errors import AuditUnavailable

log = logging.getLogger(__name__)

# The two-key form: ours (0x726d6c64, "rmld", redis-mem leader) in a lock space every
# application of the database shares, then the schema's CRC-32, because advisory locks
# are per database and two bots on one database in two schemas each need a leader.
LOCK_CLASS = 0x726D6C64
# libpq: notice a dead server within seconds instead of the kernel's two hours.
KEEPALIVE_ARGS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 10_000,
}


class AdvisoryLockClaim:
    """``pg_try_advisory_lock(LOCK_CLASS, crc32(schema))`` held on a connection of its own."""

    def __init__(self, url: str | URL) -> None:
        """``url``: DATABASE_URL (PostgreSQL); the engine opens nothing until the first attempt."""
        self._engine: Engine = make_engine(url, poolclass=NullPool, connect_args=KEEPALIVE_ARGS)
        self._keys = {"cls": LOCK_CLASS, "obj": 0}
        self._conn: Connection | None = None
        self._held = False
        self._lock = threading.Lock()  # the elector's thread and stop() may both come here
        self.description = "PostgreSQL advisory lock"

    def try_acquire_or_renew(self) -> bool:
        """Take the lock (connecting first if needed), or check that its session still lives."""
        with self._lock:
            try:
                conn = self._connection()
                if self._held:
                    conn.execute(text("SELECT 1"))
                else:
                    query = text("SELECT pg_try_advisory_lock(:cls, :obj)")
                    self._held = bool(conn.execute(query, self._keys).scalar())
                return self._held
            except DB_ERRORS as err:  # the session (and with it the lock) is gone
                self._drop()
                raise AuditUnavailable(f"advisory lock connection lost: {describe(err)}") from None

    def release(self) -> None:
        """Unlock and close the connection (a follower takes the lock at its next attempt)."""
        with self._lock:
            if self._conn is not None and self._held:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:cls, :obj)"), self._keys)
                except DB_ERRORS as err:  # closing the session below frees it anyway
                    log.debug("advisory unlock failed: %s", describe(err))
            self._drop()
            self._engine.dispose()

    def _connection(self) -> Connection:
        if self._conn is None:
            # Autocommit: the session must never sit "idle in transaction" for hours.
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            schema = self._conn.execute(text("SELECT current_schema()")).scalar()
            self._keys["obj"] = schema_key(str(schema or ""))
        return self._conn

    def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except DB_ERRORS as err:  # already broken: nothing left to close
                log.debug("closing the advisory lock connection: %s", describe(err))


def schema_key(schema: str) -> int:
    """The schema's CRC-32 as PostgreSQL's signed ``int4`` (the lock's second key)."""
    value = zlib.crc32(schema.encode())
    return value - 2**32 if value >= 2**31 else value
