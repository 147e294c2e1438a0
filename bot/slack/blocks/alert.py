"""The alert message (one per firing episode, re-rendered on every change) and its thread replies.

Like the approval message, the alert message is a pure function of the stored alert:
each update (escalated, acknowledged, snoozed, resolved...) re-renders it from the
row, so the message never shows anything the server does not hold. The ack/snooze
buttons carry the alert id and nothing else.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, DividerBlock, HeaderBlock

from bot.diagnosis.model import Severity
from bot.health.model import (
    Alert,
    AlertDiagnosis,
    AlertEvent,
    EventKind,
    RuleState,
    ScenarioDigest,
)
from bot.health.rules import (
    RULES_BY_ID,
    RuleBook,
)
from bot.health.service import AlertsOverview
from bot.shards import parent
from bot.slack.blocks.common import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    fit_middle,
    mention,
    section,
)
from bot.slack.blocks.diagnosis import request_button
from bot.units import format_duration

ACK_ACTION = "redis_mem.alert.ack"
SNOOZE_ACTION_PREFIX = "redis_mem.alert.snooze."
SNOOZE_HOURS = (1, 4, 24)
# action id -> hours: the one declaration the buttons and the listener both use.
SNOOZE_ACTIONS = {f"{SNOOZE_ACTION_PREFIX}{hours}h": hours for hours in SNOOZE_HOURS}
BUTTONS_BLOCK = "redis_mem.alert"
MAX_FIX_BUTTONS = 5  # the rest are one /redis-mem diagnose away
RESOLVED_MARK = "✅"


def alert_message(alert: Alert, *, now: datetime) -> Message:
    """The alert as one message: what fired, since when, who acted, the diagnosis, buttons."""
    head: list[Block] = [
        HeaderBlock(text=clip(headline(alert), HEADER_TEXT_MAX)),
        section(summary_text(alert, now=now)),
    ]
    status = status_lines(alert, now=now)
    if status:
        head.append(context(*status))
    tail: list[Block] = [*button_blocks(alert), context(footer(alert))]
    blocks = fit_middle(head=head, middle=diagnosis_blocks(alert.diagnosis), tail=tail)
    return Message(text=clip(fallback_text(alert), FALLBACK_TEXT_MAX), blocks=blocks)


def rule_title(rule_id: str) -> str:
    """The rule's title; its id when this bot does not know it (a row from a newer version)."""
    rule = RULES_BY_ID.get(rule_id)
    return rule.title if rule is not None else rule_id


def headline(alert: Alert) -> str:
    """``🔴 CRITICAL — prod: Memory above the critical level`` (``✅ RESOLVED — …`` after)."""
    if alert.firing:
        mark, word = SEVERITY_MARK[alert.severity], alert.severity.value.upper()
    else:
        mark, word = RESOLVED_MARK, "RESOLVED"
    return f"{mark} {word} — {alert.target}: {rule_title(alert.rule)}"


def summary_text(alert: Alert, *, now: datetime) -> str:
    """The rule, the reading behind it and the times that matter."""
    lines = [f"*{escape(rule_title(alert.rule))}* (`{escape(alert.rule)}`)"]
    if alert.detail:
        lines.append(escape(alert.detail))
    if alert.firing:
        lasted = format_duration(max(0.0, (now - alert.fired_at).total_seconds()))
        lines.append(f"Firing since {utc_time(alert.fired_at)} ({lasted})")
    else:
        lines.append(f"Fired {utc_time(alert.fired_at)}")
    lines.append(f"Condition held since {utc_time(alert.active_at)}")
    return "\n".join(lines)


def status_lines(alert: Alert, *, now: datetime) -> list[str]:
    """Who acknowledged or snoozed it, and when it resolved."""
    lines = []
    if alert.acknowledged_by is not None:
        when = f" at {utc_time(alert.acknowledged_at)}" if alert.acknowledged_at else ""
        lines.append(f"👀 Acknowledged by {mention(alert.acknowledged_by)}{when}")
    if alert.firing and alert.snoozed_at(now):
        lines.append(
            f"😴 Snoozed by {mention(alert.snoozed_by)} until {utc_time(alert.snoozed_until)}"
        )
    if alert.resolved_at is not None:
        lasted = format_duration((alert.resolved_at - alert.fired_at).total_seconds())
        lines.append(f"{RESOLVED_MARK} Resolved at {utc_time(alert.resolved_at)} after {lasted}")
    return lines


