"""The Slack face in Socket Mode, end to end: envelopes in over a websocket, Web API calls out.

In-process, the bot is wired as ``bot.serve.serve`` wires it when SLACK_APP_TOKEN
is set (no signing secret): ``build_app``, then Bolt's built-in
``SocketModeHandler``. It fetches its websocket URL from ``tests.fakeslack``
(``apps.connections.open``, app-level token as the bearer), connects to
``tests.fakesocket`` over a real socket, diagnoses a real redis-server and
posts the result to the fake Web API over HTTP.

``serve()`` blocks in ``uvicorn.run``, which only stops on a signal, so it cannot
be stopped cleanly from a test thread: the last test runs the real
``redis-mem serve`` in a subprocess instead and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.config import Settings, Target
from bot.wiring import diagnosis_service
from tests.clirun import REDIS_MEM
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.fakesocket import FakeSocket
from tests.redisserver import free_port
from tests.slack_app_support import bolt_app
from tests.slackcheck import rebuilt, wait_until
from tests.slacksign import button_click_payload
from tests.test_slack_http import ListSink, slash_payload

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"


@dataclass
class SocketBot:
    """The connected bot, its fake Web API, its fake websocket server and its audit sink."""

    fake: FakeSlack
    socket: FakeSocket
    audit: ListSink
    handler: SocketModeHandler

    def command(self, text: str) -> str:
        """Push ``/redis-mem <text>`` as a ``slash_commands`` envelope; returns its envelope_id."""
        payload = slash_payload(text, response_url=self.fake.response_url())
        return self.socket.send_envelope(
            "slash_commands", {**payload, "is_enterprise_install": "false"}
        )

    def ack(self, envelope_id: str) -> dict[str, Any]:
        """The bot's ack of ``envelope_id`` (polled, bounded)."""
        return self.socket.wait_for_ack(envelope_id)


@pytest.fixture
def fake_socket(fake_slack: FakeSlack) -> Iterator[FakeSocket]:
    socket = FakeSocket().start()
    fake_slack.socket_url = socket.url
    yield socket
    socket.stop()


@pytest.fixture
def targets(redis_factory: RedisFactory) -> dict[str, Target]:
    """``prod``: a real Redis full of sessions without TTL (a ttl-leak)."""
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(300):
            pipe.set(f"session:{i}", "x" * 2000)
        pipe.execute()
    client.close()
    return {"prod": Target(name="prod", redis_url=server.url)}


@pytest.fixture
def bot(
    fake_slack: FakeSlack, fake_socket: FakeSocket, targets: dict[str, Target]
) -> Iterator[SocketBot]:
    """The bot connected over Socket Mode; closed (threads joined, socket shut) after the test."""
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=None,  # Socket Mode receives no signed requests
        slack_app_token=APP_TOKEN,
        slack_api_url=fake_slack.api_url,
        sample_size=100,
    )
    audit = ListSink()
    app = bolt_app(settings, diagnosis=diagnosis_service(settings, targets), audit=audit)
    handler = SocketModeHandler(app, app_token=APP_TOKEN)
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        wait_until(fake_socket.connected, timeout=5)
        yield SocketBot(fake=fake_slack, socket=fake_socket, audit=audit, handler=handler)
    finally:
        close_handler(handler, fake_socket)


def close_handler(handler: SocketModeHandler, fake_socket: FakeSocket) -> None:
    """Close the client, then drop its connection so its blocking recv() returns at once.

    Dropping only after ``close()`` started (``closed`` set, auto-reconnect off) keeps
    the client from dialling a new connection while the fakes go away.
    """
    closer = threading.Thread(target=handler.close, daemon=True)
    closer.start()
    wait_until(lambda: handler.client.closed, timeout=5)
    fake_socket.stop()
    # Wakes the message processor from its 1 s queue.get() (None is skipped), so it
    # sees ``closed`` and its thread joins at once.
    handler.client.message_queue.put(None)
    closer.join(timeout=10)
    assert not closer.is_alive(), "SocketModeHandler.close() did not return"


def test_socket_mode_connects_with_the_app_token(bot: SocketBot) -> None:
    [auth] = bot.fake.calls_to("auth.test")
    assert auth.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    [opened] = bot.fake.calls_to("apps.connections.open")
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
    assert bot.socket.handshakes == ["GET /link/?ticket=fake-ticket&app_id=A0APP HTTP/1.1"]


