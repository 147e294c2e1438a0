"""What the approval use cases need from the database, as a Protocol; the store is passed in.

The service, the gate, the executions and the sweeps are typed against
``ApprovalStorePort`` so they never import SQLAlchemy; the composition root
(``bot.wiring``) passes the concrete ``bot.approvals.store.ApprovalStore``. Every method
is one statement: a state change is one conditional UPDATE that reports whether this call
won it (see ``ApprovalStore`` for the SQL), and database errors are ``AuditUnavailable``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from bot.approvals.model import ApprovalRequest, LaggingMessage, RequestState


class ApprovalStorePort(Protocol):
    """Approval requests, their state changes and what their Slack message shows."""

    def add(self, request: ApprovalRequest) -> None:
        """Store a new request."""
        ...

    def get(self, request_id: str) -> ApprovalRequest | None:
        """The request, or None when there is none with that id."""
        ...

    def transition(
        self,
        request_id: str,
        *,
        expected: RequestState,
        to: RequestState,
        unexpired_at: datetime | None = None,
        **changes: Any,
    ) -> bool:
        """Move ``expected`` -> ``to`` (setting ``changes``) at once; True if this call won."""
        ...

    def set_fields(self, request_id: str, **changes: Any) -> bool:
        """Set non-state columns (progress, message coordinates); True if the row exists."""
        ...

    def attach(
        self, request_id: str, *, channel: str, ts: str, shown: RequestState, at: datetime
    ) -> bool:
        """Where the request's message is, and that it shows ``shown``; True if the row exists."""
        ...

    def mark_shown(self, request_id: str, shown: RequestState, *, at: datetime) -> bool:
        """The message now shows ``shown`` (never a final state overwritten by an open one)."""
        ...

    def mark_lagging(
        self, request_id: str, *, attempts: int, due_at: datetime | None, error: str | None
    ) -> bool:
        """A failed message update: try again at ``due_at``; ``error`` set means never."""
        ...

    def lagging(self, now: datetime, *, limit: int) -> list[LaggingMessage]:
        """Final requests whose message shows another state, due at ``now``."""
        ...

    def pending(self, now: datetime) -> list[ApprovalRequest]:
        """PENDING requests not expired at ``now``, oldest first."""
        ...

    def due(self, now: datetime) -> list[ApprovalRequest]:
        """PENDING requests expired at ``now``, oldest first."""
        ...

    def stuck(self, decided_before: datetime) -> list[ApprovalRequest]:
        """EXECUTING requests claimed before ``decided_before`` with no executor recorded."""
        ...

    def executing(self) -> list[ApprovalRequest]:
        """Every EXECUTING request, oldest claim first."""
        ...

    def beat(self, request_id: str, *, boot: str, at: datetime) -> bool:
        """Refresh the heartbeat of our own execution; False when the row is no longer ours."""
        ...

    def interrupt(
        self, request_id: str, *, boot: str, stale_before: datetime | None, **changes: Any
    ) -> bool:
        """EXECUTING -> INTERRUPTED while still run by ``boot``; True if this call won."""
        ...

    def request_cancel(self, request_id: str, *, by: str, at: datetime) -> bool:
        """Raise the cancel flag of an EXECUTING request once; True if this call raised it."""
        ...
