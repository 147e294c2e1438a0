"""The parts of a slash-command payload the bot uses (Slack's field names)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SlashRequest:
    """Who asked, where, and what they typed."""

    user_id: str
    user_name: str | None
    channel_id: str | None
    text: str
    request_id: str
    team_domain: str | None = None  # the workspace's subdomain: links to messages
    team_id: str | None = None  # the workspace (T...): a fix request's decisions must come from it

    @classmethod
    def from_payload(cls, command: Mapping[str, Any]) -> SlashRequest:
        """Read a Bolt ``command`` dict; the trigger id is the request id (else a uuid)."""
        return cls(
            user_id=str(command.get("user_id") or "unknown"),
            user_name=command.get("user_name"),
            channel_id=command.get("channel_id"),
            text=str(command.get("text") or "").strip(),
            request_id=str(command.get("trigger_id") or uuid.uuid4()),
            team_domain=command.get("team_domain") or None,
            team_id=str(command.get("team_id") or "") or None,
        )
