"""The alert message, its thread replies and ``/redis-mem alerts``: content and Slack's limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.diagnosis.model import Severity
from bot.health.model import (
    Alert,
    AlertDiagnosis,
    AlertEvent,
    AlertStatus,
    EventKind,
    RuleState,
    RuleStatus,
    ScenarioDigest,
)
from bot.health.rules import RULES, RULES_BY_ID, RuleBook
from bot.health.service import AlertsOverview
from bot.slack.blocks.alert import (
    ACK_ACTION,
    SNOOZE_ACTIONS,
    alert_message,
    alerts_message,
    firing_line,
    message_link,
    thread_reply,
)
from bot.slack.blocks.common import Message

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
ALERT_ID = "0123456789abcdef0123456789abcdef"


def make_alert(**changes: Any) -> Alert:
    """A critical memory alert on prod, firing for 20 minutes, posted in C0ALERTS."""
    alert = Alert(
        id=ALERT_ID,
        target="prod",
        group="memory",
        rule="memory-critical",
        severity=Severity.CRITICAL,
        status=AlertStatus.FIRING,
        value=0.931,
        active_at=NOW - timedelta(minutes=25),
        fired_at=NOW - timedelta(minutes=20),
        last_notified_at=NOW - timedelta(minutes=20),
        detail="93.1% of 512.0 MB (threshold 90%)",
        channel="C0ALERTS",
        message_ts="1700000000.000123",
        diagnosis=AlertDiagnosis(
            checked_at=NOW - timedelta(minutes=20),
            severity="critical",
            scenarios=(
                ScenarioDigest(
                    id="ttl-leak",
                    title="Sessions without TTL",
                    evidence=("40% of sampled sessions have no TTL", "400 of 1,000 sampled"),
                    actions=("expire-keys-without-ttl",),
                ),
            ),
            recommended_actions=("expire-keys-without-ttl", "raise-maxmemory"),
        ),
    )
    return replace(alert, **changes)


def dicts(message: Message) -> list[dict[str, Any]]:
    return [block.to_dict() for block in message.blocks]


def within_limits(message: Message) -> list[dict[str, Any]]:
    """Every block parses back unchanged (slack_sdk checks the limits) and Slack's counts hold."""
    blocks = dicts(message)
    parsed = [Block.parse(b) for b in blocks]
    assert [b.to_dict() for b in parsed if b is not None] == blocks
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
            assert all(len(el["text"]["text"]) <= 75 for el in block["elements"])
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    assert len(message.text) <= 3000
    return blocks


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [el for b in blocks if b["type"] == "actions" for el in b["elements"]]


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(
        str(part.get("text", ""))
        for b in blocks
        for part in [b.get("text") or {}, *(b.get("elements") or [])]
        if isinstance(part, dict)
    )


def test_a_firing_alert_shows_what_since_when_and_the_diagnosis() -> None:
    message = alert_message(make_alert(), now=NOW)
    blocks = within_limits(message)

    assert blocks[0]["text"]["text"] == "🔴 CRITICAL — prod: Memory above the critical level"
    text = all_text(blocks)
    assert "`memory-critical`" in text and "93.1% of 512.0 MB (threshold 90%)" in text
    assert "Firing since 2026-12-01 10:10 UTC (20m)" in text
    assert "Condition held since 2026-12-01 10:05 UTC" in text
    assert "*Sessions without TTL* (`ttl-leak`)" in text
    assert "• 40% of sampled sessions have no TTL" in text
    assert "Fixes: `expire-keys-without-ttl`" in text
    assert message.text == (
        "🔴 CRITICAL — prod: Memory above the critical level: 93.1% of 512.0 MB (threshold 90%)"
    )


def test_buttons_fixes_then_acknowledge_and_snoozes_carrying_only_the_alert_id() -> None:
    blocks = within_limits(alert_message(make_alert(), now=NOW))

    [actions] = [b for b in blocks if b["type"] == "actions"]
    ids = [el["action_id"] for el in actions["elements"]]
    assert ids == [
        "redis_mem.request.expire-keys-without-ttl",
        "redis_mem.request.raise-maxmemory",
        ACK_ACTION,
        "redis_mem.alert.snooze.1h",
        "redis_mem.alert.snooze.4h",
        "redis_mem.alert.snooze.24h",
    ]
    values = {el["action_id"]: el["value"] for el in actions["elements"]}
    assert {values[a] for a in [ACK_ACTION, *SNOOZE_ACTIONS]} == {ALERT_ID}
    assert values["redis_mem.request.raise-maxmemory"] == "prod"
    labels = [el["text"]["text"] for el in actions["elements"]][2:]
    assert labels == ["Acknowledge", "Snooze 1h", "Snooze 4h", "Snooze 24h"]


