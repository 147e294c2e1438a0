"""A validated subcommand (``Job``) and what running it produced (``Result``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.slack.blocks.common import Message
from bot.slack.request import SlashRequest

if TYPE_CHECKING:
    from slack_sdk import WebClient

# Posts the result's message itself: (client, the message, a one-line reply to the asker).
Deliver = Callable[["WebClient", Message, Callable[[str], None]], None]


@dataclass(frozen=True)
class Result:
    """What a job produced: the message, and the outcome/summary the audit trail keeps."""

    message: Message
    outcome: str
    summary: str
    # Set when the message must be posted with chat.postMessage or not at all (an approval
    # message: posted and attached, or its request cancelled and the asker told).
    deliver: Deliver | None = None


@dataclass(frozen=True)
class Job:
    """A parsed, validated subcommand.

    progress: the ephemeral ack text while ``run`` works; None means ``run`` is
    instant and its message is the (ephemeral) ack itself.
    ephemeral: answer the asker only (response_url) instead of posting in the channel.
    """

    subcommand: str
    # Called with the slash request: ``fix`` acts as the asker (the requester); others ignore it.
    run: Callable[[SlashRequest], Result]
    progress: str | None = None
    target: str | None = None
    ephemeral: bool = False  # the result goes to the asker only (the audit trail, say)
    parameters: Mapping[str, Any] = field(default_factory=dict)
