"""Post a result in the channel, or fall back to the command's response_url."""

from __future__ import annotations

import logging

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks.common import Message

log = logging.getLogger(__name__)

# chat.postMessage errors that mean "the bot cannot post here", not "Slack is broken":
# a private channel it was not invited to, or a DM. response_url still works there.
FALLBACK_ERRORS = frozenset({"not_in_channel", "channel_not_found"})


def post_in_channel(
    *, client: WebClient, respond: Respond, channel: str | None, message: Message
) -> str | None:
    """Post with chat.postMessage (so later issues can update it); the ts, or None on fallback."""
    if channel is None:
        respond(text=message.text, blocks=message.blocks, response_type="in_channel")
        return None
    try:
        response = client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks
        )
    except SlackApiError as err:
        error = err.response.get("error")
        if error not in FALLBACK_ERRORS:
            raise
        log.info("chat.postMessage to %s failed (%s): answering via response_url", channel, error)
        respond(text=message.text, blocks=message.blocks, response_type="in_channel")
        return None
    ts = response.get("ts")
    return str(ts) if ts is not None else None


def reply_error(*, respond: Respond, text: str) -> None:
    """A one-line ephemeral error to the person who asked."""
    respond(text=text, response_type="ephemeral", replace_original=False)
