"""Benchmark the full scan with redis-py's two reply parsers, in one run.

    .venv/bin/python bench/parser.py [--keys 150000] [--runs 3]

Why ``redis[hiredis]`` is a dependency: the same full scan (``bot.redisinfo.fullscan.
scan_sessions`` at budget 1.0, what ``diagnose --full`` runs) of one throwaway
redis-server holding ``--keys`` session keys, through a client set up as
``bot.redisinfo.client.client_for`` sets one up, once with redis-py's pure-Python RESP2
parser (the baseline: what redis-py uses without hiredis) and once with hiredis, in
turn within each run. Prints the best of ``--runs`` of each and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import redis
from redis._parsers import _HiredisParser, _RESP2Parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cluster_scan import fill_server  # noqa: E402
from bot.redisinfo.fullscan import scan_sessions  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402


def timed_scan(url: str, parser: type, dbsize: int) -> float:
    """Seconds of one full scan through a client with reply parser ``parser``."""
    client = redis.Redis.from_url(
        url,
        protocol=2,
        decode_responses=True,
        encoding_errors="surrogateescape",
        parser_class=parser,
    )
    began = time.perf_counter()
    sample = scan_sessions(client, pattern="session:*", dbsize=dbsize, lfu=False, budget=1.0)
    seconds = time.perf_counter() - began
    client.close()
    if len(sample.keys) != dbsize:
        raise SystemExit(f"the scan measured {len(sample.keys)} keys, not {dbsize}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        fill_server(server, args.keys)
        python, hiredis = [], []
        for _ in range(args.runs):
            python.append(timed_scan(server.url, _RESP2Parser, args.keys))
            hiredis.append(timed_scan(server.url, _HiredisParser, args.keys))
    base, fast = min(python), min(hiredis)
    print(f"full scan of {args.keys} session keys, best of {args.runs}:")
    print(f"  baseline: redis-py's Python parser  {base:6.2f} s")
    print(f"  hiredis                              {fast:6.2f} s  ({base / fast:.2f}x faster)")


if __name__ == "__main__":
    main()
