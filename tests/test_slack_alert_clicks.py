"""Acknowledge / Snooze clicks and ``/redis-mem alerts`` through the real Bolt app over HTTP.

Signed requests go to Bolt under uvicorn; the real HealthService writes the click to
the SQLite store and the audit trail and queues the message refresh; the fake Slack
Web API records the private answers and what the dispatcher then sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from bot.audit.store import StoredEntry
from bot.health.model import Alert, EventKind
from tests.fakeslack import Call
from tests.slack_alert_support import (
    ALERTS,
    OPS,
    AlertBot,
    AlertRig,
    engine,
    rig,
    start_alert_bot,
    thread_replies,
)
from tests.slackcheck import all_text, button_values, rebuilt, wait_until

__all__ = ["engine", "rig", "start_alert_bot"]  # fixtures

ACK = "redis_mem.alert.ack"
SNOOZE_4H = "redis_mem.alert.snooze.4h"


def queued(rig: AlertRig) -> list[tuple[EventKind, str | None]]:
    """Undelivered events (kind, actor) in the outbox."""
    due = rig.store.due_events(rig.clock() + timedelta(days=1))
    return [(stored.event.kind, stored.event.actor) for stored in due]


def entries(rig: AlertRig, action: str) -> list[StoredEntry]:
    return [e for e in rig.audit.list_entries(limit=500) if e.action == action]


def stored(rig: AlertRig, alert_id: str) -> Alert:
    alert = rig.store.get_alert(alert_id)
    assert alert is not None
    return alert


def ephemerals(bot: AlertBot, count: int) -> list[Call]:
    return bot.fake.wait_for("chat.postEphemeral", count=count)


def test_acknowledge_click_is_stored_audited_and_queued(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    alert = rig.fire()
    bot = start_alert_bot()

    response = bot.click(ACK, alert.id, ts=alert.message_ts)

    assert response.status_code == 200
    wait_until(lambda: stored(rig, alert.id).acknowledged_by == "U0BOB")
    # The click wins the UPDATE first, then is audited: wait for the row too.
    wait_until(lambda: len(entries(rig, "alert.acknowledged")) == 1)
    [entry] = entries(rig, "alert.acknowledged")
    assert (entry.actor, entry.actor_name, entry.source) == ("U0BOB", "bob", "slack")
    assert entry.parameters["alert_id"] == alert.id
    assert queued(rig) == [(EventKind.ACKNOWLEDGED, "U0BOB")]
    assert bot.fake.calls_to("chat.postEphemeral") == []  # the thread will say it

    rig.dispatcher.run_once()
    [update] = bot.fake.accepted("chat.update")
    assert update.params["ts"] == alert.message_ts
    assert rebuilt(update.params["blocks"]) == update.params["blocks"]
    assert ACK not in button_values(update.params["blocks"])
    assert "Acknowledged by <@U0BOB>" in all_text(update.params["blocks"])
    [reply] = thread_replies(bot.fake)
    assert reply.params["text"] == "👀 Acknowledged by <@U0BOB>: no more reminders"


def test_snooze_click_is_stored_audited_and_queued(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    alert = rig.fire()
    bot = start_alert_bot()

    assert bot.click(SNOOZE_4H, alert.id, ts=alert.message_ts).status_code == 200

    wait_until(lambda: stored(rig, alert.id).snoozed_by == "U0BOB")
    wait_until(lambda: len(entries(rig, "alert.snoozed")) == 1)
    snoozed = stored(rig, alert.id)
    assert snoozed.snoozed_until == rig.clock() + timedelta(hours=4)
    assert snoozed.acknowledged_by is None
    assert len(entries(rig, "alert.snoozed")) == 1
    assert queued(rig) == [(EventKind.SNOOZED, "U0BOB")]

    rig.dispatcher.run_once()
    [update] = bot.fake.accepted("chat.update")
    assert "Snoozed by <@U0BOB> until" in all_text(update.params["blocks"])


def test_refusals_are_one_private_line_and_change_nothing(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    for minute in (0, 1, 2):
        rig.round(minute, prod=0.85, stage=0.85)
    prod, stage = rig.alert("prod"), rig.alert("stage")
    rig.round(3, stage=0.5)  # stage resolves; prod keeps firing
    assert stored(rig, stage.id).status == "resolved"
    bot = start_alert_bot()
    before = len(rig.audit.list_entries(limit=500))
    updates = len(bot.fake.calls_to("chat.update"))  # stage's resolution, before any click

    cases = [
        (ACK, "prod", prod.message_ts, "cannot acknowledge this alert: that is not an alert id"),
        (SNOOZE_4H, "f" * 32, prod.message_ts, "cannot snooze this alert: no such alert"),
        (ACK, stage.id, stage.message_ts, "cannot acknowledge this alert: it is resolved already"),
        (
            SNOOZE_4H,
            prod.id,
            stage.message_ts,  # prod's button, as if it were on stage's message
            "cannot snooze this alert: that button is not on this alert's message",
        ),
    ]
    for number, (action, value, ts, reason) in enumerate(cases, start=1):
        assert bot.click(action, value, ts=ts).status_code == 200
        reply = ephemerals(bot, number)[-1]
        assert (reply.params["user"], reply.params["channel"]) == ("U0BOB", ALERTS)
        assert reply.params["text"] == f"⚠ {reason}"

    after = stored(rig, prod.id)
    assert after.acknowledged_by is None and after.snoozed_by is None
    assert queued(rig) == []
    assert len(bot.fake.calls_to("chat.update")) == updates
    assert len(entries(rig, "access.denied")) == len(cases)
    assert len(rig.audit.list_entries(limit=500)) == before + len(cases)


def test_a_stale_signature_is_refused_by_bolt(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    alert = rig.fire()
    bot = start_alert_bot()
    before = len(rig.audit.list_entries(limit=500))

    replayed = int(time.time()) - 6 * 60  # a captured click replayed six minutes later
    response = bot.click(ACK, alert.id, ts=alert.message_ts, timestamp=replayed)

    assert response.status_code == 401
    assert stored(rig, alert.id).acknowledged_by is None
    assert queued(rig) == []
    assert len(rig.audit.list_entries(limit=500)) == before
    assert bot.fake.calls_to("chat.postEphemeral") == []


def test_clicks_without_health_configured_say_so(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    alert = rig.fire()
    bot = start_alert_bot(with_health=False)

    bot.click(SNOOZE_4H, alert.id, ts=alert.message_ts)

    [reply] = ephemerals(bot, 1)
    assert reply.params["text"] == "⚠ alerts are not configured in this process"
    assert stored(rig, alert.id).snoozed_by is None


# /redis-mem alerts -------------------------------------------------------------------------


def posts_in_ops(bot: AlertBot) -> list[Call]:
    return [c for c in bot.fake.accepted("chat.postMessage") if c.params["channel"] == OPS]


def test_alerts_with_nothing_pending_or_firing(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    bot = start_alert_bot()

    response = bot.command("alerts")

    assert response.json()["text"] == "Reading the alerts…"
    wait_until(lambda: len(posts_in_ops(bot)) == 1)
    [post] = posts_in_ops(bot)
    assert post.params["text"] == "No alert is pending or firing."
    wait_until(lambda: bool(entries(rig, "command.alerts")))
    [entry] = entries(rig, "command.alerts")
    assert entry.outcome == "ok" and entry.summary == "0 firing, 0 pending"


def test_alerts_lists_firing_then_pending_with_links(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    alert = rig.fire("prod")
    rig.round(3, stage=0.85)  # stage's warning starts to hold: pending
    bot = start_alert_bot()

    bot.command("alerts")

    wait_until(lambda: len(posts_in_ops(bot)) == 1)
    [post] = posts_in_ops(bot)
    blocks = post.params["blocks"]
    assert rebuilt(blocks) == blocks
    assert blocks[0]["text"]["text"] == "🚨 Alerts — 1 firing, 1 pending"
    shown = all_text(blocks)
    assert alert.message_ts is not None
    link = f"https://fake.slack.com/archives/{ALERTS}/p{alert.message_ts.replace('.', '')}"
    assert f"<{link}|message>" in shown
    assert (
        "🟡 *prod* — Memory above the warning level (`memory-warning`): 85.0% of 64.0 MB" in shown
    )
    assert (
        "⏳ *stage* — Memory above the warning level (`memory-warning`): 85.0% of maxmemory"
        in shown
    )
    assert "fires after 2m" in shown
    assert shown.index("*Firing*") < shown.index("*Pending*")
    wait_until(lambda: bool(entries(rig, "command.alerts")))
    [entry] = entries(rig, "command.alerts")
    assert entry.outcome == "warning" and entry.summary == "1 firing, 1 pending"


def test_alerts_without_a_team_domain_has_no_links(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    rig.fire("prod")
    bot = start_alert_bot()

    bot.command("alerts", team_domain=None)

    wait_until(lambda: len(posts_in_ops(bot)) == 1)
    assert "slack.com/archives" not in all_text(posts_in_ops(bot)[0].params["blocks"])


def test_alerts_without_health_configured_is_a_one_line_error(
    rig: AlertRig, start_alert_bot: Callable[..., AlertBot]
) -> None:
    bot = start_alert_bot(with_health=False)

    bot.command("alerts")

    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["text"] == "⚠ alerts: alerts are not configured in this process"
    assert reply.params["response_type"] == "ephemeral"
    assert posts_in_ops(bot) == []


def test_alerts_takes_no_arguments(rig: AlertRig, start_alert_bot: Callable[..., AlertBot]) -> None:
    bot = start_alert_bot()
    response = bot.command("alerts prod")
    assert response.json()["text"] == "⚠ alerts: takes no arguments (got 'prod')"