def diagnosis_blocks(diagnosis: AlertDiagnosis | None) -> list[Block]:
    """The diagnosis taken when the alert fired: scenarios and fixes, or why there is none."""
    if diagnosis is None:
        return []
    taken = f"_taken {utc_time(diagnosis.checked_at)}_"
    if diagnosis.error is not None:
        return [DividerBlock(), section(f"*Diagnosis* {taken}\n⚠ {escape(diagnosis.error)}")]
    if not diagnosis.scenarios:
        text = f"*Diagnosis* {taken}\nNo runbook scenario matches."
        return [DividerBlock(), section(text)]
    blocks: list[Block] = [DividerBlock(), section(f"*Diagnosis* {taken}")]
    for scenario in diagnosis.scenarios:  # fit_middle cuts what 50 blocks cannot hold, with a note
        blocks.extend(bullet_sections(scenario_lines(scenario)))
    return blocks


def scenario_lines(scenario: ScenarioDigest) -> list[str]:
    """Title and id, the evidence bullets, the fixes."""
    lines = [f"*{escape(scenario.title)}* (`{escape(scenario.id)}`)"]
    lines.extend(f"• {escape(clip(item, 300))}" for item in scenario.evidence)
    if scenario.actions:
        lines.append("Fixes: " + ", ".join(f"`{escape(action)}`" for action in scenario.actions))
    return lines


def button_blocks(alert: Alert) -> list[Block]:
    """While firing: the diagnosis's fixes, then Acknowledge and the snoozes; none once resolved."""
    if not alert.firing:
        return []
    actions = alert.diagnosis.recommended_actions if alert.diagnosis is not None else ()
    # A cluster shard's alert (``sessions/0-5460``) is fixed on its target, as it was diagnosed.
    target = parent(alert.target)
    buttons = [request_button(action, target=target) for action in actions[:MAX_FIX_BUTTONS]]
    if alert.acknowledged_by is None:
        buttons.append(
            ButtonElement(text="Acknowledge", action_id=ACK_ACTION, value=alert.id, style="primary")
        )
    buttons.extend(
        ButtonElement(text=f"Snooze {hours}h", action_id=action_id, value=alert.id)
        for action_id, hours in SNOOZE_ACTIONS.items()
    )
    return [DividerBlock(), ActionsBlock(block_id=BUTTONS_BLOCK, elements=buttons)]


def footer(alert: Alert) -> str:
    """Which alert this is (its id names it in the audit trail)."""
    return f"alert `{alert.id[:8]}` · group `{escape(alert.group)}` · {alert.severity.value}"


def fallback_text(alert: Alert) -> str:
    """Notification text: the headline and the reading."""
    # The text is what notifications show, and Slack reads <!channel> there too: escape it.
    return f"{headline(alert)}: {escape(alert.detail)}" if alert.detail else headline(alert)


def utc_time(when: datetime | None) -> str:
    """``2026-11-29 03:00 UTC`` (naive times are taken as UTC, as the database returns them)."""
    if when is None:
        return "?"
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M UTC")


# Thread replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadReply:
    """A one-line reply in the alert's thread; ``broadcast``: also shown in the channel."""

    text: str
    broadcast: bool = False


def thread_reply(event: AlertEvent, alert: Alert) -> ThreadReply | None:
    """What the thread hears about ``event``; None for FIRED (the message is the news)."""
    text = _reply_text(event, alert)
    if text is None:
        return None
    # An escalation and the end of a snooze must reach people who muted nothing.
    broadcast = event.kind in (EventKind.ESCALATED, EventKind.SNOOZE_ENDED)
    return ThreadReply(text=clip(text, FALLBACK_TEXT_MAX), broadcast=broadcast)


def _reply_text(event: AlertEvent, alert: Alert) -> str | None:
    detail = escape(event.detail)
    mark = SEVERITY_MARK[event.severity]
    match event.kind:
        case EventKind.ESCALATED:
            return f"{mark} Escalated to {event.severity.value}: {detail}"
        case EventKind.DEESCALATED:
            return f"{mark} Down to {event.severity.value}: {detail}"
        case EventKind.RESOLVED:
            ended = alert.resolved_at or event.at
            lasted = format_duration((ended - alert.fired_at).total_seconds())
            return f"{RESOLVED_MARK} Resolved after {lasted}: {escape(alert.detail)}"
        case EventKind.REMINDER:
            return f"⏰ Still firing ({_firing_for(event, alert)}): {escape(alert.detail)}"
        case EventKind.ACKNOWLEDGED:
            return f"👀 Acknowledged by {mention(event.actor)}: no more reminders"
        case EventKind.SNOOZED:
            return f"😴 {mention(event.actor)} {detail}"
        case EventKind.SNOOZE_ENDED:
            still = _firing_for(event, alert)
            return f"🔔 Snooze over, still firing ({still}): {escape(alert.detail)}"
    return None


