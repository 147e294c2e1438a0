"""``restart-redis`` (Scenario 4, step 1): delete the Redis pods; the Deployment starts new ones.

A restart defragments memory, and loses every session the new pod cannot
load back: all of them without persistence (``appendonly no`` and no
``save``), those written since the last snapshot with RDB only. The preview
says so plainly before anyone approves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.diagnosis.actions import ACTIONS
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisMemError
from bot.redisconf import get_directive
from bot.remediation.actions.base import Action, Run
from bot.remediation.actions.redis_config import read_redis_conf
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    StepKind,
    Verification,
)
from bot.remediation.ports import BulkProgress, StopFlag
from bot.remediation.verify import compare

PODS = "pods"


@dataclass(frozen=True)
class PodState:
    """The pods to delete and the persistence the data would rely on."""

    pods: tuple[str, ...]
    appendonly: bool
    save: str  # "" when RDB snapshots are off
    source: str  # where persistence was read: "live", "ConfigMap" or "unknown"


def read_persistence(ctx: ActionContext) -> tuple[bool, str, str]:
    """(appendonly, save, source): live CONFIG GET, else the ConfigMap, else unknown."""
    try:
        appendonly = ctx.redis.config_get("appendonly")
        save = ctx.redis.config_get("save")
    except RedisMemError:
        appendonly = save = None  # Redis is down or hung: the ConfigMap is what restarts
    if appendonly is not None:
        return appendonly.lower() == "yes", (save or "").strip(), "live"
    try:
        text, _ = read_redis_conf(ctx)
    except RedisMemError:
        return False, "", "unknown"
    aof = (get_directive(text, "appendonly") or "no").lower() == "yes"
    return aof, (get_directive(text, "save") or "").strip(), "ConfigMap"


class RestartRedis(Action[PodState]):
    """Delete the Redis pods by the target's label selector."""

    info = ACTIONS["restart-redis"]
    risk = "high"
    pending = "Redis is restarting; check again once the new pod is ready"

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Some pod must match the selector; never a cluster target's (``not_on_cluster``)."""
        refused = super().preconditions(ctx, params)
        if refused:
            return refused
        k = ctx.target.kubernetes
        if not ctx.cluster.list_pods(namespace=k.namespace, label_selector=k.pod_selector):
            return [f"no pods match {k.pod_selector} in namespace {k.namespace}"]
        return []

    def read(self, ctx: ActionContext, params: Params) -> PodState:
        """The matching pods and the persistence settings."""
        k = ctx.target.kubernetes
        pods = ctx.cluster.list_pods(namespace=k.namespace, label_selector=k.pod_selector)
        appendonly, save, source = read_persistence(ctx)
        return PodState(tuple(sorted(pods)), appendonly, save, source)

    def facts(self, ctx: ActionContext, params: Params, state: PodState) -> dict[str, str]:
        """The pod names (another restart since the preview changes them)."""
        return {PODS: ",".join(state.pods)}

    def changes(
        self, ctx: ActionContext, params: Params, state: PodState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """Which pods go, and what is lost."""
        k = ctx.target.kubernetes
        change = Change(
            f"delete pods {k.pod_selector} in {k.namespace}",
            "",
            ", ".join(state.pods) or "(none)",
        )
        return (change,), tuple(_loss_warnings(state))

    def flags(self, ctx: ActionContext, params: Params, state: PodState) -> tuple[bool, bool]:
        """Loses data unless AOF is on (RDB-only loses what changed since the last save)."""
        return not state.appendonly, not state.appendonly

    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Delete the pods; the Deployment replaces them."""
        self.validate(ctx, params)  # a cluster target: refused, nothing deleted
        k = ctx.target.kubernetes
        run = Run(self.id)

        def delete() -> str:
            names = ctx.cluster.delete_pods(namespace=k.namespace, label_selector=k.pod_selector)
            return f"deleted pods {', '.join(names) or '(none)'}: the Deployment starts new ones"

        run.step("delete pods", delete, kind=StepKind.POD)
        return run.result("" if run.complete else "nothing was deleted")

    def verify(self, before: Diagnosis, after: Diagnosis, params: Params) -> Verification:
        """Also fragmentation before -> after (what a restart is for)."""
        frag = (
            f"fragmentation {before.mem_fragmentation_ratio:.2f} -> "
            f"{after.mem_fragmentation_ratio:.2f}"
        )
        keys = f"session keys ~{before.session_keys:,} -> ~{after.session_keys:,}"
        return compare(before, after, pending=self.pending, details=(frag, keys))


def _loss_warnings(state: PodState) -> list[str]:
    where = {"live": "CONFIG GET", "ConfigMap": "the ConfigMap"}.get(state.source)
    seen = f" (read from {where})" if where else " (persistence could not be read)"
    if state.appendonly:
        return [
            f"appendonly yes{seen}: sessions are reloaded from the AOF, if /data is on a "
            "persistent volume; Redis is unavailable while the new pod starts"
        ]
    if state.save:
        return [
            f"DATA LOSS: no AOF, RDB snapshots only (save {state.save}){seen}: sessions written "
            "since the last snapshot are lost and those users are logged out"
        ]
    return [
        f"DATA LOSS: no persistence (appendonly no, no save){seen}: ALL sessions are lost and "
        "EVERY user is logged out"
    ]
