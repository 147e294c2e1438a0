"""One approved request, from the claim to its final state: re-check, execute, verify.

Runs only in the caller that won the PENDING -> EXECUTING UPDATE, so nothing
here races with another approver. Each step is audited before the next runs.
Before the change, an audit write that fails ends the request FAILED ("audit
unavailable, stopped before ...") and the AuditUnavailable is raised: nothing
runs. Once the change has run, a refused audit write neither stops nor hides it:
the row, and every later one of this request (so the trail keeps their order),
is kept on the request (``bot.approvals.unrecorded``), whose stored error says
"applied, but not recorded in the audit trail: <reason>"; ``bot.approvals.backlog``
writes them when the database takes inserts again. Only when storing the end
fails too (the whole database down) is AuditUnavailable raised, saying the change
was applied; ``RemediationService.expire_due`` later fails the request left EXECUTING.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from bot.approvals.events import request_event
from bot.approvals.model import Actor, ApprovalRequest, RequestState
from bot.approvals.progress import ProgressReporter
from bot.approvals.store import ApprovalStore
from bot.approvals.unrecorded import Backlog, encode, unrecorded_error, with_backlog
from bot.audit.entry import AuditEntry, AuditSink
from bot.config import Target
from bot.diagnosis.model import Diagnosis
from bot.errors import AuditUnavailable, RedisMemError
from bot.remediation.actions.base import Action
from bot.remediation.catalogue import get_action
from bot.remediation.model import ActionContext, ExecutionResult, Preview
from bot.services.diagnose import DiagnosisService

ContextFactory = Callable[[Target], ActionContext]

log = logging.getLogger(__name__)


class Execution:
    """The steps after a successful claim; ``run`` returns the final request."""

    def __init__(
        self,
        *,
        request: ApprovalRequest,
        approver: Actor,
        store: ApprovalStore,
        audit: AuditSink,
        diagnosis: DiagnosisService,
        context: ContextFactory,
        reporter: ProgressReporter,
    ) -> None:
        self.request = request
        self.approver = approver
        self._store = store
        self._audit = audit
        self._diagnosis = diagnosis
        self._context = context
        self._reporter = reporter
        self._unrecorded: list[dict[str, Any]] = []  # rows the database refused, in order
        self._unrecorded_reason = ""

    def run(self) -> ApprovalRequest:
        """Audit the approval, re-check, execute, audit the outcome, verify, store the end."""
        req = self.request
        self._audited("remediation.approved", "ok", f"approved {req.action_id} on {req.target}")
        self._reporter.announce(req)
        action = get_action(req.action_id)
        params = dict(req.params)
        preview = Preview.from_dict(req.preview)
        prepared = self._recheck(action, params, preview)
        if isinstance(prepared, str):
            self._audited("remediation.refused", "refused", f"not executed: {prepared}")
            return self._end(RequestState.REFUSED, error=prepared)
        result = self._execute(action, params, prepared, preview)
        self._after_change(
            "remediation.executed" if result.complete else "remediation.failed",
            "ok" if result.complete else "error",
            f"{req.action_id} on {req.target}: {result.state}",
            keys_changed=result.keys_changed,
            state=result.state,
            complete=result.complete,
        )
        return self._verify(action, params, prepared.diagnosis, result)

    def _recheck(
        self, action: Action[Any], params: dict[str, Any], preview: Preview
    ) -> ActionContext | str:
        """A context on a fresh diagnosis, or why the preview is wrong now."""
        try:
            ctx = self._context(self._diagnosis.target(self.request.target))
        except RedisMemError as err:
            return f"could not re-check against a fresh diagnosis: {err}"
        reason = action.recheck(ctx, params, preview)
        return ctx if reason is None else reason

    def _execute(
        self, action: Action[Any], params: dict[str, Any], ctx: ActionContext, preview: Preview
    ) -> ExecutionResult:
        try:
            return action.execute(ctx, params, self._reporter.bulk, preview=preview)
        except Exception as err:  # the catalogue states failures; this is the unforeseen rest
            reporter = self._reporter
            touched = reporter.changed
            text = " ".join(str(err).split()) or type(err).__name__
            return ExecutionResult(
                action_id=action.id,
                steps=(),
                complete=False,
                state=f"stopped by an error ({text[:300]}): at least {touched:,} keys were "
                f"changed ({reporter.scanned:,} scanned)"
                if touched
                else f"stopped by an error ({text[:300]})",
                keys_changed=touched if touched else None,
            )

    def _verify(
        self,
        action: Action[Any],
        params: dict[str, Any],
        before: Diagnosis,
        result: ExecutionResult,
    ) -> ApprovalRequest:
        outcome = _result_dict(result)
        final = RequestState.SUCCEEDED if result.complete else RequestState.FAILED
        error = None if result.complete else result.state
        status, summary, extra = self._check(action, params, before, outcome)
        self._after_change("remediation.verified", status, summary, **extra)
        if self._unrecorded:
            return self._end_unrecorded(final, result=outcome, error=error)
        return self._end(final, result=outcome, error=error)

    def _check(
        self,
        action: Action[Any],
        params: dict[str, Any],
        before: Diagnosis,
        outcome: dict[str, Any],
    ) -> tuple[str, str, dict[str, Any]]:
        """Diagnose again, put the verification in ``outcome``; (audit outcome, summary, extra)."""
        try:
            after = self._diagnosis.diagnose(self.request.target)
        except RedisMemError as err:
            outcome["verification"] = None
            outcome["verification_error"] = f"could not verify: {err}"
            return "error", outcome["verification_error"], {}
        check = action.verify(before, after, params)
        outcome["verification"] = _jsonable(asdict(check))
        return "ok", check.verdict, {"verdict": check.verdict}

    def _event(self, action: str, outcome: str, summary: str, **extra: Any) -> AuditEntry:
        return request_event(
            self.request,
            actor=self.approver,
            action=action,
            outcome=outcome,
            summary=summary,
            **extra,
        )

    def _audited(self, action: str, outcome: str, summary: str) -> None:
        """Record a step before the change; on AuditUnavailable end the request FAILED and
        re-raise the original error, even when storing that end fails too."""
        try:
            self._audit.record(self._event(action, outcome, summary))
        except AuditUnavailable as err:
            try:
                self._end(
                    RequestState.FAILED,
                    error=f"audit unavailable, stopped before {action}: {err}"[:1000],
                )
            except Exception as end_err:  # the same database is likely down: keep the cause
                log.error(
                    "could not store the end of request %s (left executing until "
                    "expire_due fails it): %s",
                    self.request.id,
                    end_err,
                )
            raise

    def _after_change(self, action: str, outcome: str, summary: str, **extra: Any) -> None:
        """Record a step after the change; a refused row is kept for later, never raised.

        After one refused row the later ones are kept too, so the trail keeps their order.
        """
        entry = self._event(action, outcome, summary, **extra)
        if not self._unrecorded:
            try:
                self._audit.record(entry)
                return
            except AuditUnavailable as err:
                self._unrecorded_reason = err.message
        self._unrecorded.append(encode(entry, occurred_at=self._reporter.now()))

    def _end_unrecorded(
        self, state: RequestState, *, result: dict[str, Any], error: str | None
    ) -> ApprovalRequest:
        """The end of an applied change whose rows the database refused: keep them on it."""
        req, reason = self.request, self._unrecorded_reason
        backlog = Backlog(entries=tuple(self._unrecorded), reason=reason, error=error)
        log.error(
            "request %s: %s on %s was applied, but %d audit row(s) were not recorded "
            "(kept on the request, written when the database takes them): %s",
            req.id,
            req.action_id,
            req.target,
            len(backlog.entries),
            reason,
        )
        try:
            return self._end(
                state, result=with_backlog(result, backlog), error=unrecorded_error(error, reason)
            )
        except AuditUnavailable as err:
            # The database is down altogether: say so, with the first error (the cause).
            log.error(
                "request %s: its result (%s) could not be stored either: %s",
                req.id,
                result.get("state"),
                err,
            )
            raise AuditUnavailable(
                f"{req.action_id} on {req.target} was applied ({result.get('state')}), but "
                f"neither its audit rows nor its result could be stored: {reason}"
            ) from None

    def _end(
        self,
        state: RequestState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ApprovalRequest:
        """EXECUTING -> final (we hold the claim, so the UPDATE cannot lose)."""
        reporter = self._reporter
        # The last report may be throttled away: the stored line ends on the exact counts.
        progress = reporter.line() if reporter.scanned else reporter.request.progress
        self._store.transition(
            self.request.id,
            expected=RequestState.EXECUTING,
            to=state,
            result=result,
            error=error,
            progress=progress,
        )
        final = replace(self.request, state=state, result=result, error=error, progress=progress)
        self.request = final
        reporter.announce(final)
        return final


def _result_dict(result: ExecutionResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "complete": result.complete,
        "state": result.state,
        "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in result.steps],
        "keys_changed": result.keys_changed,
    }
    if result.bulk is not None:
        data["bulk"] = asdict(result.bulk)
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
