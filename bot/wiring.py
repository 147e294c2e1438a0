"""The composition root: the one place that turns settings into adapters and services.

Faces (CLI, Slack, scheduler) call these builders; nothing else constructs adapters.
"""

from __future__ import annotations

from bot.config import DEFAULT_TARGET_NAME, Settings, Target, load_targets
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.snapshot import RedisProbe
from bot.services.diagnose import DiagnosisService


def targets_for(settings: Settings, *, redis_url: str | None = None, name: str | None = None) -> dict[str, Target]:
    """The configured targets, or one ad-hoc target when a URL is given on the command line."""
    if redis_url is None:
        return load_targets(settings)
    target = Target(
        name=name or DEFAULT_TARGET_NAME,
        redis_url=redis_url,
        session_pattern=settings.session_pattern,
    )
    return {target.name: target}


def diagnosis_service(settings: Settings, targets: dict[str, Target] | None = None) -> DiagnosisService:
    """A DiagnosisService over real Redis connections (one per diagnosis)."""

    def probe_for(target: Target) -> RedisProbe:
        return LiveRedisProbe(
            name=target.name, url=target.connection_url(), scan_rate=settings.scan_rate
        )

    return DiagnosisService(
        targets=targets if targets is not None else load_targets(settings),
        probe_factory=probe_for,
        thresholds=settings.thresholds,
        sample_size=settings.sample_size,
    )
