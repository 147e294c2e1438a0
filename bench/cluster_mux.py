"""The cluster's full scan from one thread (the bot's) against a thread per shard (before).

    .venv/bin/python bench/cluster_mux.py [--keys 150000] [--runs 3]

``ClusterProbe`` scans every primary from one thread that keeps a paced script call in
flight on each (``bot.redisinfo.multiscan``). Until this change it ran the standalone
scan (``LiveRedisProbe``) on a thread per primary; that design is rebuilt here from the
same parts as the baseline. Both scan the same 3-primary cluster, in turn within each
run (so a slow moment of the VM lands on both), at the default budget and at 1.0, and
each line prints the wall time and the CPU the bot (this process) and the Redis
processes spent; the ratio is the threads' time over the bot's (above 1: the bot's is
faster).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run alone: bot/ importable

from bench.cluster_scan import ScanFigures, fill_cluster, redis_cpu
from bot.config import Target
from bot.redisinfo.cluster import discover, primaries
from bot.redisinfo.cluster_probe import ClusterProbe
from bot.redisinfo.pacing import DEFAULT_BUDGET
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisproc_cluster import RedisClusterProcs

PATTERN = "session:*"


def multiplexed(target: Target, budget: float) -> int:
    """The bot's full scan of the cluster; the keys measured."""
    probe = ClusterProbe(target=target, scan_budget=budget)
    return len(probe.snapshot(pattern=PATTERN, sample_size=1000, full=True).sample.keys)


def threaded(target: Target, budget: float) -> int:
    """The design it replaced: each primary's standalone full scan on a thread of its own."""
    nodes = primaries(target, discover(target, timeout=5.0))

    def scan(url: str) -> int:
        probe = LiveRedisProbe(name="shard", url=url, scan_budget=budget)
        return len(probe.snapshot(pattern=PATTERN, sample_size=1000, full=True).sample.keys)

    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return sum(pool.map(scan, [url for _, url in nodes]))


def timed(scan: Callable[[], int], nodes: list[str]) -> ScanFigures:
    """Run ``scan`` once: its keys, wall time and both sides' CPU."""
    redis_before, cpu, began = redis_cpu(nodes), time.process_time(), time.perf_counter()
    keys = scan()
    seconds = time.perf_counter() - began
    return ScanFigures(keys, seconds, time.process_time() - cpu, redis_cpu(nodes) - redis_before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"full scan of a 3-primary cluster, {args.keys} session keys, best of {args.runs}:")
    with RedisClusterProcs() as cluster:
        fill_cluster(cluster, args.keys)
        target = Target(name="sessions", mode="cluster", seeds=tuple(cluster.seed_urls[:1]))
        for budget in (DEFAULT_BUDGET, 1.0):
            pairs = [
                (
                    timed(lambda b=budget: threaded(target, b), cluster.seed_urls),
                    timed(lambda b=budget: multiplexed(target, b), cluster.seed_urls),
                )
                for _ in range(args.runs)
            ]
            before = min((p[0] for p in pairs), key=lambda f: f.seconds)
            after = min((p[1] for p in pairs), key=lambda f: f.seconds)
            print(f"  budget {budget:g}: baseline a thread per shard {before.seconds:5.2f} s;"
                  f" the bot's one thread {after.seconds:5.2f} s"
                  f" = {before.seconds / after.seconds:.2f}x ({after.keys} keys)")  # fmt: skip
            for name, run in (("threads", before), ("one thread", after)):
                print(f"    {name}: bot {run.bot_cpu:.2f} CPU-s, Redis {run.redis_cpu:.2f} CPU-s")


if __name__ == "__main__":
    main()
