"""What every action is, and the step runner that reports partial failures exactly.

An action reads its current state once (``read``); the preview and the
facts it relied on both come from that one read, and ``recheck`` reads again
and compares the facts, so a preview is never executed against a situation
it did not describe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar, Generic, TypeVar

from bot.diagnosis.actions import ActionInfo
from bot.diagnosis.model import Diagnosis
from bot.errors import KubernetesError, RedisMemError, UsageError
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    RemediationLimits,
    Risk,
    Step,
    StepKind,
    Verification,
)
from bot.remediation.nodes import cluster_refusal
from bot.remediation.params import ParamSpec, parse_params
from bot.remediation.ports import BulkProgress, BulkResult, StopFlag
from bot.remediation.verify import compare

S = TypeVar("S")


class Action(ABC, Generic[S]):
    """One runbook fix. Subclasses set the class attributes and implement the hooks.

    ``info`` is the fix's declared entry (``bot.diagnosis.actions.ACTIONS``); ``id``,
    ``title`` and ``runbook`` are taken from it so they are never written twice.
    """

    info: ClassVar[ActionInfo]
    id: ClassVar[str]
    title: ClassVar[str]
    runbook: ClassVar[str]
    risk: ClassVar[Risk]
    # Relative change of a numeric fact that still leaves the preview right (else exact).
    tolerance: ClassVar[Mapping[str, float]] = {}
    # What verify says while the fix has not shown in memory yet.
    pending: ClassVar[str] = "no change yet"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        info = cls.__dict__.get("info")
        if info is not None:  # a concrete fix (intermediate bases declare none)
            cls.id, cls.title, cls.runbook = info.id, info.title, info.runbook

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """The parameters (bounds come from the limits)."""
        return ()

    def show_params(self, limits: RemediationLimits, params: Params) -> dict[str, str]:
        """Label -> human value, for previews and modals (``New maxmemory: 1.0 GB``)."""
        return {
            spec.label: spec.show(params[spec.name])
            for spec in self.specs(limits)
            if spec.name in params
        }

    def defaults(self, ctx: ActionContext) -> Params:
        """Proposed values, computed from the diagnosis and current state."""
        return {}

    def validate(self, ctx: ActionContext, params: Params) -> None:
        """Checks that need the context (used memory, caps): UsageError, one line."""
        refused = self._cluster_refusal(ctx)
        if refused:
            raise UsageError(refused[0])
        for spec in self.specs(ctx.limits):
            if spec.name not in params:
                raise UsageError(f"{self.id} needs {spec.name}")
            spec.check(params[spec.name])

    def resolve(self, ctx: ActionContext, raw: Mapping[str, str]) -> Params:
        """The defaults overlaid with ``raw`` (parsed), validated."""
        params = {
            **self.defaults(ctx),
            **parse_params(self.specs(ctx.limits), raw, action_id=self.id),
        }
        self.validate(ctx, params)
        return params

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Reasons this action cannot run now (empty: it can)."""
        return self._cluster_refusal(ctx)

    def _cluster_refusal(self, ctx: ActionContext) -> list[str]:
        # Declared with the fix (ActionInfo.not_on_cluster): refused in one line by
        # ``validate`` (before any read) and ``preconditions``.
        return cluster_refusal(ctx.target, self.id, self.info.not_on_cluster)

    @abstractmethod
    def read(self, ctx: ActionContext, params: Params) -> S:
        """Read everything the preview and the re-check need (never writes)."""

    @abstractmethod
    def facts(self, ctx: ActionContext, params: Params, state: S) -> dict[str, str]:
        """The reads the preview relies on, as strings (compared by ``recheck``)."""

    @abstractmethod
    def changes(
        self, ctx: ActionContext, params: Params, state: S
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """The concrete changes and the plain-words warnings."""

    def flags(self, ctx: ActionContext, params: Params, state: S) -> tuple[bool, bool]:
        """(loses_data, logs_users_out)."""
        return False, False

    def preview(self, ctx: ActionContext, params: Params) -> Preview:
        """Exactly what ``execute`` would change now; reads, never writes."""
        self.validate(ctx, params)
        state = self.read(ctx, params)
        changes, warnings = self.changes(ctx, params, state)
        loses_data, logs_out = self.flags(ctx, params, state)
        return Preview(
            action_id=self.id,
            title=self.title,
            runbook=self.runbook,
            risk=self.risk,
            params=dict(params),
            changes=changes,
            warnings=warnings,
            loses_data=loses_data,
            logs_users_out=logs_out,
            facts=self.facts(ctx, params, state),
        )

    @abstractmethod
    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Make the change; a failure stops the remaining steps and is stated exactly."""

    def verify(self, before: Diagnosis, after: Diagnosis, params: Params) -> Verification:
        """Memory, evictions and keys before -> after, with a verdict."""
        return compare(before, after, pending=self.pending)

    def recheck(self, ctx: ActionContext, params: Params, preview: Preview) -> str | None:
        """Why the preview is wrong now (fresh diagnosis and reads), or None when it still holds."""
        if preview.action_id != self.id:
            return f"the preview is for {preview.action_id}, not {self.id}"
        try:
            reasons = self.preconditions(ctx, params)
            if reasons:
                return reasons[0]
            self.validate(ctx, params)
            fresh = self.facts(ctx, params, self.read(ctx, params))
        except RedisMemError as err:  # Kubernetes or Redis unreachable: not safe to go on
            return str(err)
        return self.changed_fact(preview.facts, fresh)

    def changed_fact(self, old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
        """The first fact that moved beyond its tolerance, as a reason."""
        for name in sorted(set(old) | set(new)):
            was, now = old.get(name, "(none)"), new.get(name, "(none)")
            if was == now or _within(was, now, self.tolerance.get(name)):
                continue
            return f"{name} changed since the preview ({was} -> {now}): request the action again"
        return None


def _within(was: str, now: str, tolerance: float | None) -> bool:
    if tolerance is None:
        return False
    try:
        old, new = float(was), float(now)
    except ValueError:
        return False
    if old == 0:
        return new == 0
    return abs(new - old) / abs(old) <= tolerance


class Run:
    """Runs steps in order; the first hard failure stops the rest (reported as not attempted)."""

    def __init__(self, action_id: str) -> None:
        self.action_id = action_id
        self.steps: list[Step] = []
        self.failed: Step | None = None  # the step that failed hard
        self.soft: list[str] = []  # steps that did not apply but let the rest run

    def step(self, name: str, fn: Callable[[], str], *, kind: StepKind = StepKind.CHANGE) -> bool:
        """Run ``fn`` (returns what it did) unless a step failed before; True on success."""
        if self.failed is not None:
            self.steps.append(Step(name, False, "not attempted", kind, attempted=False))
            return False
        try:
            detail = fn()
        except SoftFailure as err:
            self.steps.append(Step(name, False, str(err), kind))
            self.soft.append(name)
            return False
        except PartlyApplied as err:  # a hard stop too, but some of it is in force
            self.failed = Step(name, False, str(err), kind, partial=True)
            self.steps.append(self.failed)
            return False
        except RedisMemError as err:
            self.failed = Step(name, False, str(err), kind)
            self.steps.append(self.failed)
            return False
        self.steps.append(Step(name, True, detail, kind))
        return True

    def of_kind(self, kind: StepKind) -> list[Step]:
        """The steps of ``kind``, in order."""
        return [s for s in self.steps if s.kind is kind]

    def ok(self, name: str) -> bool:
        """Whether step ``name`` ran and succeeded."""
        return any(s.name == name and s.ok for s in self.steps)

    @property
    def complete(self) -> bool:
        """Every step succeeded."""
        return all(s.ok for s in self.steps)

    def result(
        self,
        consequence: str = "",
        *,
        keys_changed: int | None = None,
        bulk: BulkResult | None = None,
    ) -> ExecutionResult:
        """The result; ``state`` says what was done, what failed and what that means."""
        parts = []
        for s in self.steps:
            if s.ok and s.kind is StepKind.CHECK:
                continue  # a check changes nothing: not part of the state
            if s.ok:
                parts.append(s.detail)
            elif not s.attempted:
                parts.append(f"{s.name} NOT changed (not attempted)")
            elif s.partial:
                parts.append(f"{s.name} PARTLY changed ({s.detail})")
            else:
                parts.append(f"{s.name} NOT changed ({s.detail})")
        state = "; ".join(parts) + (f": {consequence}" if consequence else "")
        return ExecutionResult(
            action_id=self.action_id,
            steps=tuple(self.steps),
            complete=self.complete,
            state=state,
            keys_changed=keys_changed,
            bulk=bulk,
        )


class SoftFailure(RedisMemError):
    """A step that did not apply but whose siblings still should (CONFIG SET not allowed)."""


class PartlyApplied(RedisMemError):
    """A step that changed some servers of a cluster and not others: a hard stop (the steps
    after it do not run), stated as partly changed, never as nothing changed."""


def preview_version(preview: Preview | None, *, fact: str, current: str) -> str:
    """The resourceVersion the preview read (``current`` without a preview or that fact).

    A ConfigMap patch carries it, so the API server refuses (409) if anyone edited the
    ConfigMap since the preview, even between a pre-check and the patch.
    """
    return preview.facts.get(fact, current) if preview is not None else current


def check_unchanged(*, where: str, fact: str, preview: Preview | None, current: str) -> str:
    """``current`` if the ConfigMap is still at the preview's resourceVersion, else KubernetesError.

    Checked before any change, so a ConfigMap edited since the preview stops the action
    with nothing changed and a clear reason (the 409 alone would come after live changes).
    """
    expected = preview_version(preview, fact=fact, current=current)
    if expected != current:
        raise KubernetesError(
            f"{where} changed since the preview "
            f"(resourceVersion {expected} -> {current}): request the action again"
        )
    return current


def ttl_spec(limits: RemediationLimits, *, label: str, help: str) -> ParamSpec:
    """A ``ttl_seconds`` parameter bounded by the limits (60 s .. 30 days by default)."""
    return ParamSpec(
        "ttl_seconds",
        "seconds",
        label,
        help,
        min=limits.min_ttl_seconds,
        max=limits.max_ttl_seconds,
    )
