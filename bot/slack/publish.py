"""Post a result in the channel, or fall back to the command's response_url.

``chat.postMessage`` runs through the client's bounded retries (bot/slack/retry.py).
When it still fails, and not because of the message itself, the result goes through
the command's response_url: a separate route with its own limits. If that fails too,
one log line says so. Results are not kept for a later delivery: a diagnosis is stale
within minutes and the asker can run the command again. Approval messages, which must
never be lost, are posted by ``approval_post`` and redelivered from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks.common import Message
from bot.slack.retry import CallFailure

log = logging.getLogger(__name__)

# chat.postMessage errors that mean "the bot cannot post here", not "Slack is broken":
# a private channel it was not invited to, or a DM. response_url still works there.
FALLBACK_ERRORS = frozenset({"not_in_channel", "channel_not_found"})


def post_in_channel(
    *, client: WebClient, respond: Respond, channel: str | None, message: Message
) -> str | None:
    """Post with chat.postMessage (so later issues can update it); the ts, or None otherwise.

    Not postable here (not invited, a DM), or still rate-limited or failing after the
    retries: answered via response_url instead. An error about the message itself
    (invalid blocks, say) raises, for the caller to report.
    """
    if channel is None:
        if not in_channel(respond, message):
            log.error("could not deliver a /redis-mem result: response_url failed")
        return None
    try:
        response = client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks
        )
    except (SlackApiError, OSError) as err:
        failure = CallFailure.of(err)
        if failure.error not in FALLBACK_ERRORS and not failure.transient:
            raise
        if not in_channel(respond, message):
            log.error(
                "could not deliver a /redis-mem result in %s: chat.postMessage failed (%s), "
                "and so did response_url",
                channel,
                failure.error,
            )
        return None
    ts = response.get("ts")
    return str(ts) if ts is not None else None


def in_channel(respond: Respond, message: Message) -> bool:
    """The message, visible to the channel, through response_url; False if it failed."""
    return send(respond, text=message.text, blocks=message.blocks, response_type="in_channel")


def reply_error(*, respond: Respond, text: str) -> None:
    """A one-line ephemeral error to the person who asked (a log line if it cannot go)."""
    if not send(respond, text=text, response_type="ephemeral", replace_original=False):
        log.warning("could not tell the asker %r: response_url failed", text)


def send(respond: Respond, **message: Any) -> bool:
    """One response_url post; False when it was refused or could not be sent. Never raises."""
    try:
        response = respond(**message)
    except (OSError, ValueError):  # unreachable; ValueError: the payload has no response_url
        return False
    return getattr(response, "status_code", 200) == 200
