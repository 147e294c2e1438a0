"""A click counts only from the request's own Slack team (workspace) and channel.

Through the real face: signed slash commands, modal submissions and button clicks over
HTTP to the Bolt app, a real redis-server, the fake Kubernetes API server and the
fake Slack Web API, a hash-chained audit trail on SQLite. See docs/decisions/approvals.md,
"A click is tied to its workspace and channel".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import column, insert, table

from bot.approvals.model import Actor, ApprovalRequest, Origin, RequestState
from bot.approvals.store import ApprovalStore
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.verify import verify_chain
from bot.slack.clicks import Click
from tests.remediation_support import CONF_16MB, load_sessions
from tests.slack_remediation_support import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    REQUESTER,
    SlackBot,
    ts_of,
    wait_for_final_update,
)
from tests.slackcheck import button_values

pytest_plugins = ("tests.remediation_support", "tests.slack_remediation_support")

TEAM = "T0FAKE"  # the workspace slack_bot's commands and clicks come from
OTHER_TEAM = "T0OTHER"


def click(
    bot: SlackBot,
    action_id: str,
    request: ApprovalRequest,
    *,
    user: tuple[str, str],
    team: str | None = TEAM,
    channel: str = CHANNEL,
) -> None:
    """A button click on ``request``'s message, as Slack sends it from ``team``/``channel``."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": None if team is None else {"id": team, "domain": "x"},
        "user": {"id": user[0], "username": user[1], "name": user[1], "team_id": team},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": ts_of(request), "channel_id": channel},
        "trigger_id": "1.42.click",
        "channel": {"id": channel, "name": "somewhere"},
        "message": {"type": "message", "ts": ts_of(request), "text": "…"},
        "response_url": bot.fake.response_url("click"),
        "actions": [{"type": "button", "action_id": action_id, "value": request.id}],
    }
    bot.post(urlencode({"payload": json.dumps(payload)}))


def _denials(bot: SlackBot, request_id: str) -> list[dict[str, Any]]:
    return [
        dict(e.parameters)
        for e in reversed(bot.audit.list_entries(limit=1000))
        if e.action == "access.denied" and e.request_id == request_id
    ]


def _requested(bot: SlackBot) -> ApprovalRequest:
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")  # from T0FAKE, in #ops
    _, request = bot.approval_post()
    return request


@pytest.mark.parametrize(
    ("team", "channel", "reason"),
    [
        (OTHER_TEAM, CHANNEL, "this request belongs to another Slack workspace"),
        (None, CHANNEL, "this request belongs to another Slack workspace"),
        (TEAM, "C0ELSEWHERE", "can only be decided on its own message, in its channel"),
    ],
    ids=["other-team", "no-team", "other-channel"],
)
def test_a_listed_approvers_click_from_elsewhere_is_refused_and_audited(
    slack_bot: SlackBot, team: str | None, channel: str, reason: str
) -> None:
    bot = slack_bot
    request = _requested(bot)
    assert request.team == TEAM

    click(bot, "redis_mem.approve", request, user=APPROVER, team=team, channel=channel)
    click(bot, "redis_mem.reject", request, user=APPROVER_2, team=team, channel=channel)

    replies = bot.fake.wait_for("chat.postEphemeral", count=2)
    assert sorted(r.params["user"] for r in replies) == ["U0APPROV2", "U0APPROVE"]
    for reply in replies:
        assert reason in reply.params["text"] and "\n" not in reply.params["text"]
    denials = _denials(bot, request.id)
    assert len(denials) == 2
    assert all(reason in d["reason"] for d in denials)
    assert all((d["clicked_team"], d["clicked_channel"]) == (team, channel) for d in denials)
    assert all(d["team"] == TEAM for d in denials)
    assert bot.service.get(request.id).state is RequestState.PENDING
    assert bot.env.redis_conf() == CONF_16MB
    assert bot.fake.calls_to("chat.update") == []
    assert "remediation.approved" not in bot.audit_actions()

    click(bot, "redis_mem.approve", request, user=APPROVER)  # the right team and channel

    wait_for_final_update(bot)
    assert bot.service.get(request.id).state is RequestState.SUCCEEDED
    assert bot.env.redis_conf() != CONF_16MB
    assert bot.audit_actions().count("remediation.executed") == 1
    assert verify_chain(bot.engine).ok


