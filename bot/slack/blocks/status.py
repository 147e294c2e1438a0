"""The status message: one line per target, severity and memory gauge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.diagnosis.model import Diagnosis
from bot.slack.blocks.common import (
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    escape,
    fit,
    gauge,
    memory_phrase,
)
from bot.units import format_bytes


@dataclass(frozen=True)
class TargetStatus:
    """One target's quick state: its diagnosis, or the one-line reason it has none."""

    name: str
    diagnosis: Diagnosis | None = None
    error: str | None = None


def status_message(rows: Sequence[TargetStatus]) -> Message:
    """Every target on one line each (long lists truncated to fit the message)."""
    lines = [status_line(row) for row in rows]
    blocks: list[Block] = [
        HeaderBlock(text=f"Redis memory — {len(rows)} target{'s' if len(rows) != 1 else ''}"),
        *bullet_sections(lines, max_sections=40),
    ]
    text = "; ".join(fallback_part(row) for row in rows)
    return Message(text=clip(f"Redis memory: {text}", 3000), blocks=fit(blocks))


def status_line(row: TargetStatus) -> str:
    """``🔴 *prod* `▓▓▓▓▓▓▓▓▓░ 93%` 476.0 MB / 512.0 MB · evicted 1,204 · 2 scenarios``."""
    if row.diagnosis is None:
        return f"⚫ *{escape(row.name)}* unreachable: {escape(row.error or 'unknown error')}"
    d = row.diagnosis
    limit = format_bytes(d.maxmemory) if d.maxmemory else "no limit"
    scenarios = ", ".join(s.id for s in d.scenarios) or "no scenario"
    return (
        f"{SEVERITY_MARK[d.severity]} *{escape(row.name)}* `{gauge(d.usage_ratio)}` "
        f"{format_bytes(d.used_memory)} / {limit} · evicted {d.evicted_keys:,} · {scenarios}"
    )


def fallback_part(row: TargetStatus) -> str:
    """``prod critical (93% of 512.0 MB)`` for the notification text."""
    if row.diagnosis is None:
        return f"{row.name} unreachable"
    d = row.diagnosis
    memory = memory_phrase(used=d.used_memory, maxmemory=d.maxmemory, ratio=d.usage_ratio)
    return f"{row.name} {d.severity.value} ({memory})"
