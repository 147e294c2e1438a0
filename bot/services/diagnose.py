"""Diagnose a target: pick it, read a snapshot through the Redis adapter, judge it.

With a ``PersistedConfig`` port, a target that has Kubernetes coordinates is also
compared with the redis.conf it restarts with (its ConfigMap): configuration drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config import Target, Thresholds
from bot.diagnosis.drift import PersistedConf
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Diagnosis
from bot.redisinfo.snapshot import ProgressFn, RedisProbe
from bot.remediation.persisted import PersistedConfig, configmap_where, has_kube_coordinates
from bot.services.singleflight import SingleFlight
from bot.targets_file import pick_target

# Builds the adapter for one target; the composition root passes the real one in.
ProbeFactory = Callable[[Target], RedisProbe]


@dataclass(frozen=True)
class DiagnosisService:
    """Runs the runbook diagnosis against configured targets."""

    targets: dict[str, Target]
    probe_factory: ProbeFactory
    thresholds: Thresholds
    sample_size: int = 1000
    # None: drift is not compared (``Diagnosis.drift`` None, no finding).
    persisted: PersistedConfig | None = None
    # Sampled diagnoses asked for while one of the same target runs share it (``shared``).
    flight: SingleFlight[str, Diagnosis] = field(
        default_factory=SingleFlight, repr=False, compare=False
    )

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
        return diagnose(snapshot, self.thresholds, self._persisted(target))

    def shared(self, target_name: str | None = None) -> Diagnosis:
        """A sampled diagnosis, shared with every caller asking for the same target while
        it runs (``bot.services.singleflight``): for answers that only read, such as
        ``status`` asked by twenty people at once. A fix's checks call ``diagnose``."""
        name = self.target(target_name).name
        return self.flight.do(name, lambda: self.diagnose(name))

    def _persisted(self, target: Target) -> PersistedConf | None:
        """The target's persisted redis.conf, or the one-line reason it is not compared.

        Never raises: drift is a side reading, and a diagnosis in an incident must not
        fail (or wait beyond the adapter's request timeout) because Kubernetes does.
        """
        if self.persisted is None:
            return None
        where = configmap_where(target.kubernetes)
        if not has_kube_coordinates(target):
            reason = f"target {target.name!r} has no kubernetes section in the targets file"
            return PersistedConf(where, reason=reason)
        try:
            return PersistedConf(where, text=self.persisted.redis_conf(target))
        # Any failure, not only KubernetesError: the adapter's client may raise anything.
        except Exception as err:
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            return PersistedConf(where, reason=f"cannot read the {where}: {detail}")
