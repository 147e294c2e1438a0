"""The approval flow through Slack, end to end, real parts both ways.

Signed Slack requests (slash commands, ``block_actions``, ``view_submission``)
go over HTTP to the real Bolt app under uvicorn; the bot calls the fake Slack
Web API (``tests.fakeslack``) over HTTP, diagnoses and changes a real
redis-server, patches the fake Kubernetes API server through the real client,
and writes a real hash-chained audit trail on SQLite.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.approvals.model import ApprovalRequest, RequestState
from bot.audit.verify import verify_chain
from bot.config import Settings
from bot.errors import Refused, UsageError
from bot.remediation.catalogue import get_action
from bot.remediation.model import RemediationLimits
from bot.slack.blocks.approval import approval_message, pending_message
from bot.slack.blocks.modal import field_errors, submitted_values
from bot.slack.expiry import expire_and_refresh
from bot.slack.fix import FixArgs, parse_fix
from bot.slack.groups import SlackGroupResolver
from bot.slack.listeners.approvals import refresh_messages
from bot.wiring import health_service
from bot.wiring_serve import scheduled_jobs
from tests.fakeslack import FakeSlack
from tests.remediation_support import CONF_16MB, load_sessions
from tests.slack_remediation_support import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    GROUP_MEMBER,
    OUTSIDER,
    REQUESTER,
    SlackBot,
    ts_of,
    wait_for_final_update,
)
from tests.slackcheck import all_text, button_values, rebuilt, wait_until

pytest_plugins = ("tests.remediation_support", "tests.slack_remediation_support")

VOLATILE_CONF = CONF_16MB.replace("maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru")


def test_button_modal_approval_executes_and_updates_the_message(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 100)

    bot.click("redis_mem.request.set-eviction-policy", "sessions", user=REQUESTER)
    [opened] = bot.fake.wait_for("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == "redis_mem.fix_modal"
    meta = json.loads(view["private_metadata"])
    assert meta == {"action": "set-eviction-policy", "target": "sessions", "channel": CHANNEL}
    [policy] = [b for b in view["blocks"] if b["type"] == "input"]
    assert policy["block_id"] == "policy"
    assert policy["element"]["type"] == "static_select"
    assert policy["element"]["initial_option"]["value"] == "volatile-lru"  # computed default

    ack = bot.submit(view, {"policy": "volatile-lru"})
    assert ack.text == ""  # closes the modal: no field errors

    post, request = bot.approval_post()
    blocks = post.params["blocks"]
    assert post.params["channel"] == CHANNEL
    assert rebuilt(blocks) == blocks
    assert blocks[0]["text"]["text"] == "🛠 Approval needed: Set the eviction policy on sessions"
    text = all_text(blocks)
    assert "<@U0REQUEST>" in text and "<!date^" in text and "risk" in text
    assert "- maxmemory-policy allkeys-lru\\n+ maxmemory-policy volatile-lru" in text
    assert button_values(blocks) == {
        "redis_mem.approve": request.id,
        "redis_mem.reject": request.id,
    }
    assert len(request.id) == 32 and request.state is RequestState.PENDING
    assert request.channel == CHANNEL and ts_of(request).startswith("1700000000.")

    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts_of(request))

    updates = wait_for_final_update(bot)
    assert all(u.params["ts"] == ts_of(request) for u in updates)
    assert all(rebuilt(u.params["blocks"]) == u.params["blocks"] for u in updates)
    assert "executing" in all_text(updates[0].params["blocks"])
    final = all_text(updates[-1].params["blocks"])
    assert updates[-1].params["blocks"][0]["text"]["text"].startswith("✅ Done")
    assert "Verification" in final and "memory:" in final and "evicted keys:" in final
    assert "keys:" in final and "<@U0APPROVE>" in final
    assert button_values(updates[-1].params["blocks"]) == {}

    assert bot.env.redis_conf() == VOLATILE_CONF
    assert bot.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert bot.service.get(request.id).state is RequestState.SUCCEEDED
    actions = bot.audit_actions()
    for step in ("requested", "approved", "executed", "verified"):
        assert f"remediation.{step}" in actions
    assert verify_chain(bot.engine).ok


def test_slash_fix_approved_by_a_user_group_member(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 120, ttl=None)
    load_sessions(bot.env.client, 30, start=1000)

    ack = bot.command("fix expire-keys-without-ttl sessions ttl_seconds=1h")
    assert ack.json()["text"].startswith("Preparing the `expire-keys-without-ttl` preview")
    post, request = bot.approval_post()
    assert request.params == {"ttl_seconds": 3600}
    assert request.requester == "U0REQUEST"
    assert "TTL to set: `3600s (1.0h)`" in all_text(post.params["blocks"])

    bot.command("pending", user=APPROVER)
    [listed] = bot.fake.wait_for("response_url/cmd")
    listing = all_text(listed.params["blocks"])
    assert "`expire-keys-without-ttl` on *sessions* by <@U0REQUEST>" in listing
    assert "expires in 15 min" in listing

    bot.click("redis_mem.approve", request.id, user=GROUP_MEMBER, ts=ts_of(request))

    updates = wait_for_final_update(bot)
    final = all_text(updates[-1].params["blocks"])
    assert "*Keys changed*: 120" in final
    # The first batch always reports (later ones at most once a second).
    assert any("keys changed (" in all_text(u.params["blocks"]) for u in updates[:-1])
    [asked] = bot.fake.calls_to("usergroups.users.list")
    assert asked.params["usergroup"] == "S0ONCALL"
    ttls = [bot.env.client.ttl(f"session:{i}") for i in range(120)]
    assert all(0 < ttl <= 3600 for ttl in ttls)
    done = bot.service.get(request.id)
    assert done.state is RequestState.SUCCEEDED and done.decided_by == "W0ONCALL1"
    assert "command.fix" in bot.audit_actions()
    assert verify_chain(bot.engine).ok


def test_refusals_are_private_one_liners_and_change_nothing(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()
    ts = ts_of(request)

    cases = [
        (REQUESTER, request.id, "you cannot approve your own request"),
        (OUTSIDER, request.id, "you are not an approver"),
        (APPROVER, "f" * 32, "unknown request"),
        (APPROVER, "not-even-an-id", "unknown request"),
    ]
    for number, (user, value, reason) in enumerate(cases, start=1):
        bot.click("redis_mem.approve", value, user=user, ts=ts)
        replies = bot.fake.wait_for("chat.postEphemeral", count=number)
        assert replies[-1].params["user"] == user[0]
        assert replies[-1].params["channel"] == CHANNEL
        assert replies[-1].params["text"].startswith("⚠ approve: ")
        assert reason in replies[-1].params["text"] and "\n" not in replies[-1].params["text"]

    assert bot.fake.calls_to("chat.update") == []
    assert bot.service.get(request.id).state is RequestState.PENDING
    assert bot.env.redis_conf() == CONF_16MB
    assert bot.audit_actions().count("access.denied") == len(cases)

    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts)
    updates = wait_for_final_update(bot)
    bot.click("redis_mem.approve", request.id, user=APPROVER_2, ts=ts)
    replies = bot.fake.wait_for("chat.postEphemeral", count=len(cases) + 1)
    assert "already succeeded" in replies[-1].params["text"]
    assert replies[-1].params["user"] == "U0APPROV2"
    assert len(bot.fake.calls_to("chat.update")) == len(updates)
    assert bot.audit_actions().count("access.denied") == len(cases) + 1
    assert bot.audit_actions().count("remediation.executed") == 1
    assert verify_chain(bot.engine).ok


def test_simultaneous_approve_clicks_execute_once(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()
    clickers = [APPROVER, APPROVER_2, GROUP_MEMBER] * 3
    start = threading.Barrier(len(clickers))

    def click(user: tuple[str, str]) -> None:
        start.wait()
        bot.click("redis_mem.approve", request.id, user=user, ts=ts_of(request))

    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refusals = bot.fake.wait_for("chat.postEphemeral", count=len(clickers) - 1)
    wait_for_final_update(bot)
    assert all("already" in r.params["text"] for r in refusals)
    assert bot.audit_actions().count("remediation.approved") == 1
    assert bot.audit_actions().count("remediation.executed") == 1
    assert bot.audit_actions().count("access.denied") == len(clickers) - 1
    assert bot.env.redis_conf() == VOLATILE_CONF
    assert verify_chain(bot.engine).ok


def test_reject_by_an_approver_closes_the_request(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()

    bot.click("redis_mem.reject", request.id, user=APPROVER, ts=ts_of(request))

    [update] = bot.fake.wait_for("chat.update")
    assert update.params["blocks"][0]["text"]["text"].startswith("⛔ Rejected")
    assert "Rejected by <@U0APPROVE>" in all_text(update.params["blocks"])
    assert bot.service.get(request.id).state is RequestState.REJECTED
    assert bot.env.redis_conf() == CONF_16MB
    assert "remediation.rejected" in bot.audit_actions()


def test_an_expired_request_is_refused_and_shown_expired(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()
    bot.clock.advance(minutes=16)

    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts_of(request))

    [reply] = bot.fake.wait_for("chat.postEphemeral")
    assert "expired" in reply.params["text"] and reply.params["user"] == "U0APPROVE"
    [update] = bot.fake.calls_to("chat.update")
    assert update.params["blocks"][0]["text"]["text"].startswith("⌛ Expired")
    assert button_values(update.params["blocks"]) == {}
    assert bot.service.get(request.id).state is RequestState.EXPIRED
    assert bot.env.redis_conf() == CONF_16MB
    actions = bot.audit_actions()
    assert "remediation.expired" in actions and actions[-1] == "access.denied"
    assert verify_chain(bot.engine).ok


def test_the_sweeper_expires_undecided_requests_and_says_so_on_their_message(
    slack_bot: SlackBot,
) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()
    client = WebClient(token="xoxb-test", base_url=bot.fake.api_url)

    assert expire_and_refresh(service=bot.service, client=client) == 0  # not due yet
    bot.clock.advance(minutes=16)
    assert expire_and_refresh(service=bot.service, client=client) == 1
    assert expire_and_refresh(service=bot.service, client=client) == 0  # once only

    [update] = bot.fake.calls_to("chat.update")
    assert update.params["ts"] == ts_of(request)
    assert update.params["blocks"][0]["text"]["text"].startswith("⌛ Expired")
    assert bot.service.get(request.id).state is RequestState.EXPIRED
    assert bot.audit_actions().count("remediation.expired") == 1
    assert bot.env.redis_conf() == CONF_16MB
    settings = Settings(slack_bot_token="xoxb-test", slack_signing_secret="s", check_interval=45)
    health = health_service(settings, engine=bot.engine, audit=bot.audit)
    jobs = scheduled_jobs(settings, remediation=bot.service, client=client, health=health)
    health.close()
    assert jobs.intervals() == {
        "health-check": 45,
        "expire-approval-requests": 30,
        "prune-health-samples": 3600,
        "rollup-health-samples": 300,
    }


def test_slack_errors_while_updating_do_not_lose_the_action(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 50)
    bot.command("fix set-eviction-policy policy=volatile-lru")
    _, request = bot.approval_post()
    bot.fake.fail("chat.update", "ratelimited")

    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts_of(request))

    wait_until(lambda: bot.service.get(request.id).state.final)
    # executing (once) + the final update tried twice
    bot.fake.wait_for("chat.update", count=3)
    assert bot.service.get(request.id).state is RequestState.SUCCEEDED
    assert bot.env.redis_conf() == VOLATILE_CONF


def test_modal_field_errors_are_shown_on_the_field(slack_bot: SlackBot) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 40, ttl=None)
    bot.click("redis_mem.request.expire-keys-without-ttl", "sessions", user=REQUESTER)
    [opened] = bot.fake.wait_for("views.open")
    view = opened.params["view"]
    [ttl] = [b for b in view["blocks"] if b["type"] == "input"]
    assert ttl["block_id"] == "ttl_seconds" and ttl["element"]["initial_value"] == "86400"

    ack = bot.submit(view, {"ttl_seconds": "10s"})

    body = ack.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == ["ttl_seconds"]
    assert "between 60 and 2592000" in body["errors"]["ttl_seconds"]
    assert bot.service.pending() == []


def test_a_fix_that_cannot_run_now_says_why_instead_of_opening_the_modal(
    slack_bot: SlackBot,
) -> None:
    bot = slack_bot
    load_sessions(bot.env.client, 40)  # every key has a TTL

    bot.click("redis_mem.request.expire-keys-without-ttl", "sessions", user=REQUESTER)

    [reply] = bot.fake.wait_for("chat.postEphemeral")
    assert reply.params["user"] == "U0REQUEST"
    assert "cannot run on *sessions* now" in reply.params["text"]
    assert bot.fake.calls_to("views.open") == []


def test_bad_fix_words_are_answered_in_the_ack(slack_bot: SlackBot) -> None:
    bot = slack_bot
    assert "unknown action 'drop-everything'" in bot.command("fix drop-everything").json()["text"]
    assert "given twice" in bot.command("fix restart-redis a=1 a=2").json()["text"]
    assert "unknown target" in bot.command("fix restart-redis nowhere").json()["text"]
    assert bot.service.pending() == []


# Pure parts: parsing, rendering, the group resolver ---------------------------------------


def _request(**changes: Any) -> ApprovalRequest:
    now = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    preview = {
        "action_id": "restart-redis",
        "title": "Restart Redis",
        "runbook": "Scenario 4, step 3",
        "risk": "high",
        "params": {},
        "changes": [{"where": "Deployment langgraph-agent/redis-session", "before": "",
                     "after": "rollout restart", "diff": []}],
        "warnings": ["without persistence every session is lost"],
        "loses_data": True,
        "logs_users_out": True,
    }  # fmt: skip
    base = ApprovalRequest(
        id="a" * 32,
        action_id="restart-redis",
        target="prod",
        params={},
        preview=preview,
        requester="U0REQUEST",
        requester_name="rita",
        state=RequestState.PENDING,
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )
    return replace(base, **changes)


def test_parse_fix_reads_action_target_and_parameters() -> None:
    parsed = parse_fix(("raise-maxmemory", "prod", "maxmemory=1gb", "Pod-Memory-Limit=1536Mi"))
    assert parsed == FixArgs(
        action_id="raise-maxmemory",
        target="prod",
        raw_params={"maxmemory": "1gb", "pod_memory_limit": "1536Mi"},
    )
    assert parse_fix(("restart-redis",)) == FixArgs("restart-redis", None, {})


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ((), "fix: name an action"),
        (("restart-redis", "a", "b"), "one target at most"),
        (("restart-redis", "=1"), "expected key=value"),
        (("restart-redis", "count="), "expected key=value"),
        (("restart-redis", "n=1", "N=2"), "n= given twice"),
    ],
)
def test_parse_fix_errors_are_one_line(words: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_fix(words)
    assert "\n" not in caught.value.message


def test_high_risk_approval_asks_for_confirmation_and_says_it_loses_data() -> None:
    message = approval_message(_request())
    blocks = [b.to_dict() for b in message.blocks]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    approve, reject = actions["elements"]
    assert approve["confirm"]["confirm"]["text"] == "Approve"
    assert approve["style"] == "primary" and reject["style"] == "danger"
    assert "confirm" not in reject
    text = all_text(blocks)
    assert "*Loses data*" in text and "*Logs users out*" in text
    assert "without persistence every session is lost" in text


@pytest.mark.parametrize(
    ("changes", "header", "line"),
    [
        ({"state": RequestState.REJECTED, "decided_by": "U0REQUEST"}, "⛔ Rejected",
         "Cancelled by the requester"),
        ({"state": RequestState.REFUSED, "error": "maxmemory changed since the preview"},
         "🚫 Not executed", "maxmemory changed since the preview"),
        ({"state": RequestState.FAILED, "decided_by": "U0APPROVE",
          "result": {"steps": [{"name": "rollout", "ok": False, "detail": "403 forbidden"}],
                     "state": "rollout NOT changed (403 forbidden)", "verification": None}},
         "❌ Failed", "❌ rollout: 403 forbidden"),
        ({"state": RequestState.EXECUTING, "decided_by": "U0APPROVE",
          "progress": "1,200 keys changed (3,400 scanned)"}, "⏳ Executing",
         "1,200 keys changed (3,400 scanned)"),
    ],
)  # fmt: skip
def test_every_state_renders_without_buttons(
    changes: dict[str, Any], header: str, line: str
) -> None:
    message = approval_message(_request(**changes))
    blocks = [b.to_dict() for b in message.blocks]
    assert rebuilt(blocks) == blocks
    assert blocks[0]["text"]["text"].startswith(header)
    assert line in all_text(blocks)
    assert button_values(blocks) == {}


def test_a_huge_diff_still_fits_slack_limits() -> None:
    diff = [f"+ line {i} " + "x" * 150 for i in range(400)]
    change = {"where": "ConfigMap ns/cm redis.conf", "before": "a", "after": "b", "diff": diff}
    preview = {**_request().preview, "changes": [change] * 30, "warnings": ["w" * 500] * 40}
    blocks = [b.to_dict() for b in approval_message(_request(preview=preview)).blocks]
    assert len(blocks) <= 50 and rebuilt(blocks) == blocks
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(text.count("```") % 2 == 0 for text in sections)  # no code block cut open
    assert button_values(blocks)["redis_mem.approve"] == "a" * 32  # buttons always kept


def test_pending_listing_of_nothing() -> None:
    message = pending_message([], now=datetime(2026, 11, 29, tzinfo=UTC))
    assert message.text == "No fix requests are waiting for approval."


def test_modal_values_and_field_errors() -> None:
    view = {
        "state": {
            "values": {
                "ttl_seconds": {"value": {"type": "plain_text_input", "value": " 2h "}},
                "policy": {"value": {"type": "static_select", "selected_option": {"value": "x"}}},
                "blank": {"value": {"type": "plain_text_input", "value": None}},
            }
        }
    }
    values = submitted_values(view)
    assert values == {"ttl_seconds": " 2h ", "policy": "x"}
    specs = get_action("expire-keys-without-ttl").specs(RemediationLimits())
    assert field_errors(specs, values) == {}
    assert "ttl_seconds" in field_errors(specs, {"ttl_seconds": "soon"})


def test_group_resolver_caches_and_refuses_on_slack_errors(fake_slack: FakeSlack) -> None:
    fake_slack.usergroup_users["S0ONCALL"] = ["W0ONCALL1"]
    now = [0.0]
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    resolver = SlackGroupResolver(client, cache_seconds=60, clock=lambda: now[0])

    assert resolver.members("S0ONCALL") == frozenset({"W0ONCALL1"})
    assert resolver.members("S0ONCALL") == frozenset({"W0ONCALL1"})
    assert len(fake_slack.calls_to("usergroups.users.list")) == 1
    now[0] = 61.0
    fake_slack.fail("usergroups.users.list", "missing_scope")
    with pytest.raises(
        Refused, match=r"cannot check approver group S0ONCALL in Slack \(missing_scope\)"
    ):
        resolver.members("S0ONCALL")


def test_refresh_messages_shows_requests_expired_by_the_scheduler(fake_slack: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    expired = _request(state=RequestState.EXPIRED, channel=CHANNEL, message_ts="1700000000.000007")

    refresh_messages(client, [expired, _request(state=RequestState.EXPIRED)])  # 2nd: no message

    [update] = fake_slack.calls_to("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (CHANNEL, "1700000000.000007")
    assert update.params["blocks"][0]["text"]["text"] == "⌛ Expired: Restart Redis on prod"
