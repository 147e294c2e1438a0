"""Ack first, then work on the bounded pool; when it is full, the ack says "busy".

Every listener calls ``ack_then_work`` (slash commands) or ``click_then_work`` (buttons
and view submissions) and returns: Bolt runs listeners before it answers the HTTP
request (``process_before_response``), so a listener only acks and hands its work
over. An ack never waits behind another request's work, nor behind an audit row
(``aside``); see ``bot.runtime.pool`` and docs/decisions/slack.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.runtime.pool import BoundedPool, Job
from bot.slack.clicks import Click, tell
from bot.slack.deps import SlackDeps

BUSY = "⚠ busy: the bot is answering too many requests at once; try again in a moment"
RESTARTING = "⚠ the bot is restarting and did not start this request; try again in a moment"

Ack = Callable[[], object]  # Bolt's ack() returns a BoltResponse, ignored


def ack_then_work(
    pool: BoundedPool,
    *,
    ack: Ack,
    busy: Ack,
    work: Job,
    what: str,
    dropped: Job | None = None,
) -> bool:
    """Reserve a slot, then ``ack()`` and queue ``work``; a full pool calls ``busy()`` (an
    ack saying so) instead. True when the work was queued.

    ``dropped`` tells the asker when a SIGTERM stops the pool before the work started.
    """
    slot = pool.reserve()
    if slot is None:
        busy()
        return False
    try:
        ack()
    except BaseException:
        slot.release()
        raise
    slot.run(work, what=what, dropped=dropped)
    return True


def click_then_work(
    deps: SlackDeps, *, ack: Ack, say: Callable[[str], None], work: Job, what: str
) -> bool:
    """A click (or view submission) is acked whatever happens; a full pool, or a SIGTERM
    before the work started, is one private line to the clicker (``say``)."""

    def busy() -> None:
        ack()
        aside(deps, lambda: say(BUSY), what="a busy notice")

    return ack_then_work(
        deps.work, ack=ack, busy=busy, work=work, what=what, dropped=lambda: say(RESTARTING)
    )


def request_button(
    deps: SlackDeps,
    *,
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    client: WebClient,
    work: Callable[[Click, str], object],
    what: str,
) -> bool:
    """A button whose value is an id (a request: reject, cancel; an alert: acknowledge,
    snooze): ``work(click, the id)`` on the pool once acked (``click_then_work``)."""
    click, value = Click.from_body(body), str(action.get("value") or "")
    return click_then_work(
        deps, ack=ack, say=teller(client, click), work=lambda: work(click, value), what=what
    )


def aside(deps: SlackDeps, job: Job, *, what: str) -> None:
    """Book-keeping after an ack (an audit row, a one-line notice) on its own small pool,
    so the HTTP answer (the ack) does not wait for it; inline only when that is full too."""
    slot = deps.aside.reserve()
    if slot is None:
        job()
    else:
        slot.run(job, what=what)


def teller(client: WebClient, click: Click, channel: str | None = None) -> Callable[[str], None]:
    """A one-line private message to the clicker (``tell``), in ``channel`` or the click's."""
    where = channel if channel is not None else click.channel

    def say(text: str) -> None:
        tell(client, user=click.user_id, channel=where, text=text)

    return say
