"""The diagnosis as frozen data: what each face (Slack, terminal, JSON) renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.diagnosis.actions import ACTIONS
from bot.replication import SentinelReading
from bot.shards import Shard, Topology


class Severity(StrEnum):
    """Overall state of a store, ordered ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for ok, 1 for warning, 2 for critical: for max() and comparisons."""
        return ("ok", "warning", "critical").index(self.value)


SCENARIO_IDS = (
    "too-many-sessions",
    "ttl-leak",
    "large-sessions",
    "fragmentation",
    "eviction-policy",
    "stale-sessions",
)

# Declared once, with the rest of what an action is, in bot/diagnosis/actions.py.
ACTION_IDS = ACTIONS.ids

CHECK_IDS = ("memory", "key-count", "ttl", "eviction-policy", "key-sizes", "fragmentation")


@dataclass(frozen=True)
class Check:
    """One runbook diagnosis step (1-6) and what it found.

    status: ok / warning / critical for the step alone.
    summary: one line a human reads first.
    details: the numbers behind it, JSON-safe.
    """

    id: str
    step: int
    title: str
    status: Severity
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A runbook scenario the evidence points to, and the fixes it recommends."""

    id: str
    title: str
    runbook: str  # e.g. "Scenario 2: Memory Leak"
    evidence: tuple[str, ...]
    recommended_actions: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """Something worth telling that is not a scenario (MEMORY DOCTOR style, no limit...)."""

    id: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class Drift:
    """A setting whose live value differs from the persisted redis.conf (the Redis ConfigMap).

    live: as people read it (``64mb``, ``allkeys-lru``, ``yes``); configmap: the value as
    the file writes it, None when the file has no such line (then Redis's default applies
    at the next restart, ``restart_value``).
    """

    directive: str
    live: str
    configmap: str | None
    restart_value: str  # what Redis runs with after a restart: the file's value or the default


@dataclass(frozen=True)
class TtlStats:
    """TTL distribution of the sampled session keys."""

    sampled: int
    without_ttl: int
    without_ttl_ratio: float | None
    histogram: dict[str, int]  # bucket label -> count, e.g. "none", "<1h", "1h-24h", ...
    long_ttl: int  # keys whose TTL exceeds Thresholds.long_ttl_seconds


@dataclass(frozen=True)
class SizeStats:
    """Size distribution (``MEMORY USAGE``) of the sampled session keys."""

    sampled: int
    mean_bytes: float | None
    p95_bytes: int | None
    max_bytes: int | None
    top_keys: tuple[tuple[str, int], ...]  # (key, bytes), largest first


@dataclass(frozen=True)
class IdleStats:
    """Idle time (or LFU counter) of the sampled session keys."""

    sampled: int
    measure: str  # "idletime" or "lfu"
    stale: int  # keys idle longer than the threshold (or LFU counter 0)
    stale_ratio: float | None
    p50_idle_seconds: int | None
    max_idle_seconds: int | None


@dataclass(frozen=True)
class Diagnosis:
    """The whole answer to "what is eating the memory and what do I do"."""

    target: str
    checked_at: datetime
    severity: Severity
    used_memory: int
    maxmemory: int
    usage_ratio: float | None  # None when maxmemory is 0 (no limit)
    evicted_keys: int
    mem_fragmentation_ratio: float
    dbsize: int
    maxmemory_policy: str
    session_keys: int
    sample_mode: str
    ttl: TtlStats
    sizes: SizeStats
    idle: IdleStats
    checks: tuple[Check, ...]
    scenarios: tuple[Scenario, ...]
    findings: tuple[Finding, ...]
    recommended_actions: tuple[str, ...]  # union over scenarios, most urgent first
    redis_version: str = ""
    used_memory_rss: int = 0
    used_memory_peak: int = 0
    policy_source: str = "config"
    # Live settings that differ from the persisted redis.conf; None when not compared (the
    # target has no Kubernetes coordinates, or the ConfigMap could not be read: a finding says).
    drift: tuple[Drift, ...] | None = None
    # A mode: sentinel target: the primary the sentinels named for this diagnosis, its replicas.
    sentinel: SentinelReading | None = None
    # A mode: cluster target: the topology the seed reported, and each shard judged by
    # itself, worst first (the fields above are then the whole cluster's).
    cluster: Topology | None = None
    shards: tuple[ShardDiagnosis, ...] = ()

    @property
    def primary_label(self) -> str | None:
        """Which node(s) this diagnosis read: ``primary 127.0.0.1:6380 (via sentinel)``,
        ``3 primaries (cluster via seed 127.0.0.1:7001, state ok)``; None for a standalone."""
        if self.cluster is not None:
            count = len(self.cluster.shards)
            where = f"cluster via seed {self.cluster.seed}, state {self.cluster.state}"
            return f"{count} {'primary' if count == 1 else 'primaries'} ({where})"
        if self.sentinel is None:
            return None
        return f"primary {self.sentinel.primary} (via sentinel)"


@dataclass(frozen=True)
class ShardDiagnosis:
    """One shard of a cluster judged by itself: its diagnosis, or why its primary was unreadable.

    ``diagnosis`` is the runbook's answer for that primary alone (no shards of its own);
    ``error`` the one-line reason it could not be read (then the shard is critical).
    """

    shard: Shard
    diagnosis: Diagnosis | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """The shard's name: its slot range, ``5461-10922``."""
        return self.shard.name

    @property
    def label(self) -> str:
        """``5461-10922 (127.0.0.1:7002)``: how evidence and findings name the shard."""
        return self.shard.label

    @property
    def severity(self) -> Severity:
        """The shard's own severity; critical when its primary could not be read."""
        return self.diagnosis.severity if self.diagnosis is not None else Severity.CRITICAL

    @property
    def scenario_ids(self) -> tuple[str, ...]:
        """The runbook scenarios found on this shard alone."""
        return () if self.diagnosis is None else tuple(s.id for s in self.diagnosis.scenarios)
