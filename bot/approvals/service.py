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
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.events import loose_event, request_event
from bot.approvals.execution import Execution
from bot.approvals.model import (
    SCHEDULER,
    ActionForm,
    Actor,
    ApprovalRequest,
    RequestState,
    valid_request_id,
)
from bot.approvals.policy import ApproverPolicy
from bot.approvals.progress import Progress, ProgressReporter
from bot.approvals.store import ApprovalStore
from bot.audit.entry import AuditEntry, AuditSink
from bot.clock import utc_now
from bot.config import Target
from bot.errors import RedisMemError, Refused, UsageError
from bot.remediation.actions.base import Action
from bot.remediation.catalogue import get_action
from bot.remediation.model import ActionContext, Params, RemediationLimits
from bot.remediation.params import MIB, ParamSpec
from bot.remediation.ports import Cluster, RedisOps
from bot.services.diagnose import DiagnosisService

AdapterFactory = Callable[[Target], tuple[Cluster, RedisOps]]

__all__ = ["AdapterFactory", "Progress", "RemediationService"]

PENDING = RequestState.PENDING
EXECUTING = RequestState.EXECUTING
# Longer than any action runs: an EXECUTING request this old lost its bot (restart, or
# its database failed while storing the end) and would otherwise stay EXECUTING forever.
EXECUTING_LIMIT = timedelta(hours=1)
OUTCOME_UNKNOWN = (
    "outcome unknown: the bot stopped or lost its database while executing; see the audit trail"
)


