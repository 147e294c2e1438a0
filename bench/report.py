"""Benchmark the channel health report over a month of samples for a hundred targets.

    .venv/bin/python bench/report.py [--targets 100] [--days 33] [--interval 60] [--runs 5]

1. **Retention as time passes.** Simulates ``--days`` of checks every ``--interval``
   seconds for ``--targets`` targets into a fresh SQLite database (each target's memory
   follows a daily wave on a slow rise, evicts now and then, and restarts once), running
   the bot's own rollup and prune every simulated hour, as ``serve``'s jobs do. Prints
   the rows kept (raw samples, 5-minute aggregates) at the end of days 1-3, each week and
   days 30-33: raw samples stop growing once their retention (48 h) is full, aggregates
   once theirs (30 d) is.
2. **Report time.** Builds the 24-hour report (raw samples) and the 7-day one
   (aggregates) of every target, their Slack message and their chart, ``--runs`` times
   each; prints the median and best of each part. The live diagnoses are left out (no
   Redis here: they are bounded per target, 8 at a time, and run beside the reads).
3. **Baseline**, measured in the same run: the stdlib ``sqlite3`` fetching the same rows
   the report reads (every column it needs, no objects): the floor of reading the
   data at all. Each build time is printed as a ratio to it.

Goals of issue 11: the 7-day report of 100 targets in under 2 s of bot time (figures,
message and chart); rows bounded as above. Also prints the process's peak RSS.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Engine, func, insert, select  # noqa: E402

from bot.audit.engine import make_engine  # noqa: E402
from bot.audit.migrate import upgrade  # noqa: E402
from bot.config import Target  # noqa: E402
from bot.health.store import SqlHealthStore  # noqa: E402
from bot.health.tables import AGGREGATES, SAMPLES  # noqa: E402
from bot.reports.chart import render_png  # noqa: E402
from bot.reports.service import ReportService  # noqa: E402
from bot.reports.store import SqlReportSource  # noqa: E402
from bot.slack.blocks.report import report_message  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)
RAW_RETENTION = timedelta(hours=48)
AGGREGATE_RETENTION = timedelta(days=30)
MB = 1024**2
GOAL_7D_SECONDS = 2.0


class Fleet:
    """The simulated targets: each one's memory, eviction counter and restart."""

    def __init__(self, count: int, *, days: int, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.names = [f"store-{i:03d}" for i in range(count)]
        self.base = {n: rng.uniform(0.2, 0.7) for n in self.names}
        self.rise = {n: rng.uniform(-0.002, 0.01) for n in self.names}  # of maxmemory a day
        self.restart = {n: START + timedelta(days=rng.uniform(0, days)) for n in self.names}
        self.evicted = dict.fromkeys(self.names, 0)
        self.rng = rng

    def rows(self, at: datetime) -> list[dict[str, object]]:
        """One sample per target at ``at``."""
        rows = []
        day = (at - START) / timedelta(days=1)
        for name in self.names:
            ratio = self.base[name] + self.rise[name] * day + 0.05 * math.sin(2 * math.pi * day)
            ratio = min(0.99, max(0.05, ratio))
            if ratio > 0.9 and self.rng.random() < 0.2:
                self.evicted[name] += self.rng.randint(1, 50)
            if abs((at - self.restart[name]).total_seconds()) < 30:
                self.evicted[name] = 0  # Redis restarted: its counter starts again
            rows.append(
                {
                    "target": name,
                    "at": at,
                    "reachable": True,
                    "used_memory": int(ratio * 512 * MB),
                    "maxmemory": 512 * MB,
                    "evicted_keys": self.evicted[name],
                    "expired_keys": 0,
                    "dbsize": int(ratio * 100_000),
                    "connected_clients": 10,
                    "maxclients": 10_000,
                    "rejected_connections": 0,
                    "fragmentation_ratio": 1.1,
                    "error": None,
                }
            )
        return rows


def simulate(
    engine: Engine, fleet: Fleet, *, days: int, interval: int
) -> list[tuple[int, int, int]]:
    """``days`` of checks, rollup and prune every hour; (day, raw rows, aggregates) each week."""
    store = SqlHealthStore(engine)
    per_hour = 3600 // interval
    kept = []
    for hour in range(days * 24):
        with engine.begin() as conn:
            for step in range(per_hour):
                at = START + timedelta(hours=hour, seconds=step * interval)
                conn.execute(insert(SAMPLES), fleet.rows(at))
        now = START + timedelta(hours=hour + 1)
        store.rollup(until=now)
        store.prune(before=now - RAW_RETENTION, aggregates_before=now - AGGREGATE_RETENTION)
        day, at_midnight = divmod(hour + 1, 24)
        if at_midnight == 0 and (day % 7 == 0 or day in (1, 2, 3) or day >= 30):
            kept.append((day, *row_counts(engine)))
    return kept


def row_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        raw = conn.execute(select(func.count()).select_from(SAMPLES)).scalar_one()
        aggregates = conn.execute(select(func.count()).select_from(AGGREGATES)).scalar_one()
    return int(raw), int(aggregates)


def timed(runs: int, work: Callable[[], object]) -> list[float]:
    """Wall times of ``runs`` calls of ``work`` (after one untimed warm-up)."""
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def baseline(path: Path, *, since: datetime, aggregates: bool) -> Callable[[], object]:
    """The stdlib fetching the rows the report reads: the floor."""

    def fetch() -> object:
        conn = sqlite3.connect(path)
        try:
            if aggregates:
                sql = (
                    "SELECT target, bucket_start, samples, reachable, used_last, used_min, "
                    "used_max, maxmemory_last, ratio_last, ratio_min, ratio_max, evicted_first, "
                    "evicted_last, evicted_increase, dbsize_last FROM health_sample_aggregates "
                    "WHERE bucket_start >= ? ORDER BY target, bucket_start"
                )
            else:
                sql = (
                    "SELECT target, at, reachable, used_memory, maxmemory, evicted_keys, dbsize "
                    "FROM health_samples WHERE at >= ? ORDER BY target, at"
                )
            return conn.execute(sql, (since.strftime("%Y-%m-%d %H:%M:%S"),)).fetchall()
        finally:
            conn.close()

    return fetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    # A few days past the aggregates' 30: both kinds of rows must have stopped growing.
    parser.add_argument("--days", type=int, default=33)
    parser.add_argument("--interval", type=int, default=60, help="seconds between checks")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (1 <= args.targets <= 1000 and 1 <= args.days <= 60 and 10 <= args.interval <= 3600):
        parser.error("--targets 1-1000, --days 1-60, --interval 10-3600")
    with tempfile.TemporaryDirectory(prefix="redis-mem-bench-") as tmp:
        path = Path(tmp) / "report.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        fleet = Fleet(args.targets, days=args.days)
        began = time.perf_counter()
        kept = simulate(engine, fleet, days=args.days, interval=args.interval)
        print(
            f"simulated {args.days} days x {args.targets} targets, a check every "
            f"{args.interval}s, in {time.perf_counter() - began:.0f} s"
        )
        print(f"{'day':>5} {'raw samples':>12} {'aggregates':>11}")
        for day, raw, aggregates in kept:
            print(f"{day:>5} {raw:>12,} {aggregates:>11,}")
        report_times(engine, path, fleet, runs=args.runs, days=args.days)
        engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


def report_times(engine: Engine, path: Path, fleet: Fleet, *, runs: int, days: int) -> None:
    """Median and best of each report part, and its ratio to the stdlib's fetch."""
    now = START + timedelta(days=days)
    service = ReportService(
        targets={n: Target(name=n, redis_url="redis://127.0.0.1:1/0") for n in fleet.names},
        source=SqlReportSource(engine, raw_retention=RAW_RETENTION, clock=lambda: now),
        live=None,
        clock=lambda: now,
    )
    print(f"\n{'part':<34} {'median':>8} {'best':>8} {'x floor':>8}")
    for label, window in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        fetch = baseline(path, since=now - window, aggregates=window > RAW_RETENTION)
        floor = statistics.median(timed(runs, fetch))
        print(f"{label + ': stdlib fetch (baseline)':<34} {floor:>7.3f}s {'':>8} {1:>7.1f}x")
        report = service.build(window=window)
        parts: dict[str, Callable[[], object]] = {
            "figures (read + compute)": lambda w=window: service.build(window=w),
            "Slack message": lambda r=report: report_message(r),
            "chart (10 worst)": lambda r=report: render_png(r),
        }
        total = 0.0
        for name, work in parts.items():
            times = timed(runs, work)
            total += statistics.median(times)
            shown = f"{label}: {name}"
            median = statistics.median(times)
            print(f"{shown:<34} {median:>7.3f}s {min(times):>7.3f}s {median / floor:>7.1f}x")
        goal = ""
        if label == "7d":
            verdict = "PASS" if total < GOAL_7D_SECONDS else "FAIL"
            goal = f"  goal < {GOAL_7D_SECONDS:.0f} s: {verdict}"
        shown = f"{label}: bot time (sum of medians)"
        print(f"{shown:<34} {total:>7.3f}s {'':>8} {total / floor:>7.1f}x{goal}")
        print(f"  points read: {sum(len(t.series.points) for t in report.targets):,}")
    service.close()


if __name__ == "__main__":
    main()
