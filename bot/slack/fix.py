"""``/redis-mem fix <action-id> [target] [key=value ...]`` and ``/redis-mem pending``.

Parsing is pure (``parse_fix``) and answered in the ack; the request itself
(fresh diagnosis, preview, audit, store) runs after the ack, and its approval
message is posted in the channel and attached to the request so it can be
updated in place, or the request is cancelled (``approval_post``, shared with
the modal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.approvals.model import Actor, ApprovalRequest
from bot.clock import utc_now
from bot.errors import UsageError
from bot.limits import echo
from bot.remediation.catalogue import CATALOGUE, get_action
from bot.slack.approval_post import post_request
from bot.slack.blocks.approval import approval_message, pending_message
from bot.slack.blocks.common import Message
from bot.slack.deps import SlackDeps
from bot.slack.jobs import Job, Result
from bot.slack.parsing import parse_no_args
from bot.slack.request import SlashRequest

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.approvals.service import RemediationService

# Parameter names as the catalogue declares them (``maxmemory``, ``session_ttl_seconds``).
_PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
FIX_USAGE = "fix <action-id> [target] [key=value ...]"


@dataclass(frozen=True)
class FixArgs:
    """A parsed ``fix`` command: the action, an optional target, raw parameter texts."""

    action_id: str
    target: str | None
    raw_params: dict[str, str]


def parse_fix(args: tuple[str, ...]) -> FixArgs:
    """``raise-maxmemory prod maxmemory=1gb``; one target word at most, each key once."""
    if not args:
        known = ", ".join(CATALOGUE)
        raise UsageError(f"fix: name an action (usage: {FIX_USAGE}; actions: {known})")
    action_id, target, raw = args[0].lower(), None, {}
    for word in args[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            if target is not None:
                raise UsageError(
                    f"fix: expected one target at most (got {echo(target)!r} and {echo(word)!r})"
                )
            target = word
            continue
        name = key.strip().lower().replace("-", "_")
        if not _PARAM_NAME.fullmatch(name) or not value.strip():
            # A parameter name is an identifier: anything else is no key=value but a word
            # that holds "=", such as a URL whose password does. Splitting it would audit
            # its two halves apart, and neither half would look like the secret it holds.
            raise UsageError(f"fix: expected key=value (got {echo(word)!r})")
        if name in raw:
            raise UsageError(f"fix: {name}= given twice")
        raw[name] = value
    return FixArgs(action_id=action_id, target=target, raw_params=raw)


def prepare_fix(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """Validate the words now (instant); request after the ack, as the asker."""
    service = deps.remediation
    parsed = parse_fix(args)
    action = _known_action(parsed.action_id)
    target = deps.diagnosis.target(parsed.target).name

    def run(request: SlashRequest) -> Result:
        approval = service.request(
            actor=Actor(id=request.user_id, name=request.user_name),
            action_id=action,
            target_name=target,
            raw_params=parsed.raw_params,
            channel=request.channel_id,
            team=request.team_id,
        )
        return requested_result(service, approval)

    return Job(
        subcommand="fix",
        run=run,
        progress=f"Preparing the `{action}` preview for *{target}*…",
        target=target,
        parameters={"action": action, "target": target, "params": dict(parsed.raw_params)},
    )


def requested_result(service: RemediationService, approval: ApprovalRequest) -> Result:
    """The approval message: posted and attached, or the request cancelled (``deliver``)."""

    def deliver(client: WebClient, message: Message, say: Callable[[str], None]) -> None:
        channel = approval.channel or approval.requester  # no channel: a DM to the requester
        post_request(
            service=service,
            request=approval,
            channel=channel,
            client=client,
            say=say,
            message=message,
        )

    return Result(
        message=approval_message(approval),
        outcome="requested",
        summary=f"{approval.action_id} on {approval.target} requested (request {approval.id})",
        deliver=deliver,
    )


def prepare_pending(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """The open requests, shown to the asker only."""
    parse_no_args("pending", args)
    service = deps.remediation

    def run(_request: SlashRequest) -> Result:
        requests = service.pending()
        return Result(
            message=pending_message(requests, now=utc_now()),
            outcome="ok",
            summary=f"{len(requests)} pending request(s) listed",
        )

    return Job(
        subcommand="pending",
        run=run,
        progress="Reading the open fix requests…",
        ephemeral=True,
    )


def _known_action(action_id: str) -> str:
    try:
        return get_action(action_id).id
    except UsageError as err:
        raise UsageError(f"fix: {err.message}") from None
