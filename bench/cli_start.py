"""Benchmark the CLI's start-up: whole-process wall time of three commands vs a baseline.

    .venv/bin/python bench/cli_start.py [--runs 15] [--keys 200]

Starts its own redis-server on a free port (never the one on 6379) holding a small
session store (``--keys`` session keys with a TTL, a few without), then runs, interleaved
round by round so that machine noise hits every command alike:

- the baseline ``python -c "import redis; redis.Redis(port=P).info()"`` (the least a
  Python tool that talks to Redis pays: the interpreter, redis-py, one round trip);
- ``redis-mem --help``;
- ``redis-mem diagnose --json --redis-url redis://127.0.0.1:P/0`` (sampled diagnosis,
  audited);
- ``redis-mem capacity --users 1000 --sessions-per-user 2 --session-size 2KB`` (audited).

Every command runs with ``DATABASE_URL`` unset and ``XDG_DATA_HOME`` pointing into a
temp directory (the default audit database, as a user gets it, never the real home),
from a temp working directory. One untimed warm-up round first (page cache, .pyc files).
Prints median and best wall time of each and its ratio to the baseline's, beside the
goal of issue 9 (``diagnose --json`` <= 2.5x, ``--help`` <= 1.5x).

To time older code the same way, point ``PYTHONPATH`` at a checkout of it (``git
archive <rev> | tar -x -C /tmp/old``, then ``PYTHONPATH=/tmp/old``): the commands
inherit it and import that ``bot`` instead of the installed one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.redisproc import RedisServer  # noqa: E402

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))
GOALS = {"--help": 1.5, "diagnose --json": 2.5}


def commands(port: int) -> dict[str, list[str]]:
    """The timed command lines by label, the baseline first."""
    url = f"redis://127.0.0.1:{port}/0"
    baseline = f"import redis; redis.Redis(port={port}).info()"
    return {
        "baseline (redis-py INFO)": [sys.executable, "-c", baseline],
        "--help": [REDIS_MEM, "--help"],
        "diagnose --json": [REDIS_MEM, "diagnose", "--json", "--redis-url", url],
        "capacity": [
            REDIS_MEM,
            "capacity",
            "--users",
            "1000",
            "--sessions-per-user",
            "2",
            "--session-size",
            "2KB",
        ],
    }


def fill(port: int, keys: int) -> None:
    """A small session store: ``keys`` sessions of ~2 KB, one in twenty without a TTL."""
    client = redis.Redis(port=port)
    pipe = client.pipeline(transaction=False)
    for n in range(keys):
        name = f"session:{n:06d}"
        pipe.set(name, b"x" * 2048)
        if n % 20:
            pipe.expire(name, 3600)
    pipe.execute()
    client.close()


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment without the bot's settings; the default database under ``tmp``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "DATABASE_"))
    }
    env["XDG_DATA_HOME"] = str(tmp / "xdg-data")
    return env


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one whole process; exit 0 or 1 (diagnose may find a problem) only."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[1:]} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def measure(cmds: dict[str, list[str]], runs: int, tmp: Path) -> dict[str, list[float]]:
    """``runs`` timed rounds after one warm-up round; each round runs every command once."""
    env, cwd = bench_env(tmp), tmp / "cwd"
    cwd.mkdir()
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for round_no in range(runs + 1):
        for label, argv in cmds.items():
            elapsed = run_once(argv, env, cwd)
            if round_no:  # round 0 warms up
                times[label].append(elapsed)
    litter = sorted(p.name for p in cwd.iterdir())
    if litter:
        print(f"note: the commands left {', '.join(litter)} in the working directory")
    return times


def report(times: dict[str, list[float]]) -> None:
    """One line per command: median, best, ratios to the baseline, the goal."""
    labels = list(times)
    base_median = statistics.median(times[labels[0]])
    base_best = min(times[labels[0]])
    print(
        f"{'command':28} {'median':>8} {'best':>8} {'x base (med)':>13} {'x base (best)':>14}  goal"
    )
    for label in labels:
        median, best = statistics.median(times[label]), min(times[label])
        ratio_med, ratio_best = median / base_median, best / base_best
        goal = GOALS.get(label)
        verdict = ""
        if goal is not None:
            verdict = f"<= {goal}x: {'met' if ratio_med <= goal else 'NOT met'}"
        print(
            f"{label:28} {median * 1000:6.0f}ms {best * 1000:6.0f}ms "
            f"{ratio_med:12.2f}x {ratio_best:13.2f}x  {verdict}"
        )


def main() -> None:
    """Parse arguments, start the store, time the commands, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--keys", type=int, default=200, help="session keys in the store")
    args = parser.parse_args()
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        fill(server.port, args.keys)
        times = measure(commands(server.port), args.runs, Path(tmp))
        print(f"{args.runs} interleaved runs each, {args.keys} session keys, {os.cpu_count()} cpus")
        report(times)


if __name__ == "__main__":
    main()
