"""The Slack face end to end: signed HTTP requests in, a fake Slack Web API out.

A real uvicorn serves the real Starlette app and Bolt App on a free port; the
bot diagnoses real redis-servers and talks to ``tests.fakeslack`` over HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry

from bot.audit.engine import make_engine
from bot.audit.entry import AuditEntry
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from bot.config import Settings, Target
from bot.errors import AuditUnavailable
from bot.slack.metrics import BotMetrics
from bot.web import create_web_app
from bot.wiring import diagnosis_service
from tests.asgiserver import ThreadedServer
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.redisserver import free_port
from tests.slack_app_support import bolt_app
from tests.slackcheck import all_text, rebuilt, wait_until
from tests.slacksign import button_click_payload, signed_headers

SECRET = "test-signing-secret"
PASSWORD = "hunter2-never-shown"


class ListSink:
    """A fake of the AuditSink port: keeps entries in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BrokenSink:
    """An AuditSink whose database is down."""

    def record(self, entry: AuditEntry) -> None:
        raise AuditUnavailable("database is locked")


@dataclass
class Bot:
    """The running bot, its fake Slack and what it recorded."""

    url: str
    fake: FakeSlack
    audit: Any
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def command(
        self, text: str, *, timestamp: int | None = None, secret: str = SECRET
    ) -> httpx.Response:
        """POST a signed ``/redis-mem <text>`` as Slack would."""
        body = urlencode(slash_payload(text, response_url=self.fake.response_url()))
        headers = signed_headers(secret=secret, body=body, timestamp=timestamp)
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def audited(self, count: int = 1) -> list[AuditEntry]:
        """Poll (bounded) until ``count`` audit entries were recorded."""
        wait_until(lambda: len(self.audit.entries) >= count)
        return list(self.audit.entries)


def slash_payload(text: str, *, response_url: str) -> dict[str, str]:
    """The form fields Slack posts for a slash command."""
    return {
        "token": "legacy-unused",
        "team_id": "T0FAKE",
        "team_domain": "fake",
        "channel_id": "C0OPS",
        "channel_name": "ops",
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/redis-mem",
        "text": text,
        "api_app_id": "A0APP",
        "response_url": response_url,
        "trigger_id": "1337.42.abcdef",
    }


@pytest.fixture
def targets(redis_factory: RedisFactory) -> dict[str, Target]:
    """``prod``: a real Redis full of sessions without TTL; ``down``: nothing listens there."""
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(300):
            pipe.set(f"session:{i}", "x" * 2000)
        pipe.execute()
    client.close()
    down_url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    return {
        "prod": Target(name="prod", redis_url=server.url),
        "down": Target(name="down", redis_url=down_url),
    }


@pytest.fixture
def start_bot(fake_slack: FakeSlack, targets: dict[str, Target]) -> Iterator[Callable[..., Bot]]:
    """Start the ASGI app under uvicorn on a free port (stopped after the test)."""
    servers: list[ThreadedServer] = []

    def start(audit: Any = None, audit_reader: Any = None) -> Bot:
        settings = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=fake_slack.api_url,
            sample_size=100,
        )
        registry = CollectorRegistry()
        sink = audit if audit is not None else ListSink()
        bolt = bolt_app(
            settings,
            diagnosis=diagnosis_service(settings, targets),
            audit=sink,
            metrics=BotMetrics.create(registry),
            audit_reader=audit_reader,
        )
        web = create_web_app(registry=registry, bolt_app=bolt, ready=lambda: True)
        servers.append(ThreadedServer.start(web))
        return Bot(url=servers[-1].url, fake=fake_slack, audit=sink)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def bot(start_bot: Callable[..., Bot]) -> Bot:
    return start_bot()


