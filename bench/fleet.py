"""Benchmark the fleet: ``status`` and a check round over 100 targets, one server hung,
and a full scan of a 3-shard Redis Cluster beside the same keys on one server.

    .venv/bin/python bench/fleet.py [--servers 4] [--dbs 25] [--timeout 5] [--keys 200]
                                    [--cluster-keys 150000] [--runs 3]

Starts its own redis-servers (never the one on 6379): ``--servers`` of them with
``--dbs`` databases each, every database a target holding ``--keys`` session keys
(with a TTL). The first server is SIGSTOPped for the timed status (a hung store: TCP
still accepts, nothing answers): its ``--dbs`` targets do not answer. The status is
``bot.slack.status.gather`` (what ``/redis-mem status`` runs: at most
``STATUS_PARALLEL`` diagnoses at once, each target bounded by the per-target
timeout) plus the message (``status_message``), over pooled probes
(``bot.redisinfo.pool``). Prints, in one run:

- the whole status with the hung server, against the per-target timeout. Goal: it
  completes within the per-target timeout + 1 s.
- the status of the healthy targets alone (pooled, then a connection per diagnosis),
  against the baseline of the same run: one redis-py PING per healthy target, one
  after the other on a new connection each (what any status must at least cost), and
  the same diagnoses one after the other.
- a scheduled check round over the same targets with the same server hung
  (``bench/fleet_round.py``). Goal: within the per-target timeout + 1 s.
- the full scan of a 3-shard cluster against one server holding the same keys
  (``bench/cluster_scan.py``). Goal: the cluster >= 1.5x the one server's keys/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import cluster_scan, fleet_round  # noqa: E402
from bot.config import Target, Thresholds  # noqa: E402
from bot.errors import RedisMemError  # noqa: E402
from bot.redisinfo.pool import ClientPool  # noqa: E402
from bot.redisinfo.probe import LiveRedisProbe  # noqa: E402
from bot.redisproc import RedisServer  # noqa: E402
from bot.services.diagnose import DiagnosisService  # noqa: E402
from bot.slack.blocks.common import MAX_BLOCKS  # noqa: E402
from bot.slack.blocks.status import TargetStatus, status_message  # noqa: E402
from bot.slack.status import STATUS_PARALLEL, gather  # noqa: E402

SAMPLE_SIZE = 1000  # REDIS_MEM_SAMPLE_SIZE's default


def fill(server: RedisServer, dbs: int, keys: int) -> None:
    """``keys`` session keys with a TTL in every database."""
    for db in range(dbs):
        client = redis.Redis.from_url(f"{server.url[:-2]}/{db}")
        with client.pipeline(transaction=False) as pipe:
            for i in range(keys):
                pipe.set(f"session:{i}", "x" * 500, ex=3600)
            pipe.execute()
        client.close()


def service(
    targets: dict[str, Target], timeout: float, clients: ClientPool | None
) -> DiagnosisService:
    """The diagnosis service as the bot builds it, its probes pooled or not."""

    def probe(target: Target) -> LiveRedisProbe:
        url = target.connection_url()
        return LiveRedisProbe(name=target.name, url=url, timeout=timeout, clients=clients)

    return DiagnosisService(
        targets=targets, probe_factory=probe, thresholds=Thresholds(), sample_size=SAMPLE_SIZE
    )


def diagnoser(diagnosis: DiagnosisService) -> Callable[[Target], TargetStatus]:
    """``target_status`` without the Slack metrics: a diagnosis or its one-line reason."""

    def run(target: Target) -> TargetStatus:
        try:
            return TargetStatus(name=target.name, diagnosis=diagnosis.shared(target.name))
        except RedisMemError as err:
            return TargetStatus(name=target.name, error=err.message)

    return run


def timed_status(
    diagnosis: DiagnosisService, targets: list[Target], timeout: float
) -> tuple[float, list[TargetStatus], int]:
    """Seconds of the whole status (diagnoses and message), its rows, its block count."""
    began = time.perf_counter()
    rows = gather(targets, diagnoser(diagnosis), timeout=timeout)
    blocks = len(status_message(rows).blocks)
    return time.perf_counter() - began, rows, blocks


def sequential(action: Callable[[Target], object], targets: list[Target]) -> float:
    """Seconds of ``action`` on each target, one after the other."""
    began = time.perf_counter()
    for target in targets:
        action(target)
    return time.perf_counter() - began


def ping(target: Target) -> None:
    """One PING on a new connection."""
    client = redis.Redis.from_url(target.redis_url, socket_timeout=5)
    client.ping()
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--dbs", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--cluster-keys", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    servers = [RedisServer("--databases", str(max(args.dbs, 16))) for _ in range(args.servers)]
    try:
        for server in servers:
            server.start()
            fill(server, args.dbs, args.keys)
        targets = run(servers, args)
        fleet_round.report(targets, servers[0], args.timeout)
    finally:
        for server in servers:
            server.stop()
    cluster_scan.report(args.cluster_keys, args.runs, args.timeout)


def run(servers: list[RedisServer], args: argparse.Namespace) -> dict[str, Target]:
    """Measure and print the status lines; the targets, for the round."""
    targets = {
        f"s{s}-{db}": Target(name=f"s{s}-{db}", redis_url=f"{srv.url[:-2]}/{db}")
        for s, srv in enumerate(servers)
        for db in range(args.dbs)
    }
    everyone = list(targets.values())
    healthy = [t for t in everyone if not t.name.startswith("s0-")]
    clients = ClientPool()
    pooled, fresh = service(targets, args.timeout, clients), service(targets, args.timeout, None)
    timed_status(pooled, everyone, args.timeout)  # warm: pooled connections open
    with servers[0].paused():
        hung_time, rows, blocks = timed_status(pooled, everyone, args.timeout)
    silent = sum(1 for row in rows if row.diagnosis is None)
    healthy_time = timed_status(pooled, healthy, args.timeout)[0]
    fresh_time = timed_status(fresh, healthy, args.timeout)[0]
    pings = sequential(ping, healthy)
    one_by_one = sequential(lambda t: fresh.diagnose(t.name), healthy)
    clients.close()
    budget = args.timeout + 1.0
    print(
        f"targets: {len(everyone)} ({args.servers} servers x {args.dbs} dbs, {args.keys} session"
        f" keys each), server 0 SIGSTOPped: {args.dbs} hung; per-target timeout"
        f" {args.timeout:g} s; {STATUS_PARALLEL} diagnoses at once"
    )
    print(
        f"status, one server hung:     {hung_time:7.2f} s  = {hung_time / args.timeout:.2f}x"
        f" the timeout; {silent} without an answer; {blocks} blocks (<= {MAX_BLOCKS})"
    )
    verdict = "met" if hung_time <= budget else "MISSED"
    print(f"goal: status <= timeout + 1 s = {budget:g} s: {verdict}")
    print(f"healthy {len(healthy)} only, pooled:     {healthy_time:7.3f} s")
    print(
        f"healthy {len(healthy)} only, new conns:  {fresh_time:7.3f} s"
        f"  ({fresh_time / healthy_time:.2f}x pooled)"
    )
    print(
        f"baseline: sequential PINGs:  {pings:7.3f} s  (status pooled = "
        f"{healthy_time / pings:.2f}x the PINGs)"
    )
    print(f"sequential diagnoses:        {one_by_one:7.3f} s  ({one_by_one / healthy_time:.2f}x"
          " the concurrent status)")  # fmt: skip
    return targets


if __name__ == "__main__":
    main()
