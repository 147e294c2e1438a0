"""The diagnosis message: severity header, memory gauge, six checks, scenarios, fix buttons."""

from __future__ import annotations

from collections import Counter
from datetime import UTC

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, DividerBlock, HeaderBlock

from bot.diagnosis.actions import ACTIONS, ActionRegistry
from bot.diagnosis.model import Check, Diagnosis, Finding, Scenario, Severity, ShardDiagnosis
from bot.remediation.catalogue import CATALOGUE
from bot.slack.blocks.common import (
    ACTIONS_MAX_ELEMENTS,
    BUTTON_TEXT_MAX,
    CHECK_MARK,
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    fit_middle,
    gauge,
    memory_phrase,
    section,
)
from bot.units import format_bytes

REQUEST_ACTION_PREFIX = "redis_mem.request."
MAX_SHARD_LINES = 10  # shards shown one line each, worst first; the rest in one summary line
MAX_EVIDENCE_LINES = 6  # per scenario; the rest is summarised as "…and N more"

# Short button labels (Slack buttons are narrow), declared with the action; an action
# without one (its title is short already: raise-maxmemory) shows its title.
BUTTON_LABELS = {info.id: info.button_label for info in ACTIONS if info.button_label}


def diagnosis_message(diagnosis: Diagnosis) -> Message:
    """The whole diagnosis as one Slack message (at most 50 blocks)."""
    head: list[Block] = [
        HeaderBlock(text=clip(headline(diagnosis), HEADER_TEXT_MAX)),
        section(memory_text(diagnosis)),
        *shard_blocks(diagnosis),
        DividerBlock(),
        *bullet_sections(["*Checks*", *(check_line(check) for check in diagnosis.checks)]),
    ]
    tail: list[Block] = [
        *action_blocks(diagnosis),
        *finding_blocks(diagnosis.findings),
        context(footer(diagnosis)),
    ]
    blocks = fit_middle(head=head, middle=scenario_blocks(diagnosis), tail=tail)
    return Message(text=clip(fallback_text(diagnosis), FALLBACK_TEXT_MAX), blocks=blocks)


def headline(diagnosis: Diagnosis) -> str:
    """``🔴 CRITICAL — prod: Redis memory 93% of 512.0 MB``."""
    mark = SEVERITY_MARK[diagnosis.severity]
    memory = memory_phrase(
        used=diagnosis.used_memory, maxmemory=diagnosis.maxmemory, ratio=diagnosis.usage_ratio
    )
    return f"{mark} {diagnosis.severity.value.upper()} — {diagnosis.target}: Redis memory {memory}"


def memory_text(diagnosis: Diagnosis) -> str:
    """The gauge line and the numbers the runbook looks at first."""
    limit = format_bytes(diagnosis.maxmemory) if diagnosis.maxmemory else "no limit"
    primary = f" · {diagnosis.primary_label}" if diagnosis.primary_label else ""
    return (
        f"`{gauge(diagnosis.usage_ratio)}`  {format_bytes(diagnosis.used_memory)} / {limit}"
        f"{primary}\n"
        f"evicted keys: *{diagnosis.evicted_keys:,}* · "
        f"fragmentation: *{diagnosis.mem_fragmentation_ratio:.2f}* · "
        f"policy: `{escape(diagnosis.maxmemory_policy)}` · "
        f"keys: *{diagnosis.dbsize:,}* (sessions ≈ {diagnosis.session_keys:,})"
    )


def shard_blocks(diagnosis: Diagnosis) -> list[Block]:
    """A cluster's "Shards (worst first)": the worst ``MAX_SHARD_LINES`` one line each, the
    rest counted by severity in one line (one section, within 3,000 characters for any count)."""
    if not diagnosis.shards:
        return []
    lines = ["*Shards (worst first)*", *(shard_line(s) for s in diagnosis.shards[:MAX_SHARD_LINES])]
    rest = diagnosis.shards[MAX_SHARD_LINES:]
    if rest:
        counts = Counter(s.severity for s in rest)
        said = " · ".join(
            f"{SEVERITY_MARK[level]} {counts[level]} {level.value}"
            for level in (Severity.CRITICAL, Severity.WARNING, Severity.OK)
            if counts[level]
        )
        lines.append(f"_…and {len(rest)} more shards: {said}_")
    return [*bullet_sections(lines)]


