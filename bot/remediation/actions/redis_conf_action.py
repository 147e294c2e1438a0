"""The base of the actions that set redis.conf directives, live and in the Redis ConfigMap.

Only the directives being changed are edited (``bot.redisconf``):
the runbook's patches replace the whole file, silently resetting
``maxmemory`` to 512mb and dropping ``appendonly``. The ConfigMap patch
carries the resourceVersion read at preview time, so a concurrent edit makes
it fail (409) instead of being overwritten. Before any of it, the persisted file
is checked against the action's intent (``drift_guard``).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from bot.diagnosis.model import Drift
from bot.errors import RedisMemError, UsageError
from bot.redisconf import (
    diff_lines,
    directive_lines,
    get_directive,
    set_directives,
)
from bot.remediation import persisted
from bot.remediation.actions.base import (
    Action,
    PartlyApplied,
    Run,
    SoftFailure,
    check_unchanged,
    preview_version,
)
from bot.remediation.actions.drift_guard import (
    drift_fact,
    drift_warnings,
    edit_conflict,
    live_drift,
)
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    StepKind,
)
from bot.remediation.nodes import applied_on, partly
from bot.remediation.ports import BulkProgress, StopFlag

RV = "configmap_resource_version"


@dataclass(frozen=True)
class ConfState:
    """The Redis ConfigMap's redis.conf, its resourceVersion, and the live values now."""

    text: str
    resource_version: str
    live: dict[str, str | None]  # CONFIG GET value; None when CONFIG is unavailable
    drift: tuple[Drift, ...] = ()  # live settings the ConfigMap says otherwise about


# The state an action reads before a preview: ``ConfState``, or a subclass's own
# extension of it (an action that also sizes the pod adds its resources); the base
# reads only what every Redis-config action needs.
C = TypeVar("C", bound=ConfState)


def configmap_where(ctx: ActionContext) -> str:
    """``ConfigMap <ns>/<name> <key>``: how previews and results name the file."""
    return persisted.configmap_where(ctx.target.kubernetes)


def read_redis_conf(ctx: ActionContext) -> tuple[str, str]:
    """redis.conf from the target's ConfigMap and the ConfigMap's resourceVersion."""
    return persisted.read_redis_conf(ctx.cluster, ctx.target.kubernetes)


