"""Scheduled health checks of a Redis Cluster target, per shard, against a real cluster.

A real 3-primary cluster (``cluster_factory``), a real HealthService over SQLite, the
clock moved by hand. Only the Notifier is a recording fake of our port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from rich.console import Console
from sqlalchemy import Engine

from bot.audit.store import SqlAuditStore
from bot.config import Target
from bot.diagnosis.model import Severity
from bot.health.dispatch import Dispatcher
from bot.health.model import (
    Alert,
    AlertDiagnosis,
    AlertEvent,
    AlertStatus,
    EventKind,
    Sample,
)
from bot.health.ports import Delivered
from bot.health.rules import RuleBook
from bot.health.service import HealthService, RoundResult, TargetCheck
from bot.health.store import SqlHealthStore
from bot.health.subjects import GONE_DETAIL, cluster_totals
from bot.metrics import ServiceMetrics
from bot.presenters.health import event_line, render_check
from bot.redisinfo.cluster import discover
from bot.redisinfo.sampler import LiveSampleSource
from bot.redisproc_cluster import RedisClusterProcs
from bot.reports.service import ReportService
from bot.reports.store import SqlReportSource
from bot.shards import subject
from bot.slack.blocks.alert import alert_message, button_blocks
from tests.cluster_health_support import HOT, SMALL, cluster_target, fill, owner
from tests.conftest import ClusterFactory
from tests.dbfixtures import db_engine  # noqa: F401
from tests.health_support import T0, at, only

RULES = only("memory-warning", "store-down", **{"memory-warning": {"for_seconds": 60}})
GOSSIP_SECONDS = 30.0  # node timeout 2 s; a loaded 2-core box needs more to agree


@dataclass
class Recorder:
    """A Notifier keeping every event it was given (nothing is posted)."""

    events: list[AlertEvent] = field(default_factory=list)

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        self.events.append(event)
        return Delivered()

    def of(self, kind: EventKind) -> list[tuple[str, str]]:
        return [(e.target, e.rule) for e in self.events if e.kind is kind]


@dataclass
class Rig:
    """A HealthService (restartable), its dispatcher and a recorder over one database."""

    engine: Engine
    target: Target
    rules: RuleBook = RULES
    notifier: Recorder = field(default_factory=Recorder)
    diagnosed: list[str] = field(default_factory=list)
    shard_reads: int = 16  # primaries the sample source reads at once
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    services: list[HealthService] = field(default_factory=list)
    minute: float = 0

    def __post_init__(self) -> None:
        self.store = SqlHealthStore(self.engine)
        self.audit = SqlAuditStore(self.engine, clock=lambda: at(self.minute))
        self.metrics = ServiceMetrics.create(self.registry)
        self.dispatcher = Dispatcher(
            store=self.store,
            notifier=self.notifier,
            audit=self.audit,
            clock=lambda: at(self.minute),
        )
        self.service = self.restart()

    def diagnose(self, name: str) -> AlertDiagnosis:
        self.diagnosed.append(name)
        return AlertDiagnosis(checked_at=at(self.minute), severity="warning")

    def restart(self) -> HealthService:
        """A new service over the same database (what a restarted ``serve`` builds)."""
        self.service = HealthService(
            targets={self.target.name: self.target},
            source=LiveSampleSource(timeout=2.0, parallel=self.shard_reads),
            store=self.store,
            rules=self.rules,
            audit=self.audit,
            interval=60,
            timeout=2.0,
            repeat_interval=timedelta(minutes=30),
            diagnoser=self.diagnose,
            clock=lambda: at(self.minute),
            observer=self.metrics,
        )
        self.services.append(self.service)
        return self.service

    def round(self, minute: float) -> RoundResult:
        self.minute = minute
        result = self.service.run_round()
        self.dispatcher.run_once()
        assert not result.late and all(c.error is None for c in result.checks)
        return result

    def close(self) -> None:
        for service in self.services:
            service.close()


def by_name(result: RoundResult) -> dict[str, TargetCheck]:
    return {check.target: check for check in result.checks}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the stores' backends are tested elsewhere; a cluster is costly."""
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def cluster(cluster_factory: ClusterFactory) -> RedisClusterProcs:
    return cluster_factory(*SMALL)


