"""``RedisOps`` over every primary of a Redis Cluster target (issue 13).

The primaries are discovered from the seeds when the fix builds its adapters, right
after its fresh diagnosis (as a Sentinel target asks for its current primary then), and
each is driven through its own ``LiveRedisOps``: its own SCAN, its own scripts.

The primaries are worked one after the other, never in parallel: the key cap and the
rate of ``RemediationLimits`` hold for the whole fix, so in parallel the fix could not
end sooner (keys changed / rate) and the cap would have to be shared exactly between
racing batches; one at a time, the cap left is simply handed to the next primary, the
progress counts only go up, and a Cancel stops before the next batch wherever it is.
A primary that cannot be reached is reported by name and the others still run; nothing
is rolled back (see docs/decisions/cluster.md).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.crc import key_slot

from bot.config import Target
from bot.errors import RedisMemError, RedisUnavailable
from bot.redisinfo.client import DEFAULT_TIMEOUT, key_bytes
from bot.redisinfo.cluster import discover, primaries
from bot.redisinfo.ops import LiveRedisOps
from bot.remediation.ports import (
    BulkProgress,
    BulkResult,
    LiveSetting,
    NodeOutcome,
    StopFlag,
)
from bot.shards import Shard

UNREACHABLE = "unreachable"
NO_CONFIG = "CONFIG unavailable"
# One primary's run of a key action: (its ops, keys it may still change under the cap,
# its progress).
NodeRun = Callable[[LiveRedisOps, int, BulkProgress], BulkResult]


@dataclass(frozen=True)
class Primary:
    """One primary: its address, the slots it serves, and the ops on it."""

    address: str
    slots: tuple[tuple[int, int], ...]
    ops: LiveRedisOps


class ClusterRedisOps:
    """``RedisOps`` on every primary of a cluster, one after the other (module doc)."""

    def __init__(
        self,
        *,
        nodes: Sequence[tuple[Shard, str]],
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``nodes``: each shard with its primary's URL (``bot.redisinfo.cluster.primaries``)."""
        if not nodes:
            raise RedisUnavailable("the cluster has no primary that serves slots")
        self.timeout = timeout
        self.primaries = tuple(
            Primary(shard.primary, shard.slots, _ops(url, timeout, clock, sleep))
            for shard, url in nodes
        )
        self._down: set[str] = set()  # primaries that failed a read of this fix
        ranges = sorted(
            ((first, last, p) for p in self.primaries for first, last in p.slots),
            key=lambda r: r[0],  # a Primary does not compare: never reach it
        )
        self._starts = [first for first, _, _ in ranges]
        self._ranges = ranges

    @classmethod
    def discover(cls, target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> ClusterRedisOps:
        """The ops on the primaries the seeds name now (RedisUnavailable: no seed answered)."""
        topology = discover(target, timeout=timeout)
        return cls(nodes=primaries(target, topology), timeout=timeout)

    def __repr__(self) -> str:
        return f"ClusterRedisOps({', '.join(p.address for p in self.primaries)})"

    def config_get(self, name: str) -> str | None:
        """The value every primary has; when they differ, which one has which, one line.

        A primary that does not answer is shown as ``unreachable on <address>`` and not
        asked again by this fix's reads (each would cost the timeout); when none answers,
        RedisUnavailable. None: CONFIG is unavailable on every primary.
        """
        seen: dict[str, list[str]] = {}
        reasons: list[str] = []
        for p in self.primaries:
            value = UNREACHABLE if p.address in self._down else self._read(p, name, reasons)
            seen.setdefault(NO_CONFIG if value is None else value, []).append(p.address)
        if set(seen) == {UNREACHABLE}:
            raise RedisUnavailable(
                f"no primary of the cluster answered CONFIG GET {name}: {'; '.join(reasons)}"
                if reasons
                else f"no primary of the cluster answered CONFIG GET {name}"
            )
        if len(seen) == 1:
            only = next(iter(seen))
            return None if only == NO_CONFIG else only
        return "; ".join(f"{value} on {', '.join(where)}" for value, where in seen.items())

    def _read(self, p: Primary, name: str, reasons: list[str]) -> str | None:
        try:
            return p.ops.config_get(name)
        except RedisMemError as err:
            self._down.add(p.address)
            reasons.append(f"{p.address}: {err}")
            return UNREACHABLE

    def config_set(self, name: str, value: str) -> LiveSetting:
        """CONFIG SET on every primary; ``applied`` only when all took it, ``nodes`` says
        which did and why the others did not. None reached: RedisUnavailable (none changed).

        A primary is tried even when a read of this fix failed on it: the write is the fix.
        """
        outcomes = []
        for p in self.primaries:
            try:
                got = p.ops.config_set(name, value)
            except RedisMemError as err:
                outcomes.append(NodeOutcome(p.address, False, f"unreachable: {_cause(err)}"))
                continue
            outcomes.append(NodeOutcome(p.address, got.applied, got.reason))
        failed = [o for o in outcomes if not o.applied]
        if failed and all(o.reason.startswith("unreachable") for o in outcomes):
            raise RedisUnavailable(
                f"no primary of the cluster could be reached for CONFIG SET {name}: "
                + "; ".join(f"{o.address} {o.reason}" for o in outcomes)
            )
        reason = "; ".join(f"{o.address} {o.reason}" for o in failed)
        return LiveSetting(name, value, not failed, reason, tuple(outcomes))

    def expire_without_ttl(
        self,
        *,
        pattern: str,
        seconds: int,
        max_keys: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
    ) -> BulkResult:
        """``EXPIRE NX`` primary by primary; at most ``max_keys`` changed IN ALL (module doc)."""

        def run(ops: LiveRedisOps, left: int, report: BulkProgress) -> BulkResult:
            return ops.expire_without_ttl(
                pattern=pattern, seconds=seconds, max_keys=left, rate=rate,
                progress=report, should_stop=should_stop,
            )  # fmt: skip

        work = [(p, run) for p in self.primaries]
        return _sequential(work, cap=max_keys, progress=progress, should_stop=should_stop)

    def idlest_keys(self, *, pattern: str, count: int, rate: int | None) -> list[tuple[str, int]]:
        """The ``count`` idlest across the cluster: each primary's idlest, merged.

        Every primary must answer (RedisUnavailable names the one that did not): the
        sessions chosen for deletion must be the idlest of the whole keyspace, not of the
        shards that happened to answer. Primaries whose policies disagree on LFU (a
        counter) and LRU (idle seconds) cannot be compared: refused, one line.
        """
        lfu_of = {p.address: self._lfu(p) for p in self.primaries}
        if len(set(lfu_of.values())) > 1:
            lfu_on = ", ".join(a for a, lfu in lfu_of.items() if lfu)
            raise RedisUnavailable(
                f"the primaries disagree on the eviction policy (LFU on {lfu_on}, LRU on the "
                "others): their idle times and LFU counters cannot be compared; set one policy "
                "on every primary first (set-eviction-policy)"
            )
        lfu = any(lfu_of.values())
        found: list[tuple[str, int]] = []
        for p in self.primaries:
            try:
                found.extend(p.ops.idlest_keys(pattern=pattern, count=count, rate=rate))
            except RedisUnavailable as err:
                raise RedisUnavailable(f"primary {p.address}: {err}") from None
        found.sort(key=lambda item: item[1], reverse=not lfu)  # stable: each node's order kept
        return found[:count]

    def _lfu(self, p: Primary) -> bool:
        try:
            return p.ops.uses_lfu()
        except RedisUnavailable as err:
            raise RedisUnavailable(f"primary {p.address}: {err}") from None

    def unlink_if_idle(
        self,
        *,
        keys: list[str],
        min_idle_seconds: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
        max_freq: int | None = None,
    ) -> BulkResult:
        """Each key UNLINKed (if still idle) on the primary that serves its slot."""
        owned: dict[str, list[str]] = {p.address: [] for p in self.primaries}
        unserved = 0
        for key in keys:
            p = self._owner(key)
            if p is None:
                unserved += 1
            else:
                owned[p.address].append(key)

        def runner(mine: list[str]) -> NodeRun:
            def run(ops: LiveRedisOps, left: int, report: BulkProgress) -> BulkResult:
                if not mine:  # none of the idlest is here: named as done, not asked
                    return BulkResult(0, 0, 0)
                return ops.unlink_if_idle(
                    keys=mine, min_idle_seconds=min_idle_seconds, rate=rate,
                    progress=report, should_stop=should_stop, max_freq=max_freq,
                )  # fmt: skip

            return run

        work = [(p, runner(owned[p.address])) for p in self.primaries]
        # No cap here: the keys were chosen within it (``count`` <= max_keys).
        result = _sequential(work, cap=None, progress=progress, should_stop=should_stop)
        if not unserved:
            return result
        gap = NodeOutcome("(no primary)", False, f"{unserved} keys in slots no primary serves")
        return BulkResult(
            result.scanned + unserved,
            result.changed,
            result.skipped + unserved,
            result.stopped,
            (*result.nodes, gap),
        )

    def _owner(self, key: str) -> Primary | None:
        slot = key_slot(key_bytes(key))
        index = bisect_right(self._starts, slot) - 1
        if index < 0:
            return None
        _, last, p = self._ranges[index]
        return p if slot <= last else None


def _ops(
    url: str, timeout: float, clock: Callable[[], float], sleep: Callable[[float], None]
) -> LiveRedisOps:
    return LiveRedisOps(url=url, timeout=timeout, clock=clock, sleep=sleep)


def _sequential(
    work: Sequence[tuple[Primary, NodeRun]],
    *,
    cap: int | None,
    progress: BulkProgress | None,
    should_stop: StopFlag | None,
) -> BulkResult:
    """Run each primary's share in turn, the cap left and the progress carried across.

    ``stopped``: "stopped" (a Cancel) over errors over "cap"; an error on one primary
    does not stop the others. Every primary unreachable: RedisUnavailable (none touched).
    """
    scanned = changed = 0
    halt: str | None = None  # "stopped" or "cap": the primaries after it do not run
    errors: list[str] = []
    outcomes: list[NodeOutcome] = []
    unreached = 0
    for p, run in work:
        if halt is None and cap is not None and changed >= cap:
            halt = "cap"
        if halt is None and should_stop is not None and should_stop():
            halt = "stopped"
        if halt is not None:
            why = "cancelled" if halt == "stopped" else f"the cap of {cap:,} keys was reached"
            outcomes.append(NodeOutcome(p.address, False, f"not run: {why}"))
            continue
        try:
            left = cap - changed if cap is not None else 0
            got = run(p.ops, left, _offset(progress, scanned, changed))
        except RedisMemError as err:  # raised before its first batch: it is untouched
            unreached += 1
            errors.append(f"{p.address} unreachable: {_cause(err)}")
            outcomes.append(NodeOutcome(p.address, False, f"unreachable: {_cause(err)}"))
            continue
        scanned, changed = scanned + got.scanned, changed + got.changed
        failed = got.stopped is not None and got.stopped.startswith("error")
        outcomes.append(
            NodeOutcome(p.address, not failed, got.stopped or "", got.scanned, got.changed)
        )
        if failed:
            errors.append(f"{p.address} {str(got.stopped).removeprefix('error: ')}")
        elif got.stopped is not None:
            halt = got.stopped
    if work and unreached == len(work):
        raise RedisUnavailable(f"no primary of the cluster could be reached: {'; '.join(errors)}")
    stopped = halt if halt == "stopped" else f"error: {'; '.join(errors)}" if errors else halt
    return BulkResult(scanned, changed, scanned - changed, stopped, tuple(outcomes))


def _offset(progress: BulkProgress | None, scanned: int, changed: int) -> BulkProgress:
    """One primary's progress as the whole fix's: the earlier primaries' counts added."""

    def report(s: int, c: int) -> None:
        if progress is not None:
            progress(scanned + s, changed + c)

    return report


def _cause(err: RedisMemError) -> str:
    """The reason without ``cannot reach Redis at <url>: `` (the address is named already)."""
    text = err.message
    head, sep, rest = text.partition(": ")
    return rest if sep and head.startswith("cannot reach Redis at") else text
