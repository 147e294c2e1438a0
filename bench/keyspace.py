"""Benchmark the Redis adapter's key scans against redis-cli and the runbook's loop.

    .venv/bin/python bench/keyspace.py [--keys 200000] [--loop-keys 2000]
                                       [--paced-keys 300000] [--requests 200000]
                                       [--sampled-sizes 100000,1000000]
                                       [--sections full,paced,sampled]

Starts its own redis-server processes (never the one on 6379), loads the data with
pipelines (and ``DEBUG POPULATE`` for the big sampled-mode keyspaces), then prints:

- full scan keys/s: ours as fast as possible (SCAN + Lua per batch: TTL, MEMORY
  USAGE, OBJECT IDLETIME; budget 1.0), ours without scripting (pipeline fallback),
  ``redis-cli --memkeys`` (sizes only), the runbook's loop (one ``redis-cli TTL``
  process per key, TTL only), and ours at the default budget;
- the paced scan (``REDIS_MEM_SCAN_BUDGET``) on ``--paced-keys`` sessions: the
  default scan's keys/s on an idle store, a minimal Lua-per-SCAN-batch script
  (COUNT 1000, PTTL + MEMORY USAGE + OBJECT IDLETIME) as the speed limit and ours
  at budget 1.0 against it; the p99 a concurrent ``redis-benchmark -t get -c 10``
  sees without and with the default scan; and, with ``redis-benchmark -c 50 -P 16``
  saturating Redis, how far the scan slows down and what it takes from the others;
- sampled-mode snapshot time at each keyspace size (median of several runs).

Goals (from the issues): ours / memkeys >= 3x, ours / runbook loop >= 300x, sampled
snapshot <= 300 ms at 1M keys and within 1.5x of the 100k time; default scan >=
50,000 keys/s idle with added p99 < 1 ms; budget 1.0 >= 80% of the limit script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scanload import (  # noqa: E402
    LIGHT,
    SATURATE,
    BackgroundScan,
    BenchRun,
    Spinner,
    limit_scan,
    prepare_saturation,
    redis_benchmark,
)
from bot.config import Settings  # noqa: E402
from bot.redisinfo.client import connect  # noqa: E402
from bot.redisinfo.fullscan import scan_sessions  # noqa: E402
from bot.redisinfo.pacing import Pacer, ScanPacer  # noqa: E402
from bot.redisinfo.probe import LiveRedisProbe  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402

PATTERN = "session:*"
DEFAULT_BUDGET: float = Settings.model_fields["scan_budget"].default  # REDIS_MEM_SCAN_BUDGET
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
            busy = redis_busy(client.info("commandstats"))
            results.append((seconds, busy))
        client.close()
        self.seconds, self.redis_seconds = min(results)

    @property
    def rate(self) -> float:
        """Keys per second."""
        return self.keys / self.seconds


# Commands a script runs are counted in INFO commandstats too, inside EVAL's own time.
SCRIPT_COMMANDS = {
    "scan",
    "ttl",
    "pttl",
    "time",
    "memory",
    "memory|usage",
    "object",
    "object|idletime",
}


def redis_busy(stats: dict[str, dict[str, float]]) -> float:
    """Redis's seconds in commands, each counted once (a script's commands are in it)."""
    usec = {name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in stats.items()}
    scripted = usec.get("eval", 0) + usec.get("evalsha", 0) > 0
    return sum(t for cmd, t in usec.items() if not (scripted and cmd in SCRIPT_COMMANDS)) / 1e6


def our_scan(
    url: str,
    *,
    budget: float,
    scripting: bool = True,
    pacer: Pacer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """One full scan of the session keys; returns how many it measured."""
    client = connect(url)
    try:
        dbsize = int(client.dbsize())  # type: ignore[arg-type]
        sample = scan_sessions(
            client, pattern=PATTERN, dbsize=dbsize, lfu=False, budget=budget,
            use_scripting=scripting, pacer=pacer, progress=progress,
        )  # fmt: skip
    finally:
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
            "ours: SCAN + Lua per batch, budget 1.0 (best of 3)",
            Measured(url, keys, lambda: our_scan(url, budget=1.0), runs=3),
        )
        fallback = row(
            "ours: SCAN + pipeline, no scripting (best of 2)",
            Measured(url, keys, lambda: our_scan(url, budget=1.0, scripting=False), runs=2),
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
            f"ours: at the default budget ({DEFAULT_BUDGET:g} of a core)",
            Measured(url, keys, lambda: our_scan(url, budget=DEFAULT_BUDGET), runs=1),
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


# --- the paced scan --------------------------------------------------------------------


def best_rate(
    url: str, keys: int, contenders: dict[str, Callable[[], object]], runs: int
) -> dict[str, Measured]:
    """The best of ``runs`` interleaved runs of each contender (drift hits all alike)."""
    results: dict[str, list[Measured]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, action in contenders.items():
            results[name].append(Measured(url, keys, action, runs=1))
    return {name: min(found, key=lambda m: m.seconds) for name, found in results.items()}


def paced_speeds(url: str, keys: int, runs: int) -> tuple[float, float, float]:
    """(default scan, limit script, budget 1.0) keys/s on the idle store."""
    pacers: list[ScanPacer] = []

    def ours(budget: float) -> Callable[[], object]:
        def scan() -> int:
            pacers.append(ScanPacer(budget))
            return our_scan(url, budget=budget, pacer=pacers[-1])

        return scan

    best = best_rate(
        url, keys,
        {"default": ours(DEFAULT_BUDGET), "limit": lambda: limit_scan(url), "fast": ours(1.0)},
        runs,
    )  # fmt: skip
    labels = {
        "default": f"ours, default budget {DEFAULT_BUDGET:g}",
        "limit": "limit: minimal Lua per SCAN batch of 1,000",
        "fast": "ours, budget 1.0",
    }
    print(f"{'measurement (best of ' + str(runs) + ', interleaved)':<50} {'keys/s':>10}"
          f" {'redis share':>12}")  # fmt: skip
    print("-" * 74)
    for name, result in best.items():
        share = result.redis_seconds / result.seconds
        print(f"{labels[name]:<50} {result.rate:>10,.0f} {share:>12.2f}")
    longest = max(p.stats.longest_call_seconds for p in pacers) * 1000
    sizes = sorted(p.stats.largest_count for p in pacers)
    print(f"ours: longest script call {longest:.2f} ms, largest batch {sizes[-1]} keys")
    return best["default"].rate, best["limit"].rate, best["fast"].rate


def paced_latency(
    server: RedisServer, requests: int, runs: int, load: Sequence[str], *, niced: bool = False
) -> tuple[dict[str, list[BenchRun]], dict[int, list[BackgroundScan]]]:
    """redis-benchmark alone, beside a CPU spinner (a control), with the default scan
    running (and, ``niced``, with its client thread at nice 19), in interleaved runs."""
    found: dict[str, list[BenchRun]] = {"alone": [], "beside a CPU spinner": []}
    scans: dict[int, list[BackgroundScan]] = {}  # by nice

    def scan(pacer: ScanPacer, progress: Callable[[int, int], None]) -> int:
        return our_scan(server.url, budget=DEFAULT_BUDGET, pacer=pacer, progress=progress)

    def bench(name: str) -> None:
        found.setdefault(name, []).append(redis_benchmark(server.url, server.port, requests, load))

    for _ in range(runs):
        bench("alone")
        with Spinner():
            bench("beside a CPU spinner")
        for nice in (0, 19) if niced else (0,):
            with BackgroundScan(scan, DEFAULT_BUDGET, nice=nice) as background:
                bench("with the default scan" + (", nice 19" if nice else ""))
            scans.setdefault(nice, []).append(background)
    return found, scans


def print_runs(runs: dict[str, list[BenchRun]]) -> None:
    """Median p50, p99, requests/s and Redis CPU of each series, and each run's p99."""
    for name, found in runs.items():
        run = median_run(found)
        each = " ".join(f"{r.p99:.3f}" for r in found)
        print(f"  {name:<33} p50 {run.p50:.3f} ms, p99 {run.p99:.3f} ms ({each}),"
              f" {run.rps:>7,.0f} req/s, Redis {run.cores:.2f} cores")  # fmt: skip