def test_diagnose_envelope_is_acked_then_the_diagnosis_is_posted(bot: SocketBot) -> None:
    envelope_id = bot.command("diagnose prod")

    ack = bot.ack(envelope_id)
    assert ack == {
        "envelope_id": envelope_id,
        "payload": {"response_type": "ephemeral", "text": "Diagnosing *prod*…"},
    }

    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert post.params["channel"] == "C0OPS"
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    assert blocks[0]["type"] == "header"
    header = blocks[0]["text"]["text"]
    assert header.startswith(
        ("🟡 WARNING — prod: Redis memory", "🔴 CRITICAL — prod: Redis memory")
    )
    assert "`ttl-leak`" in json.dumps(blocks, ensure_ascii=False)
    assert "ttl-leak" in post.params["text"]

    wait_until(lambda: len(bot.audit.entries) >= 1, timeout=5)
    [entry] = bot.audit.entries
    assert (entry.action, entry.actor, entry.source) == ("command.diagnose", "U0ALICE", "slack")
    assert (entry.target, entry.channel, entry.request_id) == ("prod", "C0OPS", "1337.42.abcdef")
    assert bot.socket.acks(envelope_id) == [ack]  # acked exactly once


def test_errors_and_help_answer_in_the_ack(bot: SocketBot) -> None:
    unknown = bot.command("diagnose nope")
    usage = bot.command("help")

    assert bot.ack(unknown)["payload"] == {
        "response_type": "ephemeral",
        "text": "⚠ unknown target 'nope' (known: prod)",
    }
    blocks = bot.ack(usage)["payload"]["blocks"]
    assert rebuilt(blocks) == blocks
    assert "/redis-mem fix" in json.dumps(blocks, ensure_ascii=False)
    wait_until(lambda: len(bot.audit.entries) >= 2, timeout=5)
    assert sorted(e.action for e in bot.audit.entries) == ["command.diagnose", "command.help"]
    assert bot.fake.calls_to("chat.postMessage") == []


def test_button_clicks_arrive_as_interactive_envelopes(bot: SocketBot) -> None:
    payload = button_click_payload(
        action_id="redis_mem.request.expire-keys-without-ttl",
        value="prod",
        response_url=bot.fake.response_url("button"),
    )

    envelope_id = bot.socket.send_envelope("interactive", payload)

    assert bot.ack(envelope_id) == {"envelope_id": envelope_id}
    [opened] = bot.fake.wait_for("views.open")  # prod has sessions without TTL: the form
    view = opened.params["view"]
    assert view["callback_id"] == "redis_mem.fix_modal"
    meta = json.loads(view["private_metadata"])
    assert meta == {"action": "expire-keys-without-ttl", "target": "prod", "channel": "C0OPS"}


def test_redis_mem_serve_runs_socket_mode_beside_the_probes(
    fake_slack: FakeSlack, fake_socket: FakeSocket, targets: dict[str, Target], tmp_path: Path
) -> None:
    """The real ``redis-mem serve`` (run_bot → serve): Slack over the socket, probes on PORT."""
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_", "SLACK_", "DATABASE_"))
        },
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "REDIS_URL": targets["prod"].redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "PORT": str(port),
        "REDIS_MEM_SAMPLE_SIZE": "100",
    }
    audit = SqlAuditStore(make_engine(env["DATABASE_URL"]))
    proc = subprocess.Popen(
        [REDIS_MEM, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_until(fake_socket.connected, timeout=20)
        envelope_id = fake_socket.send_envelope(
            "slash_commands", slash_payload("diagnose", response_url=fake_slack.response_url())
        )
        assert fake_socket.wait_for_ack(envelope_id)["payload"]["text"] == "Diagnosing *default*…"
        [post] = fake_slack.wait_for("chat.postMessage")
        assert "ttl-leak" in post.params["text"]
        wait_until(lambda: len(audit.list_entries(limit=5)) >= 1, timeout=5)
        [entry] = audit.list_entries(limit=5)
        assert (entry.action, entry.target, entry.source) == (
            "command.diagnose",
            "default",
            "slack",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            wait_until(lambda: _answers(http, "/healthz"), timeout=10)
            assert http.get("/readyz").status_code == 200
            assert "redis_mem_slack_commands_total" in http.get("/metrics").text
            assert http.post("/slack/events").status_code == 404  # no HTTP face in Socket Mode
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
    # Stopped by SIGTERM: serve returns, running fixes are drained, the exit is clean.
    assert proc.returncode == 0, output
    assert "shutting down: waiting for running fixes" in output, output
    assert "Traceback" not in output, output


def _answers(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:  # uvicorn not listening yet
        return False
