"""The running Slack bot for end-to-end tests: signed requests in, fake Slack Web API out.

``slack_bot`` serves the real Bolt app under uvicorn, wired by ``bot.wiring`` to
a real redis-server, the fake Kubernetes API server (``env`` from
``tests.remediation_support``), the fake Slack Web API (``tests.fakeslack``)
and a hash-chained audit trail on SQLite. Load it with
``pytest_plugins = ("tests.remediation_support", "tests.slack_remediation_support")``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import CollectorRegistry
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.approvals.model import ApprovalRequest
from bot.approvals.service import RemediationService
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Settings
from bot.slack.groups import SlackGroupResolver
from bot.slack.metrics import BotMetrics
from bot.web import create_web_app
from bot.wiring import diagnosis_service, remediation_service
from tests.approvals_support import Clock
from tests.asgiserver import ThreadedServer
from tests.fakeslack import Call, FakeSlack
from tests.remediation_support import Env
from tests.slack_app_support import bolt_app
from tests.slackcheck import button_values, wait_until
from tests.slacksign import signed_headers

SECRET = "test-signing-secret"
CHANNEL = "C0OPS"
REQUESTER = ("U0REQUEST", "rita")
APPROVER = ("U0APPROVE", "alice")
APPROVER_2 = ("U0APPROV2", "bob")
OUTSIDER = ("U0OUTSIDE", "olga")
GROUP_MEMBER = ("W0ONCALL1", "omar")


@dataclass
class SlackBot:
    """The running bot, the fakes it talks to, and its audit database."""

    url: str
    fake: FakeSlack
    env: Env
    engine: Engine
    audit: SqlAuditStore
    service: RemediationService
    clock: Clock
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    _triggers: Iterator[int] = field(default_factory=lambda: iter(range(1, 10_000)))

    def post(self, body: str) -> httpx.Response:
        """A signed request to /slack/events."""
        headers = signed_headers(secret=SECRET, body=body)
        response = self.http.post(f"{self.url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200, response.text
        return response

    def command(self, text: str, *, user: tuple[str, str] = REQUESTER) -> httpx.Response:
        """``/redis-mem <text>`` typed by ``user`` in #ops."""
        fields = {
            "team_id": "T0FAKE",
            "channel_id": CHANNEL,
            "user_id": user[0],
            "user_name": user[1],
            "command": "/redis-mem",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": self.fake.response_url(),
            "trigger_id": f"{next(self._triggers)}.42.cmd",
        }
        return self.post(urlencode(fields))

    def click(
        self, action_id: str, value: str, *, user: tuple[str, str], ts: str = "1700000000.999999"
    ) -> httpx.Response:
        """A button click (``block_actions``) on the message ``ts`` in #ops."""
        payload = {
            "type": "block_actions",
            "team": {"id": "T0FAKE", "domain": "fake"},
            "user": {"id": user[0], "username": user[1], "name": user[1], "team_id": "T0FAKE"},
            "api_app_id": "A0APP",
            "token": "legacy-unused",
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
            "trigger_id": f"{next(self._triggers)}.42.click",
            "channel": {"id": CHANNEL, "name": "ops"},
            "message": {"type": "message", "ts": ts, "text": "…"},
            "response_url": self.fake.response_url("click"),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "blk",
                    "value": value,
                    "action_ts": "1700000001.000001",
                }
            ],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def submit(
        self, view: dict[str, Any], values: dict[str, str], *, user: tuple[str, str] = REQUESTER
    ) -> httpx.Response:
        """Submit the modal ``view`` (as opened) with ``values`` typed or selected."""
        state: dict[str, Any] = {}
        for block in view["blocks"]:
            if block["type"] != "input":
                continue
            name, element = block["block_id"], block["element"]
            if element["type"] == "static_select":
                chosen = {"value": values[name], "text": {"type": "plain_text", "text": "x"}}
                state[name] = {"value": {"type": "static_select", "selected_option": chosen}}
            else:
                text = values.get(name, element.get("initial_value"))
                state[name] = {"value": {"type": "plain_text_input", "value": text}}
        payload = {
            "type": "view_submission",
            "team": {"id": "T0FAKE", "domain": "fake"},
            "user": {"id": user[0], "username": user[1], "name": user[1], "team_id": "T0FAKE"},
            "api_app_id": "A0APP",
            "token": "legacy-unused",
            "trigger_id": f"{next(self._triggers)}.42.submit",
            "view": {
                "id": "V0FAKE",
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {"values": state},
                "hash": "1700000000.abc",
            },
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def approval_post(self) -> tuple[Call, ApprovalRequest]:
        """The one approval message posted, and its request (read back from the store)."""
        [post] = self.fake.wait_for("chat.postMessage")
        request_id = button_values(post.params["blocks"])["redis_mem.approve"]
        wait_until(lambda: self.service.get(request_id).message_ts is not None)
        return post, self.service.get(request_id)

    def audit_actions(self) -> list[str]:
        """Audit actions, oldest first."""
        return [e.action for e in reversed(self.audit.list_entries(limit=1000))]


@pytest.fixture
def slack_bot(env: Env, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[SlackBot]:
    """uvicorn + Bolt + the real RemediationService (wired by bot.wiring) on the fakes."""
    fake_slack.usergroup_users["S0ONCALL"] = ["W0ONCALL1"]  # the approvers' user group
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    audit = SqlAuditStore(engine)
    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        sample_size=100,
        approvers="U0APPROVE,U0APPROV2,S0ONCALL",
    )
    diagnosis = diagnosis_service(settings, {env.target.name: env.target})
    clock = Clock(datetime.now(UTC))  # moved by tests that need a request to expire
    resolver = SlackGroupResolver(WebClient(token="xoxb-test", base_url=fake_slack.api_url))
    service = remediation_service(
        settings,
        engine=engine,
        audit=audit,
        diagnosis=diagnosis,
        resolver=resolver,
        cluster=env.cluster,
        clock=clock,
    )
    registry = CollectorRegistry()
    bolt = bolt_app(
        settings,
        diagnosis=diagnosis,
        audit=audit,
        metrics=BotMetrics.create(registry),
        audit_reader=audit,
        remediation=service,
    )
    web = create_web_app(registry=registry, bolt_app=bolt, ready=lambda: True)
    server = ThreadedServer.start(web)
    yield SlackBot(server.url, fake_slack, env, engine, audit, service, clock)
    server.stop()
    engine.dispose()


def ts_of(request: ApprovalRequest) -> str:
    """The ts of the request's approval message (the fake's answer, attached by the bot)."""
    assert request.message_ts is not None
    return request.message_ts


def wait_for_final_update(bot: SlackBot) -> list[Call]:
    """Every chat.update up to (and including) the one showing a final state."""

    def final_seen() -> bool:
        return any(_is_final(call) for call in bot.fake.calls_to("chat.update"))

    wait_until(final_seen)
    updates = bot.fake.calls_to("chat.update")
    return updates[: next(i for i, u in enumerate(updates) if _is_final(u)) + 1]


def _is_final(call: Call) -> bool:
    header = str(call.params["blocks"][0]["text"]["text"])
    return header.startswith(("✅", "❌", "⛔", "⌛", "🚫", "💥", "🛑"))


__all__ = [
    "APPROVER",
    "APPROVER_2",
    "CHANNEL",
    "GROUP_MEMBER",
    "OUTSIDER",
    "REQUESTER",
    "SECRET",
    "SlackBot",
    "button_values",
    "slack_bot",
    "ts_of",
    "wait_for_final_update",
    "wait_until",
]
