"""Actions on the application: one key of its ConfigMap, then a rollout restart.

The app reads its ConfigMap at start-up, so the restart is what applies the
change; sessions that exist keep the TTL they were given, which is why memory
falls only as sessions renew or expire.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.diagnosis.actions import ACTIONS
from bot.errors import UsageError
from bot.remediation.actions.base import Action, Run, check_unchanged, ttl_spec
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    RemediationLimits,
)
from bot.remediation.params import ParamSpec
from bot.remediation.ports import BulkProgress, StopFlag
from bot.units import format_duration

RV = "app_configmap_resource_version"
DEFAULT_TTL_SECONDS = 86400  # the runbook's "24" hours when the key is not set
DEFAULT_MAX_CONCURRENT = 5  # the runbook's "instead of 5"


@dataclass(frozen=True)
class AppState:
    """The app ConfigMap's data and resourceVersion."""

    data: dict[str, str]
    resource_version: str


def read_app_config(ctx: ActionContext) -> AppState:
    """The target's app ConfigMap."""
    k = ctx.target.kubernetes
    data, version = ctx.cluster.read_configmap(namespace=k.namespace, name=k.app_configmap)
    return AppState(data=data, resource_version=version)


class AppConfigAction(Action[AppState]):
    """Set one key of the app ConfigMap and restart the app's Deployment."""

    key: str = ""
    pending = "no change yet: the app restart takes effect as sessions renew"

    def value(self, params: Params) -> str:
        """The new value of ``key`` as the ConfigMap stores it."""
        raise NotImplementedError

    def current(self, ctx: ActionContext) -> str | None:
        """The key's value now (None when not set)."""
        return read_app_config(ctx).data.get(self.key)

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Not when the ConfigMap already holds the value."""
        if self.current(ctx) == self.value(params):
            return [f"{self.key} is already {self.value(params)}"]
        return []

    def read(self, ctx: ActionContext, params: Params) -> AppState:
        """The app ConfigMap."""
        return read_app_config(ctx)

    def facts(self, ctx: ActionContext, params: Params, state: AppState) -> dict[str, str]:
        """Its resourceVersion (any edit since the preview is a reason to ask again)."""
        return {RV: state.resource_version, self.key: state.data.get(self.key, "(not set)")}

    def changes(
        self, ctx: ActionContext, params: Params, state: AppState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """The key before -> after, and the restart."""
        k = ctx.target.kubernetes
        return (
            Change(
                f"ConfigMap {k.namespace}/{k.app_configmap} {self.key}",
                state.data.get(self.key, "(not set)"),
                self.value(params),
            ),
            Change(f"Deployment {k.namespace}/{k.app_deployment}", "", "rollout restart"),
        ), (
            "the app's pods are replaced one by one (a rollout restart); "
            "sessions in Redis are kept",
        )

    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Patch the key (409 if the ConfigMap changed since the preview), then restart the app."""
        self.validate(ctx, params)
        run = Run(self.id)
        run.step("ConfigMap", lambda: self._patch(ctx, params, preview))
        run.step("rollout restart", lambda: self._restart(ctx))
        consequence = ""
        if run.ok("ConfigMap") and not run.complete:
            consequence = "the app keeps the old value until its pods restart"
        elif not run.complete:
            consequence = "nothing changed"
        return run.result(consequence)

    def _patch(self, ctx: ActionContext, params: Params, preview: Preview | None) -> str:
        k = ctx.target.kubernetes
        where = f"ConfigMap {k.namespace}/{k.app_configmap}"
        current = read_app_config(ctx).resource_version
        expected = check_unchanged(where=where, fact=RV, preview=preview, current=current)
        version = ctx.cluster.patch_configmap_key(
            namespace=k.namespace,
            name=k.app_configmap,
            key=self.key,
            value=self.value(params),
            expected_resource_version=expected,
        )
        return f"{where} {self.key} set to {self.value(params)} (resourceVersion {version})"

    def _restart(self, ctx: ActionContext) -> str:
        k = ctx.target.kubernetes
        at = ctx.clock()
        ctx.cluster.rollout_restart(namespace=k.namespace, deployment=k.app_deployment, at=at)
        return f"Deployment {k.namespace}/{k.app_deployment} restarted at {at:%Y-%m-%dT%H:%M:%SZ}"


def _current_int(ctx: ActionContext, key: str, default: int) -> int:
    raw = read_app_config(ctx).data.get(key)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        raise UsageError(f"app ConfigMap {key} is not a whole number ({raw!r})") from None


class ShortenSessionTtl(AppConfigAction):
    """Scenario 1, option B: sessions live shorter, so fewer are held at once."""

    info = ACTIONS["shorten-session-ttl"]
    risk = "medium"
    key = "session_ttl_seconds"

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """ttl_seconds within the limits (60 s .. 30 days by default)."""
        return (
            ttl_spec(
                limits,
                label="Session TTL",
                help="new sessions expire after this; e.g. 43200 or 12h",
            ),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """Half the current TTL (the runbook: 24h -> 12h), at least the minimum."""
        current = _current_int(ctx, self.key, DEFAULT_TTL_SECONDS)
        return {"ttl_seconds": max(ctx.limits.min_ttl_seconds, current // 2)}

    def value(self, params: Params) -> str:
        """Whole seconds."""
        return str(params["ttl_seconds"])

    def changes(
        self, ctx: ActionContext, params: Params, state: AppState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Also: who is affected."""
        changes, warnings = super().changes(ctx, params, state)
        ttl = int(self.value(params))
        return changes, (
            *warnings,
            f"sessions unused for {format_duration(ttl)} will expire: those users log in again "
            "(existing sessions keep their TTL until renewed)",
        )


class LimitConcurrentSessions(AppConfigAction):
    """Scenario 1, option C: fewer sessions per user."""

    info = ACTIONS["limit-concurrent-sessions"]
    risk = "medium"
    key = "session_max_concurrent"

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """max_concurrent: at least 1."""
        return (
            ParamSpec(
                "max_concurrent",
                "int",
                "Sessions per user",
                "a user's oldest session ends when they open one more",
                min=1,
                max=1000,
            ),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """Two fewer than now (the runbook: 5 -> 3), at least 1."""
        return {"max_concurrent": max(1, _current_int(ctx, self.key, DEFAULT_MAX_CONCURRENT) - 2)}

    def value(self, params: Params) -> str:
        """A whole number."""
        return str(params["max_concurrent"])

    def changes(
        self, ctx: ActionContext, params: Params, state: AppState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Also: who is affected."""
        changes, warnings = super().changes(ctx, params, state)
        return changes, (
            *warnings,
            f"users with more than {self.value(params)} sessions lose their oldest ones as they "
            "log in again (logged out on those devices)",
        )


class EnableSlidingWindow(AppConfigAction):
    """Scenario 6: active sessions renew their TTL on use, idle ones expire."""

    info = ACTIONS["enable-sliding-window"]
    risk = "low"
    key = "session_sliding_window"

    def value(self, params: Params) -> str:
        """Always ``true``."""
        return "true"
