"""Diagnose a target: pick it, read a snapshot through the Redis adapter, judge it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Target, Thresholds, pick_target
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Diagnosis
from bot.redisinfo.snapshot import ProgressFn, RedisProbe

# Builds the adapter for one target; the composition root passes the real one in.
ProbeFactory = Callable[[Target], RedisProbe]


@dataclass(frozen=True)
class DiagnosisService:
    """Runs the runbook diagnosis against configured targets."""

    targets: dict[str, Target]
    probe_factory: ProbeFactory
    thresholds: Thresholds
    sample_size: int = 1000

    def target(self, name: str | None) -> Target:
        """The named target (or the default); raises TargetNotFound."""
        return pick_target(self.targets, name)

    def diagnose(
        self,
        target_name: str | None = None,
        *,
        full: bool = False,
        progress: ProgressFn | None = None,
    ) -> Diagnosis:
        """Snapshot the target's Redis and classify it; raises RedisUnavailable, TargetNotFound."""
        target = self.target(target_name)
        probe = self.probe_factory(target)
        snapshot = probe.snapshot(
            pattern=target.session_pattern,
            sample_size=self.sample_size,
            full=full,
            progress=progress,
        )
        return diagnose(snapshot, self.thresholds)
