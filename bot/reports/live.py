"""The live part of a report (sessions without TTL, scenarios, capacity), from the engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.diagnosis.capacity import plan_from_diagnosis
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisMemError
from bot.reports.model import LiveView, ScenarioLine
from bot.reports.ports import LiveSource


def live_view(diagnosis: Diagnosis) -> LiveView:
    """What a report keeps of a diagnosis."""
    ttl = diagnosis.ttl
    return LiveView(
        target=diagnosis.target,
        checked_at=diagnosis.checked_at,
        severity=diagnosis.severity,
        session_keys=diagnosis.session_keys,
        sampled=ttl.sampled,
        without_ttl=ttl.without_ttl,
        without_ttl_ratio=ttl.without_ttl_ratio,
        mean_session_bytes=diagnosis.sizes.mean_bytes,
        maxmemory=diagnosis.maxmemory,
        scenarios=tuple(ScenarioLine(id=s.id, title=s.title) for s in diagnosis.scenarios),
        capacity=plan_from_diagnosis(diagnosis),
    )


def live_from(diagnose: Callable[[str], Diagnosis], *, clock: Callable[[], datetime]) -> LiveSource:
    """A LiveSource: ``diagnose(target)`` as a LiveView, or the one-line reason it failed.

    A store that cannot be diagnosed is a warning in the report: someone should look.
    """

    def live(target: str) -> LiveView:
        try:
            return live_view(diagnose(target))
        except RedisMemError as err:
            return LiveView.failed(target, clock(), err.message)

    return live
