"""The idlest keys of a keyspace in O(count) memory: a bounded heap over a streaming scan."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable

import redis

from bot.redisinfo.fullscan import scan_batches
from bot.redisinfo.snapshot import KeyStat


def idlest(
    client: redis.Redis,
    *,
    pattern: str,
    count: int,
    lfu: bool,
    rate: int | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[tuple[str, int]]:
    """The ``count`` keys idle longest: (key, idle seconds), or under LFU (key, counter)
    with the lowest counter first. Redis errors propagate (the caller wraps them)."""
    top = IdlestHeap(count, lfu=lfu)
    for batch in scan_batches(
        client, pattern=pattern, lfu=lfu, rate=rate, clock=clock, sleep=sleep
    ):
        top.add(batch)
    return top.idlest_first()


class IdlestHeap:
    """Keeps the ``count`` idlest keys seen: a min-heap whose top is the least idle kept."""

    def __init__(self, count: int, *, lfu: bool) -> None:
        self.count = count
        self.lfu = lfu
        self._heap: list[tuple[int, str]] = []  # (idleness, key): bigger is idler
        self._kept: set[str] = set()  # SCAN may return a key twice: keep it once

    def add(self, stats: Iterable[KeyStat]) -> None:
        """Consider each measured key (keys whose age is unknown are ignored)."""
        for stat in stats:
            age = stat.freq if self.lfu else stat.idle_seconds
            if age is None or stat.key in self._kept or self.count <= 0:
                continue
            item = (-age if self.lfu else age, stat.key)
            if len(self._heap) < self.count:
                heapq.heappush(self._heap, item)
                self._kept.add(stat.key)
            elif item > self._heap[0]:
                dropped = heapq.heapreplace(self._heap, item)
                self._kept.discard(dropped[1])
                self._kept.add(stat.key)

    def idlest_first(self) -> list[tuple[str, int]]:
        """(key, idle seconds or LFU counter), idlest first."""
        ordered = sorted(self._heap, reverse=True)
        return [(key, -score if self.lfu else score) for score, key in ordered]
