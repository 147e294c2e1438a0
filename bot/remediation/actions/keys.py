"""Actions on session keys: TTL for the keys without one, and evicting the idlest sessions.

Both go through ``RedisOps`` in pipelined, rate-limited batches capped at
``RemediationLimits.max_keys`` (the runbook's one ``redis-cli`` per key is
hopeless on a million keys). The TTL clean-up uses ``EXPIRE ... NX`` so keys
that have a TTL keep it (the runbook resets every key); the eviction deletes
the sessions measured idlest (the runbook deletes the first 100 SCAN returns)
and re-checks each key's idle time inside Redis, sparing any used since.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from bot.diagnosis.actions import ACTIONS
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisMemError, UsageError
from bot.remediation.actions.base import Action, Run, ttl_spec
from bot.remediation.actions.key_runs import Tracker, bulk_result
from bot.remediation.model import (
    ActionContext,
    Change,
    ExecutionResult,
    Params,
    Preview,
    RemediationLimits,
    Verification,
)
from bot.remediation.nodes import applied_on
from bot.remediation.params import ParamSpec
from bot.remediation.ports import BulkProgress, BulkResult, StopFlag
from bot.remediation.verify import compare
from bot.units import format_bytes, format_duration

NO_TTL = "keys without TTL (estimated)"
MEASURE = "idle measure"
THRESHOLD = "idle threshold"
FOUND = "idle sessions found"
DEFAULT_TTL = 86400  # the runbook's EXPIRE 86400


class ExpireKeysWithoutTtl(Action[int]):
    """Scenario 2: give the session keys that have no TTL one, and only those."""

    info = ACTIONS["expire-keys-without-ttl"]
    risk = "low"
    tolerance: ClassVar[Mapping[str, float]] = {NO_TTL: 0.5}

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """ttl_seconds within the limits."""
        return (
            ttl_spec(
                limits,
                label="TTL to set",
                help="keys without TTL expire after this; e.g. 86400 or 24h",
            ),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """The runbook's 24 hours, within the limits."""
        lim = ctx.limits
        return {"ttl_seconds": min(max(DEFAULT_TTL, lim.min_ttl_seconds), lim.max_ttl_seconds)}

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Only when the diagnosis found session keys without TTL."""
        ttl = ctx.diagnosis.ttl
        if ttl.without_ttl == 0:
            return [f"the diagnosis found no session keys without TTL ({ttl.sampled:,} sampled)"]
        return []

    def read(self, ctx: ActionContext, params: Params) -> int:
        """Estimated number of session keys without TTL (from the diagnosis sample)."""
        d = ctx.diagnosis
        return round(d.session_keys * (d.ttl.without_ttl_ratio or 0))

    def facts(self, ctx: ActionContext, params: Params, state: int) -> dict[str, str]:
        """The estimate (a change of more than half makes the preview wrong)."""
        return {NO_TTL: str(state)}

    def changes(
        self, ctx: ActionContext, params: Params, state: int
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """EXPIRE NX on ~N keys; the cap and rate; when the sessions end."""
        ttl = int(params["ttl_seconds"])
        lim = ctx.limits
        pattern = ctx.target.session_pattern
        change = Change(
            f"EXPIRE NX {ttl} on {pattern} keys without TTL",
            f"~{state:,} keys without TTL",
            f"TTL {ttl}s ({format_duration(ttl)})",
        )
        rate = "unthrottled" if not lim.rate else f"{lim.rate:,} keys/s"
        warnings = [
            f"keys that already have a TTL are left alone (NX); at most {lim.max_keys:,} keys, "
            f"{rate}",
            f"each of these sessions ends in {format_duration(ttl)} unless the app renews it",
        ]
        if state > lim.max_keys:
            warnings.append(
                f"~{state:,} keys have no TTL, above the cap of {lim.max_keys:,}: "
                "run it again for the rest"
            )
        return (change,), tuple(warnings)

    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Pipelined, rate-limited EXPIRE NX; exact counts even when stopped or failed."""
        self.validate(ctx, params)
        ttl = int(params["ttl_seconds"])
        tracker = Tracker(progress)
        run = Run(self.id)
        results: list[BulkResult] = []

        def expire() -> str:
            result = ctx.redis.expire_without_ttl(
                pattern=ctx.target.session_pattern,
                seconds=ttl,
                max_keys=ctx.limits.max_keys,
                rate=ctx.limits.rate,
                progress=tracker,
                should_stop=should_stop,
            )
            results.append(result)
            return (
                f"EXPIRE NX {ttl} set on {result.changed:,} keys "
                f"({result.scanned:,} scanned, {result.skipped:,} already had a TTL)"
                f"{applied_on(result.nodes, counts=True)}"
            )

        run.step("EXPIRE NX", expire)
        return bulk_result(run, results, tracker, cap=ctx.limits.max_keys)

    def verify(self, before: Diagnosis, after: Diagnosis, params: Params) -> Verification:
        """Keys without TTL before -> after; memory frees as they expire."""
        ttl = int(params["ttl_seconds"])
        line = (
            f"sampled session keys without TTL {before.ttl.without_ttl:,}/{before.ttl.sampled:,} "
            f"-> {after.ttl.without_ttl:,}/{after.ttl.sampled:,}"
        )
        pending = f"memory frees as these keys expire (within {format_duration(ttl)})"
        return compare(before, after, pending=pending, details=(line,))