@pytest.fixture
def rig(db_engine: Engine, cluster: RedisClusterProcs) -> Iterator[Rig]:  # noqa: F811
    built = Rig(engine=db_engine, target=cluster_target(cluster))
    yield built
    built.close()


def test_a_full_shard_fires_for_that_shard_alone(rig: Rig) -> None:
    hot, url = owner(rig.target, f"{HOT}0")
    fill(url, 0.85)
    hot_subject = subject("sessions", hot.name)
    rig.round(0)
    result = rig.round(1)
    # The memory rule fired for the hot shard only, and the alert names it.
    assert rig.notifier.of(EventKind.FIRED) == [(hot_subject, "memory-warning")]
    [alert] = rig.store.open_alerts()
    assert alert.target == hot_subject and alert.channel == "C0ALERTS"
    assert rig.diagnosed == ["sessions"]  # a shard's alert is diagnosed on its target
    checks = by_name(result)
    shards = ["0-5460", "5461-10922", "10923-16383"]
    assert list(checks) == ["sessions", *(subject("sessions", s) for s in shards)]
    # The cluster's own subject: reachable, the shards' totals, store-down alone evaluated.
    own = checks["sessions"]
    assert own.sample.reachable and [o.rule.id for o in own.outcomes] == ["store-down"]
    shard_samples = [checks[subject("sessions", s)].sample for s in shards]
    assert own.sample.used_memory == sum(s.used_memory or 0 for s in shard_samples)
    assert own.sample.maxmemory == 3 * 4 * 1024 * 1024
    assert own.sample.usage_ratio is not None and own.sample.usage_ratio < 0.8
    # The table has a row per shard; the event line names the shard.
    console = Console(width=200, record=True)
    console.print(render_check(result.checks, checked_at=result.at))
    table = console.export_text()
    assert all(subject("sessions", s) in table for s in shards)
    fired = next(e for e in rig.notifier.events if e.kind is EventKind.FIRED)
    assert f"  {hot_subject}  memory-warning  FIRING" in event_line(fired).plain
    # The audit trail names the shard too.
    [entry] = [e for e in rig.audit.list_entries(limit=50) if e.action == "alert.fired"]
    assert entry.target == hot_subject


def test_two_shards_firing_in_one_round_take_one_diagnosis(rig: Rig) -> None:
    hot, hot_url = owner(rig.target, f"{HOT}0")
    prefix = next(
        p for p in (f"session:{{t{n}}}:" for n in range(100)) if owner(rig.target, p)[0] != hot
    )
    other, other_url = owner(rig.target, prefix)
    fill(hot_url, 0.85)
    fill(other_url, 0.85, prefix=prefix)
    rig.round(0)
    rig.round(1)
    fired = sorted(rig.notifier.of(EventKind.FIRED))
    assert fired == sorted(
        (subject("sessions", shard.name), "memory-warning") for shard in (hot, other)
    )
    # Both alerts carry the cluster's diagnosis, read once for the round.
    assert rig.diagnosed == ["sessions"]
    assert all(a.diagnosis is not None for a in rig.store.open_alerts())


def test_a_shards_alert_counts_in_its_clusters_report(rig: Rig) -> None:
    hot, url = owner(rig.target, f"{HOT}0")
    fill(url, 0.85)
    rig.round(0)
    rig.round(1)
    reports = ReportService(
        targets={rig.target.name: rig.target},
        source=SqlReportSource(rig.engine, raw_retention=timedelta(days=2), clock=lambda: at(2)),
        live=None,
        clock=lambda: at(2),
    )
    [report] = reports.build(window=timedelta(hours=1), target="sessions").targets
    reports.close()
    # The alert is the shard's (sessions/0-5460); the report is the cluster's.
    assert report.alerts.fired == {"memory-warning": 1}
    [opened] = report.alerts.open
    assert opened.target == subject("sessions", hot.name)
    assert report.samples == 2


