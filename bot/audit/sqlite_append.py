"""Append one audit row to a SQLite trail with the standard library only (the CLI's path).

A CLI command writes one row; importing SQLAlchemy and the ORM models to do so cost
``redis-mem diagnose`` ~135 ms of a ~400 ms start-up (docs/decisions/runtime.md). This
writes the same row, byte for byte, as ``SqlAuditStore.append`` does on SQLite, under
the same rules: the ``-shm`` checked before the connection and before BEGIN
(``ShmGuard``), WAL, ``BEGIN IMMEDIATE`` with the same busy timeout, the chain head read
and moved in that one transaction. ``tests/test_audit_sqlite_append.py`` holds the two
writers to identical rows and walks chains that mix them.

It only takes the common case: a plain ``sqlite:///PATH`` URL naming an existing file at
``HEAD_REVISION``. Anything else (a URI or query, a missing file, a schema behind,
another backend) writes nothing and answers False: the caller then takes the
SQLAlchemy path, which creates, migrates or explains.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing, suppress
from datetime import UTC, datetime
from typing import Any

from bot.audit.canonical import canonical_json, format_ts, row_hash
from bot.audit.entry import AuditEntry
from bot.audit.revision import HEAD_REVISION, VERSION_TABLE
from bot.audit.scrub import scrub_parameters, scrub_text
from bot.audit.shm_guard import ShmGuard
from bot.errors import AuditUnavailable

SQLITE_BUSY_SECONDS = 15.0  # bot.audit.engine uses the same, for every other writer
HEAD_ID = 1  # bot.audit.models.HEAD_ID: the chain head's one row
# The bounded columns of audit_events and their lengths (bot.audit.models; a test holds
# them equal): a longer value is cut to fit, as SqlAuditStore does.
SHORT_TEXT = {"actor": 200, "actor_name": 200, "source": 16, "target": 200, "action": 100,
              "outcome": 32, "request_id": 100, "channel": 100, "message_ts": 64}  # fmt: skip
# SQLAlchemy's SQLite DATETIME storage format (always with microseconds), naive UTC.
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"
_INSERT = (
    "INSERT INTO audit_events (seq, at, actor, actor_name, source, target, action,"
    " parameters, outcome, summary, request_id, channel, message_ts, prev_hash, hash)"
    " VALUES (:seq, :at, :actor, :actor_name, :source, :target, :action, :parameters,"
    " :outcome, :summary, :request_id, :channel, :message_ts, :prev_hash, :hash)"
)
_MAX_REASON = 200


def plain_sqlite_path(database_url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for any other form (or backend).

    A query (``?mode=ro``, ``?uri=true``), a percent escape or an in-memory database
    is left to SQLAlchemy, which reads them its own way.
    """
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if database_url.startswith(prefix):
            path = database_url.removeprefix(prefix)
            if path and path != ":memory:" and not any(c in path for c in "?%#"):
                return path
    return None


def try_append(
    database_url: str, entry: AuditEntry, *, clock: Callable[[], datetime] | None = None
) -> bool:
    """Append ``entry`` durably and answer True, or answer False having written nothing.

    Raises AuditUnavailable (one line, as ``SqlAuditStore``) when the database refuses.
    """
    path = plain_sqlite_path(database_url)
    if path is None or not os.path.isfile(path):  # connecting would create it
        return False
    values = row_values(entry, (clock or _utc_now)())
    guard = ShmGuard(path)
    try:
        guard.check()  # before the connection maps the -shm
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS, isolation_level=None)
        with closing(conn):
            conn.execute("PRAGMA journal_mode=WAL")
            if _revision(conn) != HEAD_REVISION:
                return False
            guard.check()  # before each transaction, as the engine's begin event does
            conn.execute("BEGIN IMMEDIATE")
            try:
                _append(conn, values)
            except BaseException:
                with suppress(sqlite3.Error):  # the error that got here is the one to tell
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    except (sqlite3.Error, OSError) as err:
        raise _unavailable(database_url, err) from None
    return True


def row_values(entry: AuditEntry, when: datetime) -> dict[str, Any]:
    """The stored fields of ``entry`` as ``SqlAuditStore`` makes them: scrubbed, cut to fit."""
    if when.tzinfo is None:
        raise AuditUnavailable("audit clock returned a naive datetime")
    values: dict[str, Any] = {
        "at": when.astimezone(UTC),
        "parameters": scrub_parameters(entry.parameters),
        "summary": scrub_text(entry.summary),
    }
    for name, length in SHORT_TEXT.items():
        value = getattr(entry, name)
        text = None if value is None else scrub_text(str(value))
        values[name] = text if text is None or len(text) <= length else text[: length - 1] + "…"
    return values


def _append(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    head = conn.execute("SELECT seq, hash FROM audit_chain_head WHERE id = ?", (HEAD_ID,))
    row = head.fetchone()
    if row is None:
        raise AuditUnavailable("audit database has no chain head: run `redis-mem db upgrade`")
    prev_seq, prev_hash = int(row[0]), str(row[1])
    seq, params_json = prev_seq + 1, canonical_json(values["parameters"])
    hashed = {name: values[name] for name in SHORT_TEXT}
    hashed.update(seq=seq, at=format_ts(values["at"]), parameters=params_json)
    hashed["summary"] = values["summary"]
    digest = row_hash(prev_hash=prev_hash, fields=hashed)
    stored = {**hashed, "at": values["at"].replace(tzinfo=None).strftime(_SQLITE_TS)}
    conn.execute(_INSERT, {**stored, "prev_hash": prev_hash, "hash": digest})
    conn.execute(
        "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = ?", (seq, digest, HEAD_ID)
    )


def _revision(conn: sqlite3.Connection) -> str | None:
    """The one ``alembic_version`` row, as ``bot.audit.migrate.current_revision`` reads it."""
    table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if table is None:
        return None
    rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def _unavailable(database_url: str, err: BaseException) -> AuditUnavailable:
    """The message ``bot.audit.failures.unavailable`` gives for the same failure."""
    text = str(err).strip()
    reason = scrub_text(text.splitlines()[0] if text else type(err).__name__)[:_MAX_REASON]
    return AuditUnavailable(
        f"audit database {database_url} unavailable while recording an audit event: {reason}"
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)
