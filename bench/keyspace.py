"""Benchmark the Redis adapter's key scans against redis-cli and the runbook's loop.

    .venv/bin/python bench/keyspace.py [--keys 200000] [--loop-keys 2000]
                                       [--sampled-sizes 100000,1000000]

Starts its own redis-server processes (never the one on 6379), loads the data with
pipelines (and ``DEBUG POPULATE`` for the big sampled-mode keyspaces), then prints:

- full scan keys/s: ours (SCAN + Lua per batch: TTL, MEMORY USAGE, OBJECT IDLETIME),
  ours without scripting (pipeline fallback), ``redis-cli --memkeys`` (sizes only),
  the runbook's loop (one ``redis-cli TTL`` process per key, TTL only), and ours at
  the default rate limit;
- sampled-mode snapshot time at each keyspace size (median of several runs).

Goals (from the issue): ours / memkeys >= 3x, ours / runbook loop >= 300x, sampled
snapshot <= 300 ms at 1M keys and within 1.5x of the 100k time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import Settings  # noqa: E402
from bot.redisinfo.client import connect  # noqa: E402
from bot.redisinfo.fullscan import scan_sessions  # noqa: E402
from bot.redisinfo.probe import LiveRedisProbe  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402

PATTERN = "session:*"
DEFAULT_RATE: int = Settings.model_fields["scan_rate"].default  # REDIS_MEM_SCAN_RATE's default
SESSION_SHARE = 0.10  # of the big sampled-mode keyspaces


def load_sessions(url: str, *, count: int, value_bytes: int, start: int = 0) -> None:
    """``count`` session keys of ``value_bytes``, every other one with a 1-day TTL."""
    client = redis.Redis.from_url(url)
    value = os.urandom(value_bytes // 2).hex().encode()[:value_bytes]
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.set(f"session:{i:08d}", value, ex=86400 if i % 2 else None)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Measured:
    """Best wall time of some runs, and Redis's own busy time (INFO commandstats) in it."""

    def __init__(self, url: str, keys: int, action: Callable[[], object], *, runs: int) -> None:
        self.keys = keys
        client = redis.Redis.from_url(url, decode_responses=True)
        results = []
        for _ in range(runs):
            client.config_resetstat()
            seconds = timed(action)
            stats = client.info("commandstats")
            busy = sum(float(v["usec"]) for v in stats.values()) / 1e6
            results.append((seconds, busy))
        client.close()
        self.seconds, self.redis_seconds = min(results)

    @property
    def rate(self) -> float:
        """Keys per second."""
        return self.keys / self.seconds


def our_scan(url: str, *, rate: int | None, scripting: bool = True) -> int:
    """One full scan of the session keys; returns how many it measured."""
    client = connect(url)
    dbsize = int(client.dbsize())  # type: ignore[arg-type]
    sample = scan_sessions(
        client, pattern=PATTERN, dbsize=dbsize, lfu=False, rate=rate, use_scripting=scripting
    )
    client.close()
    return sample.matched


def memkeys(port: int) -> None:
    """A whole ``redis-cli --memkeys`` run (it SCANs and pipelines TYPE + MEMORY USAGE)."""
    subprocess.run(["redis-cli", "-p", str(port), "--memkeys"], check=True, capture_output=True)


def runbook_loop(port: int, keys: int) -> None:
    """The runbook's loop (one redis-cli process per key) over ``keys`` keys."""
    script = (
        f'redis-cli -p {port} --scan --pattern "{PATTERN}" | head -{keys} | '
        f'while read key; do echo "$key: $(redis-cli -p {port} TTL "$key")s"; done'
    )
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)


def sampled_ms(url: str, *, runs: int = 7) -> float:
    """Median milliseconds of a sampled-mode snapshot (connect, INFO, sample, close)."""
    probe = LiveRedisProbe(name="bench", url=url)
    probe.snapshot(pattern=PATTERN, sample_size=1000)  # warm-up
    times = [timed(lambda: probe.snapshot(pattern=PATTERN, sample_size=1000)) for _ in range(runs)]
    return statistics.median(times) * 1000


