"""The Cancel button of a running key action: ack at once, raise the cancel flag.

The button is on the in-channel approval message while ``expire-keys-without-ttl`` or
``evict-idle-sessions`` executes, so everyone sees it; only the requester and the
approvers may use it, anyone else is refused in one private line (audited). The click
arrives on a Bolt thread while the action runs on a fix-pool thread (or on another
replica): the service raises the flag in the database and signals the execution if it
runs here; the execution stops before its next batch and updates the message itself,
with the exact count of keys changed (``bot/approvals/cancel.py``). The click's work is
one conditional UPDATE and one audit row, on the work pool after the ack, as a
rejection's (``bot.slack.afterack``).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.errors import RedisMemError
from bot.slack.afterack import request_button
from bot.slack.blocks.approval import CANCEL_ACTION
from bot.slack.blocks.common import escape
from bot.slack.clicks import Click, tell
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)


def register(app: App, deps: SlackDeps) -> None:
    """The Cancel button (``redis_mem.cancel``, value: the request id)."""

    @app.action(CANCEL_ACTION)
    def on_cancel(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        request_button(
            deps,
            ack=ack,
            body=body,
            action=action,
            client=client,
            work=lambda click, request_id: cancel_click(
                deps=deps, click=click, request_id=request_id, client=client
            ),
            what="a cancel",
        )


def cancel_click(*, deps: SlackDeps, click: Click, request_id: str, client: WebClient) -> None:
    """Ask the service to cancel; a refusal is one private line to the clicker. Never raises."""
    try:
        deps.remediation.cancel(request_id=request_id, actor=click.actor, origin=click.origin)
    except RedisMemError as err:
        tell(
            client,
            user=click.user_id,
            channel=click.channel,
            text=f"⚠ cancel: {escape(err.message)}",
        )
    except Exception:  # Bolt would answer nothing useful: log it, tell the clicker
        log.exception("cancel of request %r failed", request_id)
        tell(client, user=click.user_id, channel=click.channel, text="⚠ cancel: internal error")
