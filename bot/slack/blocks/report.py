"""The channel health report as one Slack message, worst target first.

Slack refuses a whole message beyond 50 blocks or a section beyond 3,000 characters,
and a channel may watch 100 targets: the worst ``full`` targets get a section each,
the rest one summary line each, packed into as few sections as fit, and what still
does not fit is a count. The audit trail's head closes the message, its full anchor in
a code span: the channel keeps that copy outside the database, for
``redis-mem audit verify --anchor``. Times are in the report's timezone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo

from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock

from bot.reports.model import (
    FORECAST_RATIO,
    AlertFigures,
    AuditHead,
    FixRecord,
    Forecast,
    LiveView,
    MemoryFigures,
    Outlook,
    Report,
    Resolution,
    TargetReport,
)
from bot.reports.window import window_text
from bot.slack.blocks.common import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    MAX_BLOCKS,
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    mention,
    section,
)
from bot.slack.blocks.status import labels_suffix
from bot.units import format_bytes, format_duration

FULL_TARGETS = 10  # the worst ten in full, as the issue asks; the rest one line each
NAME_MAX = 80  # a target name as shown (names come from the targets file)
MAX_FIX_LINES = 5  # per target; the rest is a count (the audit trail has them all)
MAX_RULES = 6  # alert rules named per target
SUMMARY_MAX = 600  # one fix's summary in the message
HASH_SHOWN = 12  # hex digits of the head's hash in the readable line
NO_SAMPLES = "no samples in this window"
NO_CHART = "no samples yet: no chart"
CHART_BELOW = "📈 chart of memory (% of maxmemory) in the thread"
OUTCOME_WORDS = {
    "ok": "✅ executed",
    "error": "❌ failed",
    "cancelled": "cancelled",
    "interrupted": "⚠ interrupted",
}
RESOLUTION_WORDS = {Resolution.RAW: "raw samples", Resolution.FIVE_MINUTES: "5-minute aggregates"}


def report_message(report: Report, *, full: int = FULL_TARGETS) -> Message:
    """The report as one message within Slack's limits (see the module docstring)."""
    zone = report.zone
    head: list[Block] = [
        HeaderBlock(text=clip(headline(report), HEADER_TEXT_MAX)),
        context(window_line(report, zone), NO_CHART if not report.has_samples else CHART_BELOW),
    ]
    tail: list[Block] = [DividerBlock(), section(audit_text(report.audit_head))]
    # Each target in full takes a divider and a section; keep room for one summary section.
    room = MAX_BLOCKS - len(head) - len(tail)
    shown = max(0, min(full, len(report.targets), (room - 2) // 2))
    middle: list[Block] = []
    for target in report.targets[:shown]:
        labels = report.labels.get(target.target, {})
        middle.extend([DividerBlock(), section(target_text(target, zone, labels=labels))])
    rest = report.targets[shown:]
    if rest:
        lines = [f"*{len(rest)} more target{'s' if len(rest) != 1 else ''}*"]
        lines.extend(
            summary_line(target, labels=report.labels.get(target.target, {})) for target in rest
        )
        sections = bullet_sections(lines, max_sections=room - len(middle) - 1)
        middle.extend([DividerBlock(), *sections])
    if not report.targets:
        middle.append(section("No target to report on."))
    return Message(
        text=clip(fallback_text(report), FALLBACK_TEXT_MAX), blocks=[*head, *middle, *tail]
    )


def headline(report: Report) -> str:
    """``📊 Redis memory report — last 24h · 3 targets``."""
    count = len(report.targets)
    scope = (
        escape(clip(report.targets[0].target, NAME_MAX))
        if count == 1
        else f"{count} target{'s' if count != 1 else ''}"
    )
    return f"📊 Redis memory report — last {window_text(report.window)} · {scope}"


def local(when: datetime, zone: tzinfo, fmt: str = "%a %d %b %H:%M") -> str:
    """``Tue 01 Dec 14:05`` in ``zone`` (naive times are UTC, as the database returns them)."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return aware.astimezone(zone).strftime(fmt)


def zone_label(when: datetime, zone: tzinfo) -> str:
    """``CET`` / ``UTC``: the zone's abbreviation at ``when``."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return aware.astimezone(zone).tzname() or str(zone)


def window_line(report: Report, zone: tzinfo) -> str:
    """``Window Mon 30 Nov 09:00 → Tue 01 Dec 09:00 CET · generated Tue 01 Dec 09:00 CET``."""
    label = zone_label(report.until, zone)
    # "CET (Europe/Paris)"; a zone named by its abbreviation (UTC) is not said twice.
    named = "" if report.timezone == label else f" ({escape(report.timezone)})"
    return (
        f"Window {local(report.since, zone)} → {local(report.until, zone)} {label}{named}"
        f" · generated {local(report.generated_at, zone)} {label}"
    )


def target_text(
    target: TargetReport, zone: tzinfo, *, labels: Mapping[str, str] | None = None
) -> str:
    """A target in full: memory, trend and forecast, evictions and keys, live, alerts, fixes."""
    name = escape(clip(target.target, NAME_MAX))
    head = f"{SEVERITY_MARK[target.severity]} *{name}* — {target.severity.value}"
    lines = [head + labels_suffix(labels or {})]
    if target.series.points:
        lines.extend(
            [
                f"*Memory* {memory_text(target.memory)}",
                f"*Trend* {trend_text(target.memory.trend_bytes_per_hour)} · "
                f"{forecast_text(target.forecast, target.memory, zone)}",
                f"*Evictions* {target.evicted_keys:,} in the window · *Keys* {keys_text(target)}",
            ]
        )
    else:
        lines.append(f"_{NO_SAMPLES}_")
    lines.extend(live_lines(target.live))
    lines.append(f"*Alerts* {alerts_text(target.alerts, zone)}")
    lines.extend(fix_lines(target.fixes, zone))
    capacity = target.capacity_line
    if capacity:
        lines.append(f"*Capacity* {escape(capacity)}")
    if target.series.points:
        lines.append(f"_{target.samples:,} checks · {RESOLUTION_WORDS[target.resolution]}_")
    return "\n".join(lines)


def share(value: int | None, ratio: float | None) -> str:
    """``476.0 MB (93%)``, or the bytes alone without a limit."""
    if value is None:
        return "n/a"
    return f"{format_bytes(value)} ({ratio:.0%})" if ratio is not None else format_bytes(value)


def memory_text(memory: MemoryFigures) -> str:
    """``now 476.0 MB (93% of 512.0 MB) · peak 500.0 MB (98%) · min 300.0 MB (59%)``."""
    if memory.maxmemory and memory.now_ratio is not None and memory.now_bytes is not None:
        now = f"{format_bytes(memory.now_bytes)} ({memory.now_ratio:.0%} of "
        now += f"{format_bytes(memory.maxmemory)})"
    else:
        now = f"{format_bytes(memory.now_bytes)} (no maxmemory limit)"
    peak = share(memory.peak_bytes, memory.peak_ratio)
    low = share(memory.min_bytes, memory.min_ratio)
    return f"now {now} · peak {peak} · min {low}"


def trend_text(bytes_per_hour: float | None) -> str:
    """``+12.3 MB/hour`` (two decimals under 1 MB/hour); ``n/a`` with fewer than 2 points."""
    if bytes_per_hour is None:
        return "n/a (too few samples)"
    mb = bytes_per_hour / 1024**2
    return f"{mb:+.2f} MB/hour" if abs(mb) < 1 else f"{mb:+.1f} MB/hour"


def hours_text(hours: float) -> str:
    """``5.2 h`` under two days, else ``3.1 days``."""
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def forecast_text(forecast: Forecast, memory: MemoryFigures, zone: tzinfo) -> str:
    """``reaches 90% at Tue 01 Dec 14:05 (in 5.2 h)``, ``more than 30 days``, ``not rising``…"""
    line = f"{FORECAST_RATIO:.0%}"
    match forecast.outlook:
        case Outlook.REACHES if forecast.ratio_90_at is not None:
            left = (
                f" (in {hours_text(forecast.hours_left)})"
                if forecast.hours_left is not None
                else ""
            )
            return f"reaches {line} at {local(forecast.ratio_90_at, zone)}{left}"
        case Outlook.REACHES:
            return f"reaches {line} in {hours_text(forecast.hours_left or 0.0)}"
        case Outlook.ALREADY:
            return f"already above {line}"
        case Outlook.BEYOND:
            return f"{line} in more than 30 days"
        case Outlook.NOT_RISING:
            return "not rising"
    if not memory.maxmemory:
        return "no forecast (no maxmemory limit)"
    return "no forecast (too few samples)"


def keys_text(target: TargetReport) -> str:
    """``120,000 now (+3,400)``."""
    keys = target.keys
    if keys.now is None:
        return "n/a"
    change = f" ({keys.change:+,})" if keys.change is not None else ""
    return f"{keys.now:,} now{change}"


def live_lines(live: LiveView | None) -> list[str]:
    """Sessions without TTL (sampled) and the scenarios found now; why there are none."""
    if live is None:
        return []
    if live.error is not None:
        return [f"*Now* ⚠ no live diagnosis: {escape(clip(live.error, 300))}"]
    if live.sampled:
        ratio = f" ({live.without_ttl_ratio:.0%})" if live.without_ttl_ratio is not None else ""
        ttl = f"{live.without_ttl:,} of {live.sampled:,} sampled{ratio}"
    else:
        ttl = "no session key sampled"
    line = f"*Sessions without TTL* {ttl} · ≈{live.session_keys:,} session keys"
    names = [f"{escape(s.title)} (`{escape(s.id)}`)" for s in live.scenarios]
    scenarios = ", ".join(names) if names else "none"
    return [line, clip(f"*Scenarios now* {scenarios}", 800)]


def alerts_text(alerts: AlertFigures, zone: tzinfo) -> str:
    """``3 fired (`memory-critical` ×2, `evictions` ×1) · firing 2.5h · 1 still open (…)``."""
    if not alerts.total_fired and not alerts.open:
        return "none in the window"
    ranked = sorted(alerts.fired.items(), key=lambda item: (-item[1], item[0]))
    rules = [f"`{escape(clip(rule, 60))}` ×{count}" for rule, count in ranked[:MAX_RULES]]
    if len(ranked) > MAX_RULES:
        rules.append(f"{len(ranked) - MAX_RULES} more rules")
    parts = [f"{alerts.total_fired} fired ({', '.join(rules)})" if rules else "0 fired"]
    parts.append(f"firing {format_duration(alerts.firing_seconds)}")
    if alerts.open:
        oldest = min(alerts.open, key=lambda span: span.fired_at)
        since = f"`{escape(clip(oldest.rule, 60))}` since {local(oldest.fired_at, zone)}"
        parts.append(f"{len(alerts.open)} still open ({since})")
    else:
        parts.append("none open")
    return " · ".join(parts)


def fix_lines(fixes: tuple[FixRecord, ...], zone: tzinfo) -> list[str]:
    """``*Fixes* 2`` then one line per fix: action, who requested and approved, outcome."""
    if not fixes:
        return ["*Fixes* none in the window"]
    lines = [f"*Fixes* {len(fixes)} in the window"]
    lines.extend(fix_line(fix, zone) for fix in fixes[:MAX_FIX_LINES])
    if len(fixes) > MAX_FIX_LINES:
        lines.append(f"• …and {len(fixes) - MAX_FIX_LINES} more (`/redis-mem audit`)")
    return lines


def fix_line(fix: FixRecord, zone: tzinfo) -> str:
    """``• `set-ttl` at Tue 01 Dec 10:42, requested by <@U1>, approved by <@U2>: ✅ executed``."""
    requester = mention(fix.requester) if fix.requester else "someone not in the trail"
    outcome = OUTCOME_WORDS.get(fix.outcome, escape(clip(fix.outcome, 40)))
    line = (
        f"• `{escape(clip(fix.action, 60))}` at {local(fix.at, zone)}, requested by {requester}, "
        f"approved by {mention(fix.approver)}: {outcome}"
    )
    # The summary is clipped, not the line: a cut could split a <@U…> mention.
    return f"{line} — {escape(clip(fix.summary, SUMMARY_MAX))}" if fix.summary else line


def summary_line(target: TargetReport, *, labels: Mapping[str, str] | None = None) -> str:
    """``🟢 *cache-3*: 42% · ok`` (and when it reaches 90%, if it does; its labels last)."""
    return _summary_line(target) + labels_suffix(labels or {})


def _summary_line(target: TargetReport) -> str:
    name = escape(clip(target.target, NAME_MAX))
    mark = SEVERITY_MARK[target.severity]
    if not target.series.points:
        return f"{mark} *{name}*: {NO_SAMPLES} · {target.severity.value}"
    ratio = target.memory.now_ratio
    memory = f"{ratio:.0%}" if ratio is not None else format_bytes(target.memory.now_bytes)
    line = f"{mark} *{name}*: {memory} · {target.severity.value}"
    if target.forecast.outlook is Outlook.REACHES and target.forecast.hours_left is not None:
        line += f" · {FORECAST_RATIO:.0%} in {hours_text(target.forecast.hours_left)}"
    elif target.forecast.outlook is Outlook.ALREADY:
        line += f" · above {FORECAST_RATIO:.0%}"
    return line


def audit_text(head: AuditHead | None) -> str:
    """``Audit trail head: seq 1234, hash abcd…`` and the full ``SEQ:HASH`` to keep."""
    if head is None:
        return "*Audit trail head:* the trail is empty"
    short = escape(head.hash[:HASH_SHOWN])
    return (
        f"*Audit trail head:* seq {head.seq}, hash {short}…\n"
        f"Anchor (this channel's copy): `{escape(head.anchor)}`\n"
        f"_check it with_ `redis-mem audit verify --anchor {escape(head.anchor)}`"
    )


def fallback_text(report: Report) -> str:
    """One line for notifications: the window, the count, the worst target."""
    window = window_text(report.window)
    if not report.targets:
        return f"Redis memory report ({window}): no target"
    worst = report.targets[0]
    ratio = worst.memory.now_ratio
    memory = f" at {ratio:.0%}" if ratio is not None and worst.series.points else ""
    count = len(report.targets)
    return (
        f"Redis memory report ({window}): {count} target{'s' if count != 1 else ''}, "
        f"worst {escape(clip(worst.target, NAME_MAX))} {worst.severity.value}{memory}"
    )