def fill_keyspace(url: str, size: int) -> None:
    """``size`` keys: 90% small ``cache:*`` keys by DEBUG POPULATE, 10% 2 KB sessions."""
    client = redis.Redis.from_url(url)
    client.flushall()
    sessions = int(size * SESSION_SHARE)
    client.execute_command("DEBUG", "POPULATE", size - sessions, "cache", 64)
    client.close()
    load_sessions(url, count=sessions, value_bytes=2048)


def row(name: str, result: Measured) -> float:
    per_key = result.redis_seconds / result.keys * 1e6
    print(
        f"{name:<50} {result.keys:>9,} {result.seconds:>8.2f} {result.rate:>10,.0f}"
        f" {per_key:>12.1f}"
    )
    return result.rate


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def bench_full(keys: int, value_bytes: int, loop_keys: int) -> None:
    with RedisServer() as server:
        url, port = server.url, server.port
        started = time.perf_counter()
        load_sessions(url, count=keys, value_bytes=value_bytes)
        loaded = time.perf_counter() - started
        print(f"\nfull scan: {keys:,} session keys of {value_bytes:,} B, half with TTL")
        print(f"(loaded in {loaded:.1f} s; redis-server {redis_version(url)}; best of N runs)\n")
        print(f"{'measurement':<50} {'keys':>9} {'seconds':>8} {'keys/s':>10} {'redis µs/key':>12}")
        print("-" * 93)
        ours = row(
            "ours: SCAN + Lua per batch, no limit (best of 3)",
            Measured(url, keys, lambda: our_scan(url, rate=None), runs=3),
        )
        fallback = row(
            "ours: SCAN + pipeline, no scripting (best of 2)",
            Measured(url, keys, lambda: our_scan(url, rate=None, scripting=False), runs=2),
        )
        cli = row(
            "redis-cli --memkeys, sizes only (best of 3)",
            Measured(url, keys, lambda: memkeys(port), runs=3),
        )
        loop = row(
            f"runbook loop: redis-cli TTL per key ({loop_keys:,} keys)",
            Measured(url, loop_keys, lambda: runbook_loop(port, loop_keys), runs=1),
        )
        row(
            f"ours: at the default limit ({DEFAULT_RATE:,} keys/s)",
            Measured(url, keys, lambda: our_scan(url, rate=DEFAULT_RATE), runs=1),
        )
        print()
        print(
            f"ours / memkeys      = {ours / cli:6.1f}x  (goal >= 3x)   {verdict(ours >= 3 * cli)}"
        )
        print(f"fallback / memkeys  = {fallback / cli:6.1f}x  (no goal)")
        print(
            f"ours / runbook loop = {ours / loop:6.0f}x  (goal >= 300x) "
            f"{verdict(ours >= 300 * loop)}"
        )


def bench_sampled(sizes: list[int]) -> None:
    print(f"\nsampled mode (1,000 keys sampled; {SESSION_SHARE:.0%} of the keys are sessions)\n")
    print(f"{'keyspace':>12} {'snapshot ms (median of 7)':>28}")
    print("-" * 42)
    with RedisServer("--enable-debug-command", "yes") as server:
        times = []
        for size in sizes:
            fill_keyspace(server.url, size)
            times.append(sampled_ms(server.url))
            print(f"{size:>12,} {times[-1]:>28.1f}")
    if len(times) >= 2:
        ratio = times[-1] / times[0]
        largest = f"{sizes[-1]:,}"
        print()
        print(
            f"at {largest} keys: {times[-1]:.1f} ms (goal <= 300 ms)   {verdict(times[-1] <= 300)}"
        )
        print(f"{largest} / {sizes[0]:,} = {ratio:.2f}x (goal <= 1.5x)   {verdict(ratio <= 1.5)}")


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    version = str(client.info("server")["redis_version"])
    client.close()
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000, help="session keys for the scans")
    parser.add_argument("--value-bytes", type=int, default=2048, help="size of each session")
    parser.add_argument("--loop-keys", type=int, default=2000, help="keys for the runbook loop")
    parser.add_argument(
        "--sampled-sizes",
        default="100000,1000000",
        help="comma-separated keyspace sizes for sampled mode ('' to skip)",
    )
    args = parser.parse_args()
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install redis-server)")
    bench_full(args.keys, args.value_bytes, min(args.loop_keys, args.keys))
    sizes = [int(size) for size in args.sampled_sizes.split(",") if size.strip()]
    if sizes:
        bench_sampled(sizes)


if __name__ == "__main__":
    main()
