"""Acknowledge / Snooze on an alert message: ack at once, then one conditional UPDATE.

The click changes nothing in Slack by itself: the health service queues an event that
the dispatcher delivers (the message re-rendered, a line in its thread), so the message
shows what the database holds, whichever replica took the click. Refusals (a forged
or unknown id, a resolved alert, a button from another message) are audited by the
service and answered to the clicker alone, in one line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.errors import RedisMemError, Refused
from bot.slack.afterack import request_button
from bot.slack.alerts_view import NOT_CONFIGURED
from bot.slack.blocks.alert import ACK_ACTION, SNOOZE_ACTIONS
from bot.slack.blocks.common import escape
from bot.slack.clicks import Click, tell
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

SNOOZE_PATTERN = re.compile("^(?:" + "|".join(map(re.escape, SNOOZE_ACTIONS)) + ")$")


def register(app: App, deps: SlackDeps) -> None:
    """The Acknowledge button and the three Snooze buttons."""

    @app.action(ACK_ACTION)
    def on_acknowledge(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        later(deps, ack, body=body, action=action, client=client, hours=None)

    @app.action(SNOOZE_PATTERN)
    def on_snooze(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        hours = SNOOZE_ACTIONS[str(action.get("action_id"))]
        later(deps, ack, body=body, action=action, client=client, hours=hours)


def later(
    deps: SlackDeps,
    ack: Ack,
    *,
    body: dict[str, Any],
    action: dict[str, Any],
    client: WebClient,
    hours: int | None,
) -> None:
    """Ack, then ``clicked`` on the work pool (``request_button``: the value is the alert id)."""
    request_button(
        deps,
        ack=ack,
        body=body,
        action=action,
        client=client,
        work=lambda click, alert_id: clicked(
            deps=deps, click=click, alert_id=alert_id, client=client, hours=hours
        ),
        what="an alert click",
    )


def clicked(
    *, deps: SlackDeps, click: Click, alert_id: str, client: WebClient, hours: int | None
) -> None:
    """Acknowledge (``hours`` None) or snooze; any failure is one private line to the clicker."""
    verb = "acknowledge" if hours is None else "snooze"
    try:
        apply(deps=deps, click=click, alert_id=alert_id, hours=hours)
    except Refused as err:  # its message names the action already
        tell(client, user=click.user_id, channel=click.channel, text=f"⚠ {escape(err.message)}")
    except RedisMemError as err:  # the audit database is down, say
        text = f"⚠ {verb}: {escape(err.message)}"
        tell(client, user=click.user_id, channel=click.channel, text=text)
    except Exception:  # never a silent click: the log has the traceback
        log.exception("alert %s of %r failed", verb, alert_id[:64])
        tell(client, user=click.user_id, channel=click.channel, text=f"⚠ {verb}: internal error")


def apply(*, deps: SlackDeps, click: Click, alert_id: str, hours: int | None) -> None:
    """Hand the click to the health service (which audits it and queues the refresh)."""
    service = deps.health
    if service is None:
        raise Refused(NOT_CONFIGURED)
    if hours is None:
        service.acknowledge(
            alert_id, actor=click.user_id, actor_name=click.user_name, on=click.message_ts
        )
    else:
        service.snooze(
            alert_id,
            actor=click.user_id,
            hours=hours,
            actor_name=click.user_name,
            on=click.message_ts,
        )
