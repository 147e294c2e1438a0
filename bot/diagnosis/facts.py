"""The numbers every check, scenario and finding reasons with, computed once."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Thresholds
from bot.diagnosis.model import IdleStats, Severity, SizeStats, TtlStats
from bot.diagnosis.stats import idle_stats, size_stats, ttl_stats
from bot.redisinfo.snapshot import MemoryInfo, Snapshot
from bot.units import format_bytes

# MEMORY DOCTOR's "peak" advice: peak use this many times current use.
PEAK_RATIO = 1.5

# RSS of an empty redis-server 7 (jemalloc): measured 11.4-11.9 MB wasted at 1-34 MB used.
PROCESS_BASELINE_RSS = 12 * 1024**2


@dataclass(frozen=True)
class Facts:
    """One snapshot, the thresholds, and what follows from them."""

    snap: Snapshot
    th: Thresholds
    ttl: TtlStats
    sizes: SizeStats
    idle: IdleStats

    @property
    def mem(self) -> MemoryInfo:
        """The ``INFO memory`` fields."""
        return self.snap.memory

    @property
    def policy(self) -> str:
        """The resolved ``maxmemory-policy``."""
        return self.snap.maxmemory_policy

    @property
    def usage_ratio(self) -> float | None:
        """used/maxmemory, None when there is no limit (maxmemory 0)."""
        if self.mem.maxmemory <= 0:
            return None
        return self.mem.used_memory / self.mem.maxmemory

    @property
    def usage_severity(self) -> Severity:
        """Runbook thresholds on used/maxmemory; no limit is a warning (see thresholds.md)."""
        ratio = self.usage_ratio
        if ratio is None:
            return Severity.WARNING
        if ratio >= self.th.critical_ratio:
            return Severity.CRITICAL
        if ratio >= self.th.warning_ratio:
            return Severity.WARNING
        return Severity.OK

    @property
    def session_keys(self) -> int:
        """Estimated number of session keys in the db."""
        return self.snap.sample.session_keys_estimate

    @property
    def enough_sample(self) -> bool:
        """Enough live session keys measured to judge TTLs, sizes and idle time."""
        return self.sizes.sampled >= self.th.min_sample

    @property
    def session_bytes(self) -> int | None:
        """Estimated memory held by session keys: count x mean ``MEMORY USAGE``."""
        if self.sizes.mean_bytes is None:
            return None
        return round(self.session_keys * self.sizes.mean_bytes)

    @property
    def session_share(self) -> float | None:
        """Share of used memory held by session keys (capped at 1: estimates overshoot)."""
        held = self.session_bytes
        if held is None or self.mem.used_memory <= 0:
            return None
        return min(1.0, held / self.mem.used_memory)

    @property
    def sessions_large(self) -> bool:
        """Mean or p95 session size above ``large_session_bytes``."""
        limit = self.th.large_session_bytes
        mean, p95 = self.sizes.mean_bytes, self.sizes.p95_bytes
        return (mean is not None and mean > limit) or (p95 is not None and p95 > limit)

    @property
    def db_keys_without_ttl(self) -> tuple[int, int] | None:
        """(keys without TTL, keys) in the diagnosed db, exact from ``INFO keyspace``."""
        for entry in self.snap.keyspace:
            if entry.db == self.snap.db and entry.keys > 0:
                return max(0, entry.keys - entry.expires), entry.keys
        return None

    @property
    def wasted_bytes(self) -> int:
        """RSS minus used memory (negative when part of Redis is swapped out)."""
        return self.mem.mem_fragmentation_bytes

    @property
    def excess_waste(self) -> int:
        """Wasted bytes that are not the process's own baseline RSS.

        A fresh redis-server holds ~12 MB of RSS for nothing (binary, libraries,
        allocator arenas: INFO's ``rss_overhead_bytes``), so on a store of a few
        MB the ratio reads 3-13 while nothing is fragmented. The allocator's own
        fragmentation (``allocator_frag_bytes``, what key churn leaves behind and
        activedefrag reclaims) excludes that baseline; without it we subtract the
        baseline measured on Redis 7 with jemalloc.
        """
        if self.mem.allocator_frag_bytes is not None:
            return self.mem.allocator_frag_bytes
        return self.wasted_bytes - PROCESS_BASELINE_RSS

    @property
    def fragmented(self) -> bool:
        """Ratio above the runbook's 1.5 AND enough bytes wasted to matter (MEMORY DOCTOR)."""
        floor = self.th.fragmentation_min_bytes
        return (
            self.mem.mem_fragmentation_ratio > self.th.fragmentation_ratio
            and self.wasted_bytes > floor
            and self.excess_waste > floor
        )

    @property
    def swapping(self) -> bool:
        """Ratio below 1.0 on a store big enough for the ratio to mean something."""
        return (
            0 < self.mem.mem_fragmentation_ratio < 1.0
            and self.mem.used_memory > self.th.fragmentation_min_bytes
        )


def gather(snapshot: Snapshot, thresholds: Thresholds) -> Facts:
    """Compute the key statistics once for everything downstream."""
    keys = snapshot.sample.keys
    return Facts(
        snap=snapshot,
        th=thresholds,
        ttl=ttl_stats(keys, long_ttl_seconds=thresholds.long_ttl_seconds),
        sizes=size_stats(keys),
        idle=idle_stats(keys, stale_idle_seconds=thresholds.stale_idle_seconds),
    )


def pct(ratio: float | None) -> str:
    """``83.4%`` (or ``n/a``)."""
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def size(n: float | None) -> str:
    """Human byte count, as Redis prints it."""
    return format_bytes(n)