def test_at_most_five_fix_buttons() -> None:
    many = tuple(f"fix-{n}" for n in range(30))
    diagnosis = AlertDiagnosis(checked_at=NOW, severity="critical", recommended_actions=many)
    alert = make_alert(diagnosis=diagnosis)
    ids = [el["action_id"] for el in buttons(within_limits(alert_message(alert, now=NOW)))]
    assert ids[:5] == [f"redis_mem.request.fix-{n}" for n in range(5)]
    assert len(ids) == 5 + 1 + len(SNOOZE_ACTIONS)


def test_acknowledged_and_snoozed_alerts_say_by_whom() -> None:
    alert = make_alert(
        acknowledged_by="U0BOB",
        acknowledged_at=NOW - timedelta(minutes=5),
        snoozed_by="cli:ops",
        snoozed_until=NOW + timedelta(hours=4),
    )
    blocks = within_limits(alert_message(alert, now=NOW))

    text = all_text(blocks)
    assert "👀 Acknowledged by <@U0BOB> at 2026-12-01 10:25 UTC" in text
    assert "😴 Snoozed by `cli:ops` until 2026-12-01 14:30 UTC" in text
    ids = [el["action_id"] for el in buttons(blocks)]
    assert ACK_ACTION not in ids and "redis_mem.alert.snooze.4h" in ids


def test_an_ended_snooze_is_not_shown() -> None:
    alert = make_alert(snoozed_by="U0BOB", snoozed_until=NOW - timedelta(minutes=1))
    assert "Snoozed" not in all_text(within_limits(alert_message(alert, now=NOW)))


def test_a_resolved_alert_has_no_buttons_and_says_how_long_it_lasted() -> None:
    alert = make_alert(
        status=AlertStatus.RESOLVED,
        resolved_at=NOW,
        detail="now 62.0% of 512.0 MB (threshold 80%)",
        acknowledged_by="U0BOB",
    )
    blocks = within_limits(alert_message(alert, now=NOW))

    assert blocks[0]["text"]["text"] == "✅ RESOLVED — prod: Memory above the critical level"
    assert buttons(blocks) == []
    text = all_text(blocks)
    assert "✅ Resolved at 2026-12-01 10:30 UTC after 20m" in text
    assert "Acknowledged by <@U0BOB>" in text
    assert "Firing since" not in text


def test_a_failed_diagnosis_shows_why_and_no_diagnosis_shows_nothing() -> None:
    failed = AlertDiagnosis(checked_at=NOW, severity="unknown", error="cannot reach Redis: timeout")
    text = all_text(within_limits(alert_message(make_alert(diagnosis=failed), now=NOW)))
    assert "⚠ cannot reach Redis: timeout" in text

    bare = make_alert(group="store-down", rule="store-down", diagnosis=None, detail="refused")
    blocks = within_limits(alert_message(bare, now=NOW))
    assert blocks[0]["text"]["text"] == "🔴 CRITICAL — prod: Session store unreachable"
    assert "Diagnosis" not in all_text(blocks)
    assert [el["action_id"] for el in buttons(blocks)] == [ACK_ACTION, *SNOOZE_ACTIONS]


def test_absurd_details_and_many_scenarios_stay_within_limits() -> None:
    evidence = tuple("evidence <b>&" + "x" * 2000 for _ in range(20))
    scenarios = tuple(
        ScenarioDigest(id=f"s{n}", title="T" * 500, evidence=evidence, actions=("a",) * 50)
        for n in range(80)
    )
    diagnosis = AlertDiagnosis(
        checked_at=NOW, severity="critical", scenarios=scenarios, recommended_actions=("a",) * 50
    )
    alert = make_alert(detail="<!channel> " + "d" * 10_000, target="p" * 63, diagnosis=diagnosis)

    message = alert_message(alert, now=NOW)
    blocks = within_limits(message)

    assert blocks[-1]["type"] == "context"  # the footer survives the cut
    assert any(b["type"] == "actions" for b in blocks)  # so do the buttons
    assert "<!channel>" not in all_text(blocks)  # escaped: no one is pinged by a reading
    assert "<!channel>" not in message.text  # nor by the notification text
    assert "left out" in all_text(blocks)


