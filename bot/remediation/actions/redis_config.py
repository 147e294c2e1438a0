"""Actions that change Redis settings: live with ``CONFIG SET`` and in the ConfigMap's redis.conf.

Only the directives being changed are edited (``bot.remediation.redisconf``):
the runbook's patches replace the whole file, silently resetting
``maxmemory`` to 512mb and dropping ``appendonly``. The ConfigMap patch
carries the resourceVersion read at preview time, so a concurrent edit makes
it fail (409) instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from bot.diagnosis.capacity import plan_from_diagnosis
from bot.diagnosis.model import Diagnosis
from bot.errors import KubernetesError, RedisMemError, UsageError
from bot.remediation.actions.base import (
    Action,
    Run,
    SoftFailure,
    check_unchanged,
    preview_version,
)
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    RemediationLimits,
    Verification,
)
from bot.remediation.params import (
    ParamSpec,
    format_quantity,
    parse_params,
    parse_quantity,
    round_up_mib,
)
from bot.remediation.ports import BulkProgress, StopFlag
from bot.remediation.redisconf import diff_lines, directive_lines, get_directive, set_directives
from bot.remediation.verify import compare
from bot.units import format_bytes, parse_size, redis_size

RV = "configmap_resource_version"
POLICIES = (
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
)
POLICY_TRADE_OFF = (
    "volatile-* policies evict only keys that carry a TTL, so session keys without one can "
    "never be evicted and writes fail once memory is full; allkeys-* evict any key (the least "
    "recently used first), including non-session keys without TTL"
)


@dataclass(frozen=True)
class ConfState:
    """The Redis ConfigMap's redis.conf, its resourceVersion, and the live values now."""

    text: str
    resource_version: str
    live: dict[str, str | None]  # CONFIG GET value; None when CONFIG is unavailable
    resources: dict[str, dict[str, str]] | None = None  # raise-maxmemory only


def configmap_where(ctx: ActionContext) -> str:
    """``ConfigMap <ns>/<name> <key>``: how previews and results name the file."""
    k = ctx.target.kubernetes
    return f"ConfigMap {k.namespace}/{k.redis_configmap} {k.redis_configmap_key}"


def read_redis_conf(ctx: ActionContext) -> tuple[str, str]:
    """redis.conf from the target's ConfigMap and the ConfigMap's resourceVersion."""
    k = ctx.target.kubernetes
    data, version = ctx.cluster.read_configmap(namespace=k.namespace, name=k.redis_configmap)
    if k.redis_configmap_key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise KubernetesError(
            f"configmap {k.namespace}/{k.redis_configmap} has no key {k.redis_configmap_key!r} "
            f"(keys: {keys}): check redis_configmap_key in the targets file"
        )
    return data[k.redis_configmap_key], version


