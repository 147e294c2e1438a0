"""What the health service needs from the world, as Protocols; adapters are passed in.

The composition root (``bot.wiring``) passes the real ones: ``LiveSampleSource``
(Redis), ``SqlHealthStore`` (the audit database), the Slack or terminal notifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.config import Target
from bot.health.alerts import AlertChange
from bot.health.model import Alert, AlertDiagnosis, AlertEvent, RuleState, Sample
from bot.health.subjects import SubjectSamples

# The rollup's bucket: raw samples become one aggregate per target and 5 minutes.
AGGREGATE_BUCKET = timedelta(minutes=5)


def bucket_floor(at: datetime) -> datetime:
    """The start of the 5-minute bucket holding ``at`` (same zone as ``at``)."""
    step = int(AGGREGATE_BUCKET.total_seconds())
    return at - timedelta(seconds=int(at.timestamp()) % step, microseconds=at.microsecond)


class SampleSource(Protocol):
    """Reads a target's samples (INFO memory/stats/clients, DBSIZE), one per subject."""

    def read_all(self, target: Target, *, at: datetime) -> SubjectSamples:
        """Every subject of ``target`` stamped ``at``: the target's own sample first, then a
        cluster target's shards (``bot.shards.subject``). Never raises RedisMemError: what
        cannot be read is an unreachable sample whose ``error`` says why, one line."""
        ...

    def close(self) -> None:
        """Drop every connection kept open between checks."""
        ...


# Takes the short diagnosis an alert message shows (the existing engine, sampled);
# never raises: a failure is an AlertDiagnosis whose ``error`` says why.
Diagnoser = Callable[[str], AlertDiagnosis]


@dataclass(frozen=True)
class Evaluation:
    """Everything one evaluation of one subject writes, in one transaction.

    target: the subject (a target's name, or a cluster shard's ``sessions/0-5460``).
    states: rule id -> new state, None to delete (the rule went inactive).
    """

    target: str
    sample: Sample
    states: Mapping[str, RuleState | None]
    changes: Sequence[AlertChange] = ()
    events: Sequence[AlertEvent] = ()


@dataclass(frozen=True)
class StoredEvent:
    """An event in the outbox: its id, whether it was audited, how often delivery failed."""

    id: int
    event: AlertEvent
    audited: bool = False
    attempts: int = 0


@dataclass(frozen=True)
class Snooze:
    """Who snoozed an alert, and until when."""

    by: str
    until: datetime


class HealthStore(Protocol):
    """Samples, rule states, alerts and the event outbox (``SqlHealthStore`` is one).

    Every method raises AuditUnavailable when the database cannot be used.
    """

    def recent_samples(self, *, since: datetime) -> dict[str, list[Sample]]:
        """Samples taken at or after ``since`` by target, oldest first."""
        ...

    def rule_states(self) -> dict[str, dict[str, RuleState]]:
        """Stored (pending or firing) rule states: target -> rule id -> state."""
        ...

    def open_alerts(self, target: str | None = None) -> list[Alert]:
        """Firing alerts (of ``target``, or every target), oldest first."""
        ...

    def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with that id, or None."""
        ...

    def record(self, evaluation: Evaluation) -> None:
        """Store the sample, the states, the alert changes and the events atomically."""
        ...

    def acknowledge(self, alert_id: str, *, by: str, at: datetime) -> bool:
        """Acknowledge a firing, unacknowledged alert; True if this call did it."""
        ...

    def snooze(self, alert_id: str, *, snooze: Snooze) -> bool:
        """Snooze a firing alert until ``snooze.until``; True if the alert was firing."""
        ...

    def add_events(self, events: Sequence[AlertEvent], *, audited: bool) -> None:
        """Append events to the outbox."""
        ...

    def due_events(self, now: datetime, *, limit: int = 200) -> list[StoredEvent]:
        """Undelivered events whose next attempt is due, oldest first."""
        ...

    def mark_audited(self, event_id: int) -> None:
        """The event's audit row is written."""
        ...

    def mark_delivered(self, event_id: int, *, at: datetime, error: str | None = None) -> None:
        """The event needs no more delivery (``error``: it was given up)."""
        ...

    def mark_failed(self, event_id: int, *, error: str, retry_at: datetime) -> None:
        """Delivery failed; try again at ``retry_at``."""
        ...

    def set_message(self, alert_id: str, *, channel: str, ts: str) -> None:
        """Where the alert's message was posted."""
        ...

    def rollup(self, *, until: datetime) -> int:
        """Aggregate every complete 5-minute bucket (start + 5 minutes <= ``until``) of raw
        samples not aggregated yet; how many aggregates were written. Idempotent: running it
        twice, or in two processes at once, never writes a bucket twice."""
        ...

    def prune(self, *, before: datetime, aggregates_before: datetime | None = None) -> int:
        """Delete samples and delivered events older than ``before``, and aggregates whose
        bucket starts before ``aggregates_before`` (None: none); how many rows went."""
        ...


@dataclass(frozen=True)
class Delivered:
    """What a delivery produced: the message it posted, if it posted one."""

    channel: str | None = None
    ts: str | None = None


class NotifyError(Exception):
    """A notifier could not deliver an event; ``transient``: worth trying again later.

    posted: a message the notifier did post before failing (its thread reply failed, say):
    stored before the retry, so the retry updates that message instead of posting twice.
    """

    def __init__(self, message: str, *, transient: bool, posted: Delivered | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.posted = posted


class CheckOutcome(StrEnum):
    """How one check of a target ended (the ``outcome`` label of the checks metric)."""

    OK = "ok"  # read and stored
    UNREACHABLE = "unreachable"  # Redis could not be read (the sample is stored as down)
    ERROR = "error"  # not stored (audit database down) or an internal error


class CheckObserver(Protocol):
    """Sees every finished check of a target (the metrics adapter counts and times them)."""

    def checked(self, target: str, seconds: float, outcome: CheckOutcome) -> None:
        """One check of ``target`` took ``seconds`` and ended with ``outcome`` (a cluster
        target's: the worst of its subjects', so the labels stay one per target)."""
        ...


class AlertObserver(Protocol):
    """Sees every event the dispatcher delivered (the metrics adapter counts them)."""

    def delivered(self, event: AlertEvent) -> None:
        """``event`` reached its notifier (posted, updated, or nothing to show)."""
        ...


class Notifier(Protocol):
    """Delivers alert events to people: Slack messages, or lines in a terminal."""

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        """Deliver ``event`` (``alert``: its alert as stored now); raises NotifyError."""
        ...
