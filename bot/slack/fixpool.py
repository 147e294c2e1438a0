"""Where approved fixes run: a few threads, and a shutdown that tells every queued approver.

An Approve click is acked at once and queued here (``bot/slack/listeners/approvals.py``).
The claim (PENDING -> EXECUTING) happens when the job starts, so a queued approval has
changed nothing yet. At SIGTERM (``stop``, the Runtime's last component) the running
fixes finish, so none stops halfway, and every approval still queued, or clicked while
stopping, is not started: its approver is told so in one line, and it is audited as
``remediation.not_started``. The request stays PENDING: a click after the restart approves it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from slack_sdk import WebClient

from bot.approvals.events import loose_event, request_event
from bot.approvals.model import ApprovalRequest, RequestState
from bot.audit.entry import AuditEntry
from bot.errors import RedisMemError
from bot.slack.blocks.common import escape
from bot.slack.clicks import Click, tell
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@runtime_checkable
class QueuedFix(Protocol):
    """A job that can say it was not started (its approver is told, it is audited)."""

    def __call__(self) -> None:
        """Run it."""
        ...

    def not_started(self) -> None:
        """It will never run: tell whoever asked for it. Never raises."""
        ...


class FixPool(Executor):
    """A ``ThreadPoolExecutor`` of ``workers`` threads, and a ``Component`` (``stop``)."""

    name = "fix-pool"

    def __init__(self, workers: int) -> None:
        """``workers``: fixes running at once; more wait their turn in the queue."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redis-mem-fix")
        # Re-entrant: cancelling a future (shutdown) runs its done callback in this thread.
        self._lock = threading.RLock()
        self._stopping = False
        self._futures: set[Future[Any]] = set()
        self._dropped: list[QueuedFix] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn``; once stopping, a ``QueuedFix`` is told at once it was not started."""
        with self._lock:
            if not self._stopping:
                future = self._pool.submit(fn, *args, **kwargs)
                self._futures.add(future)
                future.add_done_callback(lambda done: self._done(done, fn))
                return future
        if isinstance(fn, QueuedFix):
            fn.not_started()
        refused: Future[T] = Future()
        refused.cancel()
        return refused

    def _done(self, future: Future[Any], fn: object) -> None:
        with self._lock:
            self._futures.discard(future)
            if future.cancelled() and isinstance(fn, QueuedFix):
                self._dropped.append(fn)

    def start(self) -> None:
        """``Component``: the threads start with the first job."""

    def stop(self) -> None:
        """``Component``: tell every queued approver, then wait for the running fixes."""
        self.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking jobs; with ``cancel_futures`` the queued ones are not started (and
        told so, before waiting); with ``wait``, return once the running ones are done."""
        with self._lock:
            self._stopping = True
            # Cancelling runs the done callbacks here, so _dropped is complete below.
            self._pool.shutdown(wait=False, cancel_futures=cancel_futures)
            dropped, self._dropped = self._dropped, []
            running = len(self._futures)
        if dropped:
            log.warning("shutting down: %d queued approval(s) not started", len(dropped))
        for job in dropped:
            try:
                job.not_started()
            except Exception as err:  # one failed notice must not silence the others
                log.error("could not tell a queued approver: %s", err)
        if wait:
            log.info("shutting down: waiting for running fixes (%d running)", running)
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class ApprovalJob:
    """One Approve click on the pool: ``work`` decides it (``guarded``), or it is not started."""

    deps: SlackDeps
    click: Click
    request_id: str
    client: WebClient
    work: Callable[..., None]

    def __call__(self) -> None:
        """Decide the approval (on a pool thread)."""
        self.work(deps=self.deps, click=self.click, request_id=self.request_id, client=self.client)

    def not_started(self) -> None:
        """Tell the approver that nothing ran and the request is as it was; audit it."""
        request = self._request()
        tell(
            self.client,
            user=self.click.user_id,
            channel=self.click.channel,
            text=self.text(request),
        )
        try:
            self.deps.audit.record(self._entry(request))
        except RedisMemError as err:
            log.warning("could not audit the approval not started of %s: %s", self._id, err)

    def text(self, request: ApprovalRequest | None) -> str:
        """``⚠ the bot is restarting; your approval of <action> on <target> was not started…``."""
        what = f"request `{self._id}`"
        still = "the request is still pending: approve it again"
        if request is not None:
            what = f"`{escape(request.action_id)}` on *{escape(request.target)}*"
            if request.state is not RequestState.PENDING:
                still = f"the request is {request.state.value}"
        return f"⚠ the bot is restarting; your approval of {what} was not started — {still}"

    @property
    def _id(self) -> str:
        return escape(self.request_id[:32])

    def _request(self) -> ApprovalRequest | None:
        try:
            return self.deps.remediation.get(self.request_id)
        except RedisMemError:  # an unknown id, or the database is down: say less
            return None

    def _entry(self, request: ApprovalRequest | None) -> AuditEntry:
        summary = "approval not started: the bot was stopping"
        actor = self.click.actor
        if request is None:
            return loose_event(
                actor=actor,
                action="remediation.not_started",
                outcome="not_started",
                summary=summary,
                request_id=self.request_id,
                channel=self.click.channel,
            )
        return request_event(
            request,
            actor=actor,
            action="remediation.not_started",
            outcome="not_started",
            summary=f"approval of {request.action_id} on {request.target} not started: "
            f"the bot was stopping (the request stays {request.state.value})",
            state=request.state.value,
        )
