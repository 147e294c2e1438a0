"""A hundred targets on real redis-servers: ``/redis-mem status`` through the served Bolt
app, one server SIGSTOPped; filters; labels routing alerts to their channels.

The fleet is 4 servers x 25 databases (``--databases 32``), each database a target:
- ``edge-0-N`` (env=prod team=edge): the server that is SIGSTOPped (hung);
- ``pay-1-N`` (env=prod team=payments): databases 0-2 hold sessions without TTL (warning);
- ``pay-2-N`` (env=stage team=payments);
- ``cache-3-N``: no labels, grouped by the name's prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from bot.config import Settings, Target
from bot.redisinfo.pool import ClientPool
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.snapshot import RedisProbe
from bot.services.diagnose import DiagnosisService
from bot.slack.metrics import BotMetrics
from bot.targets_file import load_targets
from bot.web import create_web_app
from tests.asgiserver import ThreadedServer
from tests.conftest import RedisFactory
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.fakeslack import FakeSlack
from tests.health_support import MEMORY, session_store, set_ratio
from tests.redisserver import RedisServer
from tests.slack_app_support import bolt_app
from tests.slackcheck import rebuilt
from tests.test_health_service import Rig
from tests.test_slack_http import SECRET, Bot, ListSink, ack_text

TIMEOUT = 3.0  # the per-target timeout (REDIS_MEM_CHECK_TIMEOUT); the 75 healthy targets must
# be diagnosed within it while the whole suite loads both cores (at 2 s, 5 of them missed it
# once, with a second suite running beside CI's)
DBS = 25
GROUPS = [
    ("edge", "env: prod, team: edge"),
    ("pay", "env: prod, team: payments"),
    ("pay", "env: stage, team: payments"),
    ("cache", ""),
]


@dataclass
class Fleet:
    servers: list[RedisServer]
    targets: dict[str, Target]

    @property
    def hung(self) -> RedisServer:
        return self.servers[0]


def write_targets(tmp_path: Path, servers: list[RedisServer]) -> Path:
    """The targets file of the fleet (labels as a user writes them)."""
    lines = ["targets:"]
    for index, (server, (prefix, labels)) in enumerate(zip(servers, GROUPS, strict=True)):
        for db in range(DBS):
            url = server.url.rsplit("/", 1)[0] + f"/{db}"
            extra = f", labels: {{{labels}}}" if labels else ""
            lines.append(f"  - {{name: {prefix}-{index}-{db}, redis_url: '{url}'{extra}}}")
    lines += ["routes:", "  - match: {team: payments}", "    channel: C0PAYMENTS"]
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fleet(redis_factory: RedisFactory, tmp_path: Path) -> Fleet:
    servers = [
        redis_factory(
            "--databases", "32", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"
        )
        for _ in range(4)
    ]
    for db in range(3):  # sessions without TTL: the ttl-leak warning
        client = redis.Redis.from_url(servers[1].url.rsplit("/", 1)[0] + f"/{db}")
        client.mset({f"session:{i}": "x" * 100 for i in range(60)})
        client.close()
    targets = load_targets(Settings(targets_file=write_targets(tmp_path, servers)))
    assert len(targets) == 100
    return Fleet(servers=servers, targets=targets)


@pytest.fixture
def clients() -> Iterator[ClientPool]:
    pool = ClientPool()
    yield pool
    pool.close()


@pytest.fixture
def bot(fake_slack: FakeSlack, fleet: Fleet, clients: ClientPool) -> Iterator[Bot]:
    def short_probe(target: Target) -> RedisProbe:
        """The real probe, pooled, its socket timeout the tests' per-target timeout."""
        url = target.connection_url()
        return LiveRedisProbe(name=target.name, url=url, timeout=TIMEOUT, clients=clients)

    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        sample_size=100,
        check_timeout=TIMEOUT,
    )
    diagnosis = DiagnosisService(
        targets=fleet.targets,
        probe_factory=short_probe,
        thresholds=settings.thresholds,
        sample_size=settings.sample_size,
    )
    registry = CollectorRegistry()
    sink = ListSink()
    app = bolt_app(settings, diagnosis=diagnosis, audit=sink, metrics=BotMetrics.create(registry))
    server = ThreadedServer.start(
        create_web_app(registry=registry, bolt_app=app, ready=lambda: True)
    )
    yield Bot(url=server.url, fake=fake_slack, audit=sink)
    server.stop()


def posted_lines(bot: Bot) -> tuple[list[dict[str, object]], list[str]]:
    [post] = bot.fake.wait_for("chat.postMessage", timeout=TIMEOUT + 15)
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks  # slack_sdk's own limit checks
    assert len(blocks) <= 50
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in texts)
    return blocks, "\n".join(texts).splitlines()


