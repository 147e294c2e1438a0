"""SlackNotifier: the health dispatcher's Notifier port, in Slack.

One channel message per alert, posted when it first needs showing; every later event
re-renders that message (``chat.update``) and says what happened in its thread.
Ordering rules:
- the update goes before the thread reply: an update is idempotent, a reply is not, so
  a delivery retried after a failed reply shows the same message and replies once;
- once this delivery posted the message, any later failure carries ``posted`` so the
  dispatcher stores the message and the retry updates it instead of posting twice;
- a message deleted from the channel is posted again (that alert has nowhere else to go).

Delivery is at least once, never at most once: a post or reply that Slack answered with a
5xx or a dropped connection may have gone through, and it is retried (inside the call,
then by the outbox). A rare duplicate thread line is the price of never losing an alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from http.client import HTTPException
from typing import NamedTuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.health.model import Alert, AlertEvent, EventKind
from bot.health.ports import Delivered, NotifyError
from bot.slack.blocks.alert import ThreadReply, alert_message, thread_reply
from bot.slack.blocks.common import Message

log = logging.getLogger(__name__)

SILENT_KINDS = frozenset({EventKind.PENDING, EventKind.CLEARED})  # pending alerts post nothing
# Slack errors worth another try later: its own trouble, or a channel the bot may yet be
# invited to (not_in_channel) or that is being recreated.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "not_in_channel",
        "channel_not_found",
    }
)
MESSAGE_GONE = "message_not_found"
MAX_ERROR_CODE = 60  # a non-JSON answer becomes a long "error"; keep its HTTP status instead


class SlackNotifier:
    """Delivers alert events as one Slack message per alert, updated in place."""

    def __init__(self, client: WebClient, *, clock: Callable[[], datetime]) -> None:
        """``client``: ``bot.wiring.slack_clients(...).alerts`` (bounded retries in each call)."""
        self._client = client
        self._clock = clock

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        """Post, update and reply as ``event.kind`` needs; raises NotifyError."""
        if event.kind in SILENT_KINDS:
            return Delivered()
        if alert is None:
            log.info("alert event %s of %s has no alert: nothing to show", event.kind, event.target)
            return Delivered()
        if not alert.channel:
            log.warning(
                "alert %s %s not posted: no channel (set REDIS_MEM_CHANNEL or the target's "
                "channel)",
                alert.target,
                alert.rule,
            )
            return Delivered()
        message = alert_message(alert, now=self._clock())
        reply = thread_reply(event, alert)
        if alert.message_ts is None:
            posted = self._post(alert.channel, message)
            self._reply(posted, reply, posted=posted)
            return posted.delivered
        where = Where(alert.channel, alert.message_ts)
        reposted = self._update(where, message)
        self._reply(reposted or where, reply, posted=reposted)
        return reposted.delivered if reposted is not None else Delivered()

    def _post(self, channel: str, message: Message) -> Where:
        """The alert's channel message; where Slack put it (the channel id, not a name)."""
        try:
            response = self._client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks
            )
        except (SlackApiError, OSError, HTTPException) as err:
            raise notify_error("chat.postMessage", err) from None
        return Where(str(response.get("channel") or channel), str(response["ts"]))

    def _update(self, where: Where, message: Message) -> Where | None:
        """Re-render the message in place; the new message when it had been deleted."""
        try:
            self._client.chat_update(
                channel=where.channel, ts=where.ts, text=message.text, blocks=message.blocks
            )
        except SlackApiError as err:
            if slack_error(err) != MESSAGE_GONE:
                raise notify_error("chat.update", err) from None
            log.warning("alert message %s in %s was deleted: posting it again", *where)
            return self._post(where.channel, message)
        except (OSError, HTTPException) as err:
            raise notify_error("chat.update", err) from None
        return None

    def _reply(self, where: Where, reply: ThreadReply | None, *, posted: Where | None) -> None:
        """The event's line in the message's thread (broadcast when the channel must notice)."""
        if reply is None:
            return
        try:
            self._client.chat_postMessage(
                channel=where.channel,
                thread_ts=where.ts,
                text=reply.text,
                reply_broadcast=reply.broadcast,
            )
        except (SlackApiError, OSError, HTTPException) as err:
            done = posted.delivered if posted is not None else None
            raise notify_error("chat.postMessage (thread reply)", err, posted=done) from None


class Where(NamedTuple):
    """A message: its channel id and ts."""

    channel: str
    ts: str

    @property
    def delivered(self) -> Delivered:
        """As the dispatcher stores it."""
        return Delivered(channel=self.channel, ts=self.ts)


def slack_error(err: SlackApiError) -> str:
    """Slack's error code of a refused call (``ratelimited``...), or ``""``."""
    response = err.response
    try:
        return str(response.get("error") or "")
    except AttributeError:  # a body that was not JSON
        return ""


def notify_error(method: str, err: Exception, *, posted: Delivered | None = None) -> NotifyError:
    """One line naming the call and Slack's reason (never a token); transient or not."""
    if isinstance(err, SlackApiError):
        status = int(getattr(err.response, "status_code", 200) or 200)
        code = slack_error(err)
        transient = code in TRANSIENT_ERRORS or status == 429 or status >= 500
        why = api_reason(code, status)
        return NotifyError(f"Slack {method} failed: {why}", transient=transient, posted=posted)
    cause: object = getattr(err, "reason", None) or err  # URLError wraps the socket error
    text = " ".join(str(cause).split()) or type(err).__name__
    return NotifyError(f"Slack {method} unreachable: {text}", transient=True, posted=posted)


def api_reason(code: str, status: int) -> str:
    """``ratelimited (HTTP 429)``, ``invalid_blocks``, ``HTTP 503``."""
    if not code or len(code) > MAX_ERROR_CODE or " " in code:
        return f"HTTP {status}"  # not one of Slack's codes: a proxy's page, say
    return code if status == 200 else f"{code} (HTTP {status})"
