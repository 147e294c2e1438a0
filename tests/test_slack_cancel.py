"""The Cancel button of a running key action, through ``redis-mem serve`` and signed clicks.

The real console script (HTTP mode) against the fake Slack Web API, a real redis-server
holding 20,000 session keys without TTL and ``REDIS_MEM_FIX_RATE=1000`` (20 s for the
whole action, in 100-key batches): the Cancel button appears on the message while it
runs, anyone but the requester and the approvers is refused in one private line, and
the requester's click stops it; the final message and the audit trail carry the exact
number of keys changed, which is what the real Redis shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from bot.approvals.model import ApprovalRequest, RequestState
from bot.slack.blocks.approval import CANCEL_ACTION, approval_message
from tests.conftest import RedisFactory
from tests.fakeslack import Call, FakeSlack
from tests.faults_support import (
    APPROVERS,
    CHANNEL,
    REQUESTER,
    FaultyServe,
    blocks_text,
    header,
    keys_with_ttl,
    seed_sessions,
    serve_env,
)
from tests.slackcheck import button_values, rebuilt, wait_until
from tests.slacksign import button_click_payload

KEYS = 20_000
NOBODY = ("U0NOBODY", "nora")  # in the channel, neither requester nor approver


def _click_cancel(bot: FaultyServe, request_id: str, ts: str, user: tuple[str, str]) -> None:
    payload = button_click_payload(
        action_id=CANCEL_ACTION,
        value=request_id,
        response_url=bot.fake.response_url("click"),
        user=user,
        channel=CHANNEL,
        ts=ts,
        trigger_id=f"{user[0]}.42.cancel",
    )
    response = bot.post_signed(urlencode({"payload": json.dumps(payload)}))
    assert response.status_code == 200, response.text  # the ack
    assert response.text == ""


def _running(bot: FaultyServe, ts: str) -> list[Call]:
    return [
        c
        for c in bot.updates(ts)
        if header(c).startswith("⏳ Executing")
        and CANCEL_ACTION in button_values(c.params["blocks"])
    ]


def test_cancel_through_a_signed_click_stops_the_action_with_the_exact_count(
    tmp_path: Path, fake_slack: FakeSlack, redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    seed_sessions(server.url, KEYS)
    env = serve_env(
        fake_slack,
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        targets={"t": server.url},
    )
    env["REDIS_MEM_FIX_RATE"] = "1000"
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    try:
        request_id, ts = bot.request_fix("t")
        bot.approve(request_id, ts, user=APPROVERS[0])
        # Running, with a progress line and the Cancel button (value: the request id only).
        wait_until(lambda: any("keys changed" in blocks_text(c) for c in _running(bot, ts)))
        [running, *_] = _running(bot, ts)
        assert button_values(running.params["blocks"]) == {CANCEL_ACTION: request_id}
        assert rebuilt(running.params["blocks"]) == running.params["blocks"]

        _click_cancel(bot, request_id, ts, NOBODY)
        wait_until(lambda: bool(bot.told(NOBODY[0])))
        assert bot.told(NOBODY[0]) == ["⚠ cancel: only the requester or an approver can cancel it"]
        assert bot.request(request_id).state is RequestState.EXECUTING

        _click_cancel(bot, request_id, ts, REQUESTER)
        wait_until(lambda: bot.request(request_id).state.final, timeout=30)
        done = bot.request(request_id)
        assert done.state is RequestState.CANCELLED, done
        assert done.result is not None
        changed = int(done.result["keys_changed"])
        assert changed == keys_with_ttl(server.url, KEYS)  # exact: what Redis shows
        assert 0 < changed < KEYS
        assert done.cancel_requested_by == REQUESTER[0]

        wait_until(lambda: header(bot.updates(ts)[-1]).startswith("🛑 Cancelled"), timeout=20)
        final = bot.updates(ts)[-1]
        text = blocks_text(final)
        assert f"Cancelled* by <@{REQUESTER[0]}> (approved by <@{APPROVERS[0][0]}>)" in text
        assert f"*Keys changed*: {changed:,}" in text
        assert f"cancelled after {changed:,} keys; those keys stay changed" in text
        assert button_values(final.params["blocks"]) == {}  # nothing to click any more
        assert bot.told(REQUESTER[0]) == []  # the message says it all

        _click_cancel(bot, request_id, ts, APPROVERS[1])
        wait_until(lambda: bool(bot.told(APPROVERS[1][0])))
        assert bot.told(APPROVERS[1][0]) == ["⚠ cancel: nothing to cancel: it is cancelled"]
        assert bot.actions(request_id) == [
            "remediation.requested",
            "remediation.approved",
            "access.denied",
            "remediation.cancel_requested",
            "remediation.cancelled",
            "remediation.verified",
            "access.denied",
        ]
        assert bot.stop() == 0
    finally:
        bot.close()
    assert keys_with_ttl(server.url, KEYS) == changed  # and nothing ran after the cancel


# ---- Rendering ---------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _request(action_id: str, **fields: object) -> ApprovalRequest:
    base = ApprovalRequest(
        id="f" * 32,
        action_id=action_id,
        target="prod",
        params={},
        preview={"title": "A fix", "risk": "low", "changes": []},
        requester="U0REQUEST",
        requester_name="rita",
        state=RequestState.EXECUTING,
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        decided_by="U0APPROVE",
        decided_at=NOW,
        progress="1,200 keys changed (1,200 scanned)",
    )
    return ApprovalRequest(**{**base.__dict__, **fields})


def test_only_a_running_key_action_shows_the_cancel_button() -> None:
    for action_id in ("expire-keys-without-ttl", "evict-idle-sessions"):
        blocks = approval_message(_request(action_id)).blocks
        dicts = [b.to_dict() for b in blocks]
        assert button_values(dicts) == {CANCEL_ACTION: "f" * 32}
        assert rebuilt(dicts) == dicts
    for action_id in ("set-eviction-policy", "restart-redis"):
        assert (
            button_values([b.to_dict() for b in approval_message(_request(action_id)).blocks]) == {}
        )
    asked = _request("expire-keys-without-ttl", cancel_requested_by="U0REQUEST")
    dicts = [b.to_dict() for b in approval_message(asked).blocks]
    assert button_values(dicts) == {}
    assert "🛑 Cancel requested by <@U0REQUEST>: stopping" in json.dumps(dicts, ensure_ascii=False)


def test_interrupted_and_cancelled_messages() -> None:
    interrupted = _request(
        "expire-keys-without-ttl",
        state=RequestState.INTERRUPTED,
        error="interrupted: its bot process (pod-a pid 1) was restarted; at least 1,200 keys …",
        result={
            "complete": False,
            "state": "interrupted: …",
            "steps": [],
            "keys_changed": None,
            "keys_changed_at_least": 1200,
        },
    )
    message = approval_message(interrupted)
    text = json.dumps([b.to_dict() for b in message.blocks], ensure_ascii=False)
    assert message.text.startswith("💥 Interrupted: A fix on prod")
    assert "💥 *Interrupted*: the bot process running it stopped (approved by <@U0APPROVE>)" in text
    assert "*Keys changed*: at least 1,200 (its last progress report)" in text
    cancelled = _request(
        "evict-idle-sessions",
        state=RequestState.CANCELLED,
        cancel_requested_by="U0REQUEST",
        result={
            "complete": False,
            "state": "cancelled after 300 of 1,500 keys",
            "steps": [],
            "keys_changed": 300,
            "cancelled_by": "U0REQUEST",
        },
    )
    text = json.dumps([b.to_dict() for b in approval_message(cancelled).blocks], ensure_ascii=False)
    assert "🛑 *Cancelled* by <@U0REQUEST> (approved by <@U0APPROVE>)" in text
    assert "*Keys changed*: 300" in text
