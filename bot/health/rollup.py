"""The rollup of raw samples into 5-minute aggregates (min, max, last; counters restart-aware).

Pure: the store hands the rows over and inserts what comes back (``bot/health/store.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from bot.health.ports import bucket_floor


def counter_increase(before: int, after: int) -> int:
    """How much a counter (``evicted_keys``) rose from ``before`` to ``after``.

    A counter that went down restarted (Redis did): its new value is what it rose since,
    as Prometheus's ``increase()`` counts it.
    """
    return after - before if after >= before else after


@dataclass
class Bucket:
    """The readings of one target's samples in one bucket, in time order."""

    target: str
    start: datetime
    samples: int = 0
    reachable: int = 0
    used: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    evicted: list[int] = field(default_factory=list)
    maxmemory: int | None = None
    dbsize: int | None = None

    def add(self, row: Sequence[Any]) -> None:
        """One sample (at, reachable, used_memory, maxmemory, evicted_keys, dbsize); a reading
        it lacks leaves the last one."""
        _, reachable, used, maxmemory, evicted, dbsize = row
        self.samples += 1
        self.reachable += bool(reachable)
        if used is not None:
            self.used.append(used)
            if maxmemory:  # maxmemory 0 is "no limit": no ratio
                self.ratios.append(used / maxmemory)
        if evicted is not None:
            self.evicted.append(evicted)
        self.maxmemory = maxmemory if maxmemory is not None else self.maxmemory
        self.dbsize = dbsize if dbsize is not None else self.dbsize

    def values(self) -> dict[str, Any]:
        """The aggregate row."""
        used, ratios, evicted = self.used, self.ratios, self.evicted
        increase = sum(counter_increase(prev, cur) for prev, cur in pairwise(evicted))
        return {
            "target": self.target,
            "bucket_start": self.start,
            "samples": self.samples,
            "reachable": self.reachable,
            "used_min": min(used, default=None),
            "used_max": max(used, default=None),
            "used_last": used[-1] if used else None,
            "maxmemory_last": self.maxmemory,
            "ratio_min": min(ratios, default=None),
            "ratio_max": max(ratios, default=None),
            "ratio_last": ratios[-1] if ratios else None,
            "evicted_first": evicted[0] if evicted else None,
            "evicted_last": evicted[-1] if evicted else None,
            "evicted_increase": increase,
            "dbsize_last": self.dbsize,
        }


def aggregates(target: str, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """One aggregate per bucket of ``rows`` (a target's samples, oldest first)."""
    buckets: list[Bucket] = []
    for row in rows:
        start = bucket_floor(row[0])
        if not buckets or buckets[-1].start != start:
            buckets.append(Bucket(target, start))
        buckets[-1].add(row)
    return [bucket.values() for bucket in buckets]
