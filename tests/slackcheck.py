"""Reading what the bot sent Slack: bounded polling, blocks parsed back, buttons, text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.models.blocks import Block


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15.0) -> None:
    """Poll ``predicate`` (bounded) instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def rebuilt(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parse the blocks with slack_sdk (which checks Slack's limits) and serialise them again."""
    parsed = [Block.parse(block) for block in blocks]
    return [block.to_dict() for block in parsed if block is not None]


def all_text(blocks: list[dict[str, Any]]) -> str:
    """Every string in the blocks, as one searchable text."""
    return json.dumps(blocks, ensure_ascii=False)


def button_values(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action_id -> value of every button."""
    return {
        el["action_id"]: el["value"]
        for block in blocks
        if block["type"] == "actions"
        for el in block["elements"]
    }
