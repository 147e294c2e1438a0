"""Shared pieces of every message: limits, escaping, the memory gauge, severity marks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.diagnosis.model import Severity
from bot.units import clip as clip  # re-exported: every block module clips with it
from bot.units import format_bytes

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
ACTIONS_MAX_ELEMENTS = 25
CONTEXT_MAX_ELEMENTS = 10
FALLBACK_TEXT_MAX = 3000

# A Slack user id (U... or W... for Enterprise Grid); anything else is a plain name (``cli:bob``).
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")

SEVERITY_MARK = {Severity.OK: "🟢", Severity.WARNING: "🟡", Severity.CRITICAL: "🔴"}
CHECK_MARK = {Severity.OK: "✅", Severity.WARNING: "⚠️", Severity.CRITICAL: "🔴"}


@dataclass(frozen=True)
class Message:
    """A Slack message: blocks to render and the plain fallback text."""

    text: str
    blocks: list[Block]

    def with_context(self, line: str) -> Message:
        """The same message with one more context line at the end (still within limits)."""
        blocks = [*self.blocks[: MAX_BLOCKS - 1], context(line)]
        return Message(text=self.text, blocks=blocks)


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_slack_user_id(text: str) -> bool:
    """Whether ``text`` is a Slack user id (``U012AB3CD``), which Slack can mention."""
    return _SLACK_USER_ID.fullmatch(text) is not None


def mention(user_id: str | None, *, name: str | None = None) -> str:
    """``<@U012AB3CD>`` for a Slack user (Slack shows the current name), else the escaped name."""
    if not user_id:
        return "someone"
    if is_slack_user_id(user_id):
        return f"<@{user_id}>"
    return f"`{escape(name or user_id)}`"


def section(text: str) -> SectionBlock:
    """A mrkdwn section, clipped to Slack's 3000 characters."""
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_TEXT_MAX)))


def context(*lines: str) -> ContextBlock:
    """A context block of mrkdwn lines (at most 10 elements, as Slack allows)."""
    elements = [MarkdownTextObject(text=clip(line, 2000)) for line in lines if line]
    return ContextBlock(elements=elements[:CONTEXT_MAX_ELEMENTS])


def bullet_sections(
    lines: Sequence[str], *, limit: int = SECTION_TEXT_MAX, max_sections: int = 1
) -> list[SectionBlock]:
    """Pack lines into as few sections as fit; what does not fit ends as "…and N more"."""
    chunks: list[list[str]] = [[]]
    for index, line in enumerate(lines):
        candidate = "\n".join([*chunks[-1], line])
        if len(candidate) <= limit - 40:  # keep room for the "and N more" note
            chunks[-1].append(line)
            continue
        if len(chunks) == max_sections:
            chunks[-1].append(f"_…and {len(lines) - index} more_")
            break
        chunks.append([clip(line, limit - 40)])
    return [section("\n".join(chunk)) for chunk in chunks if chunk]


def gauge(ratio: float | None, *, cells: int = 10) -> str:
    """A text bar like ``▓▓▓▓▓▓▓▓▓░ 93%``; ``no limit`` when there is no maxmemory."""
    if ratio is None:
        return "no maxmemory limit"
    filled = min(cells, max(0, round(ratio * cells)))
    return f"{'▓' * filled}{'░' * (cells - filled)} {ratio:.0%}"


def memory_phrase(*, used: int, maxmemory: int, ratio: float | None) -> str:
    """``93% of 512.0 MB``, or ``812.0 MB used (no maxmemory limit)``."""
    if ratio is None or maxmemory == 0:
        return f"{format_bytes(used)} used (no maxmemory limit)"
    return f"{ratio:.0%} of {format_bytes(maxmemory)}"


def fit(blocks: Iterable[Block]) -> list[Block]:
    """At most 50 blocks: Slack rejects the whole message beyond that."""
    return list(blocks)[:MAX_BLOCKS]


def fit_middle(
    *, head: Sequence[Block], middle: Sequence[Block], tail: Sequence[Block]
) -> list[Block]:
    """Keep head and tail whole (header, buttons, footer) and cut the middle to fit 50 blocks."""
    room = MAX_BLOCKS - len(head) - len(tail)
    if len(middle) <= room:
        return [*head, *middle, *tail]
    kept = list(middle[: max(room - 1, 0)])
    note = context(f"…{len(middle) - len(kept)} more blocks left out (Slack allows {MAX_BLOCKS})")
    return fit([*head, *kept, note, *tail])
