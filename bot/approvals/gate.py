"""Who may decide a request, and when: every refusal audited before it is raised.

The checks ``RemediationService.approve``/``reject`` run before their conditional
UPDATE, and the two scheduler transitions (expiry, stuck executions). Each state change
here is one conditional UPDATE; only the caller that wins it audits the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.events import loose_event, request_event
from bot.approvals.model import (
    SCHEDULER,
    Actor,
    ApprovalRequest,
    Origin,
    RequestState,
    valid_request_id,
)
from bot.approvals.policy import ApproverPolicy
from bot.approvals.ports import ApprovalStorePort
from bot.audit.entry import AuditEntry, AuditSink
from bot.errors import RedisMemError, Refused

PENDING = RequestState.PENDING
EXECUTING = RequestState.EXECUTING
# Longer than any action runs: an EXECUTING request this old lost its bot (restart, or
# its database failed while storing the end) and would otherwise stay EXECUTING forever.
EXECUTING_LIMIT = timedelta(hours=1)
OUTCOME_UNKNOWN = (
    "outcome unknown: the bot stopped or lost its database while executing; see the audit trail"
)


class Gate:
    """The refusals and scheduler transitions of approval requests, each audited."""

    def __init__(
        self,
        *,
        store: ApprovalStorePort,
        audit: AuditSink,
        policy: ApproverPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._audit = audit
        self._policy = policy
        self._clock = clock

    def now(self) -> datetime:
        """The injected clock."""
        return self._clock()

    def get(self, request_id: str) -> ApprovalRequest:
        """The request; Refused("unknown request") when absent or malformed."""
        request = self._store.get(request_id) if valid_request_id(request_id) else None
        if request is None:
            raise Refused("unknown request")
        return request

    def load(self, request_id: str, actor: Actor) -> ApprovalRequest:
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

    def is_approver(self, request: ApprovalRequest, actor: Actor) -> bool:
        """Whether ``actor`` may approve; a failed group look-up refuses (fail closed, audited)."""
        try:
            return self._policy.is_approver(actor.id)
        except RedisMemError as err:
            raise self.deny(request, actor, f"could not check the approver groups: {err}") from None

    def check_origin(self, request: ApprovalRequest, actor: Actor, origin: Origin | None) -> None:
        """A click from another team or channel than the request's is refused (audited)."""
        reason = None if origin is None else origin.refusal(request)
        if origin is not None and reason is not None:
            raise self.deny(
                request, actor, reason, clicked_team=origin.team, clicked_channel=origin.channel
            )

    def check_pending(self, request: ApprovalRequest, actor: Actor) -> None:
        if request.state is not PENDING:
            raise self.deny(request, actor, _done_reason(request))
        if request.expired_at(self._clock()):
            self.expire(request)
            raise self.deny(request, actor, _expired_reason(request))

    def lost_race(self, request: ApprovalRequest, actor: Actor) -> None:
        """Someone else's conditional UPDATE won (or it expired meanwhile): refuse."""
        current = self._store.get(request.id) or request
        if current.expired_at(self._clock()):
            self.expire(current)
            raise self.deny(current, actor, _expired_reason(current))
        raise self.deny(current, actor, f"already being handled ({current.state.value})")

    def expire(self, request: ApprovalRequest) -> ApprovalRequest | None:
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

    def fail_stuck(self, request: ApprovalRequest) -> ApprovalRequest | None:
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

    def deny(self, request: ApprovalRequest, actor: Actor, reason: str, **extra: Any) -> Refused:
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
                **extra,
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
    if request.state in (RequestState.INTERRUPTED, RequestState.CANCELLED):
        return f"this request was approved by {request.decided_by} and is {request.state.value}"
    by = f" by {request.decided_by}" if request.decided_by else ""
    return f"this request is already {request.state.value}{by}"


def _expired_reason(request: ApprovalRequest) -> str:
    return f"this request expired at {request.expires_at:%H:%M} UTC: request it again"