def test_status_of_a_hundred_targets_one_hung_is_one_message_worst_first(
    bot: Bot, fleet: Fleet
) -> None:
    with fleet.hung.paused():
        assert ack_text(bot.command("status")) == "Checking 100 targets…"
        blocks, lines = posted_lines(bot)

    assert blocks[0]["text"]["text"] == "Redis memory — 100 targets"  # type: ignore[index]
    hung = lines[:25]
    assert {line.split("*")[1] for line in hung} == {f"edge-0-{db}" for db in range(DBS)}
    assert all(line.startswith("⚫") and "no answer" in line for line in hung), hung
    assert all(line.endswith("env=prod team=edge") for line in hung)
    warnings = lines[25:28]
    assert {line.split("*")[1] for line in warnings} == {"pay-1-0", "pay-1-1", "pay-1-2"}
    assert all(line.startswith("🟡") and "ttl-leak" in line for line in warnings)
    assert [line.split(":")[0] for line in lines[28:]] == [
        "🟢 25 ok in *cache*",
        "🟢 25 ok in *stage*",
        "🟢 22 ok in *prod*",
    ]
    counts = blocks[-1]["elements"][0]["text"]  # type: ignore[index]
    assert counts == "⚫ 25 unreachable · 🟡 3 warning · 🟢 72 ok"
    [entry] = bot.audited()
    assert entry.action == "command.status" and entry.outcome == "warning"


def test_status_filters_by_glob_and_label(bot: Bot) -> None:
    assert ack_text(bot.command("status pay-*-1? team=payments")) == "Checking 20 targets…"
    blocks, lines = posted_lines(bot)
    assert blocks[0]["text"]["text"] == (  # type: ignore[index]
        "Redis memory — 20 targets matching pay-*-1? team=payments"
    )
    assert [line.split(":")[0] for line in lines] == ["🟢 10 ok in *prod*", "🟢 10 ok in *stage*"]
    assert all(line.endswith("% of maxmemory") for line in lines)
    assert ack_text(bot.command("status env=stage")) == "Checking 25 targets…"
    filters = [dict(entry.parameters) for entry in bot.audited(2)]
    assert sorted(f["filter"] for f in filters) == ["env=stage", "pay-*-1? team=payments"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("status nothing-*", "status: no target matches nothing-*"),
        ("status env=prod team=cache", "status: no target matches env=prod team=cache"),
        ("status Env=prod", "status: a label filter is key=value"),
        ("status pay/1", "status: a name glob is at most 128"),
    ],
)
def test_bad_or_empty_filters_are_one_line(bot: Bot, text: str, answer: str) -> None:
    reply = ack_text(bot.command(text))
    assert reply.startswith("⚠ " + answer) and "\n" not in reply
    assert "cache-3-0" not in reply  # no target is listed
    assert not bot.fake.calls_to("chat.postMessage")


def test_alerts_of_labelled_targets_land_in_their_routed_channel(
    db_engine: Engine,  # noqa: F811
    redis_factory: RedisFactory,
    tmp_path: Path,
) -> None:
    stores = [session_store(redis_factory) for _ in range(3)]
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        f"  - {{name: pay, redis_url: '{stores[0].url}', labels: {{team: payments}}}}\n"
        f"  - {{name: own, redis_url: '{stores[1].url}', labels: {{team: payments}},"
        " channel: C0OWN}\n"
        f"  - {{name: other, redis_url: '{stores[2].url}', labels: {{team: search}}}}\n"
        "routes:\n  - {match: {team: payments}, channel: C0PAYMENTS}\n"
    )
    targets = load_targets(Settings(targets_file=path))
    rig = Rig(engine=db_engine, targets=targets, rules=MEMORY)
    try:
        for store in stores:
            set_ratio(store, 0.95)
        for minute in range(3):
            rig.round(minute)
    finally:
        rig.close()
    fired = {
        alert.target: alert.channel
        for event, alert in rig.notifier.events
        if alert is not None and event.kind.value == "fired"
    }
    assert fired == {"pay": "C0PAYMENTS", "own": "C0OWN", "other": None}


def test_a_pooled_probe_reuses_its_connection_and_survives_a_closed_one(
    redis_server: RedisServer, clients: ClientPool
) -> None:
    probe = LiveRedisProbe(name="t", url=redis_server.url, timeout=TIMEOUT, clients=clients)
    admin = redis.Redis.from_url(redis_server.url)
    probe.snapshot(pattern="session:*", sample_size=10)
    before = admin.info("stats")["total_connections_received"]
    probe.snapshot(pattern="session:*", sample_size=10)
    assert admin.info("stats")["total_connections_received"] == before  # no new connection
    admin.client_kill_filter(_type="normal", skipme=True)  # the server drops the pooled one
    assert probe.snapshot(pattern="session:*", sample_size=10).dbsize == 0
    admin.close()