@pytest.mark.parametrize("rule", [rule.id for rule in RULES])
def test_every_rule_renders_in_both_states(rule: str) -> None:
    for status in AlertStatus:
        alert = make_alert(rule=rule, status=status, resolved_at=NOW)
        blocks = within_limits(alert_message(alert, now=NOW))
        header = blocks[0]["text"]["text"]
        assert RULES_BY_ID[rule].title in header
        assert ("RESOLVED" in header) is (status is AlertStatus.RESOLVED)


# Thread replies ----------------------------------------------------------------------------


def event(kind: EventKind, **changes: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "kind": kind,
        "target": "prod",
        "rule": "memory-critical",
        "severity": Severity.CRITICAL,
        "at": NOW,
        "value": 0.931,
        "alert_id": ALERT_ID,
        "detail": "93.1% of 512.0 MB (threshold 90%)",
        **changes,
    }
    return AlertEvent(**fields)


def test_thread_replies_per_kind() -> None:
    alert = make_alert()
    resolved = make_alert(
        status=AlertStatus.RESOLVED, resolved_at=NOW + timedelta(minutes=3), detail="now 62%"
    )
    cases = {
        EventKind.ESCALATED: (
            alert,
            "🔴 Escalated to critical: 93.1% of 512.0 MB (threshold 90%)",
            True,
        ),
        EventKind.DEESCALATED: (alert, "🔴 Down to critical: 93.1% of 512.0 MB", False),
        EventKind.RESOLVED: (resolved, "✅ Resolved after 23m: now 62%", False),
        EventKind.REMINDER: (alert, "⏰ Still firing (for 20m, not acknowledged): 93.1%", False),
        EventKind.SNOOZE_ENDED: (alert, "🔔 Snooze over, still firing (for 20m", True),
    }
    for kind, (shown, start, broadcast) in cases.items():
        reply = thread_reply(event(kind), shown)
        assert reply is not None, kind
        assert reply.text.startswith(start), (kind, reply.text)
        assert reply.broadcast is broadcast, kind

    acked = thread_reply(event(EventKind.ACKNOWLEDGED, actor="U0BOB"), alert)
    assert acked is not None and acked.text == "👀 Acknowledged by <@U0BOB>: no more reminders"
    snoozed = thread_reply(
        event(EventKind.SNOOZED, actor="U0BOB", detail="snoozed until 2026-12-01 14:30 UTC"), alert
    )
    assert snoozed is not None and snoozed.text == "😴 <@U0BOB> snoozed until 2026-12-01 14:30 UTC"
    for silent in (EventKind.FIRED, EventKind.PENDING, EventKind.CLEARED):
        assert thread_reply(event(silent), alert) is None


def test_a_reply_escapes_the_reading_and_fits_a_message() -> None:
    reply = thread_reply(event(EventKind.ESCALATED, detail="<!here> " + "x" * 9000), make_alert())
    assert reply is not None
    assert "<!here>" not in reply.text and len(reply.text) <= 3000


# /redis-mem alerts -------------------------------------------------------------------------


def pending(target: str, rule: str, value: float, minutes_ago: int) -> RuleState:
    return RuleState(
        target=target,
        rule=rule,
        status=RuleStatus.PENDING,
        active_at=NOW - timedelta(minutes=minutes_ago),
        value=value,
    )


def test_nothing_pending_or_firing() -> None:
    message = alerts_message(
        AlertsOverview((), ()), team_domain="acme", now=NOW, rules=RuleBook.defaults()
    )
    assert message.text == "No alert is pending or firing."
    assert all_text(within_limits(message)) == "No alert is pending or firing."


