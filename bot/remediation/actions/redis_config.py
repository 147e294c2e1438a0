"""Actions that change Redis settings: live with ``CONFIG SET`` and in the ConfigMap's redis.conf.

raise-maxmemory, enable-activedefrag and set-eviction-policy, on the shared base in
``bot.remediation.actions.redis_conf_action`` (which edits only their directives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from bot.diagnosis.actions import ACTIONS
from bot.diagnosis.capacity import plan_from_diagnosis
from bot.diagnosis.drift import REDIS_DEFAULTS, canonical
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisMemError, UsageError
from bot.redisconf import conf_bytes, get_directive
from bot.remediation.actions.base import Run
from bot.remediation.actions.redis_conf_action import (
    ConfState,
    PlainConfigAction,
    RedisConfigAction,
    configmap_where,
    read_redis_conf,
)
from bot.remediation.model import (
    ActionContext,
    Change,
    Params,
    Preview,
    RemediationLimits,
    StepKind,
    Verification,
)
from bot.remediation.params import (
    ParamSpec,
    format_quantity,
    parse_params,
    parse_quantity,
    round_up_mib,
)
from bot.remediation.verify import compare
from bot.units import format_bytes, redis_size

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
class PodConfState(ConfState):
    """Also the Redis container's memory requests/limits (``{"limits": {"memory": ..}}``)."""

    resources: dict[str, dict[str, str]] = field(default_factory=dict)


class RaiseMaxmemory(RedisConfigAction[PodConfState]):
    """Scenario 1, option A: more memory for Redis, with pod headroom."""

    info = ACTIONS["raise-maxmemory"]
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
        """Capacity plan or used/0.7 (whole MB), whichever is larger; pod limit x headroom.

        Never at or below the live limit nor the ConfigMap's: then twice the larger one.
        """
        d = ctx.diagnosis
        plan = plan_from_diagnosis(d)
        candidates = [round_up_mib(d.used_memory / 0.7)]
        if plan is not None:
            candidates.append(plan.maxmemory_bytes)
        maxmemory = max(candidates)
        floor = max(d.maxmemory, _persisted_maxmemory(ctx) or 0)
        if floor > 0 and maxmemory <= floor:
            maxmemory = round_up_mib(floor * 2)  # the runbook doubles 512mb -> 1024mb
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

    def check_values(self, ctx: ActionContext, params: Params) -> None:
        """Refuse maxmemory at or below used (or current) memory, and a pod limit not above it."""
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

    def persisted_refusal(self, ctx: ActionContext, params: Params, text: str) -> str | None:
        """Also refuse a value at or below the ConfigMap's: Redis would restart with it."""
        new = _int(params["maxmemory"])
        written = get_directive(text, "maxmemory")
        current = conf_bytes(written) if written is not None else None
        if written is not None and current is not None and current > 0 and new <= current:
            return (
                f"maxmemory {format_bytes(new)} is not above maxmemory {written} in the "
                f"{configmap_where(ctx)}, which Redis restarts with: this action only raises "
                f"it; ask for more than {format_bytes(current)}"
            )
        return super().persisted_refusal(ctx, params, text)

    def directives(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """``maxmemory 1024mb``."""
        return {"maxmemory": redis_size(_int(params["maxmemory"]))}

    def live_values(self, ctx: ActionContext, params: Params) -> dict[str, str]:
        """CONFIG SET maxmemory in bytes (what CONFIG GET shows)."""
        return {"maxmemory": str(_int(params["maxmemory"]))}

    def show_live(self, name: str, value: str) -> str:
        """``1024mb``."""
        return redis_size(int(value))

    def extend(self, ctx: ActionContext, params: Params, conf: ConfState) -> PodConfState:
        """The ConfigMap, the live maxmemory and the Redis container's resources."""
        common = {f.name: getattr(conf, f.name) for f in fields(ConfState)}
        return PodConfState(**common, resources=_resources(ctx))

    def facts(self, ctx: ActionContext, params: Params, state: PodConfState) -> dict[str, str]:
        """Also the container's memory limit and request."""
        facts = super().facts(ctx, params, state)
        resources = state.resources
        facts["pod memory limit"] = resources.get("limits", {}).get("memory", "(none)")
        facts["pod memory request"] = resources.get("requests", {}).get("memory", "(none)")
        return facts

    def changes(
        self, ctx: ActionContext, params: Params, state: PodConfState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Live + ConfigMap, and the Deployment's resources unless they already have headroom."""
        changes, warnings = super().changes(ctx, params, state)
        pod = _pod_patch(params, state.resources)
        if pod is None:
            return changes, (*warnings, "the pod memory limit already has the headroom: unchanged")
        where = _deployment_where(ctx)
        current = state.resources
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

    def flags(self, ctx: ActionContext, params: Params, state: PodConfState) -> tuple[bool, bool]:
        """Rolling the pod may lose data (without persistence)."""
        rolls = _pod_patch(params, state.resources) is not None
        return rolls, rolls

    def more_steps(
        self, ctx: ActionContext, params: Params, run: Run, preview: Preview | None
    ) -> None:
        """Patch the Redis container's memory limit/request (rolls the pod)."""
        run.step("Deployment", lambda: self._patch_pod(ctx, params), kind=StepKind.POD)

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
        if run.failed is not None and run.failed.kind is StepKind.POD:
            return (
                "Redis runs with the new maxmemory under the OLD pod memory limit: it may be "
                "OOM-killed before it evicts; raise the limit or lower maxmemory"
            )
        return super().consequence(run)


class EnableActiveDefrag(PlainConfigAction):
    """Scenario 4, step 2: let Redis defragment itself, without a restart."""

    info = ACTIONS["enable-activedefrag"]
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
        """Not when it is already on, live and in the ConfigMap (live only: it persists it)."""
        if (ctx.redis.config_get("activedefrag") or "").lower() != "yes":
            return []
        try:
            text, _ = read_redis_conf(ctx)
        except RedisMemError:
            return ["activedefrag is already on"]  # live; the ConfigMap cannot be read anyway
        if canonical("activedefrag", get_directive(text, "activedefrag") or "no") == "yes":
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


class SetEvictionPolicy(PlainConfigAction):
    """Scenario 5: the eviction policy, chosen knowing which keys can be evicted."""

    info = ACTIONS["set-eviction-policy"]
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

    def persisted_refusal(self, ctx: ActionContext, params: Params, text: str) -> str | None:
        """Refuse the policy already in force live and in the ConfigMap.

        In force live only (the ConfigMap says another): allowed, it persists the policy.
        """
        policy = str(params["policy"])
        written = get_directive(text, "maxmemory-policy") or REDIS_DEFAULTS["maxmemory-policy"]
        persisted_too = canonical("maxmemory-policy", written) == policy
        live = ctx.diagnosis.maxmemory_policy
        if ctx.target.mode == "cluster":  # every primary, not the one a diagnosis read
            live = ctx.redis.config_get("maxmemory-policy") or live
        if policy == live and persisted_too:
            return f"maxmemory-policy is already {policy}"
        return super().persisted_refusal(ctx, params, text)

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


def _persisted_maxmemory(ctx: ActionContext) -> int | None:
    """The ConfigMap's maxmemory in bytes, for a default; None when unknown (not an error here:
    ``validate`` reads it again and refuses or fails with the reason)."""
    try:
        text, _ = read_redis_conf(ctx)
    except RedisMemError:
        return None
    written = get_directive(text, "maxmemory")
    return conf_bytes(written) if written is not None else None


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


__all__ = ["EnableActiveDefrag", "RaiseMaxmemory", "SetEvictionPolicy", "read_redis_conf"]
