"""The SQLAlchemy audit store: hash-chained appends and queries."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, select, update

from bot.audit.canonical import canonical_json, format_ts, row_hash
from bot.audit.engine import WRITE_LOCK
from bot.audit.entry import AuditEntry
from bot.audit.failures import DB_ERRORS, unavailable
from bot.audit.models import EVENTS, HEAD_ID, AuditEvent, ChainHead
from bot.audit.scrub import scrub_parameters, scrub_text
from bot.errors import AuditUnavailable

DEFAULT_LIMIT = 50
EXPORT_BATCH = 1000


@dataclass(frozen=True)
class StoredEntry:
    """An audit row as read back: the entry plus its place and hashes in the chain."""

    id: int
    seq: int
    at: datetime
    actor: str
    actor_name: str | None
    source: str
    target: str | None
    action: str
    parameters: Mapping[str, Any]
    outcome: str
    summary: str
    request_id: str | None
    channel: str | None
    message_ts: str | None
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``at`` as ISO 8601 UTC)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["at"] = format_ts(self.at)
        data["parameters"] = dict(self.parameters)
        return data


def hashed_fields(
    *, seq: int, at: str, parameters_json: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields the hash covers: all but id and the hashes (see ``canonical_row``)."""
    return {
        "seq": seq,
        "at": at,
        "parameters": parameters_json,
        "actor": values["actor"],
        "actor_name": values["actor_name"],
        "source": values["source"],
        "target": values["target"],
        "action": values["action"],
        "outcome": values["outcome"],
        "summary": values["summary"],
        "request_id": values["request_id"],
        "channel": values["channel"],
        "message_ts": values["message_ts"],
    }


class SqlAuditStore:
    """``AuditSink`` over SQLAlchemy; fails closed with ``AuditUnavailable``."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        """``clock`` returns an aware datetime (defaults to now, UTC)."""
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))

    def record(self, entry: AuditEntry) -> None:
        """``AuditSink``: append ``entry`` durably, or raise AuditUnavailable."""
        self.append(entry)

    def append(self, entry: AuditEntry) -> StoredEntry:
        """Append ``entry`` to the chain durably and return the stored row (or raise)."""
        values = _row_values(entry, self._clock())
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{WRITE_LOCK: True})
                with conn.begin():
                    row = _append(conn, values)
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing="recording an audit event") from None
        return row

    def append_all(
        self, entries: Sequence[AuditEntry], *, together: Callable[[Connection], bool]
    ) -> bool:
        """Append ``entries`` and run ``together`` in ONE transaction: all of it, or nothing.

        ``together`` (e.g. a conditional UPDATE) returning False rolls the appends back and
        returns False. Raises AuditUnavailable when the database refuses.
        """
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{WRITE_LOCK: True})
                with conn.begin() as transaction:
                    for entry in entries:
                        _append(conn, _row_values(entry, self._clock()))
                    if not together(conn):
                        transaction.rollback()
                        return False
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing="recording audit events") from None
        return True

    def list_entries(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[StoredEntry]:
        """The newest entries first, filtered; ``action`` ending in ``.`` or ``*`` is a prefix."""
        query = _filtered(select(EVENTS), since=since, actor=actor, action=action, target=target)
        query = query.order_by(AuditEvent.seq.desc()).limit(max(limit, 0))
        try:
            with self.engine.connect() as conn:
                return [_stored(row) for row in conn.execute(query)]
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing="reading the audit trail") from None

    def iter_entries(self, *, since: datetime | None = None) -> Iterator[StoredEntry]:
        """Every entry oldest first, streamed in batches (server-side cursor): constant memory."""
        query = _filtered(select(EVENTS), since=since, actor=None, action=None, target=None)
        query = query.order_by(AuditEvent.seq)
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(yield_per=EXPORT_BATCH).execute(query)
                for row in result:
                    yield _stored(row)
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing="exporting the audit trail") from None


def _row_values(entry: AuditEntry, when: datetime) -> dict[str, Any]:
    if when.tzinfo is None:
        raise AuditUnavailable("audit clock returned a naive datetime")
    values: dict[str, Any] = {
        # Microseconds are the finest unit every backend keeps, so the hash stays stable.
        "at": when.astimezone(UTC),
        "parameters": scrub_parameters(entry.parameters),
        "summary": scrub_text(entry.summary),
    }
    for name in _SHORT_TEXT:
        value = getattr(entry, name)
        values[name] = None if value is None else _fit(scrub_text(str(value)), name)
    return values


# Bounded columns: cut to fit rather than fail (and block a change) on PostgreSQL.
_SHORT_TEXT = ("actor", "actor_name", "source", "target", "action", "outcome",
               "request_id", "channel", "message_ts")  # fmt: skip


def _fit(value: str, column: str) -> str:
    length = EVENTS.c[column].type.length  # type: ignore[attr-defined]
    return value if length is None or len(value) <= length else value[: length - 1] + "…"


def _append(conn: Connection, values: dict[str, Any]) -> StoredEntry:
    # FOR UPDATE serializes writers on PostgreSQL; on SQLite BEGIN IMMEDIATE already has.
    head = conn.execute(
        select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        raise AuditUnavailable("audit database has no chain head: run `redis-mem db upgrade`")
    seq = head.seq + 1
    params_json = canonical_json(values["parameters"])
    fields = hashed_fields(
        seq=seq, at=format_ts(values["at"]), parameters_json=params_json, values=values
    )
    digest = row_hash(prev_hash=head.hash, fields=fields)
    row = {**values, "seq": seq, "prev_hash": head.hash, "hash": digest}
    new_id = conn.execute(EVENTS.insert().returning(AuditEvent.id), row).scalar_one()
    conn.execute(update(ChainHead).where(ChainHead.id == HEAD_ID).values(seq=seq, hash=digest))
    return StoredEntry(id=new_id, **row)


def _filtered(
    query: Select[Any],
    *,
    since: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
) -> Select[Any]:
    if since is not None:
        aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        query = query.where(AuditEvent.at >= aware)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if target:
        query = query.where(AuditEvent.target == target)
    if action and action.endswith(("*", ".")):
        query = query.where(AuditEvent.action.startswith(action.rstrip("*"), autoescape=True))
    elif action:
        query = query.where(AuditEvent.action == action)
    return query


def _stored(row: Row[Any]) -> StoredEntry:
    return StoredEntry(**row._mapping)
