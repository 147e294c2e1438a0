"""The capacity plan message: the runbook formula with its numbers, and what to configure."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.diagnosis.capacity import MARGIN_MAX, MARGIN_MIN, POD_HEADROOM, CapacityPlan
from bot.slack.blocks.common import HEADER_TEXT_MAX, Message, clip, context, fit, section
from bot.units import format_bytes


def capacity_message(plan: CapacityPlan) -> Message:
    """The plan as the runbook computes it, then the suggested settings."""
    blocks: list[Block] = [
        HeaderBlock(text=clip(f"📐 Capacity plan: {inputs(plan)}", HEADER_TEXT_MAX)),
        section(formula_text(plan)),
        section(settings_text(plan)),
        context("runbook: Capacity planning · 1 KB = 1024 bytes · overhead covers fragmentation"),
    ]
    text = (
        f"Capacity plan: {inputs(plan)} -> maxmemory {plan.maxmemory_directive}, "
        f"pod limit {plan.pod_memory_limit}"
    )
    return Message(text=text, blocks=fit(blocks))


def inputs(plan: CapacityPlan) -> str:
    """``10,000 users × 3 sessions × 2.0 KB`` (or the session count alone)."""
    size = format_bytes(plan.session_size)
    if plan.users is None or plan.sessions_per_user is None:
        return f"{plan.sessions:,} sessions × {size}"
    return f"{plan.users:,} users × {plan.sessions_per_user:,} sessions × {size}"


def formula_text(plan: CapacityPlan) -> str:
    """The three formula lines with the numbers filled in."""
    return (
        f"sessions = *{plan.sessions:,}*\n"
        f"required = {plan.sessions:,} × {format_bytes(plan.session_size)} × {plan.overhead:g} "
        f"= *{format_bytes(plan.required_bytes)}*\n"
        f"with margin ({MARGIN_MIN}–{MARGIN_MAX}× for peaks) = "
        f"*{format_bytes(plan.recommended_min_bytes)} – {format_bytes(plan.recommended_max_bytes)}*"
    )


def settings_text(plan: CapacityPlan) -> str:
    """What to set in redis.conf and the pod spec (limit keeps headroom over maxmemory)."""
    return (
        f"*Suggested*\n"
        f"• redis.conf `maxmemory {plan.maxmemory_directive}`\n"
        f"• pod memory request `{plan.pod_memory_request}`, limit `{plan.pod_memory_limit}` "
        f"({POD_HEADROOM:g}× maxmemory: a limit at or below maxmemory gets the pod "
        f"OOM-killed before Redis evicts)"
    )
