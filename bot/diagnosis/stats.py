"""Distributions of the sampled session keys: TTL, size, idle time.

Keys that vanished between SCAN and the read (``ttl == -2``) are left out of
every statistic: they no longer hold memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.diagnosis.model import IdleStats, SizeStats, TtlStats
from bot.redisinfo.snapshot import KeyStat

HOUR = 3600
DAY = 86400

# Histogram buckets in display order: (label, upper bound in seconds, exclusive).
TTL_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1h", HOUR),
    ("1h-24h", DAY),
    ("1d-7d", 7 * DAY),
    (">7d", math.inf),
)
TTL_NONE = "none"
TOP_KEYS = 10


def live_keys(keys: Sequence[KeyStat]) -> list[KeyStat]:
    """The keys that still existed when they were measured."""
    return [k for k in keys if k.ttl != -2]


def ttl_stats(keys: Sequence[KeyStat], *, long_ttl_seconds: int) -> TtlStats:
    """TTL histogram, share without TTL and count of very long TTLs."""
    live = live_keys(keys)
    histogram = {TTL_NONE: 0, **{label: 0 for label, _ in TTL_BUCKETS}}
    for key in live:
        histogram[_ttl_bucket(key.ttl)] += 1
    without = histogram[TTL_NONE]
    return TtlStats(
        sampled=len(live),
        without_ttl=without,
        without_ttl_ratio=(without / len(live)) if live else None,
        histogram=histogram,
        long_ttl=sum(1 for k in live if k.ttl > long_ttl_seconds),
    )


def _ttl_bucket(ttl: int) -> str:
    if ttl < 0:
        return TTL_NONE
    return next(label for label, bound in TTL_BUCKETS if ttl < bound)


def size_stats(keys: Sequence[KeyStat]) -> SizeStats:
    """Mean, p95, max and the largest keys by ``MEMORY USAGE``."""
    live = live_keys(keys)
    if not live:
        return SizeStats(sampled=0, mean_bytes=None, p95_bytes=None, max_bytes=None, top_keys=())
    sizes = sorted(k.bytes for k in live)
    top = sorted(live, key=lambda k: (-k.bytes, k.key))[:TOP_KEYS]
    return SizeStats(
        sampled=len(live),
        mean_bytes=sum(sizes) / len(sizes),
        p95_bytes=percentile(sizes, 0.95),
        max_bytes=sizes[-1],
        top_keys=tuple((k.key, k.bytes) for k in top),
    )


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def idle_stats(keys: Sequence[KeyStat], *, stale_idle_seconds: int) -> IdleStats:
    """How long sessions have been idle and how many are stale.

    Under an LRU (or any non-LFU) policy Redis keeps an idle clock per key
    (``OBJECT IDLETIME``): stale means idle longer than ``stale_idle_seconds``.
    Under an LFU policy that clock is replaced by a logarithmic access counter
    that decays by one every ``lfu-decay-time`` minutes: stale then means a
    counter of 0, "not read since the counter decayed to nothing". That is a
    weaker signal than idle time (with the defaults a never-read session
    reaches 0 in minutes, not hours), which the evidence says.
    """
    live = live_keys(keys)
    idle = sorted(k.idle_seconds for k in live if k.idle_seconds is not None)
    freqs = [k.freq for k in live if k.freq is not None]
    if freqs and not idle:
        stale = sum(1 for f in freqs if f == 0)
        return IdleStats(
            sampled=len(freqs),
            measure="lfu",
            stale=stale,
            stale_ratio=stale / len(freqs),
            p50_idle_seconds=None,
            max_idle_seconds=None,
        )
    stale = sum(1 for s in idle if s > stale_idle_seconds)
    return IdleStats(
        sampled=len(idle),
        measure="idletime",
        stale=stale,
        stale_ratio=(stale / len(idle)) if idle else None,
        p50_idle_seconds=percentile(idle, 0.5) if idle else None,
        max_idle_seconds=idle[-1] if idle else None,
    )