def _firing_for(event: AlertEvent, alert: Alert) -> str:
    seconds = max(0.0, (event.at - alert.fired_at).total_seconds())
    unacknowledged = ", not acknowledged" if alert.acknowledged_by is None else ""
    return f"for {format_duration(seconds)}{unacknowledged}"


# /redis-mem alerts ----------------------------------------------------------------------------

_TEAM_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_MESSAGE_TS = re.compile(r"\d{1,12}\.\d{1,9}")
DETAIL_IN_LIST = 300  # characters of an alert's detail in /redis-mem alerts
MAX_LIST_SECTIONS = 20  # per list (firing, pending): 2 x 20 + header and footer < 50 blocks


def alerts_message(
    overview: AlertsOverview,
    *,
    team_domain: str | None,
    now: datetime,
    rules: RuleBook,
) -> Message:
    """Firing alerts then pending rules of every target, worst first, linked to their messages.

    ``rules``: this process's rules (a pending rule's severity and its ``for``).
    """
    book = rules
    firing = sorted(overview.firing, key=lambda a: (-a.severity.rank, a.fired_at, a.target))
    pending = sorted(
        overview.pending, key=lambda s: (-_pending_severity(book, s).rank, s.active_at, s.target)
    )
    if not firing and not pending:
        text = "No alert is pending or firing."
        return Message(text=text, blocks=[section(text)])
    counts = f"Alerts — {len(firing)} firing, {len(pending)} pending"
    blocks: list[Block] = [HeaderBlock(text=f"🚨 {counts}")]
    if firing:
        lines = ["*Firing*", *(firing_line(a, team_domain=team_domain, now=now) for a in firing)]
        blocks.extend(bullet_sections(lines, max_sections=MAX_LIST_SECTIONS))
    if pending:
        lines = ["*Pending*", *(pending_line(s, book) for s in pending)]
        blocks.extend(bullet_sections(lines, max_sections=MAX_LIST_SECTIONS))
    blocks.append(context(f"as of {utc_time(now)}"))
    return Message(text=counts, blocks=blocks)


def firing_line(alert: Alert, *, team_domain: str | None, now: datetime) -> str:
    """``🔴 *prod* — Memory above the critical level: 93% … · since … · 👀 @bob · message``."""
    lasted = format_duration(max(0.0, (now - alert.fired_at).total_seconds()))
    parts = [
        f"{SEVERITY_MARK[alert.severity]} *{escape(alert.target)}* — "
        f"{escape(rule_title(alert.rule))} (`{escape(alert.rule)}`): "
        f"{escape(clip(alert.detail, DETAIL_IN_LIST))}",
        f"since {utc_time(alert.fired_at)} ({lasted})",
    ]
    if alert.acknowledged_by is not None:
        parts.append(f"👀 acknowledged by {mention(alert.acknowledged_by)}")
    if alert.snoozed_at(now):
        parts.append(f"😴 snoozed until {utc_time(alert.snoozed_until)}")
    link = message_link(team_domain=team_domain, channel=alert.channel, ts=alert.message_ts)
    if link is not None:
        parts.append(f"<{link}|message>")
    # The detail is clipped, not the line: cutting it could drop the link or split a <…|…>.
    return " · ".join(parts)


def pending_line(state: RuleState, rules: RuleBook) -> str:
    """``⏳ *prod* — Memory above the warning level (…): 83.0% of maxmemory · since ….``"""
    rule = RULES_BY_ID.get(state.rule)
    value = rule.value_text(state.value) if rule is not None else str(state.value)
    parts = [
        f"⏳ *{escape(state.target)}* — {escape(rule_title(state.rule))} "
        f"(`{escape(state.rule)}`): {escape(value)}",
        f"since {utc_time(state.active_at)}",
    ]
    with contextlib.suppress(KeyError):  # a rule this process does not run: no for-duration
        parts.append(f"fires after {format_duration(rules.get(state.rule).config.for_seconds)}")
    return clip(" · ".join(parts), 600)


def message_link(*, team_domain: str | None, channel: str | None, ts: str | None) -> str | None:
    """``https://<team>.slack.com/archives/<channel>/p<ts without the dot>``, None if unknown.

    Each part is checked against Slack's shapes, so nothing odd lands inside a ``<…|…>``.
    """
    if not team_domain or not channel or not ts:
        return None
    shapes = ((_TEAM_DOMAIN, team_domain), (_CHANNEL_ID, channel), (_MESSAGE_TS, ts))
    if not all(pattern.fullmatch(value) for pattern, value in shapes):
        return None
    return f"https://{team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def _pending_severity(rules: RuleBook, state: RuleState) -> Severity:
    try:
        return rules.get(state.rule).config.severity
    except KeyError:
        return Severity.WARNING