class RedisConfigAction(Action[ConfState]):
    """Set some redis.conf directives live and in the ConfigMap (only those lines change)."""

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """redis.conf directive -> value as the file writes it."""
        raise NotImplementedError

    def live_values(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """CONFIG SET name -> value (the same as the file unless a subclass says otherwise)."""
        return self.directives(ctx, params)

    def show_live(self, name: str, value: str) -> str:
        """A live value as people read it (raise-maxmemory: ``1024mb`` rather than bytes)."""
        return value

    def read(self, ctx: ActionContext, params: Params) -> ConfState:
        """The ConfigMap text and version, and the live values of the settings to change."""
        text, version = read_redis_conf(ctx)
        live = {name: ctx.redis.config_get(name) for name in self.live_values(ctx, params)}
        return ConfState(text=text, resource_version=version, live=live)

    def facts(self, ctx: ActionContext, params: Params, state: ConfState) -> dict[str, str]:
        """ConfigMap resourceVersion and each live value."""
        facts = {RV: state.resource_version}
        for name, value in state.live.items():
            facts[f"live {name}"] = "unreadable" if value is None else value
        return facts

    def changes(
        self, ctx: ActionContext, params: Params, state: ConfState
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
        return tuple(changes), tuple(warnings)

    def _live_change(self, name: str, value: str, state: ConfState) -> Change:
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
            run.step("check ConfigMap", lambda: self._unchanged_since(ctx, preview))
        for name, value in self.live_values(ctx, params).items():
            shown = self.show_live(name, value)
            run.step(f"live {name}", partial(_config_set, ctx, name, value, shown))
        run.step("ConfigMap", lambda: self._patch_configmap(ctx, params, preview))
        self.more_steps(ctx, params, run, preview)
        return run.result(self.consequence(run))

    def more_steps(
        self, ctx: ActionContext, params: Params, run: Run, preview: Preview | None
    ) -> None:
        """Steps after the ConfigMap (raise-maxmemory: the pod resources)."""

    def consequence(self, run: Run) -> str:
        """What a partial result means for the running Redis."""
        live_ok = [s for s in run.steps if s.name.startswith("live ") and s.ok]
        live_all = [s for s in run.steps if s.name.startswith("live ")]
        cm_ok = run.ok("ConfigMap")
        if run.complete:
            return ""
        if run.failed is not None and run.failed.startswith("live "):
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
    if result.applied:
        return f"live {name} set to {shown}"
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


class RaiseMaxmemory(RedisConfigAction):
    """Scenario 1, option A: more memory for Redis, with pod headroom."""

    id = "raise-maxmemory"
    title = "Raise maxmemory"
    runbook = "Scenario 1, option A"
    risk = "medium"
    pending = "used memory is unchanged; the headroom is what changed"

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """maxmemory and the pod memory limit (both sizes)."""
        return (
            ParamSpec("maxmemory", "size", "New maxmemory", "e.g. 1024mb; above used memory"),
            ParamSpec(
                "pod_memory_limit",
                "size",
                "Pod memory limit",
                f"e.g. 1536Mi; keep {limits.pod_headroom}x over maxmemory",
            ),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """Capacity plan or used/0.7 (whole MB), whichever is larger; pod limit x headroom."""
        d = ctx.diagnosis
        plan = plan_from_diagnosis(d)
        candidates = [round_up_mib(d.used_memory / 0.7)]
        if plan is not None:
            candidates.append(plan.maxmemory_bytes)
        maxmemory = max(candidates)
        if d.maxmemory > 0 and maxmemory <= d.maxmemory:
            maxmemory = round_up_mib(d.maxmemory * 2)  # the runbook doubles 512mb -> 1024mb
        limit = round_up_mib(maxmemory * ctx.limits.pod_headroom)
        return {"maxmemory": maxmemory, "pod_memory_limit": limit}

    def resolve(self, ctx: ActionContext, raw: Mapping[str, str]) -> Params:
        """A maxmemory given without a pod limit gets the limit with the headroom over it."""
        given = parse_params(self.specs(ctx.limits), raw, action_id=self.id)
        params = {**self.defaults(ctx), **given}
        if "maxmemory" in given and "pod_memory_limit" not in given:
            headroom = _int(given["maxmemory"]) * ctx.limits.pod_headroom
            params["pod_memory_limit"] = round_up_mib(headroom)
        self.validate(ctx, params)
        return params

    def validate(self, ctx: ActionContext, params: Params) -> None:
        """Refuse maxmemory at or below used (or current) memory, and a pod limit not above it."""
        super().validate(ctx, params)
        d = ctx.diagnosis
        new = _int(params["maxmemory"])
        limit = _int(params["pod_memory_limit"])
        shown, used = format_bytes(new), format_bytes(d.used_memory)
        if new <= d.used_memory:
            raise UsageError(
                f"maxmemory {shown} is not above used memory {used}: "
                "Redis would evict (or refuse writes) at once"
            )
        if d.maxmemory > 0 and new <= d.maxmemory:
            raise UsageError(
                f"maxmemory {shown} is not above the current {format_bytes(d.maxmemory)}: "
                "this action only raises it"
            )
        if limit <= new:
            advice = format_quantity(round_up_mib(new * ctx.limits.pod_headroom))
            raise UsageError(
                f"pod_memory_limit {format_bytes(limit)} is not above maxmemory {shown}: "
                f"the pod would be OOM-killed before Redis evicts (keep headroom, e.g. {advice})"
            )

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """``maxmemory 1024mb``."""
        return {"maxmemory": redis_size(_int(params["maxmemory"]))}

    def live_values(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """CONFIG SET maxmemory in bytes (what CONFIG GET shows)."""
        return {"maxmemory": str(_int(params["maxmemory"]))}

    def show_live(self, name: str, value: str) -> str:
        """``1024mb``."""
        return redis_size(int(value))

    def read(self, ctx: ActionContext, params: Params) -> ConfState:
        """The ConfigMap, the live maxmemory and the Redis container's resources."""
        state = super().read(ctx, params)
        return ConfState(state.text, state.resource_version, state.live, _resources(ctx))

    def facts(self, ctx: ActionContext, params: Params, state: ConfState) -> dict[str, str]:
        """Also the container's memory limit and request."""
        facts = super().facts(ctx, params, state)
        resources = state.resources or {}
        facts["pod memory limit"] = resources.get("limits", {}).get("memory", "(none)")
        facts["pod memory request"] = resources.get("requests", {}).get("memory", "(none)")
        return facts

    def changes(
        self, ctx: ActionContext, params: Params, state: ConfState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Live + ConfigMap, and the Deployment's resources unless they already have headroom."""
        changes, warnings = super().changes(ctx, params, state)
        warnings = (*warnings, *_mismatch(ctx, state))
        pod = _pod_patch(params, state.resources)
        if pod is None:
            return changes, (*warnings, "the pod memory limit already has the headroom: unchanged")
        where = _deployment_where(ctx)
        current = state.resources or {}
        lines = [
            Change(
                where,
                f"{kind}.memory {current.get(kind, {}).get('memory', '(none)')}",
                value,
            )
            for kind, value in pod.items()
        ]
        return (*changes, *lines), (
            *warnings,
            "changing the pod resources rolls the Redis pod: without persistence every session is "
            "lost and every user logged out",
        )

    def flags(self, ctx: ActionContext, params: Params, state: ConfState) -> tuple[bool, bool]:
        """Rolling the pod may lose data (without persistence)."""
        rolls = _pod_patch(params, state.resources) is not None
        return rolls, rolls

    def more_steps(
        self, ctx: ActionContext, params: Params, run: Run, preview: Preview | None
    ) -> None:
        """Patch the Redis container's memory limit/request (rolls the pod)."""
        run.step("Deployment", lambda: self._patch_pod(ctx, params))

    def _patch_pod(self, ctx: ActionContext, params: Params) -> str:
        pod = _pod_patch(params, _resources(ctx))
        if pod is None:
            return f"{_deployment_where(ctx)}: memory limit already has the headroom (unchanged)"
        k = ctx.target.kubernetes
        ctx.cluster.patch_container_resources(
            namespace=k.namespace,
            deployment=k.redis_deployment,
            container=k.redis_container,
            requests={"memory": pod["requests"]} if "requests" in pod else {},
            limits={"memory": pod["limits"]},
        )
        sets = ", ".join(f"{kind}.memory {value}" for kind, value in pod.items())
        return f"{_deployment_where(ctx)}: {sets} (the pod rolls)"

    def consequence(self, run: Run) -> str:
        """A failed Deployment patch leaves Redis allowed to grow past the old pod limit."""
        if run.failed == "Deployment":
            return (
                "Redis runs with the new maxmemory under the OLD pod memory limit: it may be "
                "OOM-killed before it evicts; raise the limit or lower maxmemory"
            )
        return super().consequence(run)


class EnableActiveDefrag(RedisConfigAction):
    """Scenario 4, step 2: let Redis defragment itself, without a restart."""

    id = "enable-activedefrag"
    title = "Enable active defragmentation"
    runbook = "Scenario 4, step 2"
    risk = "low"
    pending = "defragmentation runs in the background; fragmentation drops over minutes"

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """The runbook's three directives; the switch first, so a refusal changes nothing."""
        return {
            "activedefrag": "yes",
            "active-defrag-cycle-min": "1",
            "active-defrag-cycle-max": "25",
        }

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Not when it is already on."""
        if (ctx.redis.config_get("activedefrag") or "").lower() == "yes":
            return ["activedefrag is already on"]
        return []

    def changes(
        self, ctx: ActionContext, params: Params, state: ConfState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Also: the defrag cycle uses up to 25% CPU, and some builds cannot defragment."""
        changes, warnings = super().changes(ctx, params, state)
        return changes, (
            *warnings,
            "active defrag uses 1-25% of a CPU while fragmentation is high; it needs Redis built "
            "with jemalloc (the live CONFIG SET says so when it is not)",
        )

    def verify(self, before: Diagnosis, after: Diagnosis, params: Params) -> Verification:
        """Also fragmentation before -> after."""
        frag = (
            f"fragmentation {before.mem_fragmentation_ratio:.2f} -> "
            f"{after.mem_fragmentation_ratio:.2f}"
        )
        return compare(before, after, pending=self.pending, details=(frag,))


class SetEvictionPolicy(RedisConfigAction):
    """Scenario 5: the eviction policy, chosen knowing which keys can be evicted."""

    id = "set-eviction-policy"
    title = "Set the eviction policy"
    runbook = "Scenario 5 (and Diagnosis step 4)"
    risk = "low"
    pending = "the policy acts when memory is full; evictions show over time"

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """policy: one of the eight maxmemory policies."""
        return (
            ParamSpec("policy", "choice", "Eviction policy", POLICY_TRADE_OFF, choices=POLICIES),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """allkeys-lru when session keys without TTL exist (volatile-* cannot evict them)."""
        ttl = ctx.diagnosis.ttl
        no_ttl = ttl.without_ttl > 0 or (ttl.without_ttl_ratio or 0) >= 0.5
        return {"policy": "allkeys-lru" if no_ttl else "volatile-lru"}

    def validate(self, ctx: ActionContext, params: Params) -> None:
        """Refuse the policy already in force."""
        super().validate(ctx, params)
        if params["policy"] == ctx.diagnosis.maxmemory_policy:
            raise UsageError(f"maxmemory-policy is already {params['policy']}")

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """``maxmemory-policy <policy>``."""
        return {"maxmemory-policy": str(params["policy"])}

    def changes(
        self, ctx: ActionContext, params: Params, state: ConfState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Explain the trade-off for the chosen policy with the measured TTL-less keys."""
        changes, warnings = super().changes(ctx, params, state)
        return changes, (*warnings, *_policy_warnings(ctx, str(params["policy"])))


def _policy_warnings(ctx: ActionContext, policy: str) -> list[str]:
    ttl = ctx.diagnosis.ttl
    out = [f"runbook step 4 says allkeys-lru, Scenario 5 says volatile-lru: {POLICY_TRADE_OFF}"]
    if policy.startswith("volatile-") and ttl.without_ttl > 0:
        out.append(
            f"{ttl.without_ttl:,} of {ttl.sampled:,} sampled session keys have no TTL: "
            f"{policy} can never evict them (run expire-keys-without-ttl first)"
        )
    if policy.startswith("allkeys-"):
        out.append(f"{policy} may also evict non-session keys that have no TTL")
    if policy == "noeviction":
        out.append("noeviction: writes fail (new logins fail) once memory is full")
    return out


def _mismatch(ctx: ActionContext, state: ConfState) -> list[str]:
    """The ConfigMap and the running Redis disagree: say which one the preview starts from."""
    written = get_directive(state.text, "maxmemory")
    live = state.live.get("maxmemory")
    if written is None or live is None:
        return []
    try:
        same = parse_size(written) == int(live)
    except (UsageError, ValueError):
        return []
    if same or (written == "0" and live == "0"):
        return []
    return [
        f"the ConfigMap says maxmemory {written} but Redis runs with {format_bytes(int(live))}: "
        "someone changed one without the other; both get the new value"
    ]


def _resources(ctx: ActionContext) -> dict[str, dict[str, str]]:
    k = ctx.target.kubernetes
    return ctx.cluster.read_container_resources(
        namespace=k.namespace, deployment=k.redis_deployment, container=k.redis_container
    )


def _pod_patch(
    params: Params, resources: dict[str, dict[str, str]] | None
) -> dict[str, str] | None:
    """{"limits": "1536Mi", "requests": "1024Mi"} to set; None when the limit has the headroom.

    No limit at all: nothing to keep headroom against, and adding one would roll the pod.
    The request follows maxmemory (runbook: 1Gi for 1024mb) when it is below it.
    """
    resources = resources or {}
    current = parse_quantity(resources.get("limits", {}).get("memory", ""))
    limit = _int(params["pod_memory_limit"])
    if current is None or current >= limit:
        return None
    new = _int(params["maxmemory"])
    request = parse_quantity(resources.get("requests", {}).get("memory", ""))
    patch = {"limits": format_quantity(limit)}
    if request is None or request < new or request > limit:
        patch["requests"] = format_quantity(round_up_mib(new))
    return patch


def _deployment_where(ctx: ActionContext) -> str:
    k = ctx.target.kubernetes
    return f"Deployment {k.namespace}/{k.redis_deployment} container {k.redis_container}"


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"expected a whole number, got {value!r}")
    return value
