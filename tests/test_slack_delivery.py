"""Slack's rate limits and outages lose nothing: through the real face, over real HTTP.

Signed slash commands and clicks go to the real Bolt app under uvicorn; the bot
diagnoses and changes a real redis-server and talks to the fake Slack Web API,
which answers 429 with ``Retry-After`` or 5xx where a test asks it to. The fake here
also notes when it answered each call (its own monotonic clock) and can hold a
method's answers until the test lets them go: the HTTP response to a slash command
is seen while ``chat.postMessage`` is still unanswered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.approvals.model import RequestState
from bot.approvals.table import REQUESTS, ApprovalRow
from bot.slack.approval_post import UNPOSTED
from bot.slack.expiry import expire_and_refresh
from tests.fakeslack import Call, FakeSlack
from tests.redisserver import free_port
from tests.remediation_support import CONF_16MB, load_sessions
from tests.slack_remediation_support import (
    APPROVER,
    CHANNEL,
    REQUESTER,
    SlackBot,
    ts_of,
)
from tests.slackcheck import all_text, button_values, wait_until

pytest_plugins = ("tests.remediation_support", "tests.slack_remediation_support")

FIX = "fix set-eviction-policy policy=volatile-lru"


@dataclass
class GatedFakeSlack(FakeSlack):
    """The fake Slack, noting when it answered each call; ``hold`` keeps a method's answers
    back until ``release``. A message posted to a user id lands in their DM, as in Slack."""

    answered: list[tuple[str, int, float]] = field(default_factory=list)  # method, status, when
    gates: dict[str, threading.Event] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)

    def hold(self, method: str) -> None:
        self.gates[method] = threading.Event()

    def release(self, method: str) -> None:
        self.gates.pop(method).set()

    def answer(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        gate = self.gates.get(call.method)
        if gate is not None:
            with self._lock:
                self.waiting.append(call.method)
            gate.wait(timeout=20)
        status, headers, body = super().answer(call)
        with self._lock:
            self.answered.append((call.method, status, time.monotonic()))
        return status, headers, body

    def record(self, call: Call) -> dict[str, Any]:
        answer = super().record(call)
        channel = str(call.params.get("channel") or "")
        if call.method == "chat.postMessage" and answer.get("ok") and channel[:1] in "UW":
            answer["channel"] = "D" + channel[1:]
        return answer

    def statuses(self, method: str) -> list[int]:
        with self._lock:
            return [status for name, status, _ in self.answered if name == method]

    def times(self, method: str) -> list[float]:
        with self._lock:
            return [at for name, _, at in self.answered if name == method]


@pytest.fixture
def fake_slack() -> Iterator[GatedFakeSlack]:
    fake = GatedFakeSlack()
    fake.start()
    yield fake
    for gate in list(fake.gates.values()):
        gate.set()
    fake.stop()


def _fake(bot: SlackBot) -> GatedFakeSlack:
    assert isinstance(bot.fake, GatedFakeSlack)
    return bot.fake


def _client(bot: SlackBot) -> WebClient:
    """The scheduler's client, as wiring builds it (its retries do not matter here)."""
    return WebClient(token="xoxb-test", base_url=bot.fake.api_url)


# Slash results ---------------------------------------------------------------------------


def test_the_ack_does_not_wait_and_the_diagnosis_is_posted_after_a_429(
    slack_bot: SlackBot,
) -> None:
    fake = _fake(slack_bot)
    fake.hold("chat.postMessage")
    fake.fail_http("chat.postMessage", status=429, times=1, retry_after=1)

    ack = slack_bot.command("diagnose")

    # The ack came back while chat.postMessage (and its 429) had not been answered yet.
    assert ack.json()["text"] == "Diagnosing *sessions*…"
    assert fake.statuses("chat.postMessage") == []
    wait_until(lambda: "chat.postMessage" in fake.waiting)
    fake.release("chat.postMessage")

    [post] = fake.wait_for("chat.postMessage", count=2)[1:]
    assert fake.statuses("chat.postMessage") == [429, 200]
    assert post.params["channel"] == CHANNEL
    assert post.params["blocks"][0]["text"]["text"].startswith(("🟢", "🟡", "🔴"))
    refused, retried = fake.times("chat.postMessage")
    assert retried - refused >= 1.0  # Retry-After: 1 was honoured
    assert fake.calls_to("response_url/cmd") == []


def test_server_errors_are_retried_inside_the_call(slack_bot: SlackBot) -> None:
    fake = _fake(slack_bot)
    fake.fail_http("chat.postMessage", status=503, times=2)

    slack_bot.command("diagnose")

    fake.wait_for("chat.postMessage", count=3)
    wait_until(lambda: len(fake.statuses("chat.postMessage")) == 3)
    assert fake.statuses("chat.postMessage") == [503, 503, 200]
    [posted] = fake.accepted("chat.postMessage")
    assert "sessions" in posted.params["text"]


