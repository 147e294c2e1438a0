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
was applied; the approval sweep ends the request left EXECUTING as INTERRUPTED once its
heartbeat is stale (``bot.approvals.recovery``).

A key action stops before its next batch when its ``StopSignal`` says so: a Cancel ends
the request CANCELLED with the exact counts (``remediation.cancelled``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from bot.approvals.events import request_event
from bot.approvals.model import Actor, ApprovalRequest, RequestState
from bot.approvals.ports import ApprovalStorePort
from bot.approvals.progress import ProgressReporter
from bot.approvals.running import StopSignal
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
        store: ApprovalStorePort,
        audit: AuditSink,
        diagnosis: DiagnosisService,
        context: ContextFactory,
        reporter: ProgressReporter,
        stop: StopSignal | None = None,
    ) -> None:
        """``stop``: asked before every batch of a key action (a Cancel, a row taken away)."""
        self.request = request
        self.approver = approver
        self._store = store
        self._audit = audit
        self._diagnosis = diagnosis
        self._context = context
        self._reporter = reporter
        self._stop = stop
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
        result = self._taken_away(self._execute(action, params, prepared, preview))
        by = self._cancelled_by(result)
        action_name, outcome = "remediation.executed", "ok"
        if by is not None:
            action_name, outcome = "remediation.cancelled", "cancelled"
        elif not result.complete:
            action_name, outcome = "remediation.failed", "error"
        self._after_change(
            action_name,
            outcome,
            f"{req.action_id} on {req.target}: {result.state}",
            keys_changed=result.keys_changed,
            state=result.state,
            complete=result.complete,
            **({} if by is None else {"cancelled_by": by}),
        )
        return self._verify(action, params, prepared.diagnosis, result)

    def _taken_away(self, result: ExecutionResult) -> ExecutionResult:
        """Say so when the stop flag fired because another process ended the request."""
        bulk = result.bulk
        if self._stop is None or not self._stop.lost or bulk is None or bulk.stopped != "stopped":
            return result
        state = (
            f"stopped after {bulk.changed:,} keys ({bulk.scanned:,} scanned): another process "
            "ended this request as interrupted while it ran here"
        )
        return replace(result, state=state)

    def _cancelled_by(self, result: ExecutionResult) -> str | None:
        """Who cancelled it, when a Cancel (not an error, not the cap) stopped it short."""
        stop = self._stop
        if stop is None or stop.cancelled_by is None or stop.lost or result.complete:
            return None
        if result.bulk is not None and result.bulk.stopped != "stopped":
            return None  # it ended for another reason (an error) before the cancel was seen
        return stop.cancelled_by

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
            return action.execute(
                ctx, params, self._reporter.bulk, preview=preview, should_stop=self._stop
            )
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
        by = self._cancelled_by(result)
        if by is not None:
            final, outcome["cancelled_by"] = RequestState.CANCELLED, by
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
                    "could not store the end of request %s (left executing until the "
                    "sweep ends it as interrupted): %s",
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
        """EXECUTING -> final. We hold the claim: only another process that believed this
        one gone (its heartbeat unwritten for 45 s) can have ended it first (``_taken``)."""
        reporter = self._reporter
        # The last report may be throttled away: the stored line ends on the exact counts.
        counts: dict[str, Any] = {"progress": reporter.request.progress}
        if reporter.scanned:
            counts = reporter.counts()
        won = self._store.transition(
            self.request.id,
            expected=RequestState.EXECUTING,
            to=state,
            result=result,
            error=error,
            **counts,
        )
        if not won:  # another process ended it as interrupted, believing this one gone
            return self._taken(state, result)
        final = replace(self.request, state=state, result=result, error=error, **counts)
        if self._stop is not None and self._stop.cancelled_by is not None:
            final = self._with_cancel(final)
        self.request = final
        reporter.announce(final)
        return final

    def _with_cancel(self, final: ApprovalRequest) -> ApprovalRequest:
        """The final request with its cancel flag (who, when), as the row has it."""
        try:
            stored = self._store.get(final.id)
        except AuditUnavailable:
            stored = None
        if stored is None:
            return replace(
                final, cancel_requested_by=self._stop.cancelled_by if self._stop else None
            )
        return replace(
            final,
            cancel_requested_by=stored.cancel_requested_by,
            cancel_requested_at=stored.cancel_requested_at,
        )

    def _taken(self, state: RequestState, result: dict[str, Any] | None) -> ApprovalRequest:
        """The row was ended elsewhere: keep its state, say in the log what really happened
        (the audit trail has the rows of this execution)."""
        log.error(
            "request %s ended here as %s (%s), but another process had already marked it "
            "ended: the stored state stays as that process wrote it",
            self.request.id,
            state.value,
            (result or {}).get("state"),
        )
        current = self._store.get(self.request.id) or self.request
        self.request = current
        self._reporter.announce(current)
        return current


def _result_dict(result: ExecutionResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "complete": result.complete,
        "state": result.state,
        "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in result.steps],
        "keys_changed": result.keys_changed,
    }
    if result.bulk is not None:
        bulk = asdict(result.bulk)
        nodes = bulk.pop("nodes")  # a cluster's primaries; a one-server target has none
        data["bulk"] = {**bulk, "nodes": list(nodes)} if nodes else bulk
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