@dataclass(frozen=True)
class IdleState:
    """The idlest sessions measured now: how many, and the idle time of the least idle of them."""

    found: int
    threshold: int  # idle seconds (or LFU counter) of the least idle selected key
    idlest: int


class EvictIdleSessions(Action[IdleState]):
    """Immediate mitigation: delete the N sessions idle longest (measured, not arbitrary)."""

    info = ACTIONS["evict-idle-sessions"]
    risk = "high"
    tolerance: ClassVar[Mapping[str, float]] = {FOUND: 0.5}

    def specs(self, limits: RemediationLimits) -> tuple[ParamSpec, ...]:
        """count: 1 .. max_keys."""
        return (
            ParamSpec(
                "count",
                "int",
                "Sessions to evict",
                "the idlest sessions are deleted; those users are logged out",
                min=1,
                max=limits.max_keys,
            ),
        )

    def defaults(self, ctx: ActionContext) -> Params:
        """Enough sessions (by mean size) to bring usage to the target ratio, within the cap."""
        d = ctx.diagnosis
        mean = d.sizes.mean_bytes
        goal = ctx.limits.target_ratio * d.maxmemory
        if d.maxmemory <= 0 or not mean or d.used_memory <= goal:
            return {"count": min(100, ctx.limits.max_keys, max(1, d.session_keys))}
        count = math.ceil((d.used_memory - goal) / mean)
        return {"count": max(1, min(count, ctx.limits.max_keys, d.session_keys))}

    def validate(self, ctx: ActionContext, params: Params) -> None:
        """Refuse above the cap, and more sessions than exist."""
        spec = self.specs(ctx.limits)[0]
        count = params.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > ctx.limits.max_keys:
            raise UsageError(
                f"count {count:,} is above the cap of {ctx.limits.max_keys:,} keys "
                "per action (max_keys)"
            )
        super().validate(ctx, params)
        sessions = ctx.diagnosis.session_keys
        if int(params[spec.name]) > sessions:
            raise UsageError(
                f"count {int(params[spec.name]):,} is more than the ~{sessions:,} session keys: "
                "that would log out everyone"
            )

    def preconditions(self, ctx: ActionContext, params: Params) -> list[str]:
        """Only when memory is above the target ratio (it logs users out)."""
        d = ctx.diagnosis
        target = ctx.limits.target_ratio
        if d.session_keys < 1:
            return ["the diagnosis found no session keys"]
        if d.usage_ratio is not None and d.usage_ratio < target:
            return [
                f"memory is at {d.usage_ratio * 100:.0f}%, below {target * 100:.0f}%: "
                "evicting sessions would log users out for nothing"
            ]
        return []

    def changed_fact(self, old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
        """Sessions growing idler is fine; the idlest becoming much more active is not.

        Idle time: the threshold may grow, not fall below half. LFU counter (lower is
        idler, logarithmic): it may fall, not rise by more than one.
        """
        was, now = _number(old.get(THRESHOLD)), _number(new.get(THRESHOLD))
        if was is not None and now is not None and _came_back(was, now, new.get(MEASURE)):
            return (
                f"the idlest sessions were used since the preview (idle threshold {was} -> {now}): "
                "request the action again"
            )
        rest = {k: v for k, v in old.items() if k != THRESHOLD}
        return super().changed_fact(rest, {k: v for k, v in new.items() if k != THRESHOLD})

    def read(self, ctx: ActionContext, params: Params) -> IdleState:
        """Measure the idlest ``count`` sessions now (OBJECT IDLETIME, or LFU counters)."""
        keys = ctx.redis.idlest_keys(
            pattern=ctx.target.session_pattern, count=int(params["count"]), rate=ctx.limits.rate
        )
        if not keys:
            return IdleState(0, 0, 0)
        return IdleState(found=len(keys), threshold=keys[-1][1], idlest=keys[0][1])

    def facts(self, ctx: ActionContext, params: Params, state: IdleState) -> dict[str, str]:
        """The threshold and how many were found (each may move by half)."""
        return {
            THRESHOLD: str(state.threshold),
            FOUND: str(state.found),
            MEASURE: ctx.diagnosis.idle.measure,
        }

    def changes(
        self, ctx: ActionContext, params: Params, state: IdleState
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """UNLINK N keys idle at least X; plainly: those users are logged out."""
        lfu = ctx.diagnosis.idle.measure == "lfu"
        how = (
            f"LFU counter at most {state.threshold}"
            if lfu
            else f"each idle at least {format_duration(state.threshold)} "
            f"(the idlest {format_duration(state.idlest)})"
        )
        mean = ctx.diagnosis.sizes.mean_bytes
        frees = f", ~{format_bytes(state.found * mean)} freed" if mean else ""
        change = Change(
            f"UNLINK the {state.found:,} idlest {ctx.target.session_pattern} keys",
            "",
            f"{how}{frees}; a key used since it was measured is spared",
        )
        warnings = [
            f"data loss: {state.found:,} sessions are deleted and those users are logged out",
        ]
        if state.found < int(params["count"]):
            warnings.append(
                f"only {state.found:,} session keys found (asked {int(params['count']):,})"
            )
        return (change,), tuple(warnings)

    def flags(self, ctx: ActionContext, params: Params, state: IdleState) -> tuple[bool, bool]:
        """Always: deletes sessions, logs users out."""
        return True, True

    def execute(
        self,
        ctx: ActionContext,
        params: Params,
        progress: BulkProgress | None = None,
        *,
        preview: Preview | None = None,
        should_stop: StopFlag | None = None,
    ) -> ExecutionResult:
        """Measure again, then UNLINK those still idle at least the previewed threshold."""
        self.validate(ctx, params)
        tracker = Tracker(progress)
        run = Run(self.id)
        results: list[BulkResult] = []
        measured: list[tuple[str, int]] = []

        def measure() -> str:
            measured.extend(
                ctx.redis.idlest_keys(
                    pattern=ctx.target.session_pattern,
                    count=int(params["count"]),
                    rate=ctx.limits.rate,
                )
            )
            return f"measured the {len(measured):,} idlest sessions"

        def unlink() -> str:
            threshold = _threshold(preview, measured)
            lfu = ctx.diagnosis.idle.measure == "lfu"
            result = ctx.redis.unlink_if_idle(
                keys=[key for key, _ in measured],
                min_idle_seconds=0 if lfu else threshold,
                max_freq=threshold if lfu else None,
                rate=ctx.limits.rate,
                progress=tracker,
                should_stop=should_stop,
            )
            results.append(result)
            how = f"LFU counter <= {threshold}" if lfu else f"idle >= {format_duration(threshold)}"
            return (
                f"unlinked {result.changed:,} sessions ({how}); "
                f"{result.skipped:,} spared (used since measured, or gone)"
                f"{applied_on(result.nodes, counts=True)}"
            )

        run.step("measure", measure)
        run.step("UNLINK", unlink)
        return bulk_result(
            run, results, tracker, cap=ctx.limits.max_keys, planned=len(measured) or None
        )

    def verify(self, before: Diagnosis, after: Diagnosis, params: Params) -> Verification:
        """Memory and session keys before -> after."""
        line = f"session keys ~{before.session_keys:,} -> ~{after.session_keys:,}"
        return compare(before, after, pending="no change yet", details=(line,))


def _threshold(preview: Preview | None, measured: list[tuple[str, int]]) -> int:
    """The approved idle threshold (from the preview), else the one measured now."""
    if preview is not None and THRESHOLD in preview.facts:
        try:
            return int(preview.facts[THRESHOLD])
        except ValueError:
            raise RedisMemError("the preview's idle threshold is not a number") from None
    return measured[-1][1] if measured else 0


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _came_back(was: int, now: int, measure: str | None) -> bool:
    """The idlest sessions were used since: LFU counter up by 2+, or idle time halved."""
    return now > was + 1 if measure == "lfu" else now < was * 0.5
