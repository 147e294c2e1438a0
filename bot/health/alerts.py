"""From rule outcomes to alerts: one alert (one Slack message) per rule group and target.

Pure: the clock and the id maker are arguments. Rules (docs/decisions/health-checks.md):
- a group fires when any of its rules fires; the alert shows the most severe one.
  ``memory-warning`` and ``memory-critical`` share the group ``memory``: critical
  firing while warning fires ESCALATES the same alert, critical stopping while
  warning still fires DEESCALATES it;
- it RESOLVES when no rule of the group fires any more;
- while firing, neither acknowledged nor snoozed, a REMINDER every repeat interval;
  a snooze that ran out while it still fires notifies again (SNOOZE_ENDED);
- an escalation is news: it lifts the acknowledgement and the snooze.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.health.engine import Outcome
from bot.health.model import Alert, AlertEvent, AlertStatus, EventKind, RuleStatus
from bot.health.rules import RULES
from bot.units import format_duration

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(rule.group for rule in RULES))


@dataclass(frozen=True)
class AlertChange:
    """An alert to store (new or changed), and whether its ack/snooze must be cleared."""

    alert: Alert
    new: bool = False
    clear_ack: bool = False
    clear_snooze: bool = False


@dataclass(frozen=True)
class AlertPlan:
    """What one evaluation of one target changes: alerts to store, events to deliver."""

    changes: tuple[AlertChange, ...]
    events: tuple[AlertEvent, ...]


def plan_alerts(
    *,
    target: str,
    outcomes: Sequence[Outcome],
    open_alerts: Mapping[str, Alert],
    now: datetime,
    repeat_interval: timedelta,
    channel: str | None,
    new_id: Callable[[], str],
) -> AlertPlan:
    """The alert changes and events after ``outcomes`` (``open_alerts`` by group)."""
    events = [_rule_event(target, o, now) for o in outcomes if _is_rule_event(o)]
    changes: list[AlertChange] = []
    for group in GROUPS:
        members = [o for o in outcomes if o.rule.rule.group == group]
        firing = [o for o in members if o.state and o.state.status is RuleStatus.FIRING]
        current = open_alerts.get(group)
        if current is None and firing:
            change, event = _fire(target, group, firing, now, channel, new_id())
            changes.append(change)
            events.append(event)
        elif current is not None and firing:
            update, more = _update(current, firing, now, repeat_interval)
            changes.extend([update] if update is not None else [])
            events.extend(more)
        elif current is not None:
            change, event = _resolve(current, members, now)
            changes.append(change)
            events.append(event)
    return AlertPlan(changes=tuple(changes), events=tuple(events))


def _is_rule_event(outcome: Outcome) -> bool:
    return outcome.transition in (EventKind.PENDING, EventKind.CLEARED)


def _rule_event(target: str, outcome: Outcome, now: datetime) -> AlertEvent:
    """PENDING / CLEARED: about one rule, no alert (nothing is posted for them)."""
    assert outcome.transition is not None
    config = outcome.rule.config
    detail = outcome.reading.detail
    if outcome.transition is EventKind.PENDING and config.for_seconds:
        detail = f"{detail}; fires if it holds for {format_duration(config.for_seconds)}"
    return AlertEvent(
        kind=outcome.transition,
        target=target,
        rule=outcome.rule.id,
        severity=config.severity,
        at=now,
        value=outcome.reading.value,
        detail=detail,
    )


def _top(firing: Sequence[Outcome]) -> Outcome:
    """The most severe firing rule (on a tie, the first in RULES order)."""
    return max(reversed(firing), key=lambda o: o.rule.config.severity.rank)


def _fire(
    target: str,
    group: str,
    firing: Sequence[Outcome],
    now: datetime,
    channel: str | None,
    alert_id: str,
) -> tuple[AlertChange, AlertEvent]:
    top = _top(firing)
    alert = Alert(
        id=alert_id,
        target=target,
        group=group,
        rule=top.rule.id,
        severity=top.rule.config.severity,
        status=AlertStatus.FIRING,
        value=top.reading.value,
        active_at=min(o.state.active_at for o in firing if o.state),
        fired_at=now,
        last_notified_at=now,
        detail=top.reading.detail,
        channel=channel,
    )
    return AlertChange(alert, new=True), alert_event(EventKind.FIRED, alert, now)


def _update(
    alert: Alert, firing: Sequence[Outcome], now: datetime, repeat: timedelta
) -> tuple[AlertChange | None, list[AlertEvent]]:
    top = _top(firing)
    severity = top.rule.config.severity
    updated = replace(
        alert,
        rule=top.rule.id,
        severity=severity,
        value=top.reading.value,
        detail=top.reading.detail,
    )
    if severity.rank != alert.severity.rank:
        return _rerank(alert, updated, now)
    if alert.snoozed_until is not None and now >= alert.snoozed_until:
        updated = replace(updated, snoozed_by=None, snoozed_until=None, last_notified_at=now)
        ended = alert_event(EventKind.SNOOZE_ENDED, updated, now, extra=firing_for(alert, now))
        return AlertChange(updated, clear_snooze=True), [ended]
    if _reminder_due(alert, now, repeat):
        updated = replace(updated, last_notified_at=now)
        reminder = alert_event(EventKind.REMINDER, updated, now, extra=firing_for(alert, now))
        return AlertChange(updated), [reminder]
    return (None if updated == alert else AlertChange(updated)), []


def _rerank(alert: Alert, updated: Alert, now: datetime) -> tuple[AlertChange, list[AlertEvent]]:
    """ESCALATED (lifting an acknowledgement and a snooze: a new severity is news), or
    DEESCALATED."""
    was = f"was {alert.severity.value} ({alert.rule})"
    if updated.severity.rank < alert.severity.rank:
        return AlertChange(updated), [alert_event(EventKind.DEESCALATED, updated, now, extra=was)]
    clear_ack, clear_snooze = alert.acknowledged_by is not None, alert.snoozed_by is not None
    lifted = [n for n, on in (("acknowledgement", clear_ack), ("snooze", clear_snooze)) if on]
    if lifted:
        was += f"; {' and '.join(lifted)} lifted"
    updated = replace(
        updated,
        acknowledged_by=None,
        acknowledged_at=None,
        snoozed_by=None,
        snoozed_until=None,
        last_notified_at=now,
    )
    change = AlertChange(updated, clear_ack=clear_ack, clear_snooze=clear_snooze)
    return change, [alert_event(EventKind.ESCALATED, updated, now, extra=was)]


def _reminder_due(alert: Alert, now: datetime, repeat: timedelta) -> bool:
    if repeat <= timedelta(0) or alert.acknowledged_by is not None or alert.snoozed_at(now):
        return False
    return now - alert.last_notified_at >= repeat


def _resolve(
    alert: Alert, members: Sequence[Outcome], now: datetime
) -> tuple[AlertChange, AlertEvent]:
    # The group's first rule reads with the lowest threshold (memory-warning): "now 62%
    # of 64 MB (threshold 80%)" says why it resolved better than the critical rule would.
    reading = members[0].reading if members else None
    detail = f"now {reading.detail}" if reading is not None else "rule disabled"
    resolved = replace(
        alert,
        status=AlertStatus.RESOLVED,
        resolved_at=now,
        detail=detail,
        value=reading.value if reading is not None else alert.value,
    )
    event = alert_event(EventKind.RESOLVED, resolved, now, extra=firing_for(alert, now))
    return AlertChange(resolved), event


def firing_for(alert: Alert, now: datetime) -> str:
    """``firing for 2.0h``: how long ``alert`` has fired at ``now`` (a resolution's words)."""
    return f"firing for {format_duration((now - alert.fired_at).total_seconds())}"


def alert_event(
    kind: EventKind,
    alert: Alert,
    now: datetime,
    *,
    extra: str = "",
    detail: str | None = None,
    actor: str | None = None,
) -> AlertEvent:
    """An event about ``alert`` at ``now``: its detail (plus ``extra``), or ``detail``."""
    if detail is None:
        detail = f"{alert.detail}; {extra}" if extra else alert.detail
    return AlertEvent(
        kind=kind,
        target=alert.target,
        rule=alert.rule,
        severity=alert.severity,
        at=now,
        value=alert.value,
        alert_id=alert.id,
        detail=detail,
        actor=actor,
    )
