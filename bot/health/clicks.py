"""The clicks on an alert's buttons: acknowledge and snooze (HealthService's, a mixin).

Each is a conditional UPDATE, then audited; a refusal is audited too. Kept apart from
the check round (bot/health/service.py), which shares nothing with it but the store.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from bot.audit.entry import AuditEntry, AuditSink
from bot.errors import AuditUnavailable, Refused
from bot.health.alerts import alert_event
from bot.health.model import Alert, EventKind
from bot.health.ports import HealthStore, Snooze

log = logging.getLogger(__name__)
ALERT_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: all a button carries


class AlertClicks:
    """Acknowledge and snooze; the class using it sets the attributes below."""

    _store: HealthStore
    _audit: AuditSink
    _clock: Callable[[], datetime]
    _on_events: Callable[[], None]

    def acknowledge(
        self, alert_id: str, *, actor: str, actor_name: str | None = None, on: str | None = None
    ) -> Alert:
        """Stop the reminders of a firing alert; Refused (audited) when it cannot be."""
        alert = self._clicked(alert_id, actor=actor, action="acknowledge", on=on)
        if alert.acknowledged_by is not None:
            raise self._refuse(alert_id, actor, "acknowledge", "it is already acknowledged")
        now = self._clock()
        if not self._store.acknowledge(alert.id, by=actor, at=now):
            raise self._refuse(alert_id, actor, "acknowledge", "it is acknowledged or resolved")
        updated = replace(alert, acknowledged_by=actor, acknowledged_at=now)
        self._record_click(updated, EventKind.ACKNOWLEDGED, actor, actor_name, now, "acknowledged")
        return updated

    def snooze(
        self,
        alert_id: str,
        *,
        actor: str,
        hours: float,
        actor_name: str | None = None,
        on: str | None = None,
    ) -> Alert:
        """Silence a firing alert's reminders for ``hours``; it notifies again after."""
        if not 0 < hours <= 7 * 24:
            raise Refused("a snooze lasts between a moment and 7 days")
        alert = self._clicked(alert_id, actor=actor, action="snooze", on=on)
        now = self._clock()
        until = now + timedelta(hours=hours)
        if not self._store.snooze(alert.id, snooze=Snooze(by=actor, until=until)):
            raise self._refuse(alert_id, actor, "snooze", "it is resolved")
        updated = replace(alert, snoozed_by=actor, snoozed_until=until)
        detail = f"snoozed until {until:%Y-%m-%d %H:%M} UTC"
        self._record_click(updated, EventKind.SNOOZED, actor, actor_name, now, detail)
        return updated

    def _clicked(self, alert_id: str, *, actor: str, action: str, on: str | None) -> Alert:
        """The firing alert a button names; Refused for a forged, unknown or stale id."""
        if not ALERT_ID.fullmatch(alert_id):
            raise self._refuse(alert_id, actor, action, "that is not an alert id")
        alert = self._store.get_alert(alert_id)
        if alert is None:
            raise self._refuse(alert_id, actor, action, "no such alert")
        if on is not None and alert.message_ts is not None and on != alert.message_ts:
            raise self._refuse(
                alert_id, actor, action, "that button is not on this alert's message"
            )
        if not alert.firing:
            raise self._refuse(alert_id, actor, action, "it is resolved already")
        return alert

    def _refuse(self, alert_id: str, actor: str, action: str, reason: str) -> Refused:
        """Audit a refused click; the Refused to raise (its message is for the clicker)."""
        entry = AuditEntry(
            actor=actor,
            source="slack",
            action="access.denied",
            outcome="denied",
            summary=f"alert {action} refused: {reason}",
            parameters={"alert_id": alert_id[:64], "action": f"alert.{action}"},
        )
        try:
            self._audit.record(entry)
        except AuditUnavailable as err:
            log.warning("refusal not audited: %s", err.message)
        return Refused(f"cannot {action} this alert: {reason}")

    def _record_click(
        self,
        alert: Alert,
        kind: EventKind,
        actor: str,
        actor_name: str | None,
        now: datetime,
        detail: str,
    ) -> None:
        """Queue the message refresh, then audit the click (an audit failure is raised: the
        click has taken effect, and the clicker is told the trail is unavailable)."""
        event = alert_event(kind, alert, now, detail=detail, actor=actor)
        self._store.add_events([event], audited=True)
        self._on_events()
        self._audit.record(
            AuditEntry(
                actor=actor,
                actor_name=actor_name,
                source="slack",
                action=f"alert.{kind.value}",
                outcome="ok",
                summary=f"{alert.target} {alert.rule}: {detail}",
                target=alert.target,
                parameters={"alert_id": alert.id, "rule": alert.rule, "value": alert.value},
                channel=alert.channel,
                message_ts=alert.message_ts,
            )
        )
