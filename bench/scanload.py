"""Load and measure around a full scan: the limit script, redis-benchmark, a scan thread.

Helpers of ``bench/keyspace.py`` (imported from it; not run on its own).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from bot.redisinfo.pacing import ScanPacer

PATTERN = "session:*"

# The speed limit: the least a client can do for the same three reads per key.
LIMIT_SCRIPT = """
local scan = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
local out = {scan[1]}
for _, key in ipairs(scan[2]) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('PTTL', key)
  out[#out + 1] = redis.call('MEMORY', 'USAGE', key)
  out[#out + 1] = redis.call('OBJECT', 'IDLETIME', key)
end
return out
"""
# The latency probe: 10 clients of GET. The saturating load: 50 clients of a command
# that costs Redis ~20 us and its client next to nothing (an integer reply), so one
# redis-benchmark thread keeps the Redis core busy (GET -P 16 cannot on 2 cores).
LIGHT = ("-c", "10", "-t", "get")
SATURATE = ("-c", "50", "SINTERCARD", "2", "bench:a", "bench:b")


def prepare_saturation(url: str) -> None:
    """The two 1,000-member sets SATURATE intersects (half of them in common)."""
    client = redis.Redis.from_url(url)
    client.sadd("bench:a", *range(0, 1000))
    client.sadd("bench:b", *range(500, 1500))
    client.close()


def limit_scan(url: str) -> int:
    """A minimal loop: one EVALSHA per SCAN batch of 1,000, raw replies, no pacing."""
    client = redis.Redis.from_url(url)
    sha = client.script_load(LIMIT_SCRIPT)
    cursor, measured = 0, 0
    while True:
        reply = client.evalsha(sha, 0, cursor, PATTERN)
        cursor, measured = int(reply[0]), measured + (len(reply) - 1) // 4
        if cursor == 0:
            client.close()
            return measured


@dataclass(frozen=True)
class BenchRun:
    """One redis-benchmark run: latency percentiles, throughput, Redis's CPU meanwhile."""

    p50: float  # ms
    p99: float  # ms
    rps: float
    cores: float  # redis-server CPU seconds per second


def redis_benchmark(url: str, port: int, requests: int, load: Sequence[str]) -> BenchRun:
    """Run ``redis-benchmark -n requests <load> --csv`` against ``port``."""
    cpu, started = redis_cpu(url), time.perf_counter()
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(requests), "--csv", *load],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    cores = (redis_cpu(url) - cpu) / (time.perf_counter() - started)
    first = next(csv.DictReader(io.StringIO(out)))
    return BenchRun(
        float(first["p50_latency_ms"]), float(first["p99_latency_ms"]), float(first["rps"]), cores
    )


def redis_cpu(url: str) -> float:
    """Seconds of CPU the redis-server has used so far (INFO cpu, user + system)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    cpu = client.info("cpu")
    client.close()
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class Spinner:
    """A process that keeps one core busy and talks to nobody, during ``with``: the
    control that shows what a busy client process alone costs Redis's other clients
    on this host (our scan's Python is one, and 2 cores are shared by all)."""

    def __enter__(self) -> Spinner:
        self._proc = subprocess.Popen([sys.executable, "-c", "while True: sum(range(9999))"])
        return self

    def __exit__(self, *_: object) -> None:
        self._proc.kill()
        self._proc.wait()


class Stop(Exception):
    """Raised from the progress callback to end a background scan."""


ScanFn = Callable[[ScanPacer, Callable[[int, int], None]], object]


class BackgroundScan:
    """``scan(pacer, progress)`` at ``budget``, repeated in a thread during ``with``.

    ``rate``: keys/s scanned while the block ran (from the progress calls). ``nice``
    lowers the thread's CPU priority, as if the client ran on a host of its own.
    """

    def __init__(self, scan: ScanFn, budget: float, *, nice: int = 0) -> None:
        self.scan, self.budget, self.nice = scan, budget, nice
        self.pacers: list[ScanPacer] = []
        self._stop, self._started = threading.Event(), threading.Event()
        self._finished = 0  # keys of the scans that ended
        self._current = 0  # keys scanned by the scan under way
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.rate = 0.0

    def __enter__(self) -> BackgroundScan:
        self._thread.start()
        if not self._started.wait(timeout=30):
            sys.exit("the background scan did not start within 30 s")
        self._since, self._from = time.perf_counter(), self._scanned()
        return self

    def __exit__(self, *_: object) -> None:
        keys, seconds = self._scanned() - self._from, time.perf_counter() - self._since
        self._stop.set()
        self._thread.join()
        self.rate = keys / seconds

    def _scanned(self) -> int:
        return self._finished + self._current

    def _progress(self, scanned: int, _total: int) -> None:
        self._current = scanned
        self._started.set()
        if self._stop.is_set():
            raise Stop

    def _run(self) -> None:
        if self.nice:  # this thread only: the scan's client yields the CPU to the others
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while not self._stop.is_set():
            pacer = ScanPacer(self.budget)
            self.pacers.append(pacer)
            try:
                self.scan(pacer, self._progress)
            except Stop:
                return
            self._finished, self._current = self._finished + self._current, 0

    def summary(self) -> str:
        """What the pacers did: PINGs found slow, share of the time slept, longest call."""
        stats = [pacer.stats for pacer in self.pacers]
        slept = sum(s.slept_seconds for s in stats)
        busy = sum(s.busy_seconds for s in stats)
        longest = max(s.longest_call_seconds for s in stats) * 1000
        calls, long_calls = sum(s.batches for s in stats), sum(s.long_calls for s in stats)
        return (
            f"{sum(s.slow_pings for s in stats)} slow PINGs, Redis busy {busy:.2f} s, slept"
            f" {slept:.2f} s; {long_calls} of {calls} calls over 1 ms (longest {longest:.2f} ms)"
        )
