"""ClusterProbe: a ``mode: cluster`` target read as one store, each primary by itself.

On every snapshot the seeds are asked for the primaries (``bot.redisinfo.cluster``:
nothing cached, a failover shows in the next reading), then every primary is read by
the engine a standalone target uses, all at once: INFO and the sample on a thread each
(``LiveRedisProbe``), a full scan of every primary from one thread that keeps a paced
script call in flight on each (``bot.redisinfo.multiscan``). Each primary is its own
Redis with its own core, so a full scan of three shards can end well before one of a
single server holding all the keys.

Each shard gets the whole ``sample_size``, not a share of it: a shard is judged by the
runbook on its own (its TTLs, sizes, idle time), and a third of the sample would leave a
small shard below ``min_sample`` with no verdict. The cost per Redis is a standalone
diagnosis's; the shards are read in parallel, so the wall time is one's.

A primary that does not answer is reported in ``Snapshot.cluster`` (its error) and left
out of the sums; the others are still read. Only when no seed, or no primary, answers
does the snapshot fail (one line, RedisUnavailable).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import redis

from bot.clock import utc_now
from bot.cluster_reading import ClusterReading, ShardReading
from bot.config import Target
from bot.errors import RedisMemError, RedisUnavailable
from bot.redisinfo.client import DEFAULT_TIMEOUT, connect, redis_errors
from bot.redisinfo.cluster import discover, primaries
from bot.redisinfo.info import ServerInfo, read_server_info
from bot.redisinfo.multiscan import ScanNode, scan_nodes
from bot.redisinfo.pacing import DEFAULT_BUDGET
from bot.redisinfo.probe import LiveRedisProbe, snapshot_of
from bot.redisinfo.snapshot import (
    KeySample,
    KeyspaceDb,
    MemoryInfo,
    ProgressFn,
    Snapshot,
    StatsInfo,
)
from bot.shards import Shard, subject

MAX_PARALLEL = 8  # primaries read at once: each one a connection and a thread of ours


class ClusterProbe:
    """``RedisProbe`` of a ``mode: cluster`` target: the whole cluster as one Snapshot,
    each primary's own in ``Snapshot.cluster``."""

    def __init__(
        self,
        *,
        target: Target,
        scan_budget: float = DEFAULT_BUDGET,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
        parallel: int = MAX_PARALLEL,
    ) -> None:
        """``scan_budget`` applies to each primary (its own core); ``timeout`` to the
        seeds' discovery and to each primary's reading."""
        self.name = target.name
        self._target = target
        self._scan_budget = scan_budget
        self._timeout = timeout
        self._clock = clock
        self._parallel = max(1, parallel)

    def __repr__(self) -> str:
        return f"ClusterProbe(name={self.name!r})"

    def snapshot(
        self,
        *,
        pattern: str,
        sample_size: int,
        full: bool = False,
        progress: ProgressFn | None = None,
    ) -> Snapshot:
        """Ask the seeds for the primaries, read every one at once, add them up."""
        topology = discover(self._target, timeout=self._timeout)
        nodes = primaries(self._target, topology)
        if not nodes:
            raise RedisUnavailable(f"the cluster of {self.name} has no primary serving slots")
        summed = _SummedProgress(progress) if progress is not None else None
        if full:
            readings = self._scan_all(nodes, pattern=pattern, summed=summed)
        else:
            readings = self._in_parallel(
                lambda node: self._read(*node, pattern=pattern, size=sample_size), nodes
            )
        reading = ClusterReading(topology=topology, shards=tuple(readings))
        if not reading.readable:
            raise RedisUnavailable(_unreadable(self.name, reading))
        return merge(self.name, reading)

    def _in_parallel(self, read: Callable[[_Node], _T], nodes: Sequence[_Node]) -> list[_T]:
        """``read`` of every node, at most ``parallel`` at once, in the nodes' order."""
        workers = min(self._parallel, len(nodes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cluster-read") as pool:
            return list(pool.map(read, nodes))

    def _read(self, shard: Shard, url: str, *, pattern: str, size: int) -> ShardReading:
        """One primary's sampled snapshot, or its one-line error (the others still count)."""
        probe = LiveRedisProbe(
            name=subject(self.name, shard.name),
            url=url,
            scan_budget=self._scan_budget,
            timeout=self._timeout,
            clock=self._clock,
        )
        try:
            snap = probe.snapshot(pattern=pattern, sample_size=size)
        except RedisMemError as err:
            return ShardReading(shard, error=err.message)
        return ShardReading(shard, snapshot=snap)

    def _scan_all(
        self, nodes: Sequence[_Node], *, pattern: str, summed: _SummedProgress | None
    ) -> list[ShardReading]:
        """Every primary's INFO at once (threads), then all their keys from one thread.

        The full scans are multiplexed (``bot.redisinfo.multiscan``), not a thread each:
        on a host with fewer cores than shards the threads' GIL contention cost the bot
        half as much CPU again (docs/decisions/cluster.md).
        """
        opened = self._in_parallel(lambda node: self._open(*node), nodes)
        ready = [o for o in opened if isinstance(o, _Opened)]
        try:
            scans = scan_nodes(
                [o.scan_node(summed) for o in ready],
                pattern=pattern,
                budget=self._scan_budget,
                timeout=self._timeout,
            )
        finally:
            for o in ready:
                o.client.close()
        scanned = {o.shard.name: scan for o, scan in zip(ready, scans, strict=True)}
        return [
            o if isinstance(o, ShardReading) else o.reading(self.name, scanned[o.shard.name])
            for o in opened
        ]

    def _open(self, shard: Shard, url: str) -> _Opened | ShardReading:
        """A connected client of one primary and its INFO, or the shard's one-line error."""
        taken_at = self._clock()
        try:
            client = connect(url, timeout=self._timeout)
        except RedisMemError as err:
            return ShardReading(shard, error=err.message)
        try:
            with redis_errors(url, timeout=self._timeout):
                info = read_server_info(client)
        except RedisMemError as err:
            client.close()
            return ShardReading(shard, error=err.message)
        return _Opened(shard, url, client, info, taken_at)


_Node = tuple[Shard, str]  # a primary: its shard and its URL
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Opened:
    """A primary ready for its full scan: connected, its INFO read at ``taken_at``."""

    shard: Shard
    url: str
    client: redis.Redis
    info: ServerInfo
    taken_at: datetime

    def scan_node(self, summed: _SummedProgress | None) -> ScanNode:
        """What the multiplexed scan needs of this primary."""
        report = summed.for_shard(self.shard.name) if summed is not None else None
        return ScanNode(self.url, self.client, self.info.dbsize, self.info.lfu, report)

    def reading(self, cluster: str, scanned: KeySample | RedisUnavailable) -> ShardReading:
        """The shard's reading once its keys are scanned (or the scan failed)."""
        if isinstance(scanned, RedisUnavailable):
            return ShardReading(self.shard, error=scanned.message)
        name = subject(cluster, self.shard.name)
        snap = snapshot_of(name, self.client, taken_at=self.taken_at, info=self.info,
                           sample=scanned)  # fmt: skip
        return ShardReading(self.shard, snapshot=snap)


def _unreadable(name: str, reading: ClusterReading) -> str:
    """Why no primary could be read, one line; the cluster's own problem first.

    A failed shard makes the others refuse key commands (CLUSTERDOWN, while
    ``cluster-require-full-coverage`` is on): then the cause is the failed shard, and the
    refusals only follow from it.
    """
    # Each reason names its node already; three of them say enough on one line.
    reasons = "; ".join(str(r.error) for r in reading.shards[:3])
    more = f"; and {len(reading.shards) - 3} more" if len(reading.shards) > 3 else ""
    problem = reading.topology.problem
    if problem is not None:
        return f"the cluster {name} is down ({problem}): no primary could be read: {reasons}{more}"
    return f"no primary of {name} answered: {reasons}{more}"


class _SummedProgress:
    """One progress line for the whole cluster: every shard's latest (scanned, total),
    added up. The shards report from their own threads; the sink is called under a lock,
    so it never runs twice at once (the CLI's bar and Slack's edits are not thread-safe)."""

    def __init__(self, sink: ProgressFn) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int]] = {}

    def for_shard(self, name: str) -> ProgressFn:
        """The callback one shard's scan reports to."""

        def report(scanned: int, total: int) -> None:
            with self._lock:
                self._seen[name] = (scanned, total)
                self._sink(
                    sum(s for s, _ in self._seen.values()), sum(t for _, t in self._seen.values())
                )

        return report