def test_the_requesters_team_is_stored_and_audited_from_both_faces(slack_bot: SlackBot) -> None:
    bot = slack_bot
    slashed = _requested(bot)
    [requested] = [
        e for e in bot.audit.list_entries(limit=100) if e.action == "remediation.requested"
    ]
    assert requested.parameters["team"] == TEAM and slashed.team == TEAM

    bot.click("redis_mem.request.set-eviction-policy", "sessions", user=REQUESTER)
    [opened] = bot.fake.wait_for("views.open")
    bot.submit(opened.params["view"], {"policy": "volatile-lru"})
    posts = bot.fake.wait_for("chat.postMessage", count=2)
    modal_id = button_values(posts[-1].params["blocks"])["redis_mem.approve"]
    assert bot.service.get(modal_id).team == TEAM


def test_a_request_stored_before_the_team_column_is_refused(slack_bot: SlackBot) -> None:
    """Rows from before migration 0004 have no team: no click matches them (fail closed)."""
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    request = bot.service.request(  # what an old row looks like: no team recorded
        actor=Actor(id=REQUESTER[0], name=REQUESTER[1]),
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel=CHANNEL,
    )
    bot.service.attach_message(request.id, channel=CHANNEL, ts="1700000000.000555")
    old = bot.service.get(request.id)
    assert old.team is None

    click(bot, "redis_mem.approve", old, user=APPROVER)

    [reply] = bot.fake.wait_for("chat.postEphemeral")
    assert "predates the workspace check: request it again" in reply.params["text"]
    assert bot.service.get(old.id).state is RequestState.PENDING
    assert _denials(bot, old.id)[-1]["clicked_team"] == TEAM
    assert bot.env.redis_conf() == CONF_16MB


def test_migration_0004_keeps_old_rows_without_a_team_and_shown(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine, revision="0003")
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    row = {
        "id": "a" * 32,
        "action_id": "set-eviction-policy",
        "target": "sessions",
        "params": "{}",
        "preview": "{}",
        "requester": "U0REQUEST",
        "requester_name": "rita",
        "state": "succeeded",
        "created_at": now.replace(tzinfo=None),
        "expires_at": now.replace(tzinfo=None),
        "channel": CHANNEL,
        "message_ts": "1700000000.000001",
    }
    old_table = table("approval_requests", *(column(name) for name in row))  # 0003's columns
    with engine.begin() as conn:
        conn.execute(insert(old_table).values(**row))
    upgrade(engine)

    stored = ApprovalStore(engine).get("a" * 32)
    assert stored is not None
    assert stored.team is None and stored.shown_state is RequestState.SUCCEEDED
    assert ApprovalStore(engine).lagging(now, limit=10) == []  # not re-rendered after the upgrade
    assert Origin(team=TEAM, channel=CHANNEL).refusal(stored) is not None
    engine.dispose()


def test_a_click_reads_its_team_from_team_or_user() -> None:
    body = {"team": None, "user": {"id": "U1", "team_id": "T0HOME"}, "channel": {"id": "C1"}}
    assert Click.from_body(body).origin == Origin(team="T0HOME", channel="C1")
    body = {"team": {"id": "T0HERE"}, "user": {"id": "U1", "team_id": "T0HOME"}}
    assert Click.from_body(body).origin == Origin(team="T0HERE", channel=None)
    assert Click.from_body({"team": "junk", "user": {"id": "U1"}}).team_id is None
