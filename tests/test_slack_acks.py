"""Acks first, always: a burst is acked at once, a hung Redis holds answers, never acks.

A real uvicorn serves the real Bolt app; the Redis behind the target is a real
redis-server, SIGSTOPped while the requests arrive (hung, as in an incident), so any
ack that waited for the work could not come back before it is resumed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry

from bot.audit.entry import AuditEntry
from bot.config import Settings, Target
from bot.redisproc import RedisServer
from bot.slack.afterack import BUSY
from bot.slack.metrics import BotMetrics
from bot.web import create_web_app
from bot.wiring import diagnosis_service
from tests.asgiserver import ThreadedServer
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.slack_app_support import bolt_app
from tests.slackcheck import wait_until
from tests.slacksign import button_click_payload, signed_headers

SECRET = "acks-signing-secret"


class ListSink:
    """The AuditSink port, in a list (thread-safe appends)."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class AckBot:
    """The bot on a free port: signed slash commands and clicks, as Slack sends them."""

    def __init__(self, url: str, fake: FakeSlack, audit: ListSink) -> None:
        self.url, self.fake, self.audit = url, fake, audit

    def post(self, body: str) -> httpx.Response:
        headers = signed_headers(secret=SECRET, body=body)
        with httpx.Client(timeout=10) as http:
            return http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def command(self, text: str, user: str = "U0ALICE") -> httpx.Response:
        fields = {
            "team_id": "T0FAKE",
            "channel_id": "C0OPS",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/redis-mem",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": self.fake.response_url(user),
            "trigger_id": "1.2.3",
        }
        return self.post(urlencode(fields))

    def click(self, action_id: str, value: str) -> httpx.Response:
        payload = button_click_payload(
            action_id=action_id, value=value, response_url=self.fake.response_url("click")
        )
        return self.post(urlencode({"payload": json.dumps(payload)}))


@pytest.fixture
def store(redis_factory: RedisFactory) -> RedisServer:
    server = redis_factory("--maxmemory", "64mb")
    client = redis.Redis.from_url(server.url)
    client.mset({f"session:{i}": "x" * 500 for i in range(200)})
    client.close()
    return server


@pytest.fixture
def start_bot(fake_slack: FakeSlack, store: RedisServer) -> Iterator[Callable[..., AckBot]]:
    servers: list[ThreadedServer] = []

    def start(**settings: Any) -> AckBot:
        config = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=fake_slack.api_url,
            sample_size=50,
            **settings,
        )
        targets = {"prod": Target(name="prod", redis_url=store.url)}
        sink = ListSink()
        registry = CollectorRegistry()
        bolt = bolt_app(
            config,
            diagnosis=diagnosis_service(config, targets),
            audit=sink,
            metrics=BotMetrics.create(registry),
        )
        servers.append(ThreadedServer.start(create_web_app(registry=registry, bolt_app=bolt)))
        return AckBot(servers[-1].url, fake_slack, sink)

    yield start
    for server in servers:
        server.stop()


def concurrently(count: int, send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``count`` requests released together from as many threads."""
    gate = threading.Barrier(count)
    answers: list[httpx.Response | None] = [None] * count

    def one(i: int) -> None:
        gate.wait()
        answers[i] = send(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def answers_in_channel(fake: FakeSlack) -> int:
    return len(fake.calls_to("chat.postMessage"))


def test_a_burst_is_acked_while_the_redis_is_hung_and_answered_once_it_is_back(
    start_bot: Callable[..., AckBot], store: RedisServer
) -> None:
    bot = start_bot()  # 8 workers: 30 diagnoses cannot all run at once
    with store.paused():
        acks = concurrently(30, lambda i: bot.command("diagnose prod", user=f"U0USER{i}"))
        clicks = concurrently(10, lambda i: bot.click("redis_mem.reject", f"req-{i}"))
        # Every ack came back while no diagnosis could have finished.
        assert answers_in_channel(bot.fake) == 0
    assert [a.status_code for a in acks + clicks] == [200] * 40
    assert {a.json()["text"] for a in acks} == {"Diagnosing *prod*…"}
    wait_until(lambda: answers_in_channel(bot.fake) == 30, timeout=60)
    commands = [e for e in bot.audit.entries if e.action == "command.diagnose"]
    assert len(commands) == 30
    assert not {e.outcome for e in commands} & {"error", "busy"}


def test_a_full_pool_says_busy_in_the_ack_and_runs_nothing(
    start_bot: Callable[..., AckBot], store: RedisServer
) -> None:
    bot = start_bot(slack_workers=1, slack_queue=1)
    with store.paused():
        first = bot.command("diagnose prod", user="U0ONE")  # runs (held by the hung Redis)
        second = bot.command("diagnose prod", user="U0TWO")  # waits for the worker
        third = bot.command("status", user="U0THREE")  # no room: busy
        click = bot.click("redis_mem.alert.ack", "alert-1")  # acked, and told it is busy
    assert first.json()["text"] == second.json()["text"] == "Diagnosing *prod*…"
    assert third.status_code == 200 and third.json()["text"] == BUSY
    assert click.status_code == 200
    [told] = bot.fake.wait_for("chat.postEphemeral")
    assert told.params["text"] == BUSY and told.params["user"] == "U0ALICE"
    wait_until(lambda: answers_in_channel(bot.fake) == 2, timeout=30)
    wait_until(lambda: len(bot.audit.entries) == 3)
    outcomes = {e.actor: (e.action, e.outcome) for e in bot.audit.entries}
    assert outcomes["U0THREE"] == ("command.status", "busy")
    for actor in ("U0ONE", "U0TWO"):  # answered once the Redis was back
        assert outcomes[actor][0] == "command.diagnose"
        assert outcomes[actor][1] not in {"error", "busy"}
