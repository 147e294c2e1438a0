"""The key analysis message: TTL histogram, sizes, top keys, idle/stale sessions."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock

from bot.diagnosis.model import Diagnosis, IdleStats, SizeStats, TtlStats
from bot.slack.blocks.common import (
    HEADER_TEXT_MAX,
    Message,
    clip,
    context,
    escape,
    fit,
    section,
)
from bot.units import format_bytes, format_duration

BAR_CELLS = 20
TOP_KEYS_SHOWN = 10


def keys_message(diagnosis: Diagnosis) -> Message:
    """Where the session memory goes, from the sampled (or fully scanned) keys."""
    title = f"🔑 Session keys — {diagnosis.target}: ≈ {diagnosis.session_keys:,} keys"
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, HEADER_TEXT_MAX)),
        section(ttl_text(diagnosis.ttl)),
        section(size_text(diagnosis.sizes)),
        section(top_keys_text(diagnosis.sizes)),
        section(idle_text(diagnosis.idle)),
        DividerBlock(),
        context(
            f"{diagnosis.sample_mode}: {diagnosis.ttl.sampled:,} session keys measured "
            f"of {diagnosis.dbsize:,} keys · "
            f"used {format_bytes(diagnosis.used_memory)}"
        ),
    ]
    text = f"Session keys on {diagnosis.target}: ≈ {diagnosis.session_keys:,}"
    return Message(text=text, blocks=fit(blocks))


def ttl_text(ttl: TtlStats) -> str:
    """The TTL histogram as text bars, and the share of keys without TTL."""
    if ttl.sampled == 0:
        return "*TTL*\nNo session keys matched the pattern."
    ratio = f"{ttl.without_ttl_ratio:.0%}" if ttl.without_ttl_ratio is not None else "n/a"
    widest = max([len(label) for label in ttl.histogram] or [0])
    lines = [f"*TTL* — without TTL: *{ttl.without_ttl:,}* ({ratio}) · very long: {ttl.long_ttl:,}"]
    lines.append("```")
    lines.extend(
        f"{label.ljust(widest)} {bar(count, ttl.sampled)} {count:,}"
        for label, count in ttl.histogram.items()
    )
    lines.append("```")
    return "\n".join(lines)


def bar(count: int, total: int) -> str:
    """A proportional text bar of BAR_CELLS cells."""
    filled = round(BAR_CELLS * count / total) if total else 0
    return "▇" * filled + "·" * (BAR_CELLS - filled)


def size_text(sizes: SizeStats) -> str:
    """Mean, p95 and max session size."""
    return (
        f"*Sizes* ({sizes.sampled:,} keys) — mean {format_bytes(sizes.mean_bytes)} · "
        f"p95 {format_bytes(sizes.p95_bytes)} · max {format_bytes(sizes.max_bytes)}"
    )


def top_keys_text(sizes: SizeStats) -> str:
    """The largest keys measured (names clipped so one odd key cannot fill the message)."""
    if not sizes.top_keys:
        return "*Largest keys*\nnone measured"
    lines = [
        f"`{escape(clip(key, 80))}` {format_bytes(size)}"
        for key, size in sizes.top_keys[:TOP_KEYS_SHOWN]
    ]
    return "*Largest keys*\n" + "\n".join(lines)


def idle_text(idle: IdleStats) -> str:
    """Idle (or LFU) view: how many sessions are stale."""
    if idle.sampled == 0:
        return "*Idle sessions*\nnone measured"
    ratio = f"{idle.stale_ratio:.0%}" if idle.stale_ratio is not None else "n/a"
    measure = "OBJECT IDLETIME" if idle.measure == "idletime" else "LFU counter"
    return (
        f"*Idle sessions* ({measure}) — stale: *{idle.stale:,}* ({ratio}) · "
        f"median idle {format_duration(idle.p50_idle_seconds)} · "
        f"max idle {format_duration(idle.max_idle_seconds)}"
    )
