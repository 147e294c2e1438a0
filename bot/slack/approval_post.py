"""Post a fix request's approval message and attach it, or cancel the request.

One behaviour for every way a request is made (the modal, ``/redis-mem fix``): the
message is posted with ``chat.postMessage`` (its ts is stored, so it is updated in place
and redelivered from the database), never through response_url. If Slack does not take
it, even after the client's bounded retries, the request is cancelled through the
service (audited ``remediation.rejected``, outcome ``cancelled``, with the reason), and
the requester is told in one line: a request nobody can see must not stay approvable
by id, nor linger in ``/redis-mem pending``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals.model import ApprovalRequest
from bot.errors import RedisMemError
from bot.slack.blocks.approval import approval_message
from bot.slack.blocks.common import Message, escape
from bot.slack.publish import FALLBACK_ERRORS
from bot.slack.retry import CallFailure

if TYPE_CHECKING:
    from bot.approvals.service import RemediationService

log = logging.getLogger(__name__)

UNPOSTED = "the approval message could not be posted"


def post_request(
    *,
    service: RemediationService,
    request: ApprovalRequest,
    channel: str,
    client: WebClient,
    say: Callable[[str], None],
    message: Message | None = None,
) -> None:
    """Post ``message`` (default: the request's approval message) and attach it; if Slack
    refuses it, cancel the request and ``say`` so. ``say`` must not raise."""
    shown = message or approval_message(request)
    try:
        response = client.chat_postMessage(channel=channel, text=shown.text, blocks=shown.blocks)
    except (SlackApiError, OSError) as err:
        failure = CallFailure.of(err)
        log.warning(
            "could not post approval request %s in %s: %s", request.id, channel, failure.error
        )
        say(cancel_unposted(service, request, failure))
        return
    ts = response.get("ts")
    if ts is None:  # not seen from Slack; nothing to attach, clicks still carry the id
        log.warning("chat.postMessage of request %s answered no ts", request.id)
        return
    # Slack answers with the real channel id (a DM's D..., when ``channel`` is a user id):
    # chat.update needs it, and clicks on the message carry it.
    posted_in = str(response.get("channel") or channel)
    try:
        service.attach_message(request.id, channel=posted_in, ts=str(ts))
    except RedisMemError as err:  # posted, not attached: clicks still carry the id
        log.warning("could not attach the message of request %s: %s", request.id, err)


def cancel_unposted(
    service: RemediationService, request: ApprovalRequest, failure: CallFailure
) -> str:
    """Cancel the request whose message Slack refused; the one line for its requester."""
    if failure.error in FALLBACK_ERRORS:
        why = "invite the bot to this channel"
    else:
        why = f"Slack answered {failure.error}"
    head = f"⚠ could not post the approval request for `{escape(request.action_id)}` ({why})"
    try:
        service.withdraw(request_id=request.id, reason=UNPOSTED)
    except RedisMemError as err:
        log.warning("could not cancel unposted request %s: %s", request.id, err.message)
        expires = f"{request.expires_at:%H:%M} UTC"
        return f"{head}, nor cancel it ({escape(err.message)}): it expires at {expires}"
    return f"{head}: request `{request.id[:8]}` cancelled, nothing changed; request it again"
