"""Requests left EXECUTING by a process that is gone: ended INTERRUPTED, with what they did.

``at_start`` runs when ``serve`` starts: a request this host ran under another boot is
ended at once (its process is certainly gone, ``liveness.restarted_here``), and so is
any whose heartbeat is stale. ``sweep`` (the periodic approval sweep) ends those whose
heartbeat went stale since. Each end is one conditional UPDATE that still requires the
same executor (and the stale heartbeat), so a live executor that refreshed in between
keeps its request; only the caller that wins it audits ``remediation.interrupted``.

The counts are those of the last stored progress report ("at least"): what the process
did after it, up to ``progress_interval`` of batches, is not known to anyone but Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.approvals.events import request_event
from bot.approvals.liveness import ExecutorId, Liveness, executor_of, restarted_here, stale
from bot.approvals.model import SCHEDULER, ApprovalRequest, RequestState
from bot.approvals.ports import ApprovalStorePort
from bot.audit.entry import AuditSink

log = logging.getLogger(__name__)


class Recovery:
    """Ends the requests whose executor is gone (start-up and sweep), each audited once."""

    def __init__(
        self,
        *,
        store: ApprovalStorePort,
        audit: AuditSink,
        me: ExecutorId,
        clock: Callable[[], datetime],
        liveness: Liveness | None = None,
    ) -> None:
        """``liveness``: after how long a heartbeat is stale, and the pid check."""
        live = liveness or Liveness()
        self._store = store
        self._audit = audit
        self._me = me
        self._clock = clock
        self._stale_after = live.stale_after
        self._alive = live.pid_alive

    def at_start(self) -> list[ApprovalRequest]:
        """End what a previous boot on this host left running, and every stale execution."""
        now, done = self._clock(), []
        for request in self._store.executing():
            if restarted_here(request, self._me, self._alive):
                them = executor_of(request)
                why = f"its bot process ({them.describe() if them else '?'}) was restarted"
                ended = self._interrupt(request, why=why, stale_before=None)
            else:
                ended = self._if_stale(request, now)
            if ended is not None:
                done.append(ended)
        return done

    def sweep(self) -> list[ApprovalRequest]:
        """End every execution whose heartbeat is older than ``stale_after``."""
        now, done = self._clock(), []
        for request in self._store.executing():
            ended = self._if_stale(request, now)
            if ended is not None:
                done.append(ended)
        return done

    def _if_stale(self, request: ApprovalRequest, now: datetime) -> ApprovalRequest | None:
        if not stale(request, now, self._stale_after) or request.heartbeat_at is None:
            return None
        them = executor_of(request)
        why = (
            f"its bot process ({them.describe() if them else '?'}) stopped its heartbeat "
            f"at {request.heartbeat_at:%H:%M:%S} UTC"
        )
        return self._interrupt(request, why=why, stale_before=now - self._stale_after)

    def _interrupt(
        self, request: ApprovalRequest, *, why: str, stale_before: datetime | None
    ) -> ApprovalRequest | None:
        them = executor_of(request)
        if them is None:
            return None
        error = interrupted_error(request, why)
        result = interrupted_result(request, error)
        if not self._store.interrupt(
            request.id, boot=them.boot, stale_before=stale_before, error=error, result=result
        ):
            return None  # refreshed meanwhile, ended by its process, or by another replica
        ended = replace(request, state=RequestState.INTERRUPTED, error=error, result=result)
        log.warning("request %s interrupted: %s", request.id, why)
        self._audit.record(
            request_event(
                ended,
                actor=SCHEDULER,
                action="remediation.interrupted",
                outcome="interrupted",
                summary=f"{request.action_id} on {request.target} {error}",
                keys_changed_at_least=request.progress_changed,
                scanned_at_least=request.progress_scanned,
                executor=them.describe(),
                executor_boot=them.boot,
                reason=why,
            )
        )
        return ended


def interrupted_error(request: ApprovalRequest, why: str) -> str:
    """``interrupted: <why>; at least 1,200 keys were changed (3,400 scanned) ...``."""
    if request.progress_changed is None:
        return (
            f"interrupted: {why}; it reported no progress, so the change may or may not "
            "have started: see the audit trail and the store"
        )
    return (
        f"interrupted: {why}; at least {request.progress_changed:,} keys were changed "
        f"({request.progress_scanned or 0:,} scanned) by its last progress report; what ran "
        "after that report is unknown: check the store before running it again"
    )


def interrupted_result(request: ApprovalRequest, error: str) -> dict[str, Any]:
    """The stored result of an interrupted request: incomplete, counts "at least"."""
    return {
        "complete": False,
        "state": error,
        "steps": [],
        "keys_changed": None,
        "keys_changed_at_least": request.progress_changed,
        "scanned_at_least": request.progress_scanned,
    }
