"""The alert rig shared by the test_slack_alert_* modules (no tests of its own).

Real parts: a SQLite audit database migrated to head, ``SqlHealthStore``, the real
``HealthService`` and ``Dispatcher``, ``SlackNotifier`` on ``slack_clients(...).alerts``
talking to the fake Slack Web API over HTTP, and (for clicks) the real Bolt app under
uvicorn.
Only the samples are canned: ``CannedSource`` is a fake of our ``SampleSource`` port.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Settings, Target
from bot.errors import RedisUnavailable
from bot.health.dispatch import Dispatcher
from bot.health.model import Alert, AlertDiagnosis, Sample, ScenarioDigest
from bot.health.rules import RuleBook
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.health.subjects import SubjectSamples
from bot.slack.metrics import BotMetrics
from bot.slack.notifier import SlackNotifier
from bot.web import create_web_app
from bot.wiring import diagnosis_service, slack_clients
from tests.asgiserver import ThreadedServer
from tests.fakeslack import Call, FakeSlack
from tests.health_support import Clock, only
from tests.slack_app_support import bolt_app
from tests.slacksign import button_click_payload, signed_headers

SECRET = "test-signing-secret"
TOKEN = "xoxb-alert-test-token"
ALERTS = "C0ALERTS"
OPS = "C0OPS"
MB = 1024**2
BOB = ("U0BOB", "bob")
INTERVAL = 60


def start_of_minute() -> datetime:
    """Now, floored to the minute: the rounds' grid, close to the real time."""
    now = datetime.now(UTC)
    return now.replace(second=0, microsecond=0)


@dataclass
class CannedSource:
    """A SampleSource returning the memory ratio the test set (None: unreachable)."""

    ratios: dict[str, float | None] = field(default_factory=dict)
    maxmemory: int = 64 * MB

    def read(self, target: Target, *, at: datetime) -> Sample:
        ratio = self.ratios.get(target.name, 0.5)
        if ratio is None:
            raise RedisUnavailable("cannot reach Redis at 10.0.0.9:6379: connection refused")
        return Sample(
            target.name,
            at,
            reachable=True,
            used_memory=int(ratio * self.maxmemory),
            maxmemory=self.maxmemory,
            evicted_keys=0,
            expired_keys=0,
            dbsize=1000,
            connected_clients=5,
            maxclients=10_000,
            rejected_connections=0,
            fragmentation_ratio=1.1,
        )

    def read_all(self, target: Target, *, at: datetime) -> SubjectSamples:
        try:
            return SubjectSamples((self.read(target, at=at),))
        except RedisUnavailable as err:
            return SubjectSamples((Sample(target.name, at, reachable=False, error=err.message),))

    def close(self) -> None:
        return None


def memory_rules() -> RuleBook:
    """The memory rules with short for-durations, and store-down; every other rule off."""
    return only(
        "memory-warning",
        "memory-critical",
        "store-down",
        **{"memory-warning": {"for_seconds": 120}, "memory-critical": {"for_seconds": 60}},
    )


def canned_diagnosis(checked_at: datetime) -> AlertDiagnosis:
    """What a diagnosis of a store full of sessions without TTL digests to."""
    return AlertDiagnosis(
        checked_at=checked_at,
        severity="critical",
        scenarios=(
            ScenarioDigest(
                id="ttl-leak",
                title="Sessions without TTL",
                evidence=("40% of 1,000 sampled session keys have no TTL",),
                actions=("expire-keys-without-ttl",),
            ),
        ),
        recommended_actions=("expire-keys-without-ttl", "raise-maxmemory"),
    )


@dataclass
class AlertRig:
    """Service, dispatcher and Slack notifier over one database and the fake Slack."""

    engine: Engine
    fake: FakeSlack
    settings: Settings
    targets: dict[str, Target]
    rules: RuleBook
    clock: Clock = field(default_factory=lambda: Clock(start=start_of_minute()))
    source: CannedSource = field(default_factory=CannedSource)
    repeat: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        self.store = SqlHealthStore(self.engine)
        self.audit = SqlAuditStore(self.engine, clock=self.clock)
        self.notifier = SlackNotifier(slack_clients(self.settings).alerts, clock=self.clock)
        self.dispatcher = Dispatcher(
            store=self.store, notifier=self.notifier, audit=self.audit, clock=self.clock
        )
        self.service = HealthService(
            targets=self.targets,
            source=self.source,
            store=self.store,
            rules=self.rules,
            audit=self.audit,
            interval=INTERVAL,
            timeout=2.0,
            repeat_interval=self.repeat,
            diagnoser=lambda name: canned_diagnosis(self.clock()),
            clock=self.clock,
        )

    def round(self, minute: float, **ratios: float | None) -> None:
        """Set the targets' ratios, run a check round at ``minute`` and drain the outbox."""
        self.source.ratios.update(ratios)
        self.clock.now = self.clock.at(minute)
        self.service.run_round()
        self.dispatcher.run_once()

    def alert(self, target: str = "prod") -> Alert:
        """The target's one firing alert."""
        [alert] = self.store.open_alerts(target)
        return alert

    def check(self, minute: float, **ratios: float | None) -> None:
        """A check round at ``minute`` whose events stay in the outbox."""
        self.source.ratios.update(ratios)
        self.clock.now = self.clock.at(minute)
        self.service.run_round()

    def fire(self, target: str = "prod", *, start: float = 0) -> Alert:
        """Drive ``target`` to a posted memory-warning alert (85%, for 2 minutes)."""
        for minute in (start, start + 1, start + 2):
            self.round(minute, **{target: 0.85})
        alert = self.alert(target)
        assert alert.message_ts is not None
        return alert

    def audit_actions(self) -> list[str]:
        return [e.action for e in reversed(self.audit.list_entries(limit=500))]

    def close(self) -> None:
        self.service.close()