def test_firing_worst_first_then_pending_with_links() -> None:
    warning = make_alert(
        id="1" * 32,
        target="stage",
        rule="eviction-rate",
        group="eviction-rate",
        severity=Severity.WARNING,
        detail="12.0 keys evicted per second over 5m (threshold 10/s)",
        fired_at=NOW - timedelta(hours=2),
        message_ts="1700000000.000777",
        snoozed_by="U0BOB",
        snoozed_until=NOW + timedelta(hours=1),
    )
    critical = make_alert(acknowledged_by="U0BOB")
    unposted = make_alert(
        id="2" * 32,
        target="cache",
        channel=None,
        message_ts=None,
        fired_at=NOW - timedelta(minutes=1),
    )
    overview = AlertsOverview(
        pending=(
            pending("prod", "memory-forecast", 0.97, 3),
            pending("cache", "store-down", 0.0, 1),
        ),
        firing=(warning, critical, unposted),
    )

    message = alerts_message(overview, team_domain="acme", now=NOW, rules=RuleBook.defaults())
    blocks = within_limits(message)

    assert blocks[0]["text"]["text"] == "🚨 Alerts — 3 firing, 2 pending"
    lines = all_text(blocks).splitlines()
    firing = lines[lines.index("*Firing*") + 1 : lines.index("*Pending*")]
    assert [line.split(" — ")[0] for line in firing] == ["🔴 *prod*", "🔴 *cache*", "🟡 *stage*"]
    assert "93.1% of 512.0 MB (threshold 90%)" in firing[0]
    assert "👀 acknowledged by <@U0BOB>" in firing[0]
    assert "<https://acme.slack.com/archives/C0ALERTS/p1700000000000123|message>" in firing[0]
    assert "|message>" not in firing[1]  # never posted: nothing to link
    assert "😴 snoozed until 2026-12-01 11:30 UTC" in firing[2]
    assert "since 2026-12-01 08:30 UTC (2.0h)" in firing[2]
    pend = lines[lines.index("*Pending*") + 1 :]
    assert pend[0].startswith("⏳ *cache* — Session store unreachable (`store-down`): unreachable")
    assert "fires after 1m" in pend[0]
    assert pend[1].startswith("⏳ *prod* — Memory on course to the critical level")
    assert "97% of maxmemory in 6h at this rate · since 2026-12-01 10:27 UTC" in pend[1]
    assert message.text == "Alerts — 3 firing, 2 pending"


def test_no_links_without_the_team_domain() -> None:
    overview = AlertsOverview(pending=(), firing=(make_alert(),))
    assert "slack.com" not in all_text(
        within_limits(
            alerts_message(overview, team_domain=None, now=NOW, rules=RuleBook.defaults())
        )
    )


def test_a_long_list_stays_within_limits() -> None:
    firing = tuple(
        make_alert(id=f"{n:032x}", target=f"t{n}", detail="x" * 3000) for n in range(300)
    )
    states = tuple(pending(f"t{n}", "memory-warning", 0.85, n) for n in range(300))
    message = alerts_message(
        AlertsOverview(states, firing), team_domain="acme", now=NOW, rules=RuleBook.defaults()
    )
    text = all_text(within_limits(message))
    assert "more_" in text


@pytest.mark.parametrize(
    ("domain", "channel", "ts", "link"),
    [
        (
            "acme",
            "C0ALERTS",
            "1700000000.000123",
            "https://acme.slack.com/archives/C0ALERTS/p1700000000000123",
        ),
        ("acme", "#alerts", "1700000000.000123", None),  # a channel name: no archive link
        ("evil.com/x?", "C0ALERTS", "1700000000.000123", None),
        ("acme", "C0ALERTS", "1700000000.000123|x>", None),
        (None, "C0ALERTS", "1700000000.000123", None),
        ("acme", None, None, None),
    ],
)
def test_message_links_are_built_only_from_slack_shaped_parts(
    domain: str | None, channel: str | None, ts: str | None, link: str | None
) -> None:
    assert message_link(team_domain=domain, channel=channel, ts=ts) == link


def test_a_long_detail_in_the_alerts_list_keeps_the_link_to_the_message() -> None:
    alert = make_alert(
        detail="cannot reach Redis " + "x" * 5000 + " <b>", message_ts="1700000000.000001"
    )
    line = firing_line(alert, team_domain="fake", now=NOW)
    assert line.endswith("<https://fake.slack.com/archives/C0ALERTS/p1700000000000001|message>")
    assert "<b>" not in line and len(line) < 600