# --- the whole cluster as one snapshot ------------------------------------------------------


def merge(name: str, reading: ClusterReading) -> Snapshot:
    """The readable shards' snapshots as one: memory, stats, keys and samples added up.

    maxmemory is 0 (no limit) when any shard has none: the cluster is then unbounded too.
    The policy is the shards' most common one (a differing shard is the diagnosis's
    finding); the settings and persistence are the first shard's (drift is compared with
    the one ConfigMap every node is started from).
    """
    snaps = [r.snapshot for r in reading.readable if r.snapshot is not None]
    first = snaps[0]
    policies = Counter(s.maxmemory_policy for s in snaps)
    return Snapshot(
        target=name,
        taken_at=min(s.taken_at for s in snaps),
        redis_version="/".join(sorted({s.redis_version for s in snaps})),
        memory=_memory([s.memory for s in snaps], policies.most_common(1)[0][0]),
        stats=StatsInfo(
            evicted_keys=sum(s.stats.evicted_keys for s in snaps),
            expired_keys=sum(s.stats.expired_keys for s in snaps),
            keyspace_hits=sum(s.stats.keyspace_hits for s in snaps),
            keyspace_misses=sum(s.stats.keyspace_misses for s in snaps),
        ),
        keyspace=_keyspace(snaps),
        db=first.db,
        dbsize=sum(s.dbsize for s in snaps),
        maxmemory_policy=policies.most_common(1)[0][0],
        policy_source="info" if any(s.policy_source == "info" for s in snaps) else "config",
        sample=_sample([s.sample for s in snaps]),
        settings=dict(first.settings),
        persistence=dict(first.persistence),
        cluster=reading,
    )


