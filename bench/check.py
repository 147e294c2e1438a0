"""Benchmark a health-check round: 100 targets, one of them hung, concurrent vs sequential.

    .venv/bin/python bench/check.py [--servers 10] [--dbs 10] [--timeout 2] [--runs 3]

Starts its own redis-servers (never the one on 6379): ``--servers`` of them with
``--dbs`` databases each make the targets (100 by default), plus one more server
that is SIGSTOPped after the first round (a hung store: TCP still accepts, nothing
answers). Samples, rule states and events go to a SQLite database in a temp dir,
as in ``redis-mem serve`` with the default DATABASE_URL. Prints, medians of
``--runs`` rounds:

- the wall time of a round by ``HealthService.run_round`` (concurrent, bounded) and of
  the same checks one after another (``check_target`` in a loop, the hung target
  first, as it may be), and their ratio. Goal: the round ends within the per-target
  timeout + 1 s, whatever the hung one does.
- when the last healthy target's result was stored, in both: what the hung target
  costs the others (nothing, concurrently).
- the bot's CPU time per healthy target check (process time of a round of the healthy
  targets only, divided by their number). Goal: under 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.audit.engine import make_engine  # noqa: E402
from bot.audit.migrate import upgrade  # noqa: E402
from bot.audit.store import SqlAuditStore  # noqa: E402
from bot.config import Target  # noqa: E402
from bot.health.ports import Evaluation  # noqa: E402
from bot.health.rules import RuleBook  # noqa: E402
from bot.health.service import HealthService  # noqa: E402
from bot.health.store import SqlHealthStore  # noqa: E402
from bot.redisinfo.sampler import LiveSampleSource  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402

START = datetime(2026, 12, 1, tzinfo=UTC)


class TimedStore(SqlHealthStore):
    """The real store, noting when each healthy target's result was stored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_at: dict[str, float] = {}

    def record(self, evaluation: Evaluation) -> None:
        super().record(evaluation)
        if evaluation.sample.reachable:
            self.stored_at[evaluation.target] = time.perf_counter()


def build_service(
    db: Path, targets: dict[str, Target], timeout: float
) -> tuple[HealthService, TimedStore]:
    """A HealthService as ``serve`` wires it, on a fresh SQLite file."""
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = TimedStore(engine)
    service = HealthService(
        targets=targets,
        source=LiveSampleSource(timeout=timeout),
        store=store,
        rules=RuleBook.defaults(),
        audit=SqlAuditStore(engine),
        interval=60,
        timeout=timeout,
        repeat_interval=timedelta(hours=4),
    )
    return service, store


Timing = tuple[float, float]  # (round seconds, seconds until the last healthy result)


def timed_rounds(service: HealthService, store: TimedStore, runs: int, first: int) -> list[Timing]:
    """``runs`` concurrent rounds."""
    times = []
    for run in range(runs):
        store.stored_at.clear()
        began = time.perf_counter()
        service.run_round(now=START + timedelta(minutes=first + run))
        times.append((time.perf_counter() - began, max(store.stored_at.values()) - began))
    return times


def sequential_rounds(
    service: HealthService, store: TimedStore, runs: int, first: int
) -> list[Timing]:
    """The same checks, one target after the other."""
    times = []
    for run in range(runs):
        now = START + timedelta(minutes=first + run)
        store.stored_at.clear()
        began = time.perf_counter()
        for target in service.targets.values():
            service.check_target(target, now)
        times.append((time.perf_counter() - began, max(store.stored_at.values()) - began))
    return times


def medians(timings: list[Timing]) -> Timing:
    """Median of each column."""
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def cpu_per_check(service: HealthService, runs: int, first_minute: int) -> float:
    """Bot CPU seconds per healthy target check (process time over whole rounds)."""
    per_check = []
    for run in range(runs):
        began = time.process_time()
        service.run_round(now=START + timedelta(minutes=first_minute + run))
        per_check.append((time.process_time() - began) / len(service.targets))
    return statistics.median(per_check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--dbs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    servers = [RedisServer("--databases", str(args.dbs)).start() for _ in range(args.servers)]
    hung = RedisServer().start()
    try:
        healthy = {
            f"t{s:02d}-{db}": Target(name=f"t{s:02d}-{db}", redis_url=f"{srv.url[:-2]}/{db}")
            for s, srv in enumerate(servers)
            for db in range(args.dbs)
        }
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), healthy, hung, args)
    finally:
        for server in [*servers, hung]:
            server.stop()


def run(tmp: Path, healthy: dict[str, Target], hung: RedisServer, args: argparse.Namespace) -> None:
    """Measure and print."""
    # The hung target first: checked one by one, it holds up every target after it.
    with_hung = {"hung": Target(name="hung", redis_url=hung.url), **healthy}
    service, store = build_service(tmp / "all.db", with_hung, args.timeout)
    healthy_only, _ = build_service(tmp / "healthy.db", healthy, args.timeout)
    try:
        service.run_round(now=START)  # connections opened, history loaded
        healthy_only.run_round(now=START)
        cpu = cpu_per_check(healthy_only, args.runs, first_minute=1)
        with hung.paused():
            concurrent = medians(timed_rounds(service, store, args.runs, first=1))
            sequential = medians(sequential_rounds(service, store, args.runs, first=101))
    finally:
        service.close()
        healthy_only.close()
    report(args, len(healthy), concurrent, sequential, cpu)


def report(
    args: argparse.Namespace, healthy: int, concurrent: Timing, sequential: Timing, cpu: float
) -> None:
    """Print the figures and the goals."""
    budget = args.timeout + 1.0
    print(
        f"targets: {healthy + 1} ({healthy} healthy, 1 hung by SIGSTOP), timeout {args.timeout:g} s"
    )
    print("                                   concurrent  sequential  ratio")
    for label, index in (("whole round", 0), ("last healthy result stored", 1)):
        c, q = concurrent[index], sequential[index]
        print(f"{label:<34} {c:8.2f} s  {q:8.2f} s  {q / c:5.1f}x")
    verdict = "met" if concurrent[0] <= budget else "MISSED"
    print(f"goal: round <= timeout + 1 s = {budget:g} s: {verdict}")
    cpu_verdict = "met" if cpu < 0.005 else "MISSED"
    print(f"bot CPU per healthy check: {cpu * 1000:.2f} ms (goal < 5 ms: {cpu_verdict})")


if __name__ == "__main__":
    main()