def shard_line(shard: ShardDiagnosis) -> str:
    """``🔴 `5461-10922` 127.0.0.1:7002 `▓▓▓▓▓▓▓▓▓░ 92%` 59.0 MB / 64.0 MB · keys 5,000 ·
    ttl-leak`` (``unreadable: <why>`` for a primary that did not answer)."""
    mark = SEVERITY_MARK[shard.severity]
    head = f"{mark} `{shard.name}` {escape(shard.shard.primary)}"
    one = shard.diagnosis
    if one is None:
        return clip(f"{head} unreadable: {escape(shard.error or 'unknown error')}", 250)
    limit = format_bytes(one.maxmemory) if one.maxmemory else "no limit"
    scenarios = ", ".join(shard.scenario_ids) or "no scenario"
    return clip(
        f"{head} `{gauge(one.usage_ratio)}` {format_bytes(one.used_memory)} / {limit} · "
        f"keys {one.dbsize:,} (sessions ≈ {one.session_keys:,}) · {scenarios}",
        250,
    )


def check_line(check: Check) -> str:
    """``✅ 1. Memory usage — 42% of 512 MB``."""
    mark = CHECK_MARK[check.status]
    return clip(f"{mark} {check.step}. *{escape(check.title)}* — {escape(check.summary)}", 400)


def scenario_blocks(diagnosis: Diagnosis) -> list[Block]:
    """One section per runbook scenario with its evidence (long lists truncated)."""
    if not diagnosis.scenarios:
        return [section("*Scenarios*\nNo runbook scenario matches: nothing to fix.")]
    blocks: list[Block] = [DividerBlock()]
    for scenario in diagnosis.scenarios:
        blocks.extend(bullet_sections(scenario_lines(scenario)))
    return blocks


def scenario_lines(scenario: Scenario) -> list[str]:
    """Title, evidence bullets (at most MAX_EVIDENCE_LINES) and the recommended fixes."""
    lines = [f"*{escape(scenario.title)}* (`{scenario.id}`, {escape(scenario.runbook)})"]
    evidence = scenario.evidence
    lines.extend(f"• {escape(clip(item, 300))}" for item in evidence[:MAX_EVIDENCE_LINES])
    if len(evidence) > MAX_EVIDENCE_LINES:
        lines.append(f"_…and {len(evidence) - MAX_EVIDENCE_LINES} more_")
    if scenario.recommended_actions:
        fixes = ", ".join(f"`{action}`" for action in scenario.recommended_actions)
        lines.append(f"Fixes: {fixes}")
    return lines


def action_blocks(diagnosis: Diagnosis) -> list[Block]:
    """The recommended fixes as request buttons (value = target name, nothing else)."""
    actions = diagnosis.recommended_actions[:ACTIONS_MAX_ELEMENTS]
    if not actions:
        return []
    buttons = [request_button(action, target=diagnosis.target) for action in actions]
    return [
        section("*Recommended actions* (each asks for approval)"),
        ActionsBlock(elements=buttons),
    ]


def request_button(
    action: str, *, target: str, declared: ActionRegistry = ACTIONS
) -> ButtonElement:
    """A ``redis_mem.request.<action-id>`` button whose value is the target name."""
    info = declared.get(action)  # a diagnosis may name an action this bot lacks
    label = info.label if info is not None else action
    known = CATALOGUE.get(action)
    # High-risk fixes (they lose data or drop users) get Slack's red button.
    style = "danger" if known is not None and known.risk == "high" else None
    return ButtonElement(
        text=clip(label, BUTTON_TEXT_MAX),
        action_id=f"{REQUEST_ACTION_PREFIX}{action}",
        value=target,
        style=style,
    )


def finding_blocks(findings: tuple[Finding, ...]) -> list[Block]:
    """Other findings (MEMORY DOCTOR style) as one context block of up to 10 lines."""
    if not findings:
        return []
    lines = [f"{CHECK_MARK[f.severity]} {escape(f.message)}" for f in findings]
    if len(lines) > 10:
        lines = [*lines[:9], f"…and {len(lines) - 9} more findings"]
    return [context(*lines)]


def footer(diagnosis: Diagnosis) -> str:
    """When, how (sampled or full) and which Redis version."""
    checked = diagnosis.checked_at
    if checked.tzinfo is not None:
        checked = checked.astimezone(UTC)
    when = checked.strftime("%Y-%m-%d %H:%M:%S UTC")
    version = f" · Redis {diagnosis.redis_version}" if diagnosis.redis_version else ""
    sample = f"{diagnosis.sample_mode}, {diagnosis.ttl.sampled:,} session keys measured"
    return f"checked {when} · {sample}{version}"


def fallback_text(diagnosis: Diagnosis) -> str:
    """Notification text: the headline and the scenario ids."""
    ids = ", ".join(s.id for s in diagnosis.scenarios) or "no scenario"
    return f"{headline(diagnosis)} ({ids})"
