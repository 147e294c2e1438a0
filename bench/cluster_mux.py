"""An experiment, not the bot's code: one thread driving every shard's full scan.

    .venv/bin/python bench/cluster_mux.py [--keys 150000] [--runs 2]

``bench/cluster_scan.py`` measures the bot's cluster scan: one thread per shard, each
running the standalone scan (``bot.redisinfo.fullscan``), and on these 2-core machines it
misses the issue's 1.5x (docs/decisions/cluster.md). This prototype shows what the
alternative named there would buy: one thread keeps one script call in flight on every
shard's connection and takes the replies as ``select`` reports them, with no GIL shared
between scan threads. It has no pacing (like ``REDIS_MEM_SCAN_BUDGET=1.0``), a fixed
batch of ``COUNT`` keys, and no error recovery, so it is compared with the bot's scans
at budget 1.0, each printed with the CPU the bot and the Redis processes spent.
"""

from __future__ import annotations

import argparse
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cluster_scan import fill_cluster, fill_server, redis_cpu  # noqa: E402
from bot.config import Settings, Target  # noqa: E402
from bot.redisinfo.client import connect  # noqa: E402
from bot.redisinfo.fullscan import BATCH_SCRIPT, eval_script, unpack_reply  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402
from bot.redisproc_cluster import RedisClusterProcs  # noqa: E402
from bot.wiring import probe_for  # noqa: E402

COUNT = 20  # about what the bot's pacer settles on for these keys (0.25 ms calls)
PATTERN = "session:*"


def multiplexed(urls: list[str]) -> int:
    """Every key of every node at ``urls``, one call in flight on each; the keys measured."""
    clients = [connect(url) for url in urls]
    live: dict[int, Any] = {}
    for client in clients:
        eval_script(client.execute_command, BATCH_SCRIPT, (), 0, PATTERN, 1, "0")  # loaded
        conn = client.connection_pool.get_connection()
        conn.send_command("EVALSHA", BATCH_SCRIPT.sha, 0, 0, PATTERN, COUNT, "0")
        live[conn._sock.fileno()] = conn
    found = {}
    while live:
        ready, _, _ = select.select(list(live), [], [])
        for fd in ready:
            conn = live[fd]
            reply = conn.read_response()
            cursor = int(reply[0])
            if cursor:
                conn.send_command("EVALSHA", BATCH_SCRIPT.sha, 0, cursor, PATTERN, COUNT, "0")
            else:
                del live[fd]
            found.update({stat.key: stat for stat in unpack_reply(reply, lfu=False)})
    for client in clients:
        client.close()
    return len(found)


def probe_scan(target: Target) -> int:
    """The bot's own full scan at budget 1.0; the keys measured."""
    probe = probe_for(Settings(scan_budget=1.0))(target)
    return len(probe.snapshot(pattern=PATTERN, sample_size=1000, full=True).sample.keys)


def timed(label: str, scan: Callable[[], int], nodes: list[str]) -> None:
    """Run ``scan`` once; print its wall time, keys and both sides' CPU."""
    redis_before, cpu, began = redis_cpu(nodes), time.process_time(), time.perf_counter()
    keys = scan()
    wall = time.perf_counter() - began
    print(f"{label:28} {wall:5.2f} s  bot {time.process_time() - cpu:4.2f} CPU-s"
          f"  Redis {redis_cpu(nodes) - redis_before:4.2f} CPU-s  {keys} keys")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with RedisClusterProcs() as cluster, RedisServer() as server:
        fill_cluster(cluster, args.keys)
        fill_server(server, args.keys)
        single = Target(name="single", redis_url=server.url)
        sharded = Target(name="sessions", mode="cluster", seeds=tuple(cluster.seed_urls[:1]))
        for _ in range(args.runs):
            timed("one server, the bot's scan", lambda: probe_scan(single), [server.url])
            timed("one server, multiplexed", lambda: multiplexed([server.url]), [server.url])
            timed("cluster, the bot's threads", lambda: probe_scan(sharded), cluster.seed_urls)
            timed("cluster, multiplexed", lambda: multiplexed(cluster.seed_urls), cluster.seed_urls)


if __name__ == "__main__":
    main()
