"""Check rounds against real redis-servers and a real database, the clock moved by hand.

A recording Notifier (a fake of our port) stands in for Slack here; the Slack face is
tested end to end in tests/test_serve_health.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from bot.config import Target
from bot.errors import AuditUnavailable, Refused
from bot.health.dispatch import Dispatcher
from bot.health.model import Alert, AlertEvent, EventKind
from bot.health.ports import Delivered, Evaluation, NotifyError
from bot.health.rules import RuleBook
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.redisinfo.sampler import LiveSampleSource
from tests.conftest import RedisFactory
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.health_support import MEMORY, Clock, at, only, session_store, set_ratio, target
from tests.redisserver import RedisServer, free_port


@dataclass
class Recorder:
    """A Notifier that keeps what it was given; ``failures`` makes the next calls fail."""

    events: list[tuple[AlertEvent, Alert | None]] = field(default_factory=list)
    failures: list[NotifyError] = field(default_factory=list)
    posts: int = 0

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        if self.failures and alert is not None:  # pending/cleared post nothing: cannot fail
            raise self.failures.pop(0)
        self.events.append((event, alert))
        if alert is not None and alert.message_ts is None and event.kind is not EventKind.PENDING:
            self.posts += 1
            return Delivered(channel=alert.channel, ts=f"1700000000.{self.posts:06d}")
        return Delivered()

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.kind.value, e.rule) for e, _ in self.events if e.kind is not EventKind.PENDING]


@dataclass
class Rig:
    """A service, its dispatcher and notifier over one database."""

    engine: Engine
    targets: dict[str, Target]
    rules: RuleBook
    clock: Clock = field(default_factory=Clock)
    notifier: Recorder = field(default_factory=Recorder)
    services: list[HealthService] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = SqlHealthStore(self.engine)
        self.audit = SqlAuditStore(self.engine, clock=self.clock)
        self.dispatcher = Dispatcher(
            store=self.store, notifier=self.notifier, audit=self.audit, clock=self.clock
        )
        self.service = self.restart()

    def restart(self) -> HealthService:
        """A new service over the same database (what a restarted ``serve`` builds)."""
        service = HealthService(
            targets=self.targets,
            source=LiveSampleSource(timeout=1.0),
            store=self.store,
            rules=self.rules,
            audit=self.audit,
            interval=60,
            timeout=1.0,
            repeat_interval=timedelta(minutes=30),
            clock=self.clock,
        )
        self.services.append(service)
        self.service = service
        return service

    def round(self, minute: float) -> None:
        self.clock.now = at(minute)
        self.service.run_round()
        self.dispatcher.run_once()

    def audit_actions(self) -> list[str]:
        return [e.action for e in reversed(self.audit.list_entries(limit=500))]

    def close(self) -> None:
        for service in self.services:
            service.close()


@pytest.fixture
def prod(redis_factory: RedisFactory) -> RedisServer:
    return session_store(redis_factory)


@pytest.fixture
def rig(db_engine: Engine, prod: RedisServer) -> Iterator[Rig]:  # noqa: F811
    built = Rig(engine=db_engine, targets={"prod": target("prod", prod.url)}, rules=MEMORY)
    yield built
    built.close()


def test_warning_fires_after_for_escalates_and_resolves_on_a_real_store(
    rig: Rig, prod: RedisServer
) -> None:
    set_ratio(prod, 0.85)
    rig.round(0)
    rig.round(1)
    assert rig.notifier.kinds() == []  # pending: nothing is posted
    rig.round(2)
    assert rig.notifier.kinds() == [("fired", "memory-warning")]
    set_ratio(prod, 0.95)
    rig.round(3)
    rig.round(4)
    set_ratio(prod, 0.5)
    rig.round(5)
    assert rig.notifier.kinds() == [
        ("fired", "memory-warning"),
        ("escalated", "memory-critical"),
        ("resolved", "memory-critical"),  # straight from critical to below 80%
    ]
    ids = {e.alert_id for e, _ in rig.notifier.events if e.alert_id}
    assert len(ids) == 1  # one message through the whole life
    [(_, resolved_alert)] = [(e, a) for e, a in rig.notifier.events if e.kind is EventKind.RESOLVED]
    assert resolved_alert is not None and resolved_alert.message_ts == "1700000000.000001"
    actions = rig.audit_actions()
    assert [a for a in actions if a.startswith("alert.")] == [
        "alert.fired",
        "alert.escalated",
        "alert.resolved",
    ]
    assert verify_chain(rig.engine).ok


def test_a_restart_while_pending_fires_at_the_original_time(rig: Rig, prod: RedisServer) -> None:
    set_ratio(prod, 0.85)
    rig.round(0)
    rig.round(1)
    rig.restart()
    rig.round(2)  # 2 minutes after the first pending evaluation: for: 2m has passed
    assert rig.notifier.kinds() == [("fired", "memory-warning")]
    [(event, _)] = [(e, a) for e, a in rig.notifier.events if e.kind is EventKind.FIRED]
    assert event.at == at(2)


def test_a_restart_while_firing_posts_nothing_again(rig: Rig, prod: RedisServer) -> None:
    set_ratio(prod, 0.85)
    for minute in range(3):
        rig.round(minute)
    rig.restart()
    for minute in range(3, 6):
        rig.round(minute)
    assert rig.notifier.kinds() == [("fired", "memory-warning")]
    assert rig.notifier.posts == 1


def test_unreachable_and_hung_stores_cost_only_their_own_check(
    db_engine: Engine,  # noqa: F811
    prod: RedisServer,
    redis_factory: RedisFactory,
) -> None:
    hung = redis_factory()
    refused_url = f"redis://127.0.0.1:{free_port()}/0"
    targets = {
        "prod": target("prod", prod.url),
        "hung": target("hung", hung.url),
        "gone": target("gone", refused_url),
    }
    rules = only("store-down", **{"store-down": {"for_seconds": 60}})
    rig = Rig(engine=db_engine, targets=targets, rules=rules)
    try:
        rig.round(0)  # everyone answers; the hung store's connection is kept open
        with hung.paused():
            rig.round(1)
            rig.round(2)
    finally:
        rig.close()
    samples = rig.store.recent_samples(since=at(0))
    assert [s.reachable for s in samples["prod"]] == [True, True, True]
    assert [s.reachable for s in samples["hung"]] == [True, False, False]
    assert "no answer within 1 s" in (samples["hung"][-1].error or "")
    assert "connection refused" in (samples["gone"][-1].error or "")
    fired = [(e.target, e.at) for e, _ in rig.notifier.events if e.kind is EventKind.FIRED]
    assert fired == [("gone", at(1)), ("hung", at(2))]


def test_real_evictions_fire_the_eviction_rate(
    db_engine: Engine,  # noqa: F811
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    rules = only("eviction-rate", **{"eviction-rate": {"for_seconds": 0}})
    rig = Rig(engine=db_engine, targets={"lru": target("lru", server.url)}, rules=rules)
    client = redis.Redis.from_url(server.url)
    try:
        rig.round(0)
        with client.pipeline(transaction=False) as pipe:
            for i in range(20_000):
                pipe.set(f"session:{i}", "y" * 400)
            pipe.execute()
        rig.round(1)
        evicted = int(client.info("stats")["evicted_keys"])
    finally:
        client.close()
        rig.close()
    assert evicted > 3000
    assert rig.notifier.kinds() == [("fired", "eviction-rate")]
    [(event, _)] = [(e, a) for e, a in rig.notifier.events if e.kind is EventKind.FIRED]
    assert event.value is not None and event.value > 10


class FlakyStore:
    """A HealthStore that passes every call to the real one, except that recording a check
    fails while ``down`` (the database went away)."""

    def __init__(self, inner: SqlHealthStore) -> None:
        self.inner = inner
        self.down = False

    def record(self, evaluation: Evaluation) -> None:
        if self.down:
            raise AuditUnavailable("audit database test unavailable while recording: gone")
        self.inner.record(evaluation)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_database_down_loses_nothing_the_next_round_sees_it_again(
    db_engine: Engine,  # noqa: F811
    prod: RedisServer,
) -> None:
    rig = Rig(engine=db_engine, targets={"prod": target("prod", prod.url)}, rules=MEMORY)
    flaky = FlakyStore(SqlHealthStore(db_engine))
    rig.store = flaky
    service = rig.restart()
    try:
        set_ratio(prod, 0.85)
        rig.round(0)
        flaky.down = True
        rig.clock.now = at(2)
        result = service.run_round()
        assert "unavailable" in (result.checks[0].error or "")
        flaky.down = False
        rig.round(3)
    finally:
        rig.close()
    assert rig.notifier.kinds() == [("fired", "memory-warning")]
    [(event, _)] = [(e, a) for e, a in rig.notifier.events if e.kind is EventKind.FIRED]
    assert event.at == at(3)  # the for timer kept counting from minute 0


def test_acknowledge_and_snooze_and_their_refusals(rig: Rig, prod: RedisServer) -> None:
    set_ratio(prod, 0.85)
    for minute in range(3):
        rig.round(minute)
    [alert] = rig.store.open_alerts()
    acked = rig.service.acknowledge(alert.id, actor="U0BOB", on=alert.message_ts)
    assert acked.acknowledged_by == "U0BOB"
    with pytest.raises(Refused, match="already acknowledged"):
        rig.service.acknowledge(alert.id, actor="U0CAROL")
    with pytest.raises(Refused, match="not an alert id"):
        rig.service.acknowledge("'; DROP TABLE health_alerts; --", actor="U0EVE")
    with pytest.raises(Refused, match="no such alert"):
        rig.service.snooze("0" * 32, actor="U0EVE", hours=1)
    with pytest.raises(Refused, match="not on this alert's message"):
        rig.service.snooze(alert.id, actor="U0EVE", hours=1, on="1700000000.999999")
    snoozed = rig.service.snooze(alert.id, actor="U0BOB", hours=4, on=alert.message_ts)
    assert snoozed.snoozed_until == at(2) + timedelta(hours=4)
    rig.dispatcher.run_once()
    kinds = [e.kind for e, _ in rig.notifier.events]
    assert kinds[-2:] == [EventKind.ACKNOWLEDGED, EventKind.SNOOZED]
    actions = rig.audit_actions()
    assert actions.count("access.denied") == 4
    assert "alert.acknowledged" in actions and "alert.snoozed" in actions
    set_ratio(prod, 0.3)
    rig.round(3)
    with pytest.raises(Refused, match="resolved"):
        rig.service.snooze(alert.id, actor="U0BOB", hours=1)


def test_slack_down_retries_in_order_and_never_posts_twice(rig: Rig, prod: RedisServer) -> None:
    set_ratio(prod, 0.85)
    rig.notifier.failures = [NotifyError("ratelimited", transient=True)] * 3
    for minute in range(3):
        rig.round(minute)  # memory-warning fires at 2: its post fails
    set_ratio(prod, 0.95)
    rig.round(3)  # the post fails again
    rig.round(4)  # memory-critical escalates: it waits behind the post, which fails once more
    assert rig.notifier.kinds() == []
    rig.round(5)
    assert rig.notifier.kinds() == [("fired", "memory-warning"), ("escalated", "memory-critical")]
    assert rig.notifier.posts == 1


def test_audit_down_holds_delivery_until_the_transition_is_audited(
    rig: Rig, prod: RedisServer
) -> None:
    set_ratio(prod, 0.95)
    for minute in range(2):
        rig.clock.now = at(minute)
        rig.service.run_round()
    down_engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x")
    down_audit = SqlAuditStore(down_engine)
    Dispatcher(store=rig.store, notifier=rig.notifier, audit=down_audit, clock=rig.clock).run_once()
    down_engine.dispose()
    assert rig.notifier.kinds() == []
    rig.dispatcher.run_once()
    assert rig.notifier.kinds() == [("fired", "memory-critical")]
    assert rig.audit_actions().count("alert.fired") == 1


def test_retention_prunes_old_samples(rig: Rig) -> None:
    rig.round(0)
    rig.clock.now = at(0) + timedelta(days=15)
    assert rig.service.prune() == 1
    assert rig.store.recent_samples(since=at(0)) == {}


def test_an_event_failing_for_days_keeps_its_backoff_and_never_jams_the_outbox(
    rig: Rig, prod: RedisServer
) -> None:
    """A channel the bot is not in fails every attempt: 60 of them, then it is invited."""
    set_ratio(prod, 0.95)
    rig.notifier.failures = [NotifyError("not_in_channel", transient=True)] * 60
    rig.round(0)
    rig.round(1)  # memory-critical fires; its post fails
    for attempt in range(2, 62):
        rig.clock.now = at(attempt)  # past the backoff (capped at 60 s) every time
        rig.dispatcher.run_once()  # never raises, whatever the attempt count
    assert rig.notifier.kinds() == [("fired", "memory-critical")]
    assert rig.notifier.posts == 1
