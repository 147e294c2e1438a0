"""Block Kit view of the latest audit entries (``/redis-mem audit [N]``, sent ephemeral)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.audit.store import StoredEntry

MAX_BLOCKS = 50  # Slack's limit per message
SECTION_LIMIT = 3000  # characters of a section's text
SUMMARY_LIMIT = 600
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_OUTCOME_MARK = {"ok": "✅", "executed": "✅", "approved": "✅", "error": "❌", "failed": "❌",
                 "denied": "⛔", "rejected": "⛔", "expired": "⌛", "critical": "🔴",
                 "warning": "🟠"}  # fmt: skip


def audit_blocks(entries: Sequence[StoredEntry], *, total: int | None = None) -> list[Block]:
    """Header, one section per entry (newest first as given), and a note when cut short."""
    room = MAX_BLOCKS - 2  # the header and a possible "more" note
    shown = list(entries[:room])
    blocks: list[Block] = [HeaderBlock(text=f"Audit trail: latest {len(shown)}")]
    if not shown:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="_No audit entries yet._")))
        return blocks
    blocks.extend(_entry_block(entry) for entry in shown)
    hidden = (total if total is not None else len(entries)) - len(shown)
    if hidden > 0:
        note = f"{hidden} older entries not shown: `redis-mem audit list` has them all."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    return blocks


def _entry_block(entry: StoredEntry) -> SectionBlock:
    mark = _OUTCOME_MARK.get(entry.outcome, "•")
    when = entry.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    target = f" on `{_escape(entry.target)}`" if entry.target else ""
    head = f"{mark} *{_escape(entry.action)}*{target}: {_escape(entry.outcome)}"
    who = f"{when} · {_actor(entry)} · #{entry.seq}"
    summary = _escape(_cut(entry.summary, SUMMARY_LIMIT))
    text = f"{head}\n{who}\n>{summary}" if summary else f"{head}\n{who}"
    return SectionBlock(text=MarkdownTextObject(text=_cut(text, SECTION_LIMIT)))


def _actor(entry: StoredEntry) -> str:
    if _SLACK_USER.match(entry.actor):
        return f"<@{entry.actor}>"  # Slack renders the user's current name
    return f"`{_escape(entry.actor_name or entry.actor)}`"


def _escape(text: str) -> str:
    # Slack's three control characters; anything else is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