class RemediationService:
    """Request, approve, reject and expire remediation actions; every step audited."""

    def __init__(
        self,
        *,
        store: ApprovalStore,
        audit: AuditSink,
        diagnosis: DiagnosisService,
        adapters: AdapterFactory,
        policy: ApproverPolicy,
        limits: RemediationLimits = RemediationLimits(),  # noqa: B008 (frozen, shared safely)
        ttl: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = utc_now,
        progress_interval: timedelta = timedelta(seconds=1),
        executing_limit: timedelta = EXECUTING_LIMIT,
    ) -> None:
        """``ttl``: how long a request waits for approval; ``progress_interval``: report pace;
        ``executing_limit``: after this long EXECUTING, ``expire_due`` fails a request."""
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

    @property
    def policy(self) -> ApproverPolicy:
        """Who may approve."""
        return self._policy

    @property
    def limits(self) -> RemediationLimits:
        """The limits every action runs under."""
        return self._limits

    # Requesting ---------------------------------------------------------------------------

    def form(self, *, action_id: str, target_name: str | None) -> ActionForm:
        """The modal: parameters prefilled from a fresh diagnosis, and why it cannot run (if so)."""
        action = get_action(action_id)
        target = self._diagnosis.target(target_name)
        ctx = self._context(target)
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
    ) -> ApprovalRequest:
        """Preview the action now and store it PENDING (audited first); refusals audited."""

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
        """Remember where the request's message is (so it can be updated in place)."""
        if not valid_request_id(request_id) or not self._store.set_fields(
            request_id, channel=channel, message_ts=ts
        ):
            raise Refused("unknown request")

    # Deciding -----------------------------------------------------------------------------

    def approve(
        self, *, request_id: str, approver: Actor, progress: Progress | None = None
    ) -> ApprovalRequest:
        """Approve, re-check, execute and verify; returns the final request (see module doc)."""
        request = self._load(request_id, approver)
        if approver.id == request.requester:
            raise self._deny(request, approver, "you cannot approve your own request")
        if not self._approver(request, approver):
            raise self._deny(request, approver, "you are not an approver (REDIS_MEM_APPROVERS)")
        self._check_pending(request, approver)
        now = self._clock()
        won = self._store.transition(
            request.id,
            expected=PENDING,
            to=EXECUTING,
            unexpired_at=now,
            decided_by=approver.id,
            decided_at=now,
        )
        if not won:
            self._lost_race(request, approver)
        claimed = replace(request, state=EXECUTING, decided_by=approver.id, decided_at=now)
        reporter = ProgressReporter(
            store=self._store,
            request=claimed,
            notify=progress,
            clock=self._clock,
            interval=self._progress_interval,
        )
        return self._execution(claimed, approver, reporter).run()

    def _execution(
        self, request: ApprovalRequest, approver: Actor, reporter: ProgressReporter
    ) -> Execution:
        return Execution(
            request=request,
            approver=approver,
            store=self._store,
            audit=self._audit,
            diagnosis=self._diagnosis,
            context=self._context,
            reporter=reporter,
        )

    def reject(self, *, request_id: str, actor: Actor) -> ApprovalRequest:
        """Approvers reject, the requester cancels, a PENDING request; others are refused."""
        request = self._load(request_id, actor)
        cancel = actor.id == request.requester
        if not cancel and not self._approver(request, actor):
            raise self._deny(request, actor, "only an approver or the requester can reject")
        self._check_pending(request, actor)
        now = self._clock()
        if not self._store.transition(
            request.id,
            expected=PENDING,
            to=RequestState.REJECTED,
            decided_by=actor.id,
            decided_at=now,
        ):
            self._lost_race(request, actor)
        rejected = replace(
            request, state=RequestState.REJECTED, decided_by=actor.id, decided_at=now
        )
        how = "cancelled by the requester" if cancel else "rejected"
        self._record(
            request_event(
                rejected,
                actor=actor,
                action="remediation.rejected",
                outcome="cancelled" if cancel else "rejected",
                summary=f"{request.action_id} on {request.target} {how}",
            )
        )
        return rejected

    def expire_due(self) -> list[ApprovalRequest]:
        """Mark every PENDING request past its expiry EXPIRED, and every request EXECUTING
        longer than ``executing_limit`` FAILED (outcome unknown); each audited."""
        now = self._clock()
        changed = []
        for request in self._store.due(now):
            done = self._expire(request)
            if done is not None:
                changed.append(done)
        for request in self._store.stuck(now - self._executing_limit):
            done = self._fail_stuck(request)
            if done is not None:
                changed.append(done)
        return changed

    def pending(self) -> list[ApprovalRequest]:
        """PENDING requests not yet expired, oldest first."""
        return self._store.pending(self._clock())

    def get(self, request_id: str) -> ApprovalRequest:
        """The request; Refused("unknown request") when absent or malformed."""
        request = self._store.get(request_id) if valid_request_id(request_id) else None
        if request is None:
            raise Refused("unknown request")
        return request

    # Helpers ------------------------------------------------------------------------------

    def _context(self, target: Target) -> ActionContext:
        """A context on a FRESH diagnosis of ``target`` (RedisUnavailable propagates)."""
        diagnosis = self._diagnosis.diagnose(target.name)
        cluster, redis = self._adapters(target)
        return ActionContext(
            target=target,
            diagnosis=diagnosis,
            cluster=cluster,
            redis=redis,
            limits=self._limits,
            clock=self._clock,
        )

    def _load(self, request_id: str, actor: Actor) -> ApprovalRequest:
        """``get``, auditing an unknown id as ``access.denied``."""
        try:
            return self.get(request_id)
        except Refused:
            self._record(
                loose_event(
                    actor=actor,
                    action="access.denied",
                    outcome="denied",
                    summary="refused: unknown request",
                    request_id=str(request_id),
                )
            )
            raise

    def _approver(self, request: ApprovalRequest, actor: Actor) -> bool:
        """Whether ``actor`` may approve; a failed group look-up refuses (fail closed, audited)."""
        try:
            return self._policy.is_approver(actor.id)
        except RedisMemError as err:
            raise self._deny(
                request, actor, f"could not check the approver groups: {err}"
            ) from None

    def _check_pending(self, request: ApprovalRequest, actor: Actor) -> None:
        if request.state is not PENDING:
            raise self._deny(request, actor, _done_reason(request))
        if request.expired_at(self._clock()):
            self._expire(request)
            raise self._deny(request, actor, _expired_reason(request))

    def _lost_race(self, request: ApprovalRequest, actor: Actor) -> None:
        """Someone else's conditional UPDATE won (or it expired meanwhile): refuse."""
        current = self._store.get(request.id) or request
        if current.expired_at(self._clock()):
            self._expire(current)
            raise self._deny(current, actor, _expired_reason(current))
        raise self._deny(current, actor, f"already being handled ({current.state.value})")

    def _expire(self, request: ApprovalRequest) -> ApprovalRequest | None:
        """PENDING -> EXPIRED; only the caller that wins the UPDATE audits it."""
        if not self._store.transition(request.id, expected=PENDING, to=RequestState.EXPIRED):
            return None
        expired = replace(request, state=RequestState.EXPIRED)
        self._record(
            request_event(
                expired,
                actor=SCHEDULER,
                action="remediation.expired",
                outcome="expired",
                summary=f"{request.action_id} on {request.target} expired unapproved "
                f"at {request.expires_at:%H:%M} UTC",
            )
        )
        return expired

    def _fail_stuck(self, request: ApprovalRequest) -> ApprovalRequest | None:
        """EXECUTING -> FAILED (outcome unknown); only the caller that wins audits it."""
        if not self._store.transition(
            request.id, expected=EXECUTING, to=RequestState.FAILED, error=OUTCOME_UNKNOWN
        ):
            return None
        failed = replace(request, state=RequestState.FAILED, error=OUTCOME_UNKNOWN)
        self._record(
            request_event(
                failed,
                actor=SCHEDULER,
                action="remediation.failed",
                outcome="error",
                summary=f"{request.action_id} on {request.target}: {OUTCOME_UNKNOWN}",
            )
        )
        return failed

    def _deny(self, request: ApprovalRequest, actor: Actor, reason: str) -> Refused:
        """Audit ``access.denied`` (AuditUnavailable propagates) and return the Refused."""
        self._record(
            request_event(
                request,
                actor=actor,
                action="access.denied",
                outcome="denied",
                summary=f"refused on {request.action_id}: {reason}",
                reason=reason,
                state=request.state.value,
            )
        )
        return Refused(reason)

    def _record(self, entry: AuditEntry) -> None:
        self._audit.record(entry)


def _done_reason(request: ApprovalRequest) -> str:
    if request.state is EXECUTING:
        return f"already approved by {request.decided_by} and running"
    if request.state is RequestState.EXPIRED:
        return _expired_reason(request)
    by = f" by {request.decided_by}" if request.decided_by else ""
    return f"this request is already {request.state.value}{by}"


def _expired_reason(request: ApprovalRequest) -> str:
    return f"this request expired at {request.expires_at:%H:%M} UTC: request it again"


def raw_text(spec: ParamSpec, value: Any) -> str:
    """A value as text the parameter parses back (prefill): sizes in mb, seconds plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.kind == "size" and isinstance(value, int) and value % MIB == 0:
        return f"{value // MIB}mb"
    return str(value)
