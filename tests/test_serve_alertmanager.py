"""``POST /alertmanager`` through a real ``redis-mem serve``: the fake Slack, a real redis-server.

A version-4 notification with the bearer token becomes one ``chat.postMessage`` holding
the alert and a fresh diagnosis with its ``redis_mem.request.`` fix buttons; a re-send of
the group updates that message (``chat.update``, same ts); ``resolved`` updates it to
resolved. Wrong or missing tokens (401) and bad bodies (400) are one line each and
post nothing. Without REDIS_MEM_WEBHOOK_TOKEN the endpoint is off (404).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.health.rules import RULES_BY_ID
from tests.conftest import RedisFactory
from tests.fakeslack import Call, FakeSlack
from tests.fakesocket import FakeSocket
from tests.health_support import session_store
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import rebuilt, wait_until
from tests.test_alertmanager_payload import payload

TOKEN = "am-webhook-token-0123456789"
WRONG = "not-the-token-zz"
CHANNEL = "C0ALERTS"


@dataclass
class HeldSlack(FakeSlack):
    """The fake Slack whose ``chat.postMessage`` answers can be held back (``hold``)."""

    gate: threading.Event = field(default_factory=threading.Event)
    held: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def answer(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        if call.method == "chat.postMessage" and not self.gate.is_set():
            self.held.append(call.method)
            self.gate.wait(timeout=20)
        return super().answer(call)


@pytest.fixture
def fake_slack() -> Iterator[HeldSlack]:
    fake = HeldSlack()
    fake.start()
    yield fake
    fake.gate.set()
    fake.stop()


@dataclass
class Serve(ServeProcess):
    """A running ``redis-mem serve`` with the webhook on."""

    def alertmanager(
        self, body: Any, *, token: str | None = TOKEN, **headers: str
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **headers}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return self.http.post(f"{self.url}/alertmanager", content=content, headers=sent)

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        assert self.proc is None or self.proc.returncode == 0, self.output()
        return self.output()

    def audit_actions(self) -> list[str]:
        engine = make_engine(self.env["DATABASE_URL"])
        try:
            return [e.action for e in SqlAuditStore(engine).list_entries(limit=100)]
        finally:
            engine.dispose()


def serve_env(fake: FakeSlack, tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """Every health rule off: only the webhook posts in this test."""
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"rules": {r: {"enabled": False} for r in RULES_BY_ID}}))
    targets = tmp_path / "targets.yml"
    targets.write_text(yaml.safe_dump({"targets": [{"name": "prod", "redis_url": redis_url}]}))
    return bot_env(
        fake,
        tmp_path,
        secret="serve-am-secret",
        REDIS_MEM_TARGETS_FILE=str(targets),
        REDIS_MEM_RULES_FILE=str(rules),
        REDIS_MEM_CHANNEL=CHANNEL,
        REDIS_MEM_CHECK_INTERVAL="3600",
        **extra,
    )


@pytest.fixture
def serve(fake_slack: HeldSlack, tmp_path: Path, redis_factory: RedisFactory) -> Iterator[Serve]:
    prod = session_store(redis_factory, ratio=0.85, ttl=None)  # a ttl-leak: fixes to offer
    env = serve_env(fake_slack, tmp_path, prod.url, REDIS_MEM_WEBHOOK_TOKEN=TOKEN)
    running = Serve(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    yield running
    running.stop()


def resolved_payload() -> dict[str, Any]:
    body = payload(status="resolved")
    body["alerts"][0]["status"] = "resolved"
    body["alerts"][0]["endsAt"] = "2026-12-01T20:10:00Z"
    return body


def blocks_text(call: Call) -> str:
    return json.dumps(call.params["blocks"], ensure_ascii=False)


def test_a_firing_group_is_one_message_updated_by_resends_and_resolved(
    serve: Serve, fake_slack: HeldSlack
) -> None:
    # The answer does not wait for the diagnosis or Slack: chat.postMessage is held.
    fake_slack.gate.clear()
    answer = serve.alertmanager(payload())
    assert (answer.status_code, answer.text) == (200, "ok")
    wait_until(lambda: fake_slack.held != [])
    fake_slack.gate.set()

    [post] = fake_slack.wait_for("chat.postMessage")
    assert post.params["channel"] == CHANNEL
    rebuilt(post.params["blocks"])  # within Slack's limits
    header = post.params["blocks"][0]["text"]["text"]
    assert header == "🟡 FIRING (warning) — prod: RedisHighMemoryUsage"
    text = blocks_text(post)
    assert "Redis memory above 80%" in text and "redis_mem_target=prod" in text
    assert "*Diagnosis*" in text and "ttl-leak" in text
    assert "redis_mem.request.expire-keys-without-ttl" in text
    posted_ts = "1700000000.000001"  # the fake's first ts: nothing else posted before

    # A re-send of the group: the same message, updated.
    assert serve.alertmanager(payload()).status_code == 200
    [update] = fake_slack.wait_for("chat.update")
    assert update.params["ts"] == posted_ts and update.params["channel"] == CHANNEL
    assert "redis_mem.request." in blocks_text(update)

    # Resolved: updated to resolved, no buttons any more.
    assert serve.alertmanager(resolved_payload()).status_code == 200
    _, last = fake_slack.wait_for("chat.update", count=2)
    assert last.params["ts"] == posted_ts
    assert last.params["blocks"][0]["text"]["text"] == "✅ RESOLVED — prod: RedisHighMemoryUsage"
    assert "redis_mem.request." not in blocks_text(last)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    actions = serve.audit_actions()
    assert actions.count("alertmanager.firing") == 2 and actions.count("alertmanager.resolved") == 1


def test_refusals_are_one_line_and_post_nothing(serve: Serve, fake_slack: HeldSlack) -> None:
    cases: list[tuple[httpx.Response, int, str]] = [
        (serve.alertmanager(payload(), token=None), 401, "missing or wrong bearer token"),
        (serve.alertmanager(payload(), token=WRONG), 401, "missing or wrong bearer token"),
        (serve.alertmanager(payload(), token=TOKEN + "x"), 401, "missing or wrong bearer token"),
        (
            serve.alertmanager(payload(), token=None, Authorization=f"Basic {TOKEN}"),
            401,
            "missing or wrong bearer token",
        ),
        (serve.alertmanager(b"x" * (1024 * 1024 + 1)), 400, "body over 1 MB"),
        (serve.alertmanager(b"{not json"), 400, "body is not JSON"),
        (
            serve.alertmanager(payload(version="3")),
            400,
            "unsupported webhook version '3' (this bot reads version 4)",
        ),
    ]
    for response, status, line in cases:
        assert (response.status_code, response.text) == (status, line)
    assert serve.http.get(f"{serve.url}/alertmanager").status_code == 405
    # Nothing was posted, nothing audited, and the token never reached the log.
    assert fake_slack.calls_to("chat.postMessage") == []
    assert not any(a.startswith("alertmanager.") for a in serve.audit_actions())
    log = serve.output()
    assert TOKEN not in log and WRONG not in log
    # One line per reason per minute: four 401s make one line, as do the two bad payloads.
    assert log.count("refused Alertmanager request") == 3  # unauthorized, too large, payload
    metrics = serve.http.get(f"{serve.url}/metrics").text
    assert 'redis_mem_alertmanager_requests_total{outcome="unauthorized"} 4.0' in metrics


def test_the_endpoint_is_off_without_a_token(
    fake_slack: HeldSlack, tmp_path: Path, redis_factory: RedisFactory
) -> None:
    prod = redis_factory()
    env = serve_env(fake_slack, tmp_path, prod.url)
    running = Serve(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    try:
        assert running.alertmanager(payload()).status_code == 404
        assert fake_slack.calls_to("chat.postMessage") == []
    finally:
        running.stop()


def test_socket_mode_serves_the_webhook_on_port_too(
    fake_slack: HeldSlack, tmp_path: Path, redis_factory: RedisFactory
) -> None:
    socket = FakeSocket().start()
    fake_slack.socket_url = socket.url
    prod = session_store(redis_factory, ratio=0.85, ttl=None)
    env = serve_env(fake_slack, tmp_path, prod.url, REDIS_MEM_WEBHOOK_TOKEN=TOKEN)
    env["SLACK_APP_TOKEN"] = "xapp-test"
    del env["SLACK_SIGNING_SECRET"]
    running = Serve(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    try:
        wait_until(socket.connected, timeout=20)
        assert running.alertmanager(payload(), token=None).status_code == 401
        assert running.alertmanager(payload()).status_code == 200
        [post] = fake_slack.wait_for("chat.postMessage")
        assert "redis_mem.request.expire-keys-without-ttl" in blocks_text(post)
    finally:
        running.stop()
        socket.stop()
