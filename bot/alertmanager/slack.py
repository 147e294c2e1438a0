"""The group's Slack message (a pure function of ``GroupView``) and the poster that shows it.

The message: what fired (name, severity, summary, labels of each alert, unmapped ones
said so), then the diagnosis of the group's target as ``/redis-mem diagnose`` shows it
(``bot.slack.blocks.diagnosis``: checks, scenarios, and its ``redis_mem.request.<id>``
fix buttons, which the existing request flow answers). Resolved: the same head marked
resolved, no diagnosis and no buttons (the fixes were for the firing state).
"""

from __future__ import annotations

from datetime import UTC, datetime
from http.client import HTTPException

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock

from bot.alertmanager.model import short
from bot.alertmanager.ports import GroupView, MappedAlert, Posted, PostError
from bot.diagnosis.model import Severity
from bot.slack.blocks import diagnosis as diagnosis_blocks
from bot.slack.blocks.common import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SECTION_TEXT_MAX,
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    fit_middle,
    section,
)
from bot.slack.notifier import MESSAGE_GONE, notify_error, slack_error

RESOLVED_MARK = "✅"
MAX_ALERT_LINES = 10  # alerts shown of a group; the rest are counted
MAX_LABELS = 12
LABEL_VALUE_CHARS = 80
SUMMARY_CHARS = 300
HIDDEN_LABELS = frozenset({"alertname", "severity"})  # already in the alert's line


class SlackGroupPoster:
    """``GroupPoster`` in Slack: ``chat.postMessage`` once, ``chat.update`` afterwards."""

    def __init__(self, client: WebClient) -> None:
        """``client``: ``bot.wiring.slack_clients(...).alerts`` (bounded retries in each call)."""
        self._client = client

    def post(self, channel: str, view: GroupView) -> Posted:
        """Post the group's message; where Slack put it."""
        message = group_message(view)
        try:
            answer = self._client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks
            )
        except (SlackApiError, OSError, HTTPException) as err:
            raise post_error("chat.postMessage", err) from None
        return Posted(str(answer.get("channel") or channel), str(answer["ts"]))

    def update(self, where: Posted, view: GroupView) -> Posted:
        """Re-render it in place; posted again when it was deleted from the channel."""
        message = group_message(view)
        try:
            self._client.chat_update(
                channel=where.channel, ts=where.ts, text=message.text, blocks=message.blocks
            )
        except SlackApiError as err:
            if slack_error(err) != MESSAGE_GONE:
                raise post_error("chat.update", err) from None
            return self.post(where.channel, view)
        except (OSError, HTTPException) as err:
            raise post_error("chat.update", err) from None
        return where


def post_error(method: str, err: Exception) -> PostError:
    """The health notifier's one line and verdict (``notify_error``) as a ``PostError``."""
    failure = notify_error(method, err)
    return PostError(str(failure), transient=failure.transient)


# The message --------------------------------------------------------------------------------


def group_message(view: GroupView) -> Message:
    """The whole group as one message (at most 50 blocks)."""
    head: list[Block] = [
        HeaderBlock(text=clip(headline(view), HEADER_TEXT_MAX)),
        *alert_blocks(view),
    ]
    middle: list[Block] = []
    tail: list[Block] = []
    diagnosis = view.diagnosis
    if view.status == "resolved":
        head.append(context(resolved_line(view)))
    elif diagnosis is not None:
        head += [
            DividerBlock(),
            section(f"*Diagnosis* — {escape(diagnosis_blocks.headline(diagnosis))}"),
            section(diagnosis_blocks.memory_text(diagnosis)),
            *bullet_sections(
                ["*Checks*", *(diagnosis_blocks.check_line(c) for c in diagnosis.checks)]
            ),
        ]
        middle = diagnosis_blocks.scenario_blocks(diagnosis)
        tail = [
            *diagnosis_blocks.action_blocks(diagnosis),
            *diagnosis_blocks.finding_blocks(diagnosis.findings),
            context(diagnosis_blocks.footer(diagnosis)),
        ]
    elif view.diagnosis_error is not None:
        head += [DividerBlock(), section(f"*Diagnosis*\n⚠ {escape(view.diagnosis_error)}")]
    tail.append(context(footer(view)))
    blocks = fit_middle(head=head, middle=middle, tail=tail)
    return Message(text=clip(fallback_text(view), FALLBACK_TEXT_MAX), blocks=blocks)