def test_a_long_retry_after_is_not_slept_on_the_result_goes_via_response_url(
    slack_bot: SlackBot,
) -> None:
    fake = _fake(slack_bot)
    fake.fail_http("chat.postMessage", status=429, times=5, retry_after=120)

    slack_bot.command("diagnose")

    [reply] = fake.wait_for("response_url/cmd")
    assert reply.params["response_type"] == "in_channel"
    assert reply.params["blocks"][0]["type"] == "header"
    assert fake.statuses("chat.postMessage") == [429]  # no retry: 120 s is too long to wait


def test_when_both_routes_fail_one_line_is_logged(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _fake(slack_bot)
    fake.fail_http("chat.postMessage", status=500, times=10)
    fields = {
        "team_id": "T0FAKE",
        "channel_id": CHANNEL,
        "user_id": REQUESTER[0],
        "user_name": REQUESTER[1],
        "command": "/redis-mem",
        "text": "diagnose",
        "response_url": f"http://127.0.0.1:{free_port()}/nobody-listens",
        "trigger_id": "9.42.cmd",
    }
    with caplog.at_level(logging.ERROR, logger="bot.slack.publish"):
        slack_bot.post(urlencode(fields))
        wait_until(lambda: any(r.name == "bot.slack.publish" for r in caplog.records))
    [line] = [r for r in caplog.records if r.name == "bot.slack.publish"]
    assert "could not deliver a /redis-mem result in C0OPS" in line.getMessage()
    assert "HTTP 500" in line.getMessage() and line.exc_info is None
    assert fake.statuses("chat.postMessage") == [500, 500, 500]


# Approval messages -------------------------------------------------------------------------


def _approved(bot: SlackBot) -> str:
    load_sessions(bot.env.client, 50)
    bot.command(FIX)
    _, request = bot.approval_post()
    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts_of(request))
    wait_until(lambda: bot.service.get(request.id).state.final)
    return request.id


def _row(bot: SlackBot, request_id: str) -> Any:
    """The stored row, delivery columns included (the request type does not carry them)."""
    with bot.engine.connect() as conn:
        return conn.execute(select(REQUESTS).where(ApprovalRow.id == request_id)).one()


def test_a_final_state_slack_refused_reaches_the_message_by_redelivery(
    slack_bot: SlackBot,
) -> None:
    bot, fake = slack_bot, _fake(slack_bot)
    # chat.update is rate-limited three times with a Retry-After too long to wait inside the
    # call: the executing update, the final one, then the first redelivery meet it.
    fake.fail_http("chat.update", status=429, times=3, retry_after=45)
    request_id = _approved(bot)
    wait_until(lambda: _row(bot, request_id).sync_attempts == 1)  # the live update gave up
    assert fake.statuses("chat.update") == [429, 429]
    assert bot.env.redis_conf() != CONF_16MB  # the fix ran
    assert _row(bot, request_id).shown_state == "pending"

    client = _client(bot)
    expire_and_refresh(service=bot.service, client=client)
    assert len(fake.statuses("chat.update")) == 2  # not due: Retry-After 45 s is honoured
    bot.clock.advance(seconds=46)
    expire_and_refresh(service=bot.service, client=client)
    assert fake.statuses("chat.update") == [429, 429, 429]
    assert _row(bot, request_id).sync_attempts == 2
    bot.clock.advance(seconds=46)
    expire_and_refresh(service=bot.service, client=client)  # backoff: 60 s after the 2nd try
    assert fake.statuses("chat.update") == [429, 429, 429]
    bot.clock.advance(seconds=15)
    expire_and_refresh(service=bot.service, client=client)

    assert fake.statuses("chat.update") == [429, 429, 429, 200]
    [shown] = fake.accepted("chat.update")
    assert shown.params["blocks"][0]["text"]["text"].startswith("✅ Done")
    assert button_values(shown.params["blocks"]) == {}
    row = _row(bot, request_id)
    assert (row.state, row.shown_state, row.sync_attempts) == ("succeeded", "succeeded", 0)
    bot.clock.advance(minutes=30)
    expire_and_refresh(service=bot.service, client=client)
    assert len(fake.statuses("chat.update")) == 4  # shown: never again


def test_a_deleted_message_is_given_up_on(slack_bot: SlackBot) -> None:
    bot, fake = slack_bot, _fake(slack_bot)
    fake.fail("chat.update", "message_not_found")
    request_id = _approved(bot)
    wait_until(lambda: _row(bot, request_id).sync_error is not None)
    before = len(fake.calls_to("chat.update"))

    bot.clock.advance(hours=2)
    expire_and_refresh(service=bot.service, client=_client(bot))

    assert len(fake.calls_to("chat.update")) == before
    assert "message_not_found" in str(_row(bot, request_id).sync_error)
    assert bot.service.get(request_id).state is RequestState.SUCCEEDED


