"""What each request's Slack message shows, and when a lagging one is tried again.

Over the store port (the message columns of migration 0004); the redelivery sweep reads
``lagging`` and the listeners record ``shown`` after each successful update.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.approvals.model import ApprovalRequest, LaggingMessage, resync_delay
from bot.approvals.ports import ApprovalStorePort


class MessageLedger:
    """What each request's Slack message shows, and when a lagging one is tried again."""

    def __init__(self, store: ApprovalStorePort, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def shown(self, request: ApprovalRequest) -> None:
        """The message now shows ``request.state``: its redelivery (if any) stops."""
        self._store.mark_shown(request.id, request.state, at=self._clock())

    def failed(
        self, lag: LaggingMessage, *, retry_after: float | None = None, gave_up: str | None = None
    ) -> None:
        """Another failed update: back off (never sooner than Slack's ``Retry-After``), or
        stop for good with ``gave_up`` saying why (the message was deleted, say)."""
        attempts = lag.attempts + 1
        due = None if gave_up else self._clock() + resync_delay(attempts, retry_after)
        self._store.mark_lagging(lag.request.id, attempts=attempts, due_at=due, error=gave_up)

    def lagging(self, limit: int = 50) -> list[LaggingMessage]:
        """Final requests whose message shows an older state, due for another update now."""
        return self._store.lagging(self._clock(), limit=limit)
