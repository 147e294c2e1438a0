"""``/redis-mem``: ack at once, then do the work on the pool and post the answer."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.audit.scrub import REDACTED, scrub_text, scrub_words
from bot.errors import RedisMemError, UsageError
from bot.limits import preview
from bot.slack.afterack import BUSY, RESTARTING, ack_then_work, aside
from bot.slack.auditing import command_entry, record
from bot.slack.blocks.common import Message, clip
from bot.slack.commands import known_subcommand, route
from bot.slack.deps import SlackDeps
from bot.slack.jobs import Job, Result
from bot.slack.publish import post_in_channel, reply_error
from bot.slack.request import SlashRequest

log = logging.getLogger(__name__)

COMMAND = "/redis-mem"


def register(app: App, deps: SlackDeps) -> None:
    """Listen to the slash command."""

    @app.command(COMMAND)
    def on_redis_mem(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        handle(deps=deps, ack=ack, command=command, client=client, respond=respond)


def handle(
    *, deps: SlackDeps, ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
) -> None:
    """Route, ack, then run, audit and answer on the work pool (never on Bolt's thread).

    Everything said back is scrubbed (``scrub_text``): errors repeat what was typed,
    and a user may type a password. ``route`` bounds the text before anything reads
    it, so an over-long command costs a length check and a one-line ack. When the pool
    is full the ack says "busy" and nothing runs (``bot.slack.afterack``).
    """
    request = SlashRequest.from_payload(command)
    try:
        job = route(request.text, deps)
    except UsageError as err:
        reason = said(err.message, typed=request.text)
        ack(text=f"⚠ {reason}", response_type="ephemeral")
        aside(deps, lambda: reject(deps=deps, request=request, reason=reason), what="audit")
        return
    if job.progress is None:  # instant (help): the answer is the ack itself
        result = job.run(request)
        ack(text=result.message.text, blocks=result.message.blocks, response_type="ephemeral")
        aside(
            deps, lambda: finish(deps=deps, request=request, job=job, result=result), what="audit"
        )
        return
    progress = said(job.progress, typed=request.text)

    def work() -> None:
        result = run(job, request)
        warning = finish(deps=deps, request=request, job=job, result=result)
        answer(
            request=request,
            result=result,
            warning=warning,
            client=client,
            respond=respond,
            ephemeral=job.ephemeral,
        )

    def busy() -> None:
        ack(text=BUSY, response_type="ephemeral")
        aside(
            deps,
            lambda: reject(deps=deps, request=request, reason=BUSY[2:], outcome="busy"),
            what="audit",
        )

    ack_then_work(
        deps.work,
        ack=lambda: ack(text=progress, response_type="ephemeral"),
        busy=busy,
        work=work,
        what=f"/redis-mem {job.subcommand}",
        dropped=lambda: reply_error(respond=respond, text=RESTARTING),
    )


def run(job: Job, request: SlashRequest) -> Result:
    """The job's result; a user-facing error (Redis down...) becomes a one-line error result."""
    try:
        return job.run(request)
    except RedisMemError as err:  # e.g. "invalid size 'redis://:pw@h'" from a fix parameter
        message = f"⚠ {job.subcommand}: {said(err.message, typed=request.text)}"
    except Exception:  # never a traceback in Slack; the log has it
        log.exception("/redis-mem %s failed", job.subcommand)
        message = f"⚠ {job.subcommand}: internal error (see the bot's log)"
    return Result(message=Message(text=message, blocks=[]), outcome="error", summary=message[2:])


def finish(*, deps: SlackDeps, request: SlashRequest, job: Job, result: Result) -> str | None:
    """Count and audit the command; the audit warning line, if the trail is down."""
    deps.metrics.command_handled(subcommand=job.subcommand, outcome=result.outcome)
    entry = command_entry(
        request=request,
        subcommand=job.subcommand,
        outcome=result.outcome,
        summary=result.summary,
        target=job.target,
        parameters=job.parameters,
    )
    return record(deps.audit, entry)


def reject(
    *, deps: SlackDeps, request: SlashRequest, reason: str, outcome: str = "rejected"
) -> None:
    """Count and audit a command refused (bad arguments; ``busy``): the ack said why."""
    subcommand = known_subcommand(request.text)
    deps.metrics.command_handled(subcommand=subcommand, outcome=outcome)
    entry = command_entry(
        request=request,
        subcommand=subcommand,
        outcome=outcome,
        summary=reason,
        parameters={"text": safe_text(request.text)},
    )
    record(deps.audit, entry)  # the ack is gone already: a trail outage is only logged


def answer(
    *,
    request: SlashRequest,
    result: Result,
    warning: str | None,
    client: WebClient,
    respond: Respond,
    ephemeral: bool = False,
) -> None:
    """Errors (and ephemeral jobs) go to the asker only; results are posted in the channel."""
    try:
        if result.outcome == "error":
            text = result.message.text if warning is None else f"{result.message.text}\n{warning}"
            text = said(text, typed=request.text)
            reply_error(respond=respond, text=text)
            return
        message = result.message if warning is None else result.message.with_context(warning)
        if ephemeral:
            respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
            return
        if result.deliver is not None:  # an approval message: posted and attached, or cancelled
            result.deliver(client, message, lambda text: reply_error(respond=respond, text=text))
            return
        post_in_channel(client=client, respond=respond, channel=request.channel_id, message=message)
    except (SlackApiError, OSError) as err:
        log.error("could not answer /redis-mem in %s: %s", request.channel_id, err)
        reply_error(respond=respond, text="⚠ could not post the result in this channel")


def safe_text(text: str) -> str:
    """The typed text for the audit trail, at most 200 characters, without its secrets.

    Bounded first (whole words, long ones elided: no cut splits a URL's password and
    the scrubber never reads a 100,000-letter word), then scrubbed, then clipped.
    """
    return clip(scrub_text(preview(text)), 200)


def said(text: str, *, typed: str) -> str:
    """What we say back: ``text`` scrubbed, and holding no part of a secret that was typed.

    An error may quote a typed word out of its context (the word after ``token:``),
    where ``scrub_text`` alone cannot tell it is a secret: whatever scrubbing removes
    from the typed words is masked in the answer too.
    """
    shown = scrub_text(text)
    words = preview(typed).split()  # bounded, whatever was typed
    for word, scrubbed in zip(words, scrub_words(words), strict=True):
        secret = removed(word, scrubbed)
        if len(secret) >= MIN_SECRET_CHARS:
            shown = shown.replace(secret, REDACTED)
    return shown


# A shorter removed part ("x" of "password=x") would mask every "x" of the answer.
MIN_SECRET_CHARS = 3


def removed(word: str, scrubbed: str) -> str:
    """The part of ``word`` that scrubbing replaced: what lies between their common ends."""
    if word == scrubbed:
        return ""
    head = _same_start(word, scrubbed)
    tail = _same_start(word[head:][::-1], scrubbed[head:][::-1])
    return word[head : len(word) - tail]


def _same_start(one: str, other: str) -> int:
    """How many leading characters ``one`` and ``other`` share."""
    count = 0
    for mine, theirs in zip(one, other, strict=False):
        if mine != theirs:
            break
        count += 1
    return count
