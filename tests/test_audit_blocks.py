"""The Slack view of audit entries respects Block Kit limits and escapes user text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.audit.canonical import GENESIS_HASH
from bot.audit.store import StoredEntry
from bot.slack.blocks.audit import audit_blocks
from bot.slack.blocks.common import MAX_BLOCKS
from bot.slack.blocks.common import SECTION_TEXT_MAX as SECTION_LIMIT

BASE = StoredEntry(
    id=1, seq=1, at=datetime(2026, 11, 29, 3, 0, tzinfo=UTC), actor="U012AB3CD", actor_name="alice",
    source="slack", target="prod", action="remediation.approved", parameters={}, outcome="ok",
    summary="approved raise-maxmemory", request_id=None, channel=None, message_ts=None,
    prev_hash=GENESIS_HASH, hash="a" * 64,
)  # fmt: skip


def _texts(blocks: list[object]) -> list[str]:
    return [b.to_dict()["text"]["text"] for b in blocks[1:] if b.to_dict()["type"] == "section"]  # type: ignore[attr-defined]


def test_one_section_per_entry_with_the_essentials() -> None:
    blocks = audit_blocks(
        [BASE, replace(BASE, seq=2, actor="scheduler", actor_name=None, action="check.run")]
    )
    [first, second] = _texts(blocks)
    assert "remediation.approved" in first and "<@U012AB3CD>" in first and "prod" in first
    assert "2026-11-29 03:00:00 UTC" in first and "approved raise-maxmemory" in first
    assert "`scheduler`" in second


def test_limits_hold_for_many_and_long_entries() -> None:
    entries = [replace(BASE, seq=n, summary="<x> & " * 2000) for n in range(200)]
    blocks = audit_blocks(entries)
    assert len(blocks) == MAX_BLOCKS
    assert "152 older entries" in blocks[-1].to_dict()["elements"][0]["text"]
    for text in _texts(blocks):
        assert len(text) <= SECTION_LIMIT and "<x>" not in text
    for block in blocks:
        block.validate_json()


def test_empty_trail() -> None:
    blocks = audit_blocks([])
    assert "No audit entries" in blocks[1].to_dict()["text"]["text"]