def test_a_restart_keeps_a_shards_pending_timer(rig: Rig) -> None:
    hot, url = owner(rig.target, f"{HOT}0")
    fill(url, 0.85)
    rig.round(0)
    hot_subject = subject("sessions", hot.name)
    assert rig.notifier.of(EventKind.PENDING) == [(hot_subject, "memory-warning")]
    rig.restart()  # a new service reads the shard's stored state and samples
    # ``redis-mem check``: a row per subject, the hot one pending since the stored minute 0.
    rig.minute = 0.5
    checks, warning = rig.service.check_now()
    assert warning is None and len(checks) == 4 and checks[0].target == "sessions"
    [hot_check] = [c for c in checks if c.target == hot_subject]
    [pending] = [o for o in hot_check.outcomes if o.rule.id == "memory-warning"]
    assert pending.state is not None and pending.state.active_at == at(0)
    rig.round(1)
    assert rig.notifier.of(EventKind.FIRED) == [(hot_subject, "memory-warning")]


def test_a_stopped_primary_is_store_down_for_its_shard_then_the_cluster(
    rig: Rig, cluster: RedisClusterProcs
) -> None:
    stopped = discover(rig.target, timeout=2).shards[1]
    assert stopped.primary == cluster.nodes[1].address
    stopped_subject = subject("sessions", stopped.name)
    cluster.nodes[1].stop()
    rig.round(0)
    checks = by_name(rig.round(1))
    down = checks[stopped_subject].sample
    assert not down.reachable and "connection refused" in (down.error or "")
    assert all(
        c.sample.reachable for n, c in checks.items() if n not in (stopped_subject, "sessions")
    )
    assert (stopped_subject, "store-down") in rig.notifier.of(EventKind.FIRED)
    # The cluster's own subject goes down once gossip marks the primary failed (bounded).
    minute, deadline = 2, time.monotonic() + GOSSIP_SECONDS
    while by_name(rig.round(minute))["sessions"].sample.reachable:
        assert time.monotonic() < deadline, "the cluster never marked the stopped primary failed"
        minute += 1
        time.sleep(0.2)
    rig.round(minute + 1)
    fired = {e.target: e for e in rig.notifier.events if e.kind is EventKind.FIRED}
    assert set(fired) == {stopped_subject, "sessions"}
    assert fired["sessions"].detail == f"shard {stopped.name} ({stopped.primary}) is down"
    # The metrics count per target, its worst subject's outcome (never a label per shard).
    counted = {
        (s.labels["target"], s.labels["outcome"]): s.value
        for metric in rig.registry.collect()
        if metric.name == "redis_mem_checks"
        for s in metric.samples
        if s.name == "redis_mem_checks_total"
    }
    assert counted == {("sessions", "unreachable"): minute + 2}


def test_a_hung_primary_costs_its_shard_within_the_timeout(
    rig: Rig, cluster: RedisClusterProcs
) -> None:
    hung = subject("sessions", discover(rig.target, timeout=2).shards[2].name)
    with cluster.nodes[2].paused():
        checks = by_name(rig.round(0))
    assert not checks[hung].sample.reachable
    assert "no answer" in (checks[hung].sample.error or "")
    assert all(c.sample.reachable for n, c in checks.items() if n != hung)


def test_primaries_still_queued_at_the_deadline_are_down_not_a_crash(
    db_engine: Engine,  # noqa: F811
    cluster: RedisClusterProcs,
) -> None:
    # One primary read at a time, the first one hung: the others are never asked.
    rig = Rig(engine=db_engine, target=cluster_target(cluster), shard_reads=1)
    first = discover(rig.target, timeout=2).shards[0]
    [node] = [n for n in cluster.nodes if n.address == first.primary]
    try:
        with node.paused():
            checks = by_name(rig.round(0))
    finally:
        rig.close()
    queued = [
        c for n, c in checks.items() if n not in ("sessions", subject("sessions", first.name))
    ]
    assert "no answer" in (checks[subject("sessions", first.name)].sample.error or "")
    assert len(queued) == 2 and not any(c.sample.reachable for c in queued)
    assert all("not read within the check's 2 s" in (c.sample.error or "") for c in queued)


def test_no_seed_answering_is_store_down_of_the_cluster_in_one_line(
    db_engine: Engine,  # noqa: F811
) -> None:
    rig = Rig(engine=db_engine, target=cluster_target(None, "redis://:pw@127.0.0.1:1/0"))
    try:
        rig.round(0)
        result = rig.round(1)
        [check] = result.checks
        assert check.target == "sessions" and not check.sample.reachable
        error = check.sample.error or ""
        assert error.startswith("no seed of sessions answered: 127.0.0.1:1 ")
        assert "\n" not in error and "pw" not in error
        assert rig.notifier.of(EventKind.FIRED) == [("sessions", "store-down")]
        [fired] = [e for e in rig.notifier.events if e.kind is EventKind.FIRED]
        assert fired.detail == error
    finally:
        rig.close()


