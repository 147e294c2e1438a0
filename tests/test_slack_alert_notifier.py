"""SlackNotifier over HTTP: real check rounds, the real outbox, the fake Slack Web API.

One channel message per alert, updated in place; everything else in its thread; Slack's
failures (429 with Retry-After, 5xx, refusals) seen as Slack sends them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.config import Target
from bot.health.model import Alert, AlertEvent, EventKind
from bot.health.ports import Delivered, NotifyError
from bot.slack.notifier import SlackNotifier
from tests.fakeslack import Call, FakeSlack
from tests.redisserver import free_port
from tests.slack_alert_support import (
    ALERTS,
    TOKEN,
    AlertRig,
    channel_posts,
    engine,
    memory_rules,
    rig,
    settings_for,
    thread_replies,
)
from tests.slackcheck import all_text, button_values, rebuilt

__all__ = ["engine", "rig"]  # fixtures

ACK_AND_SNOOZE = {
    "redis_mem.alert.ack",
    "redis_mem.alert.snooze.1h",
    "redis_mem.alert.snooze.4h",
    "redis_mem.alert.snooze.24h",
}


def header(call: Call) -> str:
    return str(call.params["blocks"][0]["text"]["text"])


def event_for(alert: Alert, kind: EventKind, rig: AlertRig) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        target=alert.target,
        rule=alert.rule,
        severity=alert.severity,
        at=rig.clock(),
        value=alert.value,
        alert_id=alert.id,
        detail=alert.detail,
    )


def is_reply(params: dict[str, object]) -> bool:
    return bool(params.get("thread_ts"))


def test_one_post_then_updates_and_thread_replies_through_the_whole_life(rig: AlertRig) -> None:
    fake = rig.fake
    rig.round(0, prod=0.85)
    rig.round(1, prod=0.85)
    assert fake.calls_to("chat.postMessage") == []  # pending: nothing is posted

    rig.round(2, prod=0.85)
    [post] = channel_posts(fake)
    alert = rig.alert()
    ts = alert.message_ts
    assert ts is not None and alert.channel == ALERTS
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert rebuilt(post.params["blocks"]) == post.params["blocks"]
    assert header(post) == "🟡 WARNING — prod: Memory above the warning level"
    assert "85.0% of 64.0 MB (threshold 80%)" in post.params["text"]
    values = button_values(post.params["blocks"])
    assert {values[a] for a in ACK_AND_SNOOZE} == {alert.id}
    assert values["redis_mem.request.expire-keys-without-ttl"] == "prod"

    rig.round(3, prod=0.95)
    rig.round(4, prod=0.95)  # critical held for its minute: the same message escalates
    rig.round(5, prod=0.85)  # critical stops, warning still fires
    rig.round(35, prod=0.85)  # 30 minutes without news: a reminder
    rig.service.acknowledge(alert.id, actor="U0BOB", actor_name="bob", on=ts)
    rig.dispatcher.run_once()
    rig.service.snooze(alert.id, actor="U0BOB", actor_name="bob", hours=1, on=ts)
    rig.dispatcher.run_once()
    rig.round(96, prod=0.85)  # the hour of snooze is over, still firing
    rig.round(97, prod=0.5)

    assert len(channel_posts(fake)) == 1  # never a second channel message
    updates = fake.accepted("chat.update")
    assert all((u.params["channel"], u.params["ts"]) == (ALERTS, ts) for u in updates)
    assert all(rebuilt(u.params["blocks"]) == u.params["blocks"] for u in updates)
    assert [header(u).split(" — ")[0] for u in updates] == [
        "🔴 CRITICAL",  # escalated
        "🟡 WARNING",  # deescalated
        "🟡 WARNING",  # reminder (the value refreshed)
        "🟡 WARNING",  # acknowledged
        "🟡 WARNING",  # snoozed
        "🟡 WARNING",  # snooze ended
        "✅ RESOLVED",
    ]
    assert "redis_mem.alert.ack" not in button_values(updates[3].params["blocks"])
    assert "Acknowledged by <@U0BOB>" in all_text(updates[3].params["blocks"])
    assert "Snoozed by <@U0BOB> until" in all_text(updates[4].params["blocks"])
    assert button_values(updates[-1].params["blocks"]) == {}  # no buttons once resolved

    replies = thread_replies(fake)
    assert all((r.params["channel"], r.params["thread_ts"]) == (ALERTS, ts) for r in replies)
    texts = [str(r.params["text"]) for r in replies]
    assert texts[0].startswith("🔴 Escalated to critical: 95.0% of 64.0 MB (threshold 90%)")
    assert texts[1].startswith("🟡 Down to warning: 85.0% of 64.0 MB")
    assert texts[2].startswith("⏰ Still firing (for 33m, not acknowledged): 85.0% of 64.0 MB")
    assert texts[3] == "👀 Acknowledged by <@U0BOB>: no more reminders"
    assert texts[4].startswith("😴 <@U0BOB> snoozed until ")
    assert texts[5].startswith("🔔 Snooze over, still firing (for 1.6h): 85.0%")
    assert texts[6].startswith("✅ Resolved after 1.6h: now 50.0% of 64.0 MB (threshold 80%)")
    assert len(texts) == 7
    broadcast = [bool(r.params.get("reply_broadcast")) for r in replies]
    assert broadcast == [True, False, False, False, False, True, False]

    actions = [a for a in rig.audit_actions() if a.startswith("alert.")]
    assert actions == [
        "alert.fired",
        "alert.escalated",
        "alert.deescalated",
        "alert.acknowledged",
        "alert.snoozed",
        "alert.snooze-ended",
        "alert.resolved",
    ]
    assert rig.store.due_events(rig.clock() + timedelta(days=1)) == []


def test_slack_down_when_it_fired_posts_once_it_is_back(rig: AlertRig) -> None:
    rig.fake.fail("chat.postMessage", "internal_error", times=1)
    rig.round(0, prod=0.85)
    rig.round(1, prod=0.85)
    rig.round(2, prod=0.85)
    assert channel_posts(rig.fake) == [] and rig.alert().message_ts is None

    rig.round(3, prod=0.85)  # the outbox retries (backoff of a second, long passed)

    [post] = channel_posts(rig.fake)
    assert header(post) == "🟡 WARNING — prod: Memory above the warning level"
    assert rig.alert().message_ts is not None
    assert thread_replies(rig.fake) == []  # FIRED says nothing in the thread


def test_a_429_with_retry_after_is_retried_inside_the_call(rig: AlertRig) -> None:
    for minute in (0, 1, 2):
        rig.check(minute, prod=0.85)
    rig.fake.fail_http("chat.postMessage", status=429, times=1, retry_after=1)

    report = rig.dispatcher.run_once()

    assert report.failed == 0
    statuses = [c.status for c in rig.fake.calls_to("chat.postMessage")]
    assert statuses == [429, 200]
    assert len(channel_posts(rig.fake)) == 1
    assert rig.alert().message_ts is not None
    assert rig.store.due_events(rig.clock() + timedelta(days=1)) == []


def test_a_long_retry_after_is_left_to_the_outbox(rig: AlertRig) -> None:
    alert = rig.fire()
    rig.fake.fail_http("chat.update", status=429, times=1, retry_after=120)

    with pytest.raises(NotifyError) as caught:
        rig.notifier.deliver(event_for(alert, EventKind.REMINDER, rig), alert)

    assert caught.value.transient and caught.value.posted is None
    assert str(caught.value) == "Slack chat.update failed: ratelimited (HTTP 429)"
    assert [c.status for c in rig.fake.calls_to("chat.update")] == [429]  # no wait inside


def test_a_503_then_success_is_retried_inside_the_call(rig: AlertRig) -> None:
    alert = rig.fire()
    rig.fake.fail_http("chat.update", status=503, times=1)

    rig.round(3, prod=0.95)
    rig.round(4, prod=0.95)

    assert [c.status for c in rig.fake.calls_to("chat.update")] == [503, 200]
    [reply] = thread_replies(rig.fake)
    assert reply.params["thread_ts"] == alert.message_ts and reply.params["reply_broadcast"]
    assert rig.store.due_events(rig.clock() + timedelta(days=1)) == []


def test_5xx_beyond_the_retries_is_a_transient_error(rig: AlertRig) -> None:
    alert = rig.fire()
    rig.fake.fail_http("chat.update", status=500, times=10)

    with pytest.raises(NotifyError) as caught:
        rig.notifier.deliver(event_for(alert, EventKind.DEESCALATED, rig), alert)

    assert caught.value.transient
    assert str(caught.value) == "Slack chat.update failed: HTTP 500"
    assert len(rig.fake.calls_to("chat.update")) == 3  # the call and its two retries
    assert thread_replies(rig.fake) == []  # no reply about an update that did not happen


@pytest.mark.parametrize(
    ("error", "transient"),
    [("invalid_blocks", False), ("msg_too_long", False), ("not_in_channel", True)],
)
def test_slack_refusals_are_permanent_unless_the_channel_may_come_back(
    rig: AlertRig, error: str, transient: bool
) -> None:
    for minute in (0, 1, 2):
        rig.check(minute, prod=0.85)
    rig.fake.fail("chat.postMessage", error)
    alert = rig.alert()

    with pytest.raises(NotifyError) as caught:
        rig.notifier.deliver(event_for(alert, EventKind.FIRED, rig), alert)

    assert caught.value.transient is transient and caught.value.posted is None
    assert str(caught.value) == f"Slack chat.postMessage failed: {error}"
    assert TOKEN not in str(caught.value)


def test_a_permanent_refusal_is_given_up_by_the_outbox(rig: AlertRig) -> None:
    rig.fake.fail("chat.postMessage", "invalid_blocks", times=1)
    for minute in (0, 1, 2):
        rig.round(minute, prod=0.85)

    assert rig.store.due_events(rig.clock() + timedelta(days=1)) == []  # not retried
    assert channel_posts(rig.fake) == [] and rig.alert().message_ts is None
    # It was tried once, refused, and given up (not merely never tried).
    assert [c.error for c in rig.fake.calls_to("chat.postMessage")] == ["invalid_blocks"]


def test_posted_then_the_reply_failed_the_retry_updates_instead_of_posting_again(
    rig: AlertRig,
) -> None:
    rig.fake.fail("chat.postMessage", "invalid_blocks", times=1)  # the FIRED post: given up
    for minute in (0, 1, 2):
        rig.round(minute, prod=0.85)
    rig.fake.fail("chat.postMessage", "internal_error", times=1, when=is_reply)

    rig.round(3, prod=0.95)
    rig.round(4, prod=0.95)  # ESCALATED with no message yet: post, then the reply fails

    [post] = channel_posts(rig.fake)
    ts = rig.alert().message_ts
    assert ts is not None  # the dispatcher kept the posted message despite the failure
    assert header(post).startswith("🔴 CRITICAL — prod")
    assert thread_replies(rig.fake) == []

    rig.clock.now += timedelta(seconds=5)  # past the outbox's first backoff
    assert rig.dispatcher.run_once().delivered == 1

    assert len(channel_posts(rig.fake)) == 1  # not posted twice
    [update] = rig.fake.accepted("chat.update")
    assert update.params["ts"] == ts
    [reply] = thread_replies(rig.fake)
    assert reply.params["thread_ts"] == ts and reply.params["reply_broadcast"]
    assert str(reply.params["text"]).startswith("🔴 Escalated to critical")


def test_the_posted_message_travels_with_a_failed_reply(rig: AlertRig) -> None:
    for minute in (0, 1, 2):
        rig.check(minute, prod=0.85)
    alert = rig.alert()
    rig.fake.fail("chat.postMessage", "msg_too_long", when=is_reply)

    with pytest.raises(NotifyError) as caught:
        rig.notifier.deliver(event_for(alert, EventKind.SNOOZE_ENDED, rig), alert)

    [post] = channel_posts(rig.fake)
    assert caught.value.posted is not None
    assert caught.value.posted.channel == ALERTS
    assert caught.value.posted.ts is not None and caught.value.posted.ts.startswith("1700000000.")
    assert not caught.value.transient
    assert str(caught.value) == "Slack chat.postMessage (thread reply) failed: msg_too_long"
    assert post.params["channel"] == ALERTS


def test_a_redelivered_fired_event_updates_the_posted_message(rig: AlertRig) -> None:
    alert = rig.fire()

    delivered = rig.notifier.deliver(event_for(alert, EventKind.FIRED, rig), alert)

    assert delivered == Delivered()
    assert len(channel_posts(rig.fake)) == 1
    [update] = rig.fake.accepted("chat.update")
    assert update.params["ts"] == alert.message_ts
    assert thread_replies(rig.fake) == []


def test_a_deleted_message_is_posted_again(rig: AlertRig) -> None:
    old = rig.fire()
    rig.fake.fail("chat.update", "message_not_found", times=1)

    rig.round(3, prod=0.95)
    rig.round(4, prod=0.95)

    posts = channel_posts(rig.fake)
    assert len(posts) == 2 and header(posts[1]).startswith("🔴 CRITICAL")
    new_ts = rig.alert().message_ts
    assert new_ts is not None and new_ts != old.message_ts
    [reply] = thread_replies(rig.fake)
    assert reply.params["thread_ts"] == new_ts


def test_pending_cleared_and_alertless_events_post_nothing(rig: AlertRig) -> None:
    alert = rig.fire()
    before = len(rig.fake.calls)
    for kind in (EventKind.PENDING, EventKind.CLEARED):
        assert rig.notifier.deliver(event_for(alert, kind, rig), alert) == Delivered()
    assert rig.notifier.deliver(event_for(alert, EventKind.RESOLVED, rig), None) == Delivered()
    assert len(rig.fake.calls) == before


def test_no_channel_posts_nothing_and_says_so_in_the_log(
    engine: Engine, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    lonely = AlertRig(
        engine=engine,
        fake=fake_slack,
        settings=settings_for(fake_slack),
        targets={"prod": Target(name="prod")},  # and no REDIS_MEM_CHANNEL
        rules=memory_rules(),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="bot.slack.notifier"):
            for minute in (0, 1, 2):
                lonely.round(minute, prod=0.85)
    finally:
        lonely.close()

    assert fake_slack.calls_to("chat.postMessage") == []
    assert lonely.alert().channel is None
    assert lonely.store.due_events(lonely.clock() + timedelta(days=1)) == []
    assert any("no channel" in r.getMessage() for r in caplog.records)


def test_an_unreachable_slack_is_transient_and_one_line(rig: AlertRig) -> None:
    alert = rig.fire()
    # No retry handlers: the error mapping is under test here, not the client's retries.
    dead = WebClient(
        token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", retry_handlers=[]
    )
    notifier = SlackNotifier(dead, clock=rig.clock)

    with pytest.raises(NotifyError) as caught:
        notifier.deliver(event_for(alert, EventKind.REMINDER, rig), alert)

    message = str(caught.value)
    assert caught.value.transient and "\n" not in message
    assert message.startswith("Slack chat.update unreachable: ")
    assert TOKEN not in message


def test_store_down_alerts_carry_no_diagnosis(rig: AlertRig) -> None:
    rig.round(0, prod=None)
    rig.round(1, prod=None)  # store-down fires after a minute

    [post] = channel_posts(rig.fake)
    assert header(post) == "🔴 CRITICAL — prod: Session store unreachable"
    shown = all_text(post.params["blocks"])
    assert "Diagnosis" not in shown and "connection refused" in shown
    assert set(button_values(post.params["blocks"])) == ACK_AND_SNOOZE
    assert replace(rig.alert(), diagnosis=None) == rig.alert()
