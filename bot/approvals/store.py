"""Approval requests in the audit database; every state change is one conditional UPDATE.

``transition`` updates a row only ``WHERE state = <expected>`` (and, for a claim,
``AND expires_at > now``) and reports whether it won: two approvers clicking at
once both send the UPDATE, the database serializes them on the row, and exactly
one sees a row count of 1. No read-then-write window exists to race in.

The message columns (migration 0004) say what the request's Slack message last showed;
``lagging`` lists the requests whose message is behind, for the redelivery sweep.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, insert, or_, select, update

from bot.approvals.model import ApprovalRequest, LaggingMessage, RequestState
from bot.approvals.table import REQUESTS, ApprovalRow
from bot.audit.failures import read_rows, write_transaction

_COLUMNS = tuple(f.name for f in fields(ApprovalRequest))
# Columns a transition may set besides the state.
_MUTABLE = frozenset(
    {
        *("decided_by", "decided_at", "progress", "result", "error", "channel", "message_ts"),
        *("executor_host", "executor_pid", "executor_boot", "heartbeat_at"),
        *("progress_changed", "progress_scanned"),
    }
)
FINAL_STATES = tuple(state.value for state in RequestState if state.final)
OPEN_STATES = tuple(state.value for state in RequestState if not state.final)


class ApprovalStore:
    """Approval requests over SQLAlchemy; database errors become ``AuditUnavailable``."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated to head: table ``approval_requests``)."""
        self.engine = engine

    def add(self, request: ApprovalRequest) -> None:
        """Store a new request."""
        values = {name: getattr(request, name) for name in _COLUMNS}
        values["state"] = request.state.value
        values["shown_state"] = None if request.shown_state is None else request.shown_state.value
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

    def attach(
        self, request_id: str, *, channel: str, ts: str, shown: RequestState, at: datetime
    ) -> bool:
        """Where the request's message is, and that it shows ``shown``; True if the row exists."""
        stmt = (
            update(REQUESTS)
            .where(ApprovalRow.id == request_id)
            .values(channel=channel, message_ts=ts, **_synced(shown, at))
        )
        return self._write(stmt, doing="attaching an approval message") == 1

    def mark_shown(self, request_id: str, shown: RequestState, *, at: datetime) -> bool:
        """The message now shows ``shown`` (its backoff is reset); True if recorded.

        An open state never overwrites a final one already shown: a late progress
        update cannot make a finished request look unfinished in the database.
        """
        stmt = update(REQUESTS).where(ApprovalRow.id == request_id).values(**_synced(shown, at))
        if not shown.final:
            stmt = stmt.where(
                or_(ApprovalRow.shown_state.is_(None), ApprovalRow.shown_state.in_(OPEN_STATES))
            )
        return self._write(stmt, doing="recording an approval message update") == 1

    def mark_lagging(
        self, request_id: str, *, attempts: int, due_at: datetime | None, error: str | None
    ) -> bool:
        """A failed update: try again at ``due_at``; ``error`` set means never (given up)."""
        stmt = (
            update(REQUESTS)
            .where(ApprovalRow.id == request_id)
            .values(sync_attempts=attempts, sync_due_at=due_at, sync_error=error)
        )
        return self._write(stmt, doing="recording an approval message failure") == 1

    def lagging(self, now: datetime, *, limit: int) -> list[LaggingMessage]:
        """Final requests whose message shows another state, due at ``now``; fewest tries first."""
        query = (
            select(REQUESTS)
            .where(
                ApprovalRow.state.in_(FINAL_STATES),
                or_(
                    ApprovalRow.shown_state.is_(None), ApprovalRow.shown_state != ApprovalRow.state
                ),
                ApprovalRow.channel.is_not(None),
                ApprovalRow.message_ts.is_not(None),
                ApprovalRow.sync_error.is_(None),
                or_(ApprovalRow.sync_due_at.is_(None), ApprovalRow.sync_due_at <= now),
            )
            .order_by(ApprovalRow.sync_attempts, ApprovalRow.created_at, ApprovalRow.id)
            .limit(limit)
        )
        rows = read_rows(self.engine, query, doing="listing approval messages to redeliver")
        return [LaggingMessage(_request(row), int(row.sync_attempts or 0)) for row in rows]

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
        """EXECUTING requests claimed before ``decided_before`` with no executor recorded
        (claimed before migration 0005: no heartbeat tells whether they run), oldest first."""
        query = (
            select(REQUESTS)
            .where(
                ApprovalRow.state == RequestState.EXECUTING.value,
                ApprovalRow.decided_at < decided_before,
                ApprovalRow.executor_boot.is_(None),
            )
            .order_by(ApprovalRow.decided_at, ApprovalRow.id)
        )
        return self._read(query, doing="listing executing approval requests")

    def executing(self) -> list[ApprovalRequest]:
        """Every EXECUTING request, oldest claim first (start-up and sweep look at them)."""
        query = (
            select(REQUESTS)
            .where(ApprovalRow.state == RequestState.EXECUTING.value)
            .order_by(ApprovalRow.decided_at, ApprovalRow.id)
        )
        return self._read(query, doing="listing executing approval requests")

    def beat(self, request_id: str, *, boot: str, at: datetime) -> bool:
        """Refresh the heartbeat of our own execution; False when the row is no longer ours."""
        stmt = _run_by(request_id, boot).values(heartbeat_at=at)
        return self._write(stmt, doing="refreshing an execution heartbeat") == 1

    def interrupt(
        self, request_id: str, *, boot: str, stale_before: datetime | None, **changes: Any
    ) -> bool:
        """EXECUTING -> INTERRUPTED, only while still run by ``boot`` (and, with
        ``stale_before``, its heartbeat still older than that): a live executor that
        refreshed meanwhile keeps its request. True if this call won."""
        _check(changes)
        stmt = _run_by(request_id, boot).values(state=RequestState.INTERRUPTED.value, **changes)
        if stale_before is not None:
            stmt = stmt.where(ApprovalRow.heartbeat_at < stale_before)
        return self._write(stmt, doing="marking an approval request interrupted") == 1

    def request_cancel(self, request_id: str, *, by: str, at: datetime) -> bool:
        """Raise the cancel flag of an EXECUTING request once; True if this call raised it."""
        stmt = (
            update(REQUESTS)
            .where(
                ApprovalRow.id == request_id,
                ApprovalRow.state == RequestState.EXECUTING.value,
                ApprovalRow.cancel_requested_by.is_(None),
            )
            .values(cancel_requested_by=by, cancel_requested_at=at)
        )
        return self._write(stmt, doing="cancelling an approval request") == 1

    def _read(self, query: Any, *, doing: str) -> list[ApprovalRequest]:
        return [_request(row) for row in read_rows(self.engine, query, doing=doing)]

    def _write(self, stmt: Any, *, doing: str) -> int:
        # Concurrent clicks queue on SQLite's write lock (``write_transaction``).
        with write_transaction(self.engine, doing=doing) as conn:
            return int(conn.execute(stmt).rowcount)


def _check(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _MUTABLE
    if unknown:
        raise ValueError(f"not a mutable approval column: {sorted(unknown)}")


def _synced(shown: RequestState, at: datetime) -> dict[str, Any]:
    return {
        "shown_state": shown.value,
        "message_synced_at": at,
        "sync_attempts": 0,
        "sync_due_at": None,
        "sync_error": None,
    }


def _request(row: Row[Any]) -> ApprovalRequest:
    data = dict(row._mapping)
    data["state"] = RequestState(data["state"])
    shown = data.get("shown_state")
    data["shown_state"] = None if shown is None else RequestState(shown)
    return ApprovalRequest(**{name: data[name] for name in _COLUMNS})


def _run_by(request_id: str, boot: str) -> Any:
    """An UPDATE of ``request_id`` only while it is EXECUTING and run by ``boot``."""
    return update(REQUESTS).where(
        ApprovalRow.id == request_id,
        ApprovalRow.state == RequestState.EXECUTING.value,
        ApprovalRow.executor_boot == boot,
    )
