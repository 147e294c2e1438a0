"""Fix-request buttons (``redis_mem.request.<action-id>``) -> the modal -> an approval request.

The button's value is the target name. The modal is opened with the
parameters prefilled from a fresh diagnosis; its submission is checked for
typos and ranges before the ack (Slack shows those errors on the field), and
the request itself (fresh diagnosis, preview, audit) runs after the ack, its
refusals answered privately.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import RedisMemError, UsageError
from bot.remediation.catalogue import get_action
from bot.slack.afterack import click_then_work, teller
from bot.slack.approval_post import post_request
from bot.slack.blocks.common import escape
from bot.slack.blocks.diagnosis import REQUEST_ACTION_PREFIX
from bot.slack.blocks.modal import (
    FIX_MODAL,
    ModalContext,
    error_view,
    field_errors,
    fix_modal,
    submitted_values,
)
from bot.slack.clicks import Click
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

REQUEST_ACTION = re.compile(re.escape(REQUEST_ACTION_PREFIX) + r".+")


def register(app: App, deps: SlackDeps) -> None:
    """The request buttons and the modal's submission."""

    @app.action(REQUEST_ACTION)
    def on_fix_request(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        click = Click.from_body(body)
        click_then_work(
            deps,
            ack=ack,
            say=teller(client, click),
            work=lambda: open_form(deps=deps, click=click, action=action, client=client),
            what="opening a fix form",
        )

    @app.view(FIX_MODAL)
    def on_fix_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        submit_form(deps=deps, ack=ack, click=Click.from_body(body), view=view, client=client)


def open_form(*, deps: SlackDeps, click: Click, action: dict[str, Any], client: WebClient) -> None:
    """Open the modal, or say privately why not (preconditions, Redis down)."""
    action_id = str(action.get("action_id", "")).removeprefix(REQUEST_ACTION_PREFIX)
    target = str(action.get("value") or "") or None

    say = teller(client, click)
    try:
        form = deps.remediation.form(action_id=action_id, target_name=target)
    except RedisMemError as err:
        say(f"⚠ {escape(action_id)}: {escape(err.message)}")
        return
    if form.preconditions:
        say(f"⚠ {escape(form.title)} cannot run on *{escape(form.target)}* now: "
            f"{escape(form.preconditions[0])}")  # fmt: skip
        return
    try:
        client.views_open(
            trigger_id=click.trigger_id or "", view=fix_modal(form, channel=click.channel)
        )
    except (SlackApiError, OSError) as err:
        # Slack's trigger id lives 3 s: a slow diagnosis makes it expire.
        log.warning("views.open for %s failed: %s", action_id, err)
        say(
            f"⚠ could not open the form in time: use `/redis-mem fix {action_id} {form.target}` "
            "with key=value parameters"
        )


def submit_form(
    *, deps: SlackDeps, ack: Ack, click: Click, view: dict[str, Any], client: WebClient
) -> None:
    """Field errors in the ack; then, on the pool: request, post the approval message."""
    service = deps.remediation
    try:
        meta = ModalContext.loads(view.get("private_metadata"))
        specs = get_action(meta.action).specs(service.limits)
    except UsageError as err:
        ack(response_action="update", view=error_view(err.message))
        return
    values = submitted_values(view)
    errors = field_errors(specs, values)
    if errors:
        ack(response_action="errors", errors=errors)
        return
    channel = meta.channel or click.user_id  # no channel (a DM with the app): post to the user
    say = teller(client, click, meta.channel)

    def work() -> None:
        try:
            request = service.request(
                actor=click.actor,
                action_id=meta.action,
                target_name=meta.target,
                raw_params=values,
                channel=channel,
                team=click.team_id,
            )
        except RedisMemError as err:
            say(f"⚠ {escape(meta.action)} on {escape(meta.target)}: {escape(err.message)}")
            return
        post_request(service=service, request=request, channel=channel, client=client, say=say)

    click_then_work(deps, ack=ack, say=say, work=work, what=f"requesting {meta.action}")