def _memory(mems: Sequence[MemoryInfo], policy: str) -> MemoryInfo:
    used = sum(m.used_memory for m in mems)
    rss = sum(m.used_memory_rss for m in mems)
    frag_bytes = [m.allocator_frag_bytes for m in mems]
    ratios = [m.allocator_frag_ratio for m in mems]
    alloc_bytes = None if None in frag_bytes else sum(b or 0 for b in frag_bytes)
    alloc_ratio = None
    if None not in ratios and used > 0:  # weighted by what each shard holds
        alloc_ratio = (
            sum((r or 0) * m.used_memory for r, m in zip(ratios, mems, strict=True)) / used
        )
    datasets = [m.used_memory_dataset for m in mems]
    return MemoryInfo(
        used_memory=used,
        used_memory_rss=rss,
        used_memory_peak=sum(m.used_memory_peak for m in mems),
        maxmemory=0 if any(m.maxmemory == 0 for m in mems) else sum(m.maxmemory for m in mems),
        maxmemory_policy=policy,
        mem_fragmentation_ratio=rss / used if used > 0 else 0.0,
        mem_fragmentation_bytes=sum(m.mem_fragmentation_bytes for m in mems),
        allocator_frag_ratio=alloc_ratio,
        allocator_frag_bytes=alloc_bytes,
        used_memory_dataset=None if None in datasets else sum(d or 0 for d in datasets),
        # Several nodes may share a host: adding their hosts' memory would count it twice.
        total_system_memory=None,
    )


def _keyspace(snaps: Sequence[Snapshot]) -> tuple[KeyspaceDb, ...]:
    keys: Counter[int] = Counter()
    expires: Counter[int] = Counter()
    ttl_weight: Counter[int] = Counter()
    for snap in snaps:
        for db in snap.keyspace:
            keys[db.db] += db.keys
            expires[db.db] += db.expires
            ttl_weight[db.db] += db.avg_ttl_ms * db.expires
    return tuple(
        KeyspaceDb(db, keys[db], expires[db], ttl_weight[db] // expires[db] if expires[db] else 0)
        for db in sorted(keys)
    )


def _sample(samples: Sequence[KeySample]) -> KeySample:
    """The shards' samples as one sample of the whole cluster, every key equally likely.

    Each shard measured up to the same ``sample_size`` keys, so a small shard's keys are
    over-represented in a plain concatenation (its 99 keys all measured beside 500 of a
    hot shard's 5,100): the whole's TTL share and counts would lean to the small shards.
    So every shard keeps the same fraction of its session keys, the smallest fraction
    any shard measured: a random prefix of its sample (a sample's order is random). A
    full scan measured every key everywhere: nothing is dropped.
    """
    first = samples[0]
    fractions = [
        len(s.keys) / s.session_keys_estimate for s in samples if s.session_keys_estimate > 0
    ]
    fraction = min(min(fractions, default=1.0), 1.0)
    kept = [s.keys[: min(len(s.keys), round(fraction * s.session_keys_estimate))] for s in samples]
    return KeySample(
        mode="full" if all(s.mode == "full" for s in samples) else "sampled",
        pattern=first.pattern,
        keys=tuple(key for keys in kept for key in keys),
        probed=sum(s.probed for s in samples),
        matched=sum(s.matched for s in samples),
        session_keys_estimate=sum(s.session_keys_estimate for s in samples),
        method=first.method,
    )