def median_run(found: list[BenchRun]) -> BenchRun:
    """Each figure's median over the runs."""
    return BenchRun(
        *(statistics.median(getattr(r, f) for r in found) for f in BenchRun.__annotations__)
    )


def bench_paced(keys: int, value_bytes: int, requests: int, runs: int) -> None:
    with RedisServer() as server:
        load_sessions(server.url, count=keys, value_bytes=value_bytes)
        print(f"\npaced full scan: {keys:,} session keys of {value_bytes:,} B, half with TTL\n")
        default, limit, fast = paced_speeds(server.url, keys, runs)
        added = paced_added_p99(server, requests, runs)
        saturated = paced_saturated(server, requests, runs)
    print()
    print(
        f"default scan idle    = {default:>8,.0f} keys/s (goal >= 50,000)", verdict(default >= 5e4)
    )
    print(f"added p99            = {added:>+8.3f} ms     (goal < 1 ms)     ", verdict(added < 1))
    print(f"budget 1.0 / limit   = {fast / limit:>8.2f}x        (goal >= 0.8x)    ", verdict(
        fast >= 0.8 * limit
    ))  # fmt: skip
    print(f"default / budget 1.0 = {default / fast:>8.2f}x        (no goal)")
    print(f"saturated / idle     = {saturated / default:>8.2f}x        (no goal: the scan yields)")


