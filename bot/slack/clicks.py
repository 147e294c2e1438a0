"""Who clicked where (``block_actions`` / ``view_submission`` payloads); a private reply."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals.model import Actor, Origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Click:
    """The parts of an interaction payload the approval flow uses (Slack's field names)."""

    user_id: str
    user_name: str | None
    channel: str | None
    message_ts: str | None
    trigger_id: str | None
    team_id: str | None = None  # the workspace it came from: ``team.id``, else ``user.team_id``

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Click:
        """Read a Bolt ``body`` of a button click or a modal submission."""
        user = body.get("user") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
        team = _field(body.get("team"), "id") or user.get("team_id")
        return cls(
            user_id=str(user.get("id") or "unknown"),
            user_name=user.get("username") or user.get("name"),
            channel=str(channel) if channel else None,
            message_ts=str(ts) if ts else None,
            trigger_id=body.get("trigger_id"),
            team_id=str(team) if team else None,
        )

    @property
    def actor(self) -> Actor:
        """The clicker as the approvals service knows people."""
        return Actor(id=self.user_id, name=self.user_name)

    @property
    def origin(self) -> Origin:
        """Where the click was made, for the service to compare with the request's."""
        return Origin(team=self.team_id, channel=self.channel)


def _field(value: Any, name: str) -> Any:
    """``value[name]`` when ``value`` is an object (Slack sends ``"team": null`` on some)."""
    return value.get(name) if isinstance(value, Mapping) else None


def tell(client: WebClient, *, user: str, channel: str | None, text: str) -> None:
    """A one-line message only ``user`` sees: ephemeral in the channel, else a DM.

    Never raises: the answer to a click must not turn into a second error.
    """
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)
    except (SlackApiError, OSError) as err:
        log.warning("could not tell %s %r: %s", user, text, err)
