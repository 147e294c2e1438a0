"""Health checks and alert events as JSON-safe dicts (``redis-mem check --json``, the demo).

The ``check --json`` keys are a contract (docs/DESIGN.md): change them only with the doc.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.diagnosis.serialize import iso_utc
from bot.health.engine import Outcome
from bot.health.model import AlertEvent
from bot.health.rules import EVICTION_RATE
from bot.health.service import TargetCheck


def check_to_dict(checks: Sequence[TargetCheck], *, checked_at: datetime) -> dict[str, Any]:
    """The ``check --json`` document: when, then every target checked."""
    return {
        "checked_at": iso_utc(checked_at),
        "targets": [target_check_to_dict(check) for check in checks],
    }


def target_check_to_dict(check: TargetCheck) -> dict[str, Any]:
    """One target: reachable, its usage and eviction rate, one alert entry per enabled rule."""
    return {
        "target": check.target,
        "reachable": check.sample.reachable,
        "usage_ratio": check.sample.usage_ratio,
        "evicted_per_second": evicted_per_second(check),
        "error": check.sample.error or check.error,
        "alerts": [outcome_to_dict(outcome) for outcome in check.outcomes],
    }


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """One rule of one target: its state, since when it holds, the value compared."""
    state = outcome.state
    return {
        "rule": outcome.rule.id,
        "state": outcome.status,
        "active_since": iso_utc(state.active_at) if state is not None else None,
        "value": outcome.reading.value,
        "severity": outcome.rule.config.severity.value,
    }


def event_to_dict(event: AlertEvent) -> dict[str, Any]:
    """An alert event as the demo's JSON lists it."""
    return {
        "at": iso_utc(event.at),
        "kind": event.kind.value,
        "target": event.target,
        "rule": event.rule,
        "severity": event.severity.value,
        "value": event.value,
        "detail": event.detail,
    }


def rule_outcome(check: TargetCheck, rule_id: str) -> Outcome | None:
    """The outcome of rule ``rule_id`` in ``check`` (None: the rule is disabled)."""
    return next((o for o in check.outcomes if o.rule.id == rule_id), None)


def evicted_per_second(check: TargetCheck) -> float | None:
    """The eviction-rate rule's value: keys evicted per second over 5m (None: no data)."""
    outcome = rule_outcome(check, EVICTION_RATE.id)
    return outcome.reading.value if outcome is not None else None
