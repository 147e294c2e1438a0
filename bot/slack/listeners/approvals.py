"""Approve / Reject buttons: ack at once, decide in the background, update the message in place.

Approvals run on a small dedicated executor (``FixPool``), not on the Slack work pool
that answers commands and other clicks (``bot.slack.afterack``): an action that expires
100,000 keys at the rate limit takes seconds, and it must not starve the slash
commands that share that pool. Rejections are short and use the work pool. See
docs/decisions/approval-flow-slack.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.approvals.model import ApprovalRequest, LaggingMessage, RequestState
from bot.errors import RedisMemError, Refused
from bot.slack.afterack import request_button
from bot.slack.blocks.approval import APPROVE_ACTION, REJECT_ACTION
from bot.slack.blocks.common import escape
from bot.slack.clicks import Click, tell
from bot.slack.deps import SlackDeps
from bot.slack.fixpool import ApprovalJob, FixPool
from bot.slack.redelivery import record_outcome, update_message
from bot.slack.retry import CallFailure, without_retries

if TYPE_CHECKING:
    from bot.approvals.service import RemediationService

log = logging.getLogger(__name__)

FIX_WORKERS = 4  # approvals running at once; more wait their turn (each is audited anyway)


def fix_executor() -> FixPool:
    """The pool approved fixes run on (see the module docstring); at shutdown it tells every
    approver whose click is still queued that it was not started (``bot.slack.fixpool``)."""
    return FixPool(workers=FIX_WORKERS)


def register(app: App, deps: SlackDeps) -> None:
    """The two decision buttons."""
    runner = deps.fix_executor or fix_executor()

    @app.action(APPROVE_ACTION)
    def on_approve(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        click, request_id = Click.from_body(body), str(action.get("value") or "")
        runner.submit(
            ApprovalJob(deps=deps, click=click, request_id=request_id, client=client, work=guarded)
        )

    @app.action(REJECT_ACTION)
    def on_reject(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        request_button(
            deps,
            ack=ack,
            body=body,
            action=action,
            client=client,
            work=lambda click, request_id: decide(
                deps=deps, click=click, request_id=request_id, client=client, approve=False
            ),
            what="a rejection",
        )


def guarded(*, deps: SlackDeps, click: Click, request_id: str, client: WebClient) -> None:
    """``decide`` on the executor: an exception there would vanish in the future, so log it."""
    try:
        decide(deps=deps, click=click, request_id=request_id, client=client, approve=True)
    except Exception:
        log.exception("approval of request %r failed", request_id)
        tell(client, user=click.user_id, channel=click.channel, text="⚠ approve: internal error")


def decide(
    *, deps: SlackDeps, click: Click, request_id: str, client: WebClient, approve: bool
) -> None:
    """Approve (execute, verify) or reject; refusals are a private one-liner to the clicker."""
    service = deps.remediation
    updater = MessageUpdater(
        client=client, channel=click.channel, ts=click.message_ts, service=service
    )
    try:
        if approve:
            final = service.approve(
                request_id=request_id,
                approver=click.actor,
                progress=updater.progress,
                origin=click.origin,
            )
        else:
            final = service.reject(request_id=request_id, actor=click.actor, origin=click.origin)
    except RedisMemError as err:
        # The message first, then the reply: once the clicker reads it, the message is final.
        show_if_changed(service, request_id, updater, refused=isinstance(err, Refused))
        verb = "approve" if approve else "reject"
        text = f"⚠ {verb}: {escape(err.message)}"
        tell(client, user=click.user_id, channel=click.channel, text=text)
        return
    updater.finish(final)


def show_if_changed(
    service: RemediationService, request_id: str, updater: MessageUpdater, *, refused: bool
) -> None:
    """After an error: show an expiry, or the end of an execution the error cut short.

    A refusal (not an approver, already done...) leaves the message as it is.
    """
    try:
        current = service.get(request_id)
    except RedisMemError:
        return  # unknown or forged id, or the database is down: nothing to show
    if current.state is RequestState.EXPIRED or (not refused and current.state.final):
        updater.finish(current)


def refresh_messages(
    client: WebClient,
    requests: Iterable[ApprovalRequest],
    service: RemediationService | None = None,
) -> None:
    """Re-render each request's own message (e.g. the scheduler, after ``expire_due()``);
    with ``service``, what each message now shows is recorded (for the redelivery)."""
    for request in requests:
        MessageUpdater(client=client, channel=None, ts=None, service=service).finish(request)


class MessageUpdater:
    """``chat.update`` of the approval message; Slack errors are logged, never raised.

    Where: the request's stored channel/ts (server-side truth), else the clicked message.
    With a ``service``, each state the message takes is recorded, and a final state Slack
    did not take is left to the redelivery sweep (``bot/slack/redelivery.py``).
    """

    def __init__(
        self,
        *,
        client: WebClient,
        channel: str | None,
        ts: str | None,
        service: RemediationService | None = None,
    ) -> None:
        self._client = client
        # Progress lines are not retried (nor slept on inside the action): the next
        # line, or the final update, replaces a lost one.
        self._quick = without_retries(client)
        self._fallback = (channel, ts)
        self._service = service
        self._shown: RequestState | None = None

    def progress(self, request: ApprovalRequest) -> None:
        """The service's progress callback: executing, progress lines (already throttled)."""
        if not request.state.final:  # the final state comes back from approve(): finish()
            self._show(request, self._quick)

    def finish(self, request: ApprovalRequest) -> None:
        """The final state, through the client's retries. An ``{"ok": false}`` answer (which
        those do not see) gets one more try; then the redelivery sweep takes over."""
        failure = self._show(request, self._client)
        if failure is not None and not failure.retried:
            failure = self._show(request, self._client)
        if failure is not None and self._service is not None and request.state.final:
            record_outcome(self._service, LaggingMessage(request, attempts=0), failure)

    def _show(self, request: ApprovalRequest, client: WebClient) -> CallFailure | None:
        channel = request.channel or self._fallback[0]
        ts = request.message_ts or self._fallback[1]
        if not channel or not ts:
            log.warning("request %s has no message to update", request.id)
            return None
        failure = update_message(client, request, channel=channel, ts=ts)
        if failure is not None:
            log.warning(
                "chat.update of request %s (%s) failed: %s",
                request.id,
                request.state,
                failure.error,
            )
        elif self._service is not None and request.state is not self._shown:
            self._shown = request.state
            record_outcome(self._service, LaggingMessage(request, attempts=0), None)
        return failure
