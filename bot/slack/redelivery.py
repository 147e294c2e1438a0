"""Approval messages brought up to their request's final state, from the database.

The row is the truth; the message is a rendering of it. When a final state does not
reach Slack (``chat.update`` still rate-limited or failing after the client's retries,
the bot restarted in between), the approval sweep (``expiry.py``, every 30 s) re-renders
every request whose message shows an older state than the stored one. Each request
backs off on its own (30 s doubling to 10 min, never sooner than Slack's
``Retry-After``; ``MessageLedger``); a message Slack says cannot be updated any more
(deleted, its channel archived) is given up on, the reason stored. A sweep stops at
the first rate limit or outage: the requests after it would meet the same answer.

Only final states are redelivered: they never change again, so a sweep racing the
execution's own last update can only send the same rendering twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals.model import ApprovalRequest, LaggingMessage
from bot.errors import RedisMemError
from bot.slack.blocks.approval import approval_message
from bot.slack.retry import CallFailure, without_retries

if TYPE_CHECKING:
    from bot.approvals.service import RemediationService

log = logging.getLogger(__name__)

BATCH = 50  # messages re-rendered per sweep at most (chat.update is ~50 a minute per team)
# Errors about this one message: it will never take an update. Anything else (rate limits,
# outages, a revoked token) is about Slack or the bot, and is tried again later.
GIVE_UP_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "msg_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
    }
)


def update_message(
    client: WebClient, request: ApprovalRequest, *, channel: str, ts: str
) -> CallFailure | None:
    """``chat.update`` of the message from the stored request; the failure, or None."""
    message = approval_message(request)
    try:
        client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
    except (SlackApiError, OSError) as err:
        return CallFailure.of(err)
    return None


def record_outcome(
    service: RemediationService, lag: LaggingMessage, failure: CallFailure | None
) -> None:
    """Store the outcome of an update: shown, retry later, or given up. Never raises."""
    try:
        if failure is None:
            service.messages.shown(lag.request)
        elif failure.error in GIVE_UP_ERRORS:
            service.messages.failed(lag, gave_up=f"Slack refused the update: {failure.error}")
        else:
            service.messages.failed(lag, retry_after=failure.retry_after)
    except RedisMemError as err:  # the next sweep finds the row as it was, and tries again
        log.warning("could not record the message state of request %s: %s", lag.request.id, err)


def redeliver(*, service: RemediationService, client: WebClient) -> int:
    """Re-render each final request whose message lags; how many now show their state.

    One attempt per request per sweep (no retries inside the call: the backoff is here).
    """
    try:
        lagging = service.messages.lagging(limit=BATCH)
    except RedisMemError as err:
        log.warning("could not list approval messages to redeliver: %s", err.message)
        return 0
    quick = without_retries(client)
    shown = 0
    for lag in lagging:
        request = lag.request
        channel, ts = request.channel or "", request.message_ts or ""
        failure = update_message(quick, request, channel=channel, ts=ts)
        record_outcome(service, lag, failure)
        if failure is None:
            shown += 1
            continue
        log.warning(
            "redelivery of request %s (%s) failed: %s", request.id, request.state, failure.error
        )
        if failure.error not in GIVE_UP_ERRORS:  # Slack or the bot is unwell: so is the rest
            break
    return shown
