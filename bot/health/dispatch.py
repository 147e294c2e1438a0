"""Deliver the outbox: audit each transition, then hand it to the notifier, in order per alert.

- An event that must be audited is delivered only once its audit row is written.
- Events of one alert go out in order: when one fails, the alert's later events wait
  (an update must not overtake the post it updates).
- A transient failure (Slack 429/5xx, network) is retried with backoff, capped at
  ``max_backoff`` so it is tried again by the next check round at the latest; a
  permanent one (Slack refused the message) is logged and given up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.audit.entry import AuditEntry, AuditSink
from bot.errors import AuditUnavailable
from bot.health.model import AlertEvent
from bot.health.ports import (
    AlertObserver,
    Delivered,
    HealthStore,
    Notifier,
    NotifyError,
    StoredEvent,
)

log = logging.getLogger(__name__)

BACKOFF_EXPONENT_MAX = 20  # 2**20 s is 12 days: far beyond any max_backoff


@dataclass(frozen=True)
class DispatchReport:
    """What one pass did."""

    delivered: int = 0
    failed: int = 0
    waiting: int = 0  # held back behind an earlier failed event of the same alert


class Dispatcher:
    """Drains the outbox through a Notifier; one pass at a time (a lock)."""

    def __init__(
        self,
        *,
        store: HealthStore,
        notifier: Notifier,
        audit: AuditSink,
        clock: Callable[[], datetime],
        max_backoff: timedelta = timedelta(seconds=60),
        observer: AlertObserver | None = None,
    ) -> None:
        """``max_backoff``: the longest wait before a failed delivery is tried again;
        ``observer``: told of each event once its delivery is recorded."""
        self._store = store
        self._notifier = notifier
        self._audit = audit
        self._clock = clock
        self._max_backoff = max_backoff
        self._observer = observer
        self._lock = threading.Lock()

    def run_once(self) -> DispatchReport:
        """Deliver every due event; never raises (an unreadable outbox is logged)."""
        with self._lock:
            try:
                due = self._store.due_events(self._clock())
            except AuditUnavailable as err:
                log.warning("alert outbox unavailable: %s", err.message)
                return DispatchReport()
            return self._drain(due)

    def _drain(self, due: list[StoredEvent]) -> DispatchReport:
        blocked: set[str] = set()
        delivered = failed = waiting = 0
        for stored in due:
            key = stored.event.alert_id
            if key is not None and key in blocked:
                waiting += 1
                continue
            if self._deliver(stored):
                delivered += 1
                continue
            failed += 1
            if key is not None:
                blocked.add(key)
        return DispatchReport(delivered=delivered, failed=failed, waiting=waiting)

    def _deliver(self, stored: StoredEvent) -> bool:
        """Audit (if needed) and deliver one event; False when it must wait."""
        event = stored.event
        try:
            if not stored.audited:
                self._audit.record(audit_entry(event))
                self._store.mark_audited(stored.id)
            alert = self._store.get_alert(event.alert_id) if event.alert_id else None
        except AuditUnavailable as err:
            log.warning("alert %s %s waits: %s", event.target, event.kind, err.message)
            return False
        try:
            delivered = self._notifier.deliver(event, alert)
        except NotifyError as err:
            if err.posted is not None:
                try:
                    self._keep_message(event, err.posted)
                except AuditUnavailable as db_err:  # the retry may post it once more
                    log.warning("alert message not recorded: %s", db_err.message)
            return self._failed(stored, err)
        try:
            self._keep_message(event, delivered)
            self._store.mark_delivered(stored.id, at=self._clock())
        except AuditUnavailable as err:
            log.warning("delivery of alert event %s not recorded: %s", stored.id, err.message)
            return False
        if self._observer is not None:
            self._observer.delivered(event)
        return True

    def _keep_message(self, event: AlertEvent, delivered: Delivered) -> None:
        """Store where the alert's message was posted (raises AuditUnavailable)."""
        if delivered.channel and delivered.ts and event.alert_id:
            self._store.set_message(event.alert_id, channel=delivered.channel, ts=delivered.ts)

    def _failed(self, stored: StoredEvent, err: NotifyError) -> bool:
        now = self._clock()
        what = f"{stored.event.target} {stored.event.rule} {stored.event.kind}"
        try:
            if not err.transient:
                log.error("giving up on notifying %s: %s", what, err)
                self._store.mark_delivered(stored.id, at=now, error=str(err))
                return True  # given up: later events of the alert may still go out
            # 2**attempts grows past what timedelta holds after ~47 failures (a channel
            # the bot was never invited to fails for days): cap the exponent first.
            exponent = min(stored.attempts, BACKOFF_EXPONENT_MAX)
            wait_for = min(timedelta(seconds=2**exponent), self._max_backoff)
            log.warning("notifying %s failed (retry in %s): %s", what, wait_for, err)
            self._store.mark_failed(stored.id, error=str(err), retry_at=now + wait_for)
        except AuditUnavailable as db_err:
            log.warning("outbox not updated: %s", db_err.message)
        return False


def audit_entry(event: AlertEvent) -> AuditEntry:
    """The audit row of an alert transition, with the value that caused it."""
    # Only the scheduler's own transitions come here: clicks are audited when taken.
    return AuditEntry(
        actor="scheduler",
        source="scheduler",
        action=f"alert.{event.kind.value}",
        outcome=event.severity.value,
        summary=f"{event.target} {event.rule} {event.kind.value}: {event.detail}",
        target=event.target,
        parameters={"alert_id": event.alert_id, "rule": event.rule, "value": event.value},
    )
