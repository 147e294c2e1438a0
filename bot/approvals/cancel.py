"""The claim that starts an execution, and the cancel that stops a running key action.

``claim``: PENDING -> EXECUTING in one conditional UPDATE that also names this process
and starts its heartbeat (``bot.approvals.liveness``); the loser is refused.

The requester or an approver may cancel an EXECUTING ``expire-keys-without-ttl`` or
``evict-idle-sessions``. The cancel is one conditional UPDATE raising
``cancel_requested_by`` (once: a second click is refused as already on its way), then
its audit row ``remediation.cancel_requested``; then the execution is signalled in this
process (it stops before its next batch), and on another replica it reads the flag
within ``CANCEL_POLL_SECONDS``. The execution itself ends the request CANCELLED with the
exact counts (``remediation.cancelled``), see ``bot.approvals.execution``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from bot.approvals.events import request_event
from bot.approvals.gate import Gate
from bot.approvals.liveness import ExecutorId
from bot.approvals.model import Actor, ApprovalRequest, Origin, RequestState
from bot.approvals.ports import ApprovalStorePort
from bot.approvals.running import Running
from bot.audit.entry import AuditSink
from bot.remediation.actions.key_runs import cancellable


def claim(
    store: ApprovalStorePort,
    gate: Gate,
    request: ApprovalRequest,
    approver: Actor,
    *,
    me: ExecutorId,
) -> ApprovalRequest:
    """PENDING -> EXECUTING by ``approver``, run by ``me``; refused (audited) when lost."""
    now = gate.now()
    owner = {**me.columns(), "heartbeat_at": now}
    won = store.transition(
        request.id,
        expected=RequestState.PENDING,
        to=RequestState.EXECUTING,
        unexpired_at=now,
        decided_by=approver.id,
        decided_at=now,
        **owner,
    )
    if not won:
        gate.lost_race(request, approver)
    return replace(
        request, state=RequestState.EXECUTING, decided_by=approver.id, decided_at=now, **owner
    )


@dataclass(frozen=True)
class Canceller:
    """The cancel use case over the service's store, gate and running executions."""

    store: ApprovalStorePort
    audit: AuditSink
    gate: Gate
    running: Running
    clock: Callable[[], datetime]

    def cancel(
        self, *, request_id: str, actor: Actor, origin: Origin | None = None
    ) -> ApprovalRequest:
        """Ask the running action to stop; refusals are audited (``access.denied``)."""
        gate = self.gate
        request = gate.load(request_id, actor)
        gate.check_origin(request, actor, origin)
        if actor.id != request.requester and not gate.is_approver(request, actor):
            raise gate.deny(request, actor, "only the requester or an approver can cancel it")
        self._check_running(request, actor)
        now = self.clock()
        if not self.store.request_cancel(request.id, by=actor.id, at=now):
            current = self.store.get(request.id) or request
            self._check_running(current, actor)  # it ended, or someone cancelled meanwhile
            raise gate.deny(current, actor, f"already being handled ({current.state.value})")
        cancelled = replace(request, cancel_requested_by=actor.id, cancel_requested_at=now)
        here = self.running.signal(request.id, by=actor.id)
        self.audit.record(
            request_event(
                cancelled,
                actor=actor,
                action="remediation.cancel_requested",
                outcome="ok",
                summary=f"cancel of {request.action_id} on {request.target} requested: "
                "it stops before its next batch",
                running_here=here,
                progress=request.progress,
            )
        )
        return cancelled

    def _check_running(self, request: ApprovalRequest, actor: Actor) -> None:
        gate = self.gate
        if not cancellable(request.action_id):
            raise gate.deny(request, actor, f"{request.action_id} cannot be cancelled")
        if request.state is not RequestState.EXECUTING:
            raise gate.deny(request, actor, f"nothing to cancel: it is {request.state.value}")
        if request.cancel_requested_by:
            raise gate.deny(
                request,
                actor,
                f"already cancelled by {request.cancel_requested_by}: it stops after "
                "the batch in flight",
            )
