"""Benchmark the Redis side of remediation: ``expire-keys-without-ttl``.

    .venv/bin/python bench/remediation.py [--keys 200000] [--naive-keys 20000]
                                          [--requests 100000] [--runs 3] [--rate N]

Starts its own redis-server (never the one on 6379), loads ``--keys`` TTL-less
session keys, then prints:

- keys/s of ``LiveRedisOps.expire_without_ttl`` unthrottled (one Lua call per SCAN
  batch) against a naive loop (redis-py, one ``EXPIRE key s NX`` round trip per key,
  on ``--naive-keys`` keys), and the ratio. Goal: ours >= 100k keys/s.
- the p99 latency a concurrent ``redis-benchmark -t get,set -c 10`` sees without
  and with ``expire_without_ttl`` running at the default rate limit
  (``RemediationLimits().rate``), medians of ``--runs`` interleaved runs. Goal: added
  p99 < 1 ms.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.redisinfo.ops import LiveRedisOps  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402
from bot.remediation.model import RemediationLimits  # noqa: E402
from bot.remediation.ports import BulkResult  # noqa: E402

PATTERN = "session:*"
TTL = 86400
TESTS = ("SET", "GET")


def load_sessions(url: str, count: int) -> None:
    """``count`` session keys without a TTL (any old ones are dropped first)."""
    client = redis.Redis.from_url(url)
    client.flushall()
    value = b"s" * 200
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"session:{i:08d}", value)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


def ours(url: str, *, rate: int | None) -> tuple[BulkResult, float]:
    """Our clean-up over the whole keyspace: the result and the seconds it took."""
    ops = LiveRedisOps(url=url)
    started = time.perf_counter()
    result = ops.expire_without_ttl(pattern=PATTERN, seconds=TTL, max_keys=10**9, rate=rate)
    return result, time.perf_counter() - started


def naive(url: str, *, keys: int) -> float:
    """One EXPIRE NX round trip per key over ``keys`` keys: keys/s."""
    client = redis.Redis.from_url(url)
    names = [f"session:{i:08d}" for i in range(keys)]
    started = time.perf_counter()
    for name in names:
        client.expire(name, TTL, nx=True)
    seconds = time.perf_counter() - started
    client.close()
    return keys / seconds


def script_cost(url: str) -> float:
    """Microseconds Redis spends per EVALSHA (one batch), from INFO commandstats."""
    stats = redis.Redis.from_url(url, decode_responses=True).info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))


def redis_benchmark(port: int, requests: int) -> dict[str, float]:
    """p99 latency (ms) per test of ``redis-benchmark -t get,set -c 10 --csv``."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "get,set", "-n", str(requests),
         "-c", "10", "--csv"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = csv.DictReader(io.StringIO(out))
    return {row["test"]: float(row["p99_latency_ms"]) for row in rows}


def under_load(url: str, port: int, *, requests: int, rate: int) -> dict[str, float]:
    """redis-benchmark's p99 while our clean-up runs at ``rate`` in a thread."""
    load_sessions(url, _keys_needed(requests, rate))
    started = threading.Event()
    outcome: list[BulkResult] = []

    def run() -> None:
        ops = LiveRedisOps(url=url)
        result = ops.expire_without_ttl(
            pattern=PATTERN, seconds=TTL, max_keys=10**9, rate=rate,
            progress=lambda *_: started.set(),
        )  # fmt: skip
        outcome.append(result)

    worker = threading.Thread(target=run)
    worker.start()
    if not started.wait(timeout=30):
        sys.exit("the clean-up did not start within 30 s")
    p99 = redis_benchmark(port, requests)
    still_running = worker.is_alive()
    worker.join()
    if not still_running:
        print("  warning: the clean-up ended before redis-benchmark did; load more keys")
    if not outcome or outcome[0].stopped is not None:
        print(f"  warning: the clean-up did not complete: {outcome}")
    return p99


def _keys_needed(requests: int, rate: int) -> int:
    # redis-benchmark here does ~40k requests/s per test; keep the clean-up busy
    # for twice as long as both tests take.
    return max(50_000, int(2 * 2 * requests / 40_000 * rate))


def bench_speed(url: str, *, keys: int, naive_keys: int) -> None:
    load_sessions(url, keys)
    slow = naive(url, keys=naive_keys)
    load_sessions(url, keys)
    redis.Redis.from_url(url).config_resetstat()
    result, seconds = ours(url, rate=None)
    fast = result.changed / seconds
    print(f"\nexpire_without_ttl on {keys:,} TTL-less keys (one run)")
    print(f"  {'ours, unthrottled (Lua per batch)':<42} {fast:>12,.0f} keys/s  ({seconds:.2f} s)")
    print(
        f"  {'naive loop, one EXPIRE NX per key':<42} {slow:>12,.0f} keys/s  ({naive_keys:,} keys)"
    )
    print(f"  {'ratio':<42} {fast / slow:>12.1f}x")
    print(f"  Redis busy per batch (EVALSHA): {script_cost(url):.0f} us")
    print(f"  result: {result}")
    print(f"  goal >= 100,000 keys/s: {'met' if fast >= 100_000 else 'NOT met'}")


def bench_latency(server: RedisServer, *, requests: int, runs: int, rate: int) -> None:
    base: dict[str, list[float]] = {test: [] for test in TESTS}
    busy: dict[str, list[float]] = {test: [] for test in TESTS}
    for _ in range(runs):  # interleaved, so drift hits both sides alike
        for test, p99 in redis_benchmark(server.port, requests).items():
            base[test].append(p99)
        for test, p99 in under_load(server.url, server.port, requests=requests, rate=rate).items():
            busy[test].append(p99)
    print(f"\nredis-benchmark -t get,set -n {requests:,} -c 10, p99 ms (median of {runs})")
    print(f"  {'test':<6} {'baseline':>10} {f'during @{rate:,}/s':>18} {'added':>8}")
    worst = 0.0
    for test in TESTS:
        before, during = statistics.median(base[test]), statistics.median(busy[test])
        worst = max(worst, during - before)
        print(f"  {test:<6} {before:>10.3f} {during:>18.3f} {during - before:>8.3f}")
    print(f"  goal: added p99 < 1 ms: {'met' if worst < 1.0 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--naive-keys", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=RemediationLimits().rate)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed (apt-get install redis-tools)")
    with RedisServer() as server:
        bench_speed(server.url, keys=args.keys, naive_keys=args.naive_keys)
        bench_latency(server, requests=args.requests, runs=args.runs, rate=args.rate)


if __name__ == "__main__":
    main()
