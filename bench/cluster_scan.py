"""The cluster half of ``bench/fleet.py``: a full scan of a 3-shard cluster beside one server.

Imported by ``bench/fleet.py`` (run that). The same session keys are written once into a
real 3-primary Redis Cluster (``bot.redisproc_cluster``) and once into a single
redis-server; each is then fully scanned the way ``/redis-mem diagnose --full`` does
(``bot.wiring.probe_for``: a ``ClusterProbe`` scans the shards in parallel, each on its own
redis-server process). Both scans run with ``REDIS_MEM_SCAN_BUDGET=1.0`` (as fast as
Redis allows) so the ratio measures the parallel shards, not the pacer's share of a core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from redis.crc import key_slot

from bot.config import Settings, Target
from bot.redisproc import RedisServer
from bot.redisproc_cluster import RedisClusterProcs
from bot.wiring import probe_for

VALUE = "x" * 300


@dataclass(frozen=True)
class ScanFigures:
    """One full scan: keys measured, seconds, keys per second."""

    keys: int
    seconds: float

    @property
    def rate(self) -> float:
        """Keys measured per second."""
        return self.keys / self.seconds


def fill_cluster(cluster: RedisClusterProcs, keys: int) -> None:
    """``keys`` session keys, each written to the primary that owns its slot."""
    clients = [redis.Redis.from_url(url) for url in cluster.seed_urls]
    owners = [_owner(client) for client in clients]
    pipes = [client.pipeline(transaction=False) for client in clients]
    for i in range(keys):
        key = f"session:{i}"
        slot = key_slot(key.encode())
        index = next(n for n, ranges in enumerate(owners) if any(a <= slot <= b for a, b in ranges))
        pipes[index].set(key, VALUE, ex=3600)
        if i % 5000 == 4999:
            for pipe in pipes:
                pipe.execute()
    for pipe, client in zip(pipes, clients, strict=True):
        pipe.execute()
        client.close()


def fill_server(server: RedisServer, keys: int) -> None:
    """The same ``keys`` session keys in one server's db 0."""
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(keys):
            pipe.set(f"session:{i}", VALUE, ex=3600)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    client.close()


def _owner(client: redis.Redis) -> list[tuple[int, int]]:
    line = next(r for r in client.execute_command("CLUSTER", "NODES").decode().splitlines()
                if "myself" in r)  # fmt: skip
    ranges = [field.split("-") for field in line.split()[8:] if not field.startswith("[")]
    return [(int(r[0]), int(r[-1])) for r in ranges]


def full_scan(target: Target, timeout: float) -> ScanFigures:
    """One full scan of ``target`` through the bot's probe; its keys and seconds."""
    settings = Settings(scan_budget=1.0, check_timeout=timeout)
    probe = probe_for(settings)(target)
    began = time.perf_counter()
    snapshot = probe.snapshot(pattern="session:*", sample_size=1000, full=True)
    seconds = time.perf_counter() - began
    return ScanFigures(len(snapshot.sample.keys), seconds)


def measure(keys: int, runs: int, timeout: float) -> tuple[ScanFigures, ScanFigures]:
    """The best of ``runs`` full scans of each: (single server, 3-shard cluster)."""
    with RedisClusterProcs() as cluster, RedisServer() as server:
        fill_cluster(cluster, keys)
        fill_server(server, keys)
        single = Target(name="single", redis_url=server.url)
        sharded = Target(name="sessions", mode="cluster", seeds=tuple(cluster.seed_urls[:1]))
        singles = [full_scan(single, timeout) for _ in range(runs)]
        clusters = [full_scan(sharded, timeout) for _ in range(runs)]
    return min(singles, key=lambda f: f.seconds), min(clusters, key=lambda f: f.seconds)


def report(keys: int, runs: int, timeout: float) -> None:
    """Measure and print the cluster lines of bench/fleet.py."""
    single, cluster = measure(keys, runs, timeout)
    print(f"full scan, {keys} session keys (best of {runs}, REDIS_MEM_SCAN_BUDGET=1.0):")
    print(f"  baseline: one server:       {single.seconds:7.3f} s  {single.rate:9.0f} keys/s"
          f"  ({single.keys} keys)")  # fmt: skip
    ratio = cluster.rate / single.rate
    print(f"  3-shard cluster, parallel:  {cluster.seconds:7.3f} s  {cluster.rate:9.0f} keys/s"
          f"  ({cluster.keys} keys) = {ratio:.2f}x the one server")  # fmt: skip
    verdict = "met" if ratio >= 1.5 and cluster.keys == single.keys == keys else "MISSED"
    print(f"goal: cluster >= 1.5x the one server's keys/s, every key measured: {verdict}")