def settings_for(fake: FakeSlack) -> Settings:
    return Settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=fake.api_url,
        sample_size=100,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(built)
    yield built
    built.dispose()


@pytest.fixture
def rig(engine: Engine, fake_slack: FakeSlack) -> Iterator[AlertRig]:
    targets = {
        "prod": Target(name="prod", channel=ALERTS),
        "stage": Target(name="stage", channel=ALERTS),
    }
    built = AlertRig(
        engine=engine,
        fake=fake_slack,
        settings=settings_for(fake_slack),
        targets=targets,
        rules=memory_rules(),
    )
    yield built
    built.close()


# The Bolt app ------------------------------------------------------------------------------


@dataclass
class AlertBot:
    """The real Bolt app under uvicorn, wired to the rig's health service."""

    url: str
    rig: AlertRig
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    _triggers: Iterator[int] = field(default_factory=lambda: iter(range(1, 10_000)))

    @property
    def fake(self) -> FakeSlack:
        return self.rig.fake

    def post(self, body: str, *, timestamp: int | None = None) -> httpx.Response:
        headers = signed_headers(secret=SECRET, body=body, timestamp=timestamp)
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def click(
        self,
        action_id: str,
        value: str,
        *,
        ts: str | None,
        user: tuple[str, str] = BOB,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """A signed button click on the message ``ts`` of the alerts channel."""
        payload = button_click_payload(
            action_id=action_id,
            value=value,
            response_url=self.fake.response_url("click"),
            user=user,
            channel=ALERTS,
            ts=ts,
            trigger_id=f"{next(self._triggers)}.42.click",
        )
        return self.post(urlencode({"payload": json.dumps(payload)}), timestamp=timestamp)

    def command(self, text: str, *, team_domain: str | None = "fake") -> httpx.Response:
        """``/redis-mem <text>`` typed by bob in #ops."""
        fields = {
            "team_id": "T0FAKE",
            "channel_id": OPS,
            "user_id": BOB[0],
            "user_name": BOB[1],
            "command": "/redis-mem",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": self.fake.response_url(),
            "trigger_id": f"{next(self._triggers)}.42.cmd",
        }
        if team_domain is not None:
            fields["team_domain"] = team_domain
        return self.post(urlencode(fields))


@pytest.fixture
def start_alert_bot(rig: AlertRig) -> Iterator[Callable[..., AlertBot]]:
    """Start the Bolt app (``health`` wired, or None) under uvicorn on a free port."""
    servers: list[ThreadedServer] = []

    def start(*, with_health: bool = True) -> AlertBot:
        settings = rig.settings
        registry = CollectorRegistry()
        bolt = bolt_app(
            settings,
            diagnosis=diagnosis_service(settings, rig.targets),
            audit=rig.audit,
            metrics=BotMetrics.create(registry),
            audit_reader=rig.audit,
            health=rig.service if with_health else None,
        )
        web = create_web_app(registry=registry, bolt_app=bolt, ready=lambda: True)
        servers.append(ThreadedServer.start(web))
        return AlertBot(url=servers[-1].url, rig=rig)

    yield start
    for server in servers:
        server.stop()


# Reading what the fake received -------------------------------------------------------------


def channel_posts(fake: FakeSlack) -> list[Call]:
    """Top-level chat.postMessage calls Slack accepted (not thread replies)."""
    return [
        c
        for c in fake.accepted("chat.postMessage")
        if not c.params.get("thread_ts") and c.params.get("channel") == ALERTS
    ]


def thread_replies(fake: FakeSlack) -> list[Call]:
    """Thread replies Slack accepted."""
    return [c for c in fake.accepted("chat.postMessage") if c.params.get("thread_ts")]


__all__ = [
    "ALERTS",
    "BOB",
    "OPS",
    "TOKEN",
    "AlertBot",
    "AlertRig",
    "channel_posts",
    "engine",
    "memory_rules",
    "rig",
    "settings_for",
    "start_alert_bot",
    "thread_replies",
]