class RedisConfigAction(Action[C]):
    """Set some redis.conf directives live and in the ConfigMap (only those lines change).

    Generic over the state it reads (``C``): ``extend`` turns the ConfigMap-and-live
    reading into it, so an action that reads more (the pod's resources) says so in its
    own state type instead of a field of this class's.
    """

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """redis.conf directive -> value as the file writes it."""
        raise NotImplementedError

    def live_values(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """CONFIG SET name -> value (the same as the file unless a subclass says otherwise)."""
        return self.directives(ctx, params)

    def show_live(self, name: str, value: str) -> str:
        """A live value as people read it (a size as ``1024mb`` rather than bytes)."""
        return value

    def validate(self, ctx: ActionContext, params: Params) -> None:
        """The parameters, then the persisted redis.conf (read now): UsageError, one line.

        Called at request, preview, re-check and execution, so a ConfigMap edited in
        between is judged as it is when the change runs.
        """
        super().validate(ctx, params)
        self.check_values(ctx, params)
        text, _ = read_redis_conf(ctx)
        reason = self.persisted_refusal(ctx, params, text)
        if reason is not None:
            raise UsageError(reason)

    def check_values(self, ctx: ActionContext, params: Params) -> None:
        """Checks against the diagnosis, before any read (UsageError)."""

    def persisted_refusal(self, ctx: ActionContext, params: Params, text: str) -> str | None:
        """Why writing this action's directives into ``text`` contradicts its intent, or None."""
        return edit_conflict(text, self.directives(ctx, params), where=configmap_where(ctx))

    def read(self, ctx: ActionContext, params: Params) -> C:
        """The ConfigMap text and version, the live values to change, and the drift; then
        whatever the action's own state adds (``extend``)."""
        text, version = read_redis_conf(ctx)
        live = {name: ctx.redis.config_get(name) for name in self.live_values(ctx, params)}
        drift = live_drift(ctx, text)
        conf = ConfState(text=text, resource_version=version, live=live, drift=drift)
        return self.extend(ctx, params, conf)

    @abstractmethod
    def extend(self, ctx: ActionContext, params: Params, conf: ConfState) -> C:
        """The action's state from the common reading (``PlainConfigAction``: as it is)."""

    def facts(self, ctx: ActionContext, params: Params, state: C) -> dict[str, str]:
        """ConfigMap resourceVersion, each live value, and the drift when there is some."""
        facts = {RV: state.resource_version}
        for name, value in state.live.items():
            facts[f"live {name}"] = "unreadable" if value is None else value
        return {**facts, **drift_fact(state.drift, self.directives(ctx, params))}

    def changes(
        self, ctx: ActionContext, params: Params, state: C
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """One line per live setting, then the ConfigMap diff (only the directive lines)."""
        changes = [
            self._live_change(name, value, state)
            for name, value in self.live_values(ctx, params).items()
        ]
        warnings = []
        if any(v is None for v in state.live.values()):
            warnings.append(
                "this server does not allow CONFIG GET/SET (renamed or denied): the change takes "
                "effect only when Redis restarts with the new ConfigMap"
            )
        wanted = self.directives(ctx, params)
        new_text = set_directives(state.text, wanted)
        changes.append(
            Change(
                where=configmap_where(ctx),
                before=", ".join(
                    f"{n} {get_directive(state.text, n) or '(absent)'}" for n in wanted
                ),
                after=", ".join(f"{n} {v}" for n, v in wanted.items()),
                diff=tuple(diff_lines(state.text, new_text)),
            )
        )
        warnings += _duplicate_warnings(state.text, wanted)
        warnings += drift_warnings(state.drift, wanted)
        return tuple(changes), tuple(warnings)

    def _live_change(self, name: str, value: str, state: C) -> Change:
        before = state.live.get(name)
        if before is None:
            return Change(f"live CONFIG SET {name}", "", f"{value} (NOT possible on this server)")
        if before == value:
            return Change(f"live CONFIG SET {name}", "", f"{value} (already)")
        return Change(f"live CONFIG SET {name}", before, value)

    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Live values first (immediate relief), then the ConfigMap (survives restarts)."""
        self.validate(ctx, params)
        run = Run(self.id)
        if preview is not None:
            # Before any change: a live value set and then a 409 would be a partial change.
            check = partial(self._unchanged_since, ctx, preview)
            run.step("check ConfigMap", check, kind=StepKind.CHECK)
        for name, value in self.live_values(ctx, params).items():
            shown = self.show_live(name, value)
            set_live = partial(_config_set, ctx, name, value, shown)
            run.step(f"live {name}", set_live, kind=StepKind.LIVE)
        run.step("ConfigMap", lambda: self._patch_configmap(ctx, params, preview))
        self.more_steps(ctx, params, run, preview)
        return run.result(self.consequence(run))

    def more_steps(
        self, ctx: ActionContext, params: Params, run: Run, preview: Preview | None
    ) -> None:
        """Steps after the ConfigMap (a subclass's own, e.g. the pod's resources)."""

    def consequence(self, run: Run) -> str:
        """What a partial result means for the running Redis."""
        live_all = run.of_kind(StepKind.LIVE)
        live_ok = [s for s in live_all if s.ok]
        cm_ok = run.ok("ConfigMap")
        if run.complete:
            return ""
        if run.failed is not None and run.failed.partial:
            # Not rolled back: undoing it is more CONFIG SETs that can fail the same way,
            # and the primaries that took it got the relief that was approved.
            return (
                "the ConfigMap was NOT written and the primaries that took the change keep "
                "it (not rolled back): the cluster runs mixed settings; run the action again "
                "once every primary answers"
            )
        if run.failed is not None and run.failed.kind is StepKind.LIVE:
            return (
                "the ConfigMap was NOT written: a value Redis refuses would stop it from starting"
                + ("" if live_ok else "; nothing changed")
            )
        if live_ok and not cm_ok:
            return "the live value will be lost on restart"
        if cm_ok and len(live_ok) < len(live_all):
            return "the ConfigMap value takes effect only when Redis restarts"
        if not live_ok and not cm_ok:
            return "nothing changed"  # also when the pre-check refused
        return ""

    def _unchanged_since(self, ctx: ActionContext, preview: Preview) -> str:
        where = configmap_where(ctx)
        _, current = read_redis_conf(ctx)
        version = check_unchanged(where=where, fact=RV, preview=preview, current=current)
        return f"{where} unchanged since the preview (resourceVersion {version})"

    def _patch_configmap(self, ctx: ActionContext, params: Params, preview: Preview | None) -> str:
        k = ctx.target.kubernetes
        text, version = read_redis_conf(ctx)
        # Checked before the live changes; an edit since then makes this patch fail with 409.
        expected = preview_version(preview, fact=RV, current=version)
        reason = self.persisted_refusal(ctx, params, text)  # the very text being written
        if reason is not None:
            raise UsageError(reason)
        wanted = self.directives(ctx, params)
        new_version = ctx.cluster.patch_configmap_key(
            namespace=k.namespace,
            name=k.redis_configmap,
            key=k.redis_configmap_key,
            value=set_directives(text, wanted),
            expected_resource_version=expected,
        )
        settings = ", ".join(f"{n} {v}" for n, v in wanted.items())
        return f"{configmap_where(ctx)} set {settings} (resourceVersion {new_version})"


def _config_set(ctx: ActionContext, name: str, value: str, shown: str) -> str:
    """CONFIG SET; refused while CONFIG works is a hard stop (see ``RedisRefused``)."""
    readable = ctx.redis.config_get(name) is not None
    result = ctx.redis.config_set(name, value)
    where = applied_on(result.nodes)  # a cluster: which primaries took it
    if result.applied:
        return f"live {name} set to {shown}{where}"
    if partly(result.nodes):
        raise PartlyApplied(f"set to {shown}{where}")
    message = f"CONFIG SET {name} {shown} not applied: {result.reason}"
    if readable:
        raise RedisRefused(message)
    raise SoftFailure(message)


class RedisRefused(RedisMemError):
    """Redis rejected the value itself: written to redis.conf it would stop Redis from starting."""


def _duplicate_warnings(text: str, wanted: dict[str, str]) -> list[str]:
    out = []
    for name in wanted:
        lines = directive_lines(text, name)
        if len(lines) > 1:
            where = ", ".join(str(n) for n in lines)
            out.append(
                f"redis.conf has {name} on lines {where}: the last one (which redis uses) is "
                "changed, the earlier ones are left as they are"
            )
    return out


class PlainConfigAction(RedisConfigAction[ConfState]):
    """A Redis-config action that reads nothing beyond the ConfigMap and the live values."""

    def extend(self, ctx: ActionContext, params: Params, conf: ConfState) -> ConfState:
        """The common reading, as it is."""
        return conf
