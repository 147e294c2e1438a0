"""Approval requests in the audit database; every state change is one conditional UPDATE.

``transition`` updates a row only ``WHERE state = <expected>`` (and, for a claim,
``AND expires_at > now``) and reports whether it won: two approvers clicking at
once both send the UPDATE, the database serializes them on the row, and exactly
one sees a row count of 1. No read-then-write window exists to race in.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.table import REQUESTS, ApprovalRow
from bot.audit.engine import WRITE_LOCK
from bot.audit.failures import DB_ERRORS, unavailable

_COLUMNS = tuple(f.name for f in fields(ApprovalRequest))
# Columns a transition may set besides the state.
_MUTABLE = frozenset(
    {"decided_by", "decided_at", "progress", "result", "error", "channel", "message_ts"}
)


class ApprovalStore:
    """Approval requests over SQLAlchemy; database errors become ``AuditUnavailable``."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated to head: table ``approval_requests``)."""
        self.engine = engine

    def add(self, request: ApprovalRequest) -> None:
        """Store a new request."""
        values = {name: getattr(request, name) for name in _COLUMNS}
        values["state"] = request.state.value
        self._write(insert(REQUESTS).values(**values), doing="storing an approval request")

    def get(self, request_id: str) -> ApprovalRequest | None:
        """The request, or None when there is none with that id."""
        query = select(REQUESTS).where(ApprovalRow.id == request_id)
        rows = self._read(query, doing="reading an approval request")
        return rows[0] if rows else None

    def transition(
        self,
        request_id: str,
        *,
        expected: RequestState,
        to: RequestState,
        unexpired_at: datetime | None = None,
        **changes: Any,
    ) -> bool:
        """Move ``expected`` -> ``to`` (setting ``changes``) in one UPDATE; True if this call won.

        With ``unexpired_at`` the row must also still be unexpired at that time.
        """
        _check(changes)
        stmt = (
            update(REQUESTS)
            .where(ApprovalRow.id == request_id, ApprovalRow.state == expected.value)
            .values(state=to.value, **changes)
        )
        if unexpired_at is not None:
            stmt = stmt.where(ApprovalRow.expires_at > unexpired_at)
        return self._write(stmt, doing="updating an approval request") == 1

    def set_fields(self, request_id: str, **changes: Any) -> bool:
        """Set non-state columns (progress, message coordinates); True if the row exists."""
        _check(changes)
        stmt = update(REQUESTS).where(ApprovalRow.id == request_id).values(**changes)
        return self._write(stmt, doing="updating an approval request") == 1

    def pending(self, now: datetime) -> list[ApprovalRequest]:
        """PENDING requests not expired at ``now``, oldest first."""
        query = (
            select(REQUESTS)
            .where(ApprovalRow.state == RequestState.PENDING.value, ApprovalRow.expires_at > now)
            .order_by(ApprovalRow.created_at, ApprovalRow.id)
        )
        return self._read(query, doing="listing pending approval requests")

    def due(self, now: datetime) -> list[ApprovalRequest]:
        """PENDING requests expired at ``now``, oldest first."""
        query = (
            select(REQUESTS)
            .where(ApprovalRow.state == RequestState.PENDING.value, ApprovalRow.expires_at <= now)
            .order_by(ApprovalRow.expires_at, ApprovalRow.id)
        )
        return self._read(query, doing="listing expired approval requests")

    def stuck(self, decided_before: datetime) -> list[ApprovalRequest]:
        """EXECUTING requests claimed before ``decided_before``, oldest first."""
        query = (
            select(REQUESTS)
            .where(
                ApprovalRow.state == RequestState.EXECUTING.value,
                ApprovalRow.decided_at < decided_before,
            )
            .order_by(ApprovalRow.decided_at, ApprovalRow.id)
        )
        return self._read(query, doing="listing executing approval requests")

    def _read(self, query: Any, *, doing: str) -> list[ApprovalRequest]:
        try:
            with self.engine.connect() as conn:
                return [_request(row) for row in conn.execute(query)]
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing=doing) from None

    def _write(self, stmt: Any, *, doing: str) -> int:
        try:
            with self.engine.connect() as conn:
                # SQLite: take the write lock at BEGIN (waiting on the busy timeout) so
                # concurrent clicks queue instead of failing with "database is locked".
                conn = conn.execution_options(**{WRITE_LOCK: True})
                with conn.begin():
                    return int(conn.execute(stmt).rowcount)
        except DB_ERRORS as err:
            raise unavailable(self.engine, err, doing=doing) from None


def _check(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _MUTABLE
    if unknown:
        raise ValueError(f"not a mutable approval column: {sorted(unknown)}")


def _request(row: Row[Any]) -> ApprovalRequest:
    data = dict(row._mapping)
    data["state"] = RequestState(data["state"])
    return ApprovalRequest(**{name: data[name] for name in _COLUMNS})
