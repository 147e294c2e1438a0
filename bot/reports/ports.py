"""What the report service needs from the outside: stored history, the live view, delivery."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from bot.reports.model import AlertSpan, AuditHead, FixRecord, LiveView, Report, Series


class ReportSource(Protocol):
    """The stored history a report reads (the audit database). Raises AuditUnavailable."""

    def series(
        self, *, targets: Collection[str], since: datetime, until: datetime
    ) -> dict[str, Series]:
        """Each target's points in [since, until], oldest first (a target without any is
        absent). Raw samples while the window is within the raw retention, else 5-minute
        aggregates (and the raw samples newer than the newest aggregate)."""
        ...

    def alerts(self, *, since: datetime, until: datetime) -> list[AlertSpan]:
        """Alerts that fired before ``until`` and were still firing at ``since`` or later."""
        ...

    def fixes(self, *, since: datetime, until: datetime) -> list[FixRecord]:
        """Fixes whose end (executed, failed, cancelled, interrupted) is in the window."""
        ...

    def audit_head(self) -> AuditHead | None:
        """The audit chain's newest row; None for an empty trail."""
        ...


class LiveSource(Protocol):
    """The diagnosis engine's view of a target now (never raises: errors are in the view)."""

    def __call__(self, target: str) -> LiveView: ...


class SlotLedger(Protocol):
    """Remembers which scheduled reports were posted (one per channel and slot)."""

    def claim(self, *, channel: str, slot: datetime, at: datetime) -> bool:
        """Take the slot for the channel; False when it was taken already (by this or another
        process). Raises AuditUnavailable when the database cannot say."""
        ...

    def posted(self, *, channel: str, slot: datetime, ts: str | None, error: str | None) -> None:
        """Remember how the claimed slot's report went (its message ts, or the error)."""
        ...


class ReportPublisher(Protocol):
    """Delivers a report to a channel: the message, then its chart beside it."""

    def publish(self, report: Report, *, channel: str) -> str | None:
        """Post the report; the message's ts (None when it was not posted). Raises
        RedisMemError with one line when Slack refused it."""
        ...


class SlotClock(Protocol):
    """The report schedule (``REDIS_MEM_REPORT_SCHEDULE`` in ``REDIS_MEM_TIMEZONE``)."""

    def due_slot(self, now: datetime) -> datetime | None:
        """The newest scheduled time in (now - grace, now], or None."""
        ...
