"""What a check round returns: one check per subject, the round, the alerts overview.

Plain frozen data (the presenters, ``check --json`` and the metrics read it); the
service that produces it is bot/health/service.py, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.health.engine import Outcome
from bot.health.model import Alert, AlertEvent, RuleState, Sample
from bot.health.ports import CheckOutcome


@dataclass(frozen=True)
class TargetCheck:
    """One subject in one round: its sample, every rule's outcome, the events it caused.

    target: the subject (a target's name; a cluster shard's ``sessions/0-5460``).
    error: why the result was not stored (audit database down...), else None.
    """

    target: str
    sample: Sample
    outcomes: tuple[Outcome, ...]
    events: tuple[AlertEvent, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class RoundResult:
    """A check round: when, the subjects' checks, the targets still running at its deadline."""

    at: datetime
    checks: tuple[TargetCheck, ...]
    late: tuple[str, ...] = ()
    skipped: bool = False


@dataclass(frozen=True)
class AlertsOverview:
    """What ``/redis-mem alerts`` shows: rules pending and alerts firing, every target."""

    pending: tuple[RuleState, ...]
    firing: tuple[Alert, ...]


def check_outcome(check: TargetCheck) -> CheckOutcome:
    """ERROR when the check was not stored, else whether Redis could be read."""
    if check.error is not None:
        return CheckOutcome.ERROR
    return CheckOutcome.OK if check.sample.reachable else CheckOutcome.UNREACHABLE


def worst_outcome(checks: Iterable[TargetCheck]) -> CheckOutcome:
    """A target's outcome from its subjects': ERROR, else UNREACHABLE, else OK."""
    outcomes = {check_outcome(c) for c in checks}
    for outcome in (CheckOutcome.ERROR, CheckOutcome.UNREACHABLE):
        if outcome in outcomes:
            return outcome
    return CheckOutcome.OK