def group_severity(view: GroupView) -> Severity:
    """The worst ``severity`` label of the group's alerts (warning when none is known)."""
    known = [s for s in Severity if s.value in {a.alert.severity for a in view.alerts}]
    return max(known, key=lambda s: s.rank) if known else Severity.WARNING


def headline(view: GroupView) -> str:
    """``🟡 FIRING — prod: RedisHighMemoryUsage`` (``✅ RESOLVED — …`` after)."""
    names = sorted({item.alert.name for item in view.alerts})
    name = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
    where = view.target or "no target"
    if view.status == "resolved":
        return f"{RESOLVED_MARK} RESOLVED — {where}: {name}"
    severity = group_severity(view)
    return f"{SEVERITY_MARK[severity]} FIRING ({severity.value}) — {where}: {name}"


def alert_blocks(view: GroupView) -> list[Block]:
    """A section per alert (``alert_line``, at most MAX_ALERT_LINES), then how many more."""
    blocks: list[Block] = [
        section(clip(alert_line(item), SECTION_TEXT_MAX)) for item in view.alerts[:MAX_ALERT_LINES]
    ]
    more = len(view.alerts) - MAX_ALERT_LINES + view.truncated_alerts
    if more > 0:
        blocks.append(context(f"…and {more} more alerts in this group"))
    return blocks


def alert_line(item: MappedAlert) -> str:
    """One alert: its name, severity, state and time, summary, labels, target."""
    alert = item.alert
    severity = f" · `{escape(alert.severity)}`" if alert.severity else ""
    since = f" since {utc_time(alert.starts_at)}" if alert.starts_at else ""
    if alert.status == "resolved" and alert.ends_at and alert.ends_at.year > 1:
        since = f" at {utc_time(alert.ends_at)}"
    text = f"*{escape(clip(alert.name, 150))}*{severity} · {alert.status}{since}"
    if alert.summary:
        text += f"\n{escape(clip(alert.summary, SUMMARY_CHARS))}"
    labels = [(k, v) for k, v in sorted(alert.labels.items()) if k not in HIDDEN_LABELS]
    if labels:
        shown = ", ".join(
            f"`{escape(clip(k, 60))}={escape(clip(v, LABEL_VALUE_CHARS))}`"
            for k, v in labels[:MAX_LABELS]
        )
        extra = f" (+{len(labels) - MAX_LABELS})" if len(labels) > MAX_LABELS else ""
        text += f"\nLabels: {shown}{extra}"
    if item.target is None:
        text += f"\n⚠ Not mapped to a target: {escape(item.why)} (set the `redis_mem_target` label)"
    return text


def resolved_line(view: GroupView) -> str:
    """Why the diagnosis and the buttons are gone."""
    where = f" `/redis-mem diagnose {escape(view.target)}`" if view.target else ""
    return (
        f"{RESOLVED_MARK} Resolved (Alertmanager, {utc_time(view.received_at)}): the diagnosis "
        f"and its fixes were for the firing alert; a fresh one:{where or ' /redis-mem diagnose'}"
    )


def footer(view: GroupView) -> str:
    """Which group this is and when it was last shown."""
    return f"Alertmanager group `{short(view.group_hash)}` · updated {utc_time(view.received_at)}"


def fallback_text(view: GroupView) -> str:
    """Notification text: the headline and the first summary."""
    first = next((item.alert.summary for item in view.alerts if item.alert.summary), "")
    # Notifications read <!channel> in the text too: everything from Alertmanager is escaped.
    head = escape(headline(view))
    return f"{head}: {escape(first)}" if first else head


def utc_time(when: datetime | None) -> str:
    """``2026-11-29 03:00:12 UTC``."""
    if when is None:
        return "?"
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC")
