"""The health domain as frozen data: samples, rule states, alerts and their events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.diagnosis.model import Severity

__all__ = [
    "Alert",
    "AlertDiagnosis",
    "AlertEvent",
    "AlertStatus",
    "EventKind",
    "RuleState",
    "RuleStatus",
    "Sample",
    "ScenarioDigest",
    "Severity",
]


@dataclass(frozen=True, slots=True)
class Sample:
    """One check of one target: what INFO said at ``at``, or that it could not be read.

    Every reading is None when ``reachable`` is False (``error`` says why, one line).
    ``maxclients`` is None when neither INFO nor CONFIG tells it.
    """

    target: str
    at: datetime
    reachable: bool
    used_memory: int | None = None
    maxmemory: int | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    dbsize: int | None = None
    connected_clients: int | None = None
    maxclients: int | None = None
    rejected_connections: int | None = None
    fragmentation_ratio: float | None = None
    error: str | None = None

    @property
    def usage_ratio(self) -> float | None:
        """used_memory / maxmemory, None without a limit (maxmemory 0) or a reading."""
        if self.used_memory is None or not self.maxmemory:
            return None
        return self.used_memory / self.maxmemory


class RuleStatus(StrEnum):
    """Prometheus's alert states; an inactive rule has no stored state at all."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class RuleState:
    """Where one rule stands for one target (Prometheus's ``Alert`` of a rule).

    active_at: the evaluation at which the condition started to hold (``for`` counts from it).
    keep_firing_since: while firing, the first evaluation at which the condition stopped
    holding (``keep_firing_for`` counts from it); None while it holds.
    """

    target: str
    rule: str
    status: RuleStatus
    active_at: datetime
    value: float | None
    fired_at: datetime | None = None
    keep_firing_since: datetime | None = None


class AlertStatus(StrEnum):
    """An alert (one Slack message) is firing until every rule of its group stopped."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class ScenarioDigest:
    """A runbook scenario as the alert message shows it: short evidence, its fixes."""

    id: str
    title: str
    evidence: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class AlertDiagnosis:
    """The diagnosis taken when the alert fired (or escalated), kept for every re-render.

    error: why no diagnosis could be taken (the store is unreachable...), else None.
    """

    checked_at: datetime
    severity: str
    scenarios: tuple[ScenarioDigest, ...] = ()
    recommended_actions: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Alert:
    """One firing episode of a rule group on a target: what one Slack message shows.

    group: ``memory`` for memory-warning/memory-critical (one message per target), else
    the rule id. rule/severity: the most severe rule of the group firing now (or last).
    last_notified_at: when people were last told (fired, reminder, snooze ended).
    """

    id: str
    target: str
    group: str
    rule: str
    severity: Severity
    status: AlertStatus
    value: float | None
    active_at: datetime
    fired_at: datetime
    last_notified_at: datetime
    detail: str = ""
    resolved_at: datetime | None = None
    channel: str | None = None
    message_ts: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_until: datetime | None = None
    diagnosis: AlertDiagnosis | None = None

    @property
    def firing(self) -> bool:
        """Not resolved yet."""
        return self.status is AlertStatus.FIRING

    def snoozed_at(self, now: datetime) -> bool:
        """A snooze is in force at ``now``."""
        return self.snoozed_until is not None and now < self.snoozed_until


class EventKind(StrEnum):
    """What happened to a rule or an alert; ``audited`` kinds go to the audit trail."""

    PENDING = "pending"  # a rule's condition started to hold (nothing is posted)
    CLEARED = "cleared"  # a pending rule's condition stopped holding before it fired
    FIRED = "fired"
    ESCALATED = "escalated"  # the group's most severe firing rule became more severe
    DEESCALATED = "deescalated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    SNOOZE_ENDED = "snooze-ended"

    @property
    def audited(self) -> bool:
        """Transitions people act on are audited; pending/cleared/reminders are not.

        Acknowledge and snooze are audited by the service when the click is taken.
        """
        return self in _AUDITED_BY_DISPATCH


_AUDITED_BY_DISPATCH = frozenset(
    {
        EventKind.FIRED,
        EventKind.ESCALATED,
        EventKind.DEESCALATED,
        EventKind.RESOLVED,
        EventKind.SNOOZE_ENDED,
    }
)


@dataclass(frozen=True)
class AlertEvent:
    """One event, as the notifiers get it. ``alert_id`` is None for PENDING/CLEARED.

    detail: one line for people ("83% of 64.0 MB", "was warning", "lasted 23m").
    actor: who caused it (acknowledge, snooze); None for the scheduler.
    """

    kind: EventKind
    target: str
    rule: str
    severity: Severity
    at: datetime
    value: float | None
    alert_id: str | None = None
    detail: str = ""
    actor: str | None = None
