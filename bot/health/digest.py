"""The short diagnosis an alert message carries, taken from the existing engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.diagnosis.model import Diagnosis
from bot.errors import RedisMemError
from bot.health.model import AlertDiagnosis, ScenarioDigest

EVIDENCE_LINES = 3  # per scenario: the message stays short, /redis-mem diagnose has the rest


def digest(diagnosis: Diagnosis) -> AlertDiagnosis:
    """Scenarios with their first evidence lines and fixes, the recommended actions."""
    scenarios = tuple(
        ScenarioDigest(
            id=s.id,
            title=s.title,
            evidence=s.evidence[:EVIDENCE_LINES],
            actions=s.recommended_actions,
        )
        for s in diagnosis.scenarios
    )
    return AlertDiagnosis(
        checked_at=diagnosis.checked_at,
        severity=diagnosis.severity.value,
        scenarios=scenarios,
        recommended_actions=diagnosis.recommended_actions,
    )


def diagnose_for_alert(
    diagnose: Callable[[str], Diagnosis], *, clock: Callable[[], datetime]
) -> Callable[[str], AlertDiagnosis]:
    """A Diagnoser: ``diagnose(target)`` digested, or the one-line reason it failed."""

    def diagnoser(target: str) -> AlertDiagnosis:
        try:
            return digest(diagnose(target))
        except RedisMemError as err:
            return AlertDiagnosis(checked_at=clock(), severity="unknown", error=err.message)

    return diagnoser
