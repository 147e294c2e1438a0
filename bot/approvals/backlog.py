"""Write the audit rows applied changes still owe the trail, once the database takes them.

The rows wait on their request (``bot.approvals.unrecorded``): its error says "not recorded
in the audit trail" and its result holds the rows. A sweep (``flush``) appends each
request's rows, marked as recorded late, and clears the mark in the SAME transaction, with
the request's UPDATE conditional on the error it read: two sweeps (two replicas, or a
sweep racing a retry) cannot write the rows twice, and a crash between the two cannot
leave them written but still owed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select, update

from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.store import ApprovalStore
from bot.approvals.table import REQUESTS, ApprovalRow
from bot.approvals.unrecorded import NOT_RECORDED, backlog_of, late_entries, recorded
from bot.audit.failures import DB_ERRORS, unavailable
from bot.audit.store import SqlAuditStore

FINAL_STATES = tuple(state.value for state in RequestState if state.final)
BATCH = 50


class AuditBacklog:
    """The requests that owe audit rows, and the sweep that writes them."""

    def __init__(
        self, *, store: ApprovalStore, audit: SqlAuditStore, clock: Callable[[], datetime]
    ) -> None:
        """``store`` and ``audit`` on the same database (the flush is one transaction)."""
        self._store = store
        self._audit = audit
        self._clock = clock

    def owing(self, limit: int = BATCH) -> list[ApprovalRequest]:
        """Final requests whose rows are not in the trail yet, oldest decision first."""
        query = (
            select(ApprovalRow.id)
            .where(
                ApprovalRow.state.in_(FINAL_STATES),
                ApprovalRow.error.contains(NOT_RECORDED, autoescape=True),
            )
            .order_by(ApprovalRow.decided_at, ApprovalRow.id)
            .limit(limit)
        )
        engine = self._store.engine
        try:
            with engine.connect() as conn:
                ids = list(conn.execute(query).scalars())
        except DB_ERRORS as err:
            raise unavailable(engine, err, doing="listing unrecorded audit rows") from None
        found = (self._store.get(request_id) for request_id in ids)
        return [request for request in found if request is not None]

    def flush(self, limit: int = BATCH) -> list[ApprovalRequest]:
        """Write the rows of every owing request; the requests now recorded (as stored).

        Raises AuditUnavailable (one line) while the database still refuses them.
        """
        done = []
        for request in self.owing(limit):
            flushed = self._flush_one(request)
            if flushed is not None:
                done.append(flushed)
        return done

    def _flush_one(self, request: ApprovalRequest) -> ApprovalRequest | None:
        backlog = backlog_of(request)
        if backlog is None:
            return None
        result, error = recorded(request, backlog, at=self._clock())
        clear = (
            update(REQUESTS)
            .where(ApprovalRow.id == request.id, ApprovalRow.error == request.error)
            .values(result=result, error=error)
        )

        def cleared(conn: Connection) -> bool:
            return int(conn.execute(clear).rowcount) == 1

        if not self._audit.append_all(late_entries(backlog), together=cleared):
            return None  # someone else flushed it meanwhile
        return self._store.get(request.id)
