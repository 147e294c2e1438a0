"""The cluster half of ``bench/fleet.py``: a full scan of a 3-shard cluster beside one server.

    .venv/bin/python bench/cluster_scan.py [--keys 150000] [--runs 3] [--timeout 5]

Run alone, or as the last part of ``bench/fleet.py``. The same session keys are written once into a
real 3-primary Redis Cluster (``bot.redisproc_cluster``) and once into a single
redis-server; each is then fully scanned the way ``/redis-mem diagnose --full`` does
(``bot.wiring.probe_for``: a ``ClusterProbe`` scans the shards in parallel from one
thread, ``bot.redisinfo.multiscan``, each on its own redis-server process). Both are
measured at the default ``REDIS_MEM_SCAN_BUDGET`` (0.5:
each Redis may spend half of its own core on the scan, so three shards may spend three
halves), which is what a user's ``--full`` gets, and again at 1.0 (as fast as Redis
allows), where the bot's own Python (one interpreter parsing every key's reply) is the
bound for both, so the ratio shows how much of the parallel scan that one process keeps.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.crc import key_slot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run alone: bot/ importable

from bot.config import Settings, Target
from bot.redisinfo.pacing import DEFAULT_BUDGET
from bot.redisproc import RedisServer
from bot.redisproc_cluster import RedisClusterProcs
from bot.wiring import probe_for

VALUE = "x" * 300


@dataclass(frozen=True)
class ScanFigures:
    """One full scan: keys measured, seconds, the CPU seconds the bot (every thread of this
    process) and the Redis processes (INFO cpu, user + sys) spent on it."""

    keys: int
    seconds: float
    bot_cpu: float = 0.0
    redis_cpu: float = 0.0

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


def full_scan(target: Target, nodes: list[str], timeout: float, budget: float) -> ScanFigures:
    """One full scan of ``target`` (whose Redis processes are ``nodes``, URLs) through the
    bot's probe: its keys, seconds and CPU."""
    settings = Settings(scan_budget=budget, check_timeout=timeout)
    probe = probe_for(settings)(target)
    redis_before, cpu_before, began = redis_cpu(nodes), time.process_time(), time.perf_counter()
    snapshot = probe.snapshot(pattern="session:*", sample_size=1000, full=True)
    seconds = time.perf_counter() - began
    bot_cpu, spent = time.process_time() - cpu_before, redis_cpu(nodes) - redis_before
    return ScanFigures(len(snapshot.sample.keys), seconds, bot_cpu, spent)


def redis_cpu(nodes: list[str]) -> float:
    """CPU seconds (user + sys) the Redis processes at ``nodes`` have used so far."""
    total = 0.0
    for url in nodes:
        client = redis.Redis.from_url(url)
        info = client.info("cpu")
        client.close()
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


Pair = tuple[ScanFigures, ScanFigures]


def measure(keys: int, runs: int, timeout: float) -> dict[float, Pair]:
    """By budget, the best of ``runs`` full scans of each: (single server, 3-shard cluster).

    The two are scanned in turn within each run, so a slow moment of the VM lands on both.
    """
    with RedisClusterProcs() as cluster, RedisServer() as server:
        fill_cluster(cluster, keys)
        fill_server(server, keys)
        single = Target(name="single", redis_url=server.url)
        sharded = Target(name="sessions", mode="cluster", seeds=tuple(cluster.seed_urls[:1]))
        figures: dict[float, Pair] = {}
        for budget in (DEFAULT_BUDGET, 1.0):
            pairs = [
                (
                    full_scan(single, [server.url], timeout, budget),
                    full_scan(sharded, cluster.seed_urls, timeout, budget),
                )
                for _ in range(runs)
            ]
            figures[budget] = (
                min((p[0] for p in pairs), key=lambda f: f.seconds),
                min((p[1] for p in pairs), key=lambda f: f.seconds),
            )
    return figures


def report(keys: int, runs: int, timeout: float) -> None:
    """Measure and print the cluster lines of bench/fleet.py."""
    print(f"full scan, {keys} session keys, best of {runs} (REDIS_MEM_SCAN_BUDGET):")
    for budget, (single, cluster) in measure(keys, runs, timeout).items():
        ratio = cluster.rate / single.rate
        print(f"  budget {budget:g}: baseline one server {single.seconds:6.2f} s"
              f" {single.rate:8.0f} keys/s; 3-shard cluster {cluster.seconds:6.2f} s"
              f" {cluster.rate:8.0f} keys/s = {ratio:.2f}x ({cluster.keys} keys)")  # fmt: skip
        for name, run in (("one server", single), ("cluster", cluster)):
            print(f"    {name}: bot {run.bot_cpu:.2f} CPU-s, Redis {run.redis_cpu:.2f} CPU-s")
        if budget == DEFAULT_BUDGET:
            whole = cluster.keys == single.keys == keys
            verdict = "met" if ratio >= 1.5 and whole else "MISSED"
            print(f"goal: cluster >= 1.5x the one server's keys/s at the default budget,"
                  f" every key measured: {verdict}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    report(args.keys, args.runs, args.timeout)


if __name__ == "__main__":
    main()