def test_cluster_totals_add_up_and_no_limit_is_no_limit() -> None:
    def shard(used: int, maxmemory: int, clients: int | None) -> Sample:
        return Sample("x", T0, True, used, maxmemory, 1, 2, 3, clients, 100, 0, 1.5)

    total = cluster_totals("sessions", T0, [shard(10, 100, 5), shard(30, 100, None)])
    assert (total.used_memory, total.maxmemory, total.dbsize) == (40, 200, 6)
    assert total.connected_clients is None  # one shard lacks it: no total
    assert total.fragmentation_ratio is None and total.usage_ratio == 0.2
    unlimited = cluster_totals("sessions", T0, [shard(10, 100, 5), shard(30, 0, 5)])
    assert unlimited.maxmemory == 0 and unlimited.usage_ratio is None


def move_slot(cluster: RedisClusterProcs, slot: int, *, source: int, destination: int) -> None:
    """Reshard one empty slot the way redis-cli does: importing, migrating, then NODE."""
    clients = [redis.Redis.from_url(url, decode_responses=True) for url in cluster.seed_urls]
    ids = [str(c.execute_command("CLUSTER", "MYID")) for c in clients]
    to, of = clients[destination], clients[source]
    to.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    of.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[destination])
    for client in (to, of, *(c for c in clients if c not in (to, of))):
        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[destination])
    for client in clients:
        client.close()


def test_a_resharded_shards_alert_resolves_once_and_the_new_name_takes_over(
    rig: Rig, cluster: RedisClusterProcs
) -> None:
    hot, url = owner(rig.target, f"{HOT}0")
    fill(url, 0.85)
    old = subject("sessions", hot.name)
    rig.round(0)
    rig.round(1)
    assert rig.notifier.of(EventKind.FIRED) == [(old, "memory-warning")]
    source = [n.address for n in cluster.nodes].index(hot.primary)
    first = hot.slots[0][0]  # holds no key: every key is in the {hot} slot
    move_slot(cluster, first, source=source, destination=(source + 1) % 3)
    deadline = time.monotonic() + GOSSIP_SECONDS
    while hot.name in {s.name for s in discover(rig.target, timeout=2).shards}:
        assert time.monotonic() < deadline, "the resharding never showed"
        time.sleep(0.1)
    renamed = subject("sessions", f"{first + 1}-{hot.slots[0][1]}")
    checks = by_name(rig.round(2))
    # The old name is evaluated once, with no reading: its alert resolves, saying why.
    assert rig.notifier.of(EventKind.RESOLVED) == [(old, "memory-warning")]
    [resolved] = [e for e in rig.notifier.events if e.kind is EventKind.RESOLVED]
    assert resolved.detail.startswith(f"{GONE_DETAIL}; firing for ")
    assert checks[old].sample.reachable and checks[old].sample.used_memory is None
    assert rig.store.open_alerts() == []
    assert checks[renamed].outcomes[0].status == "pending"  # a new subject, a new timer
    checks = by_name(rig.round(3))
    assert old not in checks  # resolved for good: not evaluated again
    assert rig.notifier.of(EventKind.FIRED) == [
        (old, "memory-warning"),
        (renamed, "memory-warning"),
    ]


def test_a_shards_alert_offers_its_fixes_on_the_cluster_target() -> None:
    alert = Alert(
        id="0123456789abcdef0123456789abcdef",
        target="sessions/5461-10922",
        group="memory",
        rule="memory-warning",
        severity=Severity.WARNING,
        status=AlertStatus.FIRING,
        value=0.85,
        active_at=T0,
        fired_at=T0,
        last_notified_at=T0,
        channel="C0ALERTS",
        # A fix a cluster offers (raise-maxmemory, refused there, is never recommended).
        diagnosis=AlertDiagnosis(T0, "warning", recommended_actions=("expire-keys-without-ttl",)),
    )
    [fix, *_] = next(b for b in button_blocks(alert) if b.type == "actions").elements
    assert fix.action_id == "redis_mem.request.expire-keys-without-ttl"
    assert fix.value == "sessions"
    assert "sessions/5461-10922" in alert_message(alert, now=T0).text
