"""The help message: the subcommands the bot understands and the known targets."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.slack.blocks.common import Message, bullet_sections, context, escape, fit


def help_message(
    *, usages: Sequence[tuple[str, str]], targets: Sequence[str], note: str | None = None
) -> Message:
    """Usage lines as ``(usage, what it does)`` pairs, plus the targets one can name."""
    lines = [f"`/redis-mem {escape(usage)}` — {escape(what)}" for usage, what in usages]
    blocks: list[Block] = [HeaderBlock(text="redis-mem: Redis session store memory")]
    if note:
        blocks.append(context(escape(note)))
    blocks.extend(bullet_sections(lines))
    blocks.append(context("targets: " + ", ".join(f"`{escape(t)}`" for t in targets)))
    text = "Usage: " + "; ".join(f"/redis-mem {usage}" for usage, _ in usages)
    return Message(text=text, blocks=fit(blocks))
