"""Block Kit view of the latest audit entries (``/redis-mem audit [N]``, sent ephemeral)."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.audit.store import StoredEntry
from bot.slack.blocks.common import MAX_BLOCKS, clip, context, escape, mention, section

SUMMARY_LIMIT = 600
_OUTCOME_MARK = {"ok": "✅", "executed": "✅", "approved": "✅", "error": "❌", "failed": "❌",
                 "denied": "⛔", "rejected": "⛔", "expired": "⌛", "critical": "🔴",
                 "warning": "🟠", "interrupted": "💥", "cancelled": "🛑"}  # fmt: skip


def audit_blocks(entries: Sequence[StoredEntry]) -> list[Block]:
    """Header, one section per entry (newest first as given), and a note when cut short."""
    room = MAX_BLOCKS - 2  # the header and a possible "more" note
    shown = list(entries[:room])
    blocks: list[Block] = [HeaderBlock(text=f"Audit trail: latest {len(shown)}")]
    if not shown:
        blocks.append(section("_No audit entries yet._"))
        return blocks
    blocks.extend(entry_block(entry) for entry in shown)
    hidden = len(entries) - len(shown)
    if hidden > 0:
        blocks.append(
            context(f"{hidden} older entries not shown: `redis-mem audit list` has them all.")
        )
    return blocks


def entry_block(entry: StoredEntry) -> Block:
    """``✅ *action* on `target`: outcome``, then when · who · #seq, then the summary."""
    mark = _OUTCOME_MARK.get(entry.outcome, "•")
    when = entry.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    target = f" on `{escape(entry.target)}`" if entry.target else ""
    head = f"{mark} *{escape(entry.action)}*{target}: {escape(entry.outcome)}"
    who = f"{when} · {mention(entry.actor, name=entry.actor_name)} · #{entry.seq}"
    summary = escape(clip(entry.summary, SUMMARY_LIMIT))
    return section(f"{head}\n{who}\n>{summary}" if summary else f"{head}\n{who}")