# Approval messages that never reached Slack ------------------------------------------------


def _denied_trail(bot: SlackBot, request_id: str) -> list[tuple[str, str, str]]:
    entries = reversed(bot.audit.list_entries(limit=1000))
    return [(e.action, e.outcome, e.summary) for e in entries if e.request_id == request_id]


def _request_id(bot: SlackBot) -> str:
    entries = bot.audit.list_entries(limit=100)
    [requested] = [e for e in entries if e.action == "remediation.requested"]
    assert requested.request_id is not None
    return requested.request_id


@pytest.mark.parametrize(
    "refusal", ["not_in_channel", "ratelimited-long"], ids=["not-invited", "rate-limited"]
)
def test_a_slash_fix_whose_message_cannot_be_posted_is_cancelled(
    slack_bot: SlackBot, refusal: str
) -> None:
    bot, fake = slack_bot, _fake(slack_bot)
    load_sessions(bot.env.client, 50)
    if refusal == "not_in_channel":
        fake.fail("chat.postMessage", "not_in_channel")
    else:
        fake.fail_http("chat.postMessage", status=429, times=5, retry_after=600)

    bot.command(FIX)

    [told] = fake.wait_for("response_url/cmd")
    text = told.params["text"]
    assert text.startswith("⚠ could not post the approval request for `set-eviction-policy`")
    assert "cancelled, nothing changed" in text and "\n" not in text
    assert told.params["response_type"] == "ephemeral"
    request_id = _request_id(bot)
    cancelled = bot.service.get(request_id)
    assert cancelled.state is RequestState.REJECTED and cancelled.error == UNPOSTED
    assert _denied_trail(bot, request_id)[-1] == (
        "remediation.rejected",
        "cancelled",
        f"set-eviction-policy on sessions cancelled: {UNPOSTED}",
    )
    # Approving it by id (a click forged or replayed from elsewhere) changes nothing.
    bot.click("redis_mem.approve", request_id, user=APPROVER)
    [refused] = fake.wait_for("chat.postEphemeral")
    assert "already rejected" in refused.params["text"]
    assert bot.env.redis_conf() == CONF_16MB
    assert "remediation.approved" not in bot.audit_actions()


def test_the_modal_path_cancels_the_same_way(slack_bot: SlackBot) -> None:
    bot, fake = slack_bot, _fake(slack_bot)
    load_sessions(bot.env.client, 50)
    bot.click("redis_mem.request.set-eviction-policy", "sessions", user=REQUESTER)
    [opened] = fake.wait_for("views.open")
    fake.fail_http("chat.postMessage", status=503, times=3)

    bot.submit(opened.params["view"], {"policy": "volatile-lru"})

    [told] = fake.wait_for("chat.postEphemeral")
    assert told.params["user"] == REQUESTER[0]
    assert "(Slack answered HTTP 503): request `" in told.params["text"]
    assert fake.statuses("chat.postMessage") == [503, 503, 503]  # retried, then given up
    request = bot.service.get(_request_id(bot))
    assert request.state is RequestState.REJECTED and request.error == UNPOSTED
    assert request.team == "T0FAKE"
    assert _denied_trail(bot, request.id)[-1][:2] == ("remediation.rejected", "cancelled")


def test_a_dm_request_is_attached_to_the_channel_slack_answers(slack_bot: SlackBot) -> None:
    """Posted to a user id, the message lands in a DM (D...): the id clicks and updates use."""
    bot, fake = slack_bot, _fake(slack_bot)
    load_sessions(bot.env.client, 50)
    payload = {  # the request button clicked where there is no channel (the app's Home)
        "type": "block_actions",
        "team": {"id": "T0FAKE"},
        "user": {"id": REQUESTER[0], "username": REQUESTER[1], "team_id": "T0FAKE"},
        "trigger_id": "7.42.click",
        "actions": [{"action_id": "redis_mem.request.set-eviction-policy", "value": "sessions"}],
    }
    bot.post(urlencode({"payload": json.dumps(payload)}))
    [opened] = fake.wait_for("views.open")

    bot.submit(opened.params["view"], {"policy": "volatile-lru"})

    [post] = fake.wait_for("chat.postMessage")
    assert post.params["channel"] == REQUESTER[0]
    request_id = button_values(post.params["blocks"])["redis_mem.approve"]
    wait_until(lambda: bot.service.get(request_id).message_ts is not None)
    assert bot.service.get(request_id).channel == "D" + REQUESTER[0][1:]
    assert "Approval needed" in all_text(post.params["blocks"])
