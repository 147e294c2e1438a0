"""The approval use cases: request, approve (-> re-check -> execute -> verify), reject, expire.

Ordering rules (docs/decisions/approvals.md):
- A change to the world runs only after its audit row is written: ``remediation.requested``
  before the request is stored, ``remediation.approved`` before anything executes.
- A state change is one conditional UPDATE (``ApprovalStore.transition``); the caller that
  wins it is the only one that goes on, so two clicks execute once and each decision is
  audited once. Transitions that stop a request (reject, expire) are safe on their own;
  their audit row follows, and its failure is reported.
- Every refusal is audited (``access.denied`` for clicks, ``remediation.refused`` for
  requests and stale previews) before the ``Refused`` is raised.
- A click counts only from the request's own Slack team and channel (``Origin``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.cancel import Canceller, claim
from bot.approvals.events import loose_event, request_event
from bot.approvals.execution import Execution
from bot.approvals.gate import EXECUTING_LIMIT, Gate
from bot.approvals.ledger import MessageLedger
from bot.approvals.liveness import ExecutorId, Liveness
from bot.approvals.model import (
    ActionForm,
    Actor,
    ApprovalRequest,
    Origin,
    RequestState,
    raw_text,
    valid_request_id,
)
from bot.approvals.policy import ApproverPolicy
from bot.approvals.ports import ApprovalStorePort
from bot.approvals.progress import Progress, ProgressReporter
from bot.approvals.recovery import Recovery
from bot.approvals.running import Running, StopSignal
from bot.audit.entry import AuditEntry, AuditSink
from bot.clock import utc_now
from bot.config import Target
from bot.errors import Refused, UsageError
from bot.remediation.actions.base import Action
from bot.remediation.catalogue import get_action
from bot.remediation.model import ActionContext, Params, RemediationLimits
from bot.remediation.ports import Cluster, RedisOps
from bot.services.diagnose import DiagnosisService

AdapterFactory = Callable[[Target], tuple[Cluster, RedisOps]]

__all__ = ["AdapterFactory", "Liveness", "Progress", "RemediationService"]

PENDING = RequestState.PENDING
EXECUTING = RequestState.EXECUTING


class RemediationService:
    """Request, approve, reject and expire remediation actions; every step audited."""

    def __init__(
        self,
        *,
        store: ApprovalStorePort,
        audit: AuditSink,
        diagnosis: DiagnosisService,
        adapters: AdapterFactory,
        policy: ApproverPolicy,
        limits: RemediationLimits = RemediationLimits(),  # noqa: B008 (frozen, shared safely)
        ttl: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = utc_now,
        progress_interval: timedelta = timedelta(seconds=1),
        executing_limit: timedelta = EXECUTING_LIMIT,
        executor: ExecutorId | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        """``ttl``: how long a request waits for approval; ``progress_interval``: report pace;
        ``executing_limit``: after this long EXECUTING, ``expire_due`` fails a request claimed
        before migration 0005; ``executor``: this process (default: POD_NAME or the hostname,
        the pid, a new boot id); ``liveness``: heartbeat and cancel timings."""
        self._store = store
        self._audit = audit
        self._diagnosis = diagnosis
        self._adapters = adapters
        self._policy = policy
        self._limits = limits
        self._ttl = ttl
        self._clock = clock
        self._progress_interval = progress_interval
        self._executing_limit = executing_limit
        self._gate = Gate(store=store, audit=audit, policy=policy, clock=clock)
        me, live = executor or ExecutorId.of_this_process(), liveness or Liveness()
        self._running = Running(store=store, me=me, clock=clock, liveness=live)
        self._recovery = Recovery(store=store, audit=audit, me=me, clock=clock, liveness=live)
        self._canceller = Canceller(
            store=store, audit=audit, gate=self._gate, running=self._running, clock=clock
        )

    @property
    def executor(self) -> ExecutorId:
        """This process, as the rows it claims name it."""
        return self._running.me

    @property
    def policy(self) -> ApproverPolicy:
        """Who may approve."""
        return self._policy

    @property
    def limits(self) -> RemediationLimits:
        """The limits every action runs under."""
        return self._limits

    @property
    def messages(self) -> MessageLedger:
        """What each request's message shows, and which ones lag (for the redelivery)."""
        return MessageLedger(self._store, self._clock)

    # Requesting ---------------------------------------------------------------------------

    def form(self, *, action_id: str, target_name: str | None) -> ActionForm:
        """The modal: parameters prefilled from a fresh diagnosis, and why it cannot run (if so)."""
        action = get_action(action_id)
        target = self._diagnosis.target(target_name)
        # Only a prefill (the request diagnoses afresh): share a diagnosis already running.
        ctx = self._context(target, shared=True)
        try:
            params = action.defaults(ctx)
            reasons = tuple(action.preconditions(ctx, params))
        except UsageError as err:
            params, reasons = {}, (str(err),)
        specs = action.specs(self._limits)
        return ActionForm(
            action_id=action.id,
            title=action.title,
            target=target.name,
            specs=specs,
            defaults={s.name: raw_text(s, params[s.name]) for s in specs if s.name in params},
            preconditions=reasons,
        )

    def request(
        self,
        *,
        actor: Actor,
        action_id: str,
        target_name: str | None,
        raw_params: Mapping[str, str],
        channel: str | None,
        team: str | None = None,
    ) -> ApprovalRequest:
        """Preview the action now and store it PENDING (audited first); refusals audited.

        ``team``: the Slack team id it is requested from; decisions must come from it.
        """

        def refuse(err: Exception, outcome: str, target: str | None = target_name) -> None:
            self._record(
                loose_event(
                    actor=actor,
                    action="remediation.refused",
                    outcome=outcome,
                    summary=f"request of {action_id} refused: {err}",
                    target=target,
                    channel=channel,
                    action_id=action_id,
                    raw_params={str(k): str(v)[:200] for k, v in raw_params.items()},
                )
            )

        try:
            action = get_action(action_id)
            target = self._diagnosis.target(target_name)
        except UsageError as err:
            refuse(err, "invalid")
            raise
        if self._policy.empty:
            nobody = Refused(
                "no approvers are configured (REDIS_MEM_APPROVERS): nobody could approve"
            )
            refuse(nobody, "refused", target.name)
            raise nobody
        ctx = self._context(target)
        try:
            params = action.resolve(ctx, raw_params)
        except UsageError as err:
            refuse(err, "invalid", target.name)
            raise
        reasons = action.preconditions(ctx, params)
        if reasons:
            cannot = Refused(f"{action.id} cannot run now: {reasons[0]}")
            refuse(cannot, "refused", target.name)
            raise cannot
        request = self._new_request(action, target, params, actor=actor, channel=channel, ctx=ctx)
        request = replace(request, team=team)
        self._record(
            request_event(
                request,
                actor=actor,
                action="remediation.requested",
                outcome="ok",
                summary=f"requested {action.id} on {target.name} "
                f"(expires {request.expires_at:%H:%M} UTC)",
                fingerprint=request.preview.get("fingerprint"),
            )
        )
        self._store.add(request)
        return request

    def _new_request(
        self,
        action: Action[Any],
        target: Target,
        params: Params,
        *,
        actor: Actor,
        channel: str | None,
        ctx: ActionContext,
    ) -> ApprovalRequest:
        preview = action.preview(ctx, params)
        now = self._clock()
        return ApprovalRequest(
            id=uuid.uuid4().hex,
            action_id=action.id,
            target=target.name,
            params=dict(params),
            preview=preview.to_dict(),
            requester=actor.id,
            requester_name=actor.name,
            state=PENDING,
            created_at=now,
            expires_at=now + self._ttl,
            channel=channel,
        )

    def attach_message(self, request_id: str, *, channel: str, ts: str) -> None:
        """Remember where the request's message is (updated in place), showing it pending."""
        if not valid_request_id(request_id) or not self._store.attach(
            request_id, channel=channel, ts=ts, shown=PENDING, at=self._clock()
        ):
            raise Refused("unknown request")

    # Deciding -----------------------------------------------------------------------------

    def approve(
        self,
        *,
        request_id: str,
        approver: Actor,
        progress: Progress | None = None,
        origin: Origin | None = None,
    ) -> ApprovalRequest:
        """Approve, re-check, execute and verify; returns the final request (see module doc).

        ``origin``: where the click was made (None: not a click, e.g. a test or the CLI).
        """
        request = self._gate.load(request_id, approver)
        self._gate.check_origin(request, approver, origin)
        if approver.id == request.requester:
            raise self._gate.deny(request, approver, "you cannot approve your own request")
        if not self._gate.is_approver(request, approver):
            raise self._gate.deny(
                request, approver, "you are not an approver (REDIS_MEM_APPROVERS)"
            )
        self._gate.check_pending(request, approver)
        claimed = claim(self._store, self._gate, request, approver, me=self.executor)
        reporter = ProgressReporter(
            store=self._store,
            request=claimed,
            notify=progress,
            clock=self._clock,
            interval=self._progress_interval,
        )
        stop = self._running.start(claimed.id)
        try:
            return self._execution(claimed, approver, reporter, stop).run()
        finally:
            self._running.finish(claimed.id)

    def _execution(
        self,
        request: ApprovalRequest,
        approver: Actor,
        reporter: ProgressReporter,
        stop: StopSignal,
    ) -> Execution:
        return Execution(
            request=request,
            approver=approver,
            store=self._store,
            audit=self._audit,
            diagnosis=self._diagnosis,
            context=self._context,
            reporter=reporter,
            stop=stop,
        )

    def cancel(
        self, *, request_id: str, actor: Actor, origin: Origin | None = None
    ) -> ApprovalRequest:
        """Stop a running key action before its next batch (requester or approver; audited).

        Returns the request with its cancel flag; the execution ends it CANCELLED.
        """
        return self._canceller.cancel(request_id=request_id, actor=actor, origin=origin)

    def recover_interrupted(self) -> list[ApprovalRequest]:
        """At start-up: end as INTERRUPTED what a previous process on this host left
        executing, and every execution whose heartbeat is stale (each audited)."""
        return self._recovery.at_start()

    def reject(
        self,
        *,
        request_id: str,
        actor: Actor,
        origin: Origin | None = None,
        reason: str | None = None,
    ) -> ApprovalRequest:
        """Approvers reject, the requester cancels, a PENDING request; others are refused.

        ``reason``: why the requester's request is cancelled for them (``withdraw``).
        """
        request = self._gate.load(request_id, actor)
        self._gate.check_origin(request, actor, origin)
        cancel = actor.id == request.requester
        if not cancel and not self._gate.is_approver(request, actor):
            raise self._gate.deny(request, actor, "only an approver or the requester can reject")
        self._gate.check_pending(request, actor)
        now = self._clock()
        if not self._store.transition(
            request.id,
            expected=PENDING,
            to=RequestState.REJECTED,
            decided_by=actor.id,
            decided_at=now,
            error=reason,
        ):
            self._gate.lost_race(request, actor)
        rejected = replace(
            request, state=RequestState.REJECTED, decided_by=actor.id, decided_at=now, error=reason
        )
        how = "cancelled by the requester" if cancel else "rejected"
        if reason is not None:
            how = f"cancelled: {reason}"
        self._record(
            request_event(
                rejected,
                actor=actor,
                action="remediation.rejected",
                outcome="cancelled" if cancel else "rejected",
                summary=f"{request.action_id} on {request.target} {how}",
                **({} if reason is None else {"reason": reason}),
            )
        )
        return rejected

    def withdraw(self, *, request_id: str, reason: str) -> ApprovalRequest:
        """Cancel a PENDING request for its requester (the face could not show it), audited."""
        request = self.get(request_id)
        requester = Actor(id=request.requester, name=request.requester_name)
        return self.reject(request_id=request.id, actor=requester, reason=reason)

    def expire_due(self) -> list[ApprovalRequest]:
        """Mark every PENDING request past its expiry EXPIRED, every execution whose heartbeat
        is stale INTERRUPTED, and every request claimed before migration 0005 EXECUTING
        longer than ``executing_limit`` FAILED (outcome unknown); each audited."""
        now = self._clock()
        changed = []
        for request in self._store.due(now):
            done = self._gate.expire(request)
            if done is not None:
                changed.append(done)
        changed.extend(self._recovery.sweep())
        for request in self._store.stuck(now - self._executing_limit):
            done = self._gate.fail_stuck(request)
            if done is not None:
                changed.append(done)
        return changed

    def pending(self) -> list[ApprovalRequest]:
        """PENDING requests not yet expired, oldest first."""
        return self._store.pending(self._clock())

    def get(self, request_id: str) -> ApprovalRequest:
        """The request; Refused("unknown request") when absent or malformed."""
        return self._gate.get(request_id)

    # Helpers ------------------------------------------------------------------------------

    def _context(self, target: Target, *, shared: bool = False) -> ActionContext:
        """A context on a FRESH diagnosis of ``target`` (RedisUnavailable propagates);
        ``shared``: one running for another reader will do (``DiagnosisService.shared``)."""
        read = self._diagnosis.shared if shared else self._diagnosis.diagnose
        diagnosis = read(target.name)
        cluster, redis = self._adapters(target)
        return ActionContext(
            target=target,
            diagnosis=diagnosis,
            cluster=cluster,
            redis=redis,
            limits=self._limits,
            clock=self._clock,
        )

    def _record(self, entry: AuditEntry) -> None:
        self._audit.record(entry)