def ack_text(response: httpx.Response) -> str:
    """The ephemeral text of a slash-command ack."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("response_type") == "ephemeral"
    return str(body["text"])


def test_diagnose_acks_then_posts_the_diagnosis_in_the_channel(bot: Bot) -> None:
    assert ack_text(bot.command("diagnose prod")) == "Diagnosing *prod*…"

    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.params["channel"] == "C0OPS"
    assert post.headers["authorization"] == "Bearer xoxb-test"
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    assert len(blocks) <= 50
    header = blocks[0]["text"]["text"]
    assert header.startswith(
        ("🟡 WARNING — prod: Redis memory", "🔴 CRITICAL — prod: Redis memory")
    )
    assert "of 64.0 MB" in header
    assert "`ttl-leak`" in all_text(blocks)
    buttons = [el for b in blocks if b["type"] == "actions" for el in b["elements"]]
    action_ids = {button["action_id"] for button in buttons}
    assert "redis_mem.request.expire-keys-without-ttl" in action_ids
    assert {button["value"] for button in buttons} == {"prod"}
    assert "ttl-leak" in post.params["text"]

    [entry] = bot.audited()
    assert entry.action == "command.diagnose"
    assert (entry.actor, entry.actor_name, entry.source) == ("U0ALICE", "alice", "slack")
    assert entry.target == "prod"
    assert entry.outcome in header.lower()
    assert "ttl-leak" in entry.summary
    assert (entry.channel, entry.request_id) == ("C0OPS", "1337.42.abcdef")
    assert dict(entry.parameters) == {"target": "prod"}


def test_keys_shows_ttl_histogram_sizes_and_top_keys(bot: Bot) -> None:
    assert ack_text(bot.command("keys")) == "Measuring session keys on *prod*…"

    [post] = bot.fake.wait_for("chat.postMessage")
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    assert blocks[0]["text"]["text"].startswith("🔑 Session keys — prod")
    text = all_text(blocks)
    assert "without TTL: *100*" in text
    assert "Largest keys" in text and "`session:" in text
    assert bot.audited()[0].action == "command.keys"


def test_status_has_one_line_per_target_even_when_one_is_down(bot: Bot) -> None:
    assert ack_text(bot.command("status")) == "Checking 2 targets…"

    [post] = bot.fake.wait_for("chat.postMessage")
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    lines = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section").splitlines()
    assert len(lines) == 2  # worst first: an unreachable store (store-down) before a warning
    assert lines[0].startswith("⚫ *down* unreachable:")
    assert "*prod*" in lines[1] and "%`" in lines[1]
    assert PASSWORD not in all_text(blocks)
    [entry] = bot.audited()
    assert entry.action == "command.status"
    assert "down unreachable" in entry.summary


def test_capacity_posts_the_plan(bot: Bot) -> None:
    assert ack_text(bot.command("capacity users=10000 sessions=3 size=2KB")).startswith(
        "Planning capacity"
    )

    [post] = bot.fake.wait_for("chat.postMessage")
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    assert blocks[0]["text"]["text"] == "📐 Capacity plan: 10,000 users × 3 sessions × 2.0 KB"
    assert "maxmemory" in all_text(blocks)
    [entry] = bot.audited()
    assert entry.action == "command.capacity"
    assert dict(entry.parameters) == {"users": 10000, "sessions_per_user": 3, "session_size": 2048}


def test_bad_capacity_size_is_a_one_line_ephemeral_error(bot: Bot) -> None:
    text = ack_text(bot.command("capacity users=10 sessions=2 size=abc"))

    assert text == '⚠ capacity: size must look like 2KB, 1.5MB or 2048 (got "abc")'
    [entry] = bot.audited()
    assert (entry.action, entry.outcome) == ("command.capacity", "rejected")
    assert bot.fake.calls_to("chat.postMessage") == []


def test_unknown_target_lists_the_known_ones(bot: Bot) -> None:
    text = ack_text(bot.command("diagnose nope"))

    assert text == "⚠ unknown target 'nope' (known: down, prod)"
    assert bot.audited()[0].outcome == "rejected"


def test_a_password_typed_by_mistake_is_not_echoed_or_audited(bot: Bot) -> None:
    text = ack_text(bot.command(f"diagnose redis://:{PASSWORD}@10.0.0.1:6379"))

    assert text.startswith("⚠ unknown target 'redis://:***@10.0.0.1:6379'")
    [entry] = bot.audited()
    assert PASSWORD not in repr(entry)


def test_unreachable_redis_is_one_line_without_the_password(bot: Bot) -> None:
    assert ack_text(bot.command("diagnose down")) == "Diagnosing *down*…"

    [reply] = bot.fake.wait_for("response_url/cmd")
    text = reply.params["text"]
    assert text.startswith("⚠ diagnose: ") and "\n" not in text
    assert PASSWORD not in text and "Traceback" not in text
    assert reply.params["response_type"] == "ephemeral"
    [entry] = bot.audited()
    assert entry.outcome == "error" and PASSWORD not in repr(entry)
    assert bot.fake.calls_to("chat.postMessage") == []


def test_help_and_unknown_subcommands_answer_in_the_ack(bot: Bot) -> None:
    for text in ("", "help", "frobnicate now"):
        response = bot.command(text)
        assert response.status_code == 200
        blocks = response.json()["blocks"]
        assert rebuilt(blocks) == blocks
        usage = all_text(blocks)
        assert "capacity users=N sessions=N size=SIZE" in usage
        assert "/redis-mem fix" in usage and "/redis-mem pending" in usage
    assert "unknown subcommand 'frobnicate'" in all_text(blocks)
    entries = bot.audited(3)
    assert [e.action for e in entries] == ["command.help"] * 3


def test_not_in_channel_falls_back_to_response_url(bot: Bot) -> None:
    bot.fake.fail("chat.postMessage", "not_in_channel")

    ack_text(bot.command("diagnose prod"))

    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["response_type"] == "in_channel"
    assert reply.params["blocks"][0]["type"] == "header"


def test_other_post_errors_tell_the_asker(bot: Bot) -> None:
    bot.fake.fail("chat.postMessage", "invalid_blocks")

    ack_text(bot.command("diagnose prod"))

    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["text"] == "⚠ could not post the result in this channel"
    assert reply.params["response_type"] == "ephemeral"


def test_audit_outage_still_answers_with_a_warning_line(start_bot: Callable[..., Bot]) -> None:
    bot = start_bot(audit=BrokenSink())

    ack_text(bot.command("diagnose prod"))

    [post] = bot.fake.wait_for("chat.postMessage")
    last = post.params["blocks"][-1]
    assert last["type"] == "context"
    assert last["elements"][0]["text"] == "⚠ audit trail unavailable: database is locked"


def test_commands_land_in_the_sql_audit_trail_and_audit_shows_them(
    start_bot: Callable[..., Bot], tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    store = SqlAuditStore(engine)
    bot = start_bot(audit=store, audit_reader=store)

    ack_text(bot.command("diagnose prod"))
    bot.fake.wait_for("chat.postMessage")
    ack_text(bot.command("capacity users=10 sessions=3 size=abc"))
    wait_until(lambda: len(store.list_entries(limit=10)) >= 2)

    assert ack_text(bot.command("audit 5")) == "Reading the audit trail…"
    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["response_type"] == "ephemeral"
    blocks = reply.params["blocks"]
    assert rebuilt(blocks) == blocks
    shown = all_text(blocks)
    assert "command.diagnose" in shown and "command.capacity" in shown and "<@U0ALICE>" in shown

    wait_until(lambda: len(store.list_entries(limit=10)) >= 3)
    newest_first = store.list_entries(limit=10)
    assert [e.action for e in newest_first] == [
        "command.audit",
        "command.capacity",
        "command.diagnose",
    ]
    audit_cmd, capacity, diagnose = newest_first
    assert capacity.outcome == "rejected" and "abc" in capacity.summary
    assert diagnose.actor == "U0ALICE" and diagnose.target == "prod" and diagnose.source == "slack"
    assert diagnose.outcome in ("ok", "warning", "critical")
    assert "ttl-leak" in diagnose.summary
    assert audit_cmd.parameters == {"limit": 5}
    assert verify_chain(engine).ok


@pytest.mark.parametrize("bad", ["0", "abc", "5 6", "49"])
def test_audit_count_must_be_sane(bot: Bot, bad: str) -> None:
    text = ack_text(bot.command(f"audit {bad}"))
    assert text.startswith("⚠ audit: ") and "\n" not in text


def test_audit_without_a_reader_is_a_one_line_error(bot: Bot) -> None:
    ack_text(bot.command("audit"))
    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["text"] == "⚠ audit: the audit trail is not configured in this process"


@pytest.mark.parametrize(
    "case",
    ["forged", "stale", "tampered"],
)
def test_unsigned_stale_or_tampered_requests_are_refused(bot: Bot, case: str) -> None:
    body = urlencode(slash_payload("diagnose prod", response_url=bot.fake.response_url()))
    if case == "forged":
        headers = signed_headers(secret="not-the-secret", body=body)
    elif case == "stale":  # a captured request replayed six minutes later
        headers = signed_headers(secret=SECRET, body=body, timestamp=int(time.time()) - 360)
    else:
        headers = signed_headers(secret=SECRET, body=body)
        body = body.replace("diagnose", "status")

    response = bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert bot.audit.entries == []


def test_a_fix_request_button_opens_its_form(bot: Bot) -> None:
    payload = button_click_payload(
        action_id="redis_mem.request.expire-keys-without-ttl",
        value="prod",
        response_url=bot.fake.response_url("button"),
    )
    body = urlencode({"payload": json.dumps(payload)})

    response = bot.http.post(
        f"{bot.url}/slack/events", content=body, headers=signed_headers(secret=SECRET, body=body)
    )

    assert response.status_code == 200
    [opened] = bot.fake.wait_for("views.open")  # prod has sessions without TTL: it can run
    assert opened.params["trigger_id"] == "1337.43"
    view = opened.params["view"]
    assert view["callback_id"] == "redis_mem.fix_modal"
    meta = json.loads(view["private_metadata"])
    assert meta == {"action": "expire-keys-without-ttl", "target": "prod", "channel": "C0OPS"}
    assert bot.fake.calls_to("chat.postEphemeral") == []


def test_health_ready_and_metrics(bot: Bot) -> None:
    ack_text(bot.command("diagnose prod"))
    bot.fake.wait_for("chat.postMessage")
    bot.audited()

    assert bot.http.get(f"{bot.url}/healthz").status_code == 200
    assert bot.http.get(f"{bot.url}/readyz").status_code == 200
    metrics = bot.http.get(f"{bot.url}/metrics")
    assert metrics.status_code == 200
    assert "redis_mem_slack_commands_total{outcome=" in metrics.text
    assert 'subcommand="diagnose"' in metrics.text
    assert 'redis_mem_diagnosis_duration_seconds_count{target="prod"} 1.0' in metrics.text