def paced_added_p99(server: RedisServer, requests: int, runs: int) -> float:
    """The p99 redis-benchmark -c 10 adds while the default scan runs (medians)."""
    found, scans = paced_latency(server, requests, runs, LIGHT, niced=True)
    print(f"\nredis-benchmark {' '.join(LIGHT)} -n {requests:,} (median of {runs}, interleaved)")
    print_runs(found)
    base, control, busy, niced = (median_run(runs_).p99 for runs_ in found.values())
    rate, niced_rate = (statistics.median(scan.rate for scan in scans[n]) for n in (0, 19))
    print(f"  added p99 {busy - base:+.3f} ms; the spinner adds {control - base:+.3f} ms")
    print(f"  with the scan's client at nice 19 (as if on a host of its own): added p99"
          f" {niced - base:+.3f} ms, the scan at {niced_rate:,.0f} keys/s")  # fmt: skip
    print(f"  the scan meanwhile: {rate:,.0f} keys/s; {scans[0][-1].summary()}")
    return busy - base


def paced_saturated(server: RedisServer, requests: int, runs: int) -> float:
    """The default scan's keys/s while redis-benchmark saturates Redis (median)."""
    prepare_saturation(server.url)
    found, scans = paced_latency(server, requests, runs, SATURATE)
    print(f"\nredis-benchmark {' '.join(SATURATE)} -n {requests:,} saturating Redis"
          f" (median of {runs})")  # fmt: skip
    print_runs(found)
    base, busy = median_run(found["alone"]), median_run(found["with the default scan"])
    rate = statistics.median(scan.rate for scan in scans[0])
    print(f"  the others keep {busy.rps / base.rps:.2f}x their requests/s")
    print(f"  the scan meanwhile: {rate:,.0f} keys/s; {scans[0][-1].summary()}")
    return rate


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
    parser.add_argument("--paced-keys", type=int, default=300_000, help="sessions, paced scan")
    parser.add_argument("--requests", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs, paced scan")
    parser.add_argument("--sections", default="full,paced,sampled", help="which to run")
    parser.add_argument(
        "--sampled-sizes",
        default="100000,1000000",
        help="comma-separated keyspace sizes for sampled mode ('' to skip)",
    )
    args = parser.parse_args()
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install redis-server redis-tools)")
    sections = {name.strip() for name in args.sections.split(",")}
    if "full" in sections:
        bench_full(args.keys, args.value_bytes, min(args.loop_keys, args.keys))
    if "paced" in sections:
        bench_paced(args.paced_keys, args.value_bytes, args.requests, args.runs)
    sizes = [int(size) for size in args.sampled_sizes.split(",") if size.strip()]
    if sizes and "sampled" in sections:
        bench_sampled(sizes)


if __name__ == "__main__":
    main()
