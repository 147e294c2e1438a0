"""Progress of a running request: stored on the row and passed to the face, throttled.

A failing callback (Slack down, rate-limited) or a failing progress write is
logged and ignored: the action keeps running and its exact counts still reach
the audit row. ``run_bulk`` stops an action whose progress callback raises,
which is why nothing escapes from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.model import ApprovalRequest
from bot.approvals.ports import ApprovalStorePort

Progress = Callable[[ApprovalRequest], None]

log = logging.getLogger(__name__)


class ProgressReporter:
    """Turns (scanned, changed) batch reports into stored progress lines and callbacks."""

    def __init__(
        self,
        *,
        store: ApprovalStorePort,
        request: ApprovalRequest,
        notify: Progress | None,
        clock: Callable[[], datetime],
        interval: timedelta,
    ) -> None:
        self.request = request
        self.scanned = 0
        self.changed = 0
        self._store = store
        self._notify = notify
        self._clock = clock
        self._interval = interval
        self._last: datetime | None = None

    def announce(self, request: ApprovalRequest) -> None:
        """Hand the face a changed request (state change); errors are logged, not raised."""
        self.request = request
        if self._notify is None:
            return
        try:
            self._notify(request)
        except Exception as err:  # a Slack error must never lose track of the action
            log.warning("progress callback failed for request %s: %s", request.id, err)

    def bulk(self, scanned: int, changed: int) -> None:
        """``BulkProgress``: remember the counts; report at most once per interval."""
        self.scanned, self.changed = scanned, changed
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        counts = self.counts()
        try:
            # A progress report is a heartbeat too (bot/approvals/liveness.py); its counts
            # are what an interrupted request reports as done "at least".
            self._store.set_fields(self.request.id, heartbeat_at=now, **counts)
        except Exception as err:  # the audit row at the end still has the exact counts
            log.warning("could not store progress of request %s: %s", self.request.id, err)
        self.announce(replace(self.request, **counts))

    def counts(self) -> dict[str, Any]:
        """The progress columns of the row: the line and its two counts."""
        return {
            "progress": self.line(),
            "progress_changed": self.changed,
            "progress_scanned": self.scanned,
        }

    def now(self) -> datetime:
        """The service's clock (when a step happened)."""
        return self._clock()

    def line(self) -> str:
        """``1,200 keys changed (3,400 scanned)``."""
        return f"{self.changed:,} keys changed ({self.scanned:,} scanned)"
