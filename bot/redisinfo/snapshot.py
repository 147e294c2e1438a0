"""What the Redis adapter reads, as plain frozen data the domain can reason about.

Nothing here imports redis: the diagnosis engine consumes these types, the
adapter (``bot.redisinfo.probe``) produces them, and tests can build them by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from bot.cluster_reading import ClusterReading
from bot.replication import SentinelReading

SampleMode = Literal["sampled", "full"]
PolicySource = Literal["config", "info"]

# Progress of a long scan: (keys scanned so far, estimated total keys).
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class MemoryInfo:
    """The fields of ``INFO memory`` the runbook and MEMORY DOCTOR look at (bytes)."""

    used_memory: int
    used_memory_rss: int
    used_memory_peak: int
    maxmemory: int  # 0 means "no limit"
    maxmemory_policy: str  # from INFO; see Snapshot.maxmemory_policy for the resolved one
    mem_fragmentation_ratio: float
    mem_fragmentation_bytes: int  # rss - used (may be negative when swapping)
    allocator_frag_ratio: float | None = None
    allocator_frag_bytes: int | None = None
    used_memory_dataset: int | None = None
    total_system_memory: int | None = None


@dataclass(frozen=True)
class StatsInfo:
    """The fields of ``INFO stats`` about eviction and expiry."""

    evicted_keys: int
    expired_keys: int
    keyspace_hits: int = 0
    keyspace_misses: int = 0


@dataclass(frozen=True)
class KeyspaceDb:
    """One ``dbN`` line of ``INFO keyspace``."""

    db: int
    keys: int
    expires: int
    avg_ttl_ms: int


@dataclass(frozen=True, slots=True)  # a full scan holds one per session key
class KeyStat:
    """One session key as measured in Redis.

    ttl: seconds left, -1 without TTL, -2 vanished between SCAN and the read.
    bytes: ``MEMORY USAGE`` (0 when the key vanished).
    idle_seconds: ``OBJECT IDLETIME``; None under an LFU policy (then freq is set).
    freq: ``OBJECT FREQ`` (LFU counter) under an LFU policy, else None.
    """

    key: str
    ttl: int
    bytes: int
    idle_seconds: int | None = None
    freq: int | None = None


@dataclass(frozen=True)
class KeySample:
    """The session keys measured, and how they were chosen.

    mode: ``sampled`` (uniform random sample, fixed cost) or ``full`` (every key).
    probed: how many keys were looked at to find these (random draws or scanned keys).
    matched: of the probed keys, how many matched the session pattern.
    session_keys_estimate: the estimated number of session keys in the whole db.
    """

    mode: SampleMode
    pattern: str
    keys: tuple[KeyStat, ...]
    probed: int
    matched: int
    session_keys_estimate: int
    method: str = ""  # e.g. "randomkey", "scan+lua", "scan+pipeline": for the evidence


@dataclass(frozen=True)
class Snapshot:
    """Everything one diagnosis needs, read from one Redis at one moment."""

    target: str
    taken_at: datetime
    redis_version: str
    memory: MemoryInfo
    stats: StatsInfo
    keyspace: tuple[KeyspaceDb, ...]
    db: int
    dbsize: int
    maxmemory_policy: str
    policy_source: PolicySource  # "info" when CONFIG is disabled or renamed
    sample: KeySample
    settings: dict[str, str] = field(default_factory=dict)  # CONFIG values read, e.g. activedefrag
    persistence: dict[str, str] = field(default_factory=dict)  # aof_enabled, rdb_last_save...
    sentinel: SentinelReading | None = None  # a mode: sentinel target's primary and replicas
    cluster: ClusterReading | None = None  # a mode: cluster target's shards, each its own snapshot

    @property
    def config_available(self) -> bool:
        """CONFIG could be used (else the policy came from INFO)."""
        return self.policy_source == "config"


class RedisProbe(Protocol):
    """What the diagnosis service needs from a Redis: one consistent snapshot."""

    def snapshot(
        self,
        *,
        pattern: str,
        sample_size: int,
        full: bool = False,
        progress: ProgressFn | None = None,
    ) -> Snapshot:
        """Read memory, stats, keyspace, policy and session keys (sampled or full)."""
        ...
