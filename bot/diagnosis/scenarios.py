"""The six runbook scenarios: when the evidence points to each, and what to do.

Each detector returns a ``Scenario`` (evidence lines that cite numbers, and the
remediation action ids) or None. Which fixes a scenario recommends is declared on the
fixes (``bot.diagnosis.actions``, ``recommended_for``); a detector only withholds those
whose condition does not hold now. Key-based verdicts need at least
``min_sample`` measured session keys: below that we say so (a Finding) rather
than guess.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.diagnosis.actions import ACTIONS, ActionRegistry
from bot.diagnosis.facts import PEAK_RATIO, Facts, pct, size
from bot.diagnosis.model import Scenario
from bot.units import format_duration

RUNBOOK_STEP4_VS_5 = (
    "Runbook step 4 says allkeys-lru, Scenario 5 says volatile-lru: volatile-* policies can "
    "only evict keys that carry a TTL, so they are safe only once every session key has one; "
    "allkeys-lru evicts the least recently used key whatever its TTL (but will also evict "
    "non-session keys without TTL)."
)


def too_many_sessions(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 1: memory is high and it is the number of (normal-sized) sessions."""
    by_memory = _sessions_fill_memory(f)
    expected = f.th.expected_sessions
    by_count = expected is not None and f.session_keys > expected
    if not (by_memory or by_count):
        return None
    evidence = [f"~{f.session_keys:,} session keys ({_how_counted(f)})"]
    if f.usage_ratio is not None:
        evidence.append(
            f"memory at {pct(f.usage_ratio)} of maxmemory "
            f"({size(f.mem.used_memory)} of {size(f.mem.maxmemory)})"
        )
    if f.session_bytes is not None:
        evidence.append(
            f"sessions hold ~{size(f.session_bytes)} ({pct(f.session_share)} of used memory): "
            f"{f.session_keys:,} x mean {size(f.sizes.mean_bytes)}, p95 {size(f.sizes.p95_bytes)}"
            + ("" if f.sessions_large else " (sizes are normal: it is their number)")
        )
    if by_count:
        evidence.append(
            f"{f.session_keys:,} sessions exceed the {expected:,} the capacity plan expects"
        )
    if f.snap.stats.evicted_keys > 0:
        evidence.append(
            f"{f.snap.stats.evicted_keys:,} keys evicted since start: sessions dropped before "
            "their TTL, users logged out"
        )
    return Scenario(
        id="too-many-sessions",
        title="Too many active sessions",
        runbook="Scenario 1: Too Many Active Sessions",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("too-many-sessions"),
    )


def _sessions_fill_memory(f: Facts) -> bool:
    share = f.session_share
    return (
        f.usage_ratio is not None
        and f.usage_ratio >= f.th.warning_ratio
        and f.enough_sample
        and not f.sessions_large
        and share is not None
        and share >= f.th.sessions_share_ratio
    )


def _how_counted(f: Facts) -> str:
    sample = f.snap.sample
    if sample.mode == "full" or sample.method == "scan":
        return f"counted by scanning all {sample.probed:,} keys"
    return (
        f"estimated from {sample.matched:,} of {sample.probed:,} sampled keys, "
        f"dbsize {f.snap.dbsize:,}"
    )


def ttl_leak(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 2: session keys without TTL (they never expire)."""
    ratio = f.ttl.without_ttl_ratio
    if not f.enough_sample or ratio is None or f.ttl.without_ttl == 0:
        return None
    if ratio < f.th.ttl_leak_ratio:
        return None
    leaked = round(f.session_keys * ratio)
    evidence = [
        f"{f.ttl.without_ttl:,} of {f.ttl.sampled:,} sampled session keys ({pct(ratio)}) have no "
        f"TTL (-1): they never expire (threshold {pct(f.th.ttl_leak_ratio)})",
    ]
    if f.sizes.mean_bytes is not None:
        evidence.append(
            f"~{leaked:,} such keys in the db, ~{size(leaked * f.sizes.mean_bytes)} that only grows"
        )
    if f.policy.startswith("volatile-"):
        evidence.append(f"under {f.policy} they cannot be evicted either")
    evidence.append(
        "lasting fix in the application: create sessions with SETEX (not SET + EXPIRE); "
        "the clean-up sets a TTL only on keys without one (EXPIRE ... NX)"
    )
    return Scenario(
        id="ttl-leak",
        title="Sessions without TTL (memory leak)",
        runbook="Scenario 2: Memory Leak",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("ttl-leak"),
    )


def large_sessions(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 3: sessions store too much data."""
    if not f.enough_sample or not f.sessions_large:
        return None
    top = ", ".join(f"{key} ({size(n)})" for key, n in f.sizes.top_keys[:5])
    evidence = [
        f"session size mean {size(f.sizes.mean_bytes)}, p95 {size(f.sizes.p95_bytes)}, "
        f"max {size(f.sizes.max_bytes)} over {f.sizes.sampled:,} sampled keys "
        f"(large above {size(f.th.large_session_bytes)})",
        f"largest: {top}",
    ]
    if f.session_bytes is not None:
        evidence.append(
            f"~{f.session_keys:,} sessions hold ~{size(f.session_bytes)} "
            f"({pct(f.session_share)} of used memory)"
        )
    evidence.append(
        "the fix is an application change (runbook Scenario 3): keep only the session id and "
        "essential claims in Redis, move large data to a database or object store, compress"
    )
    withheld: tuple[str, ...] = ("raise-maxmemory",)  # no pressure: nothing to buy time for
    if f.usage_ratio is not None and f.usage_ratio >= f.th.warning_ratio:
        evidence.append("raise-maxmemory is only a stop-gap until the application stores less")
        withheld = ()
    return Scenario(
        id="large-sessions",
        title="Large session objects",
        runbook="Scenario 3: Large Session Objects",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("large-sessions", without=withheld),
    )


def fragmentation(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 4: RSS well above the data, and enough bytes wasted to matter."""
    if not f.fragmented:
        return None
    mem = f.mem
    evidence = [
        f"mem_fragmentation_ratio {mem.mem_fragmentation_ratio:.2f} "
        f"(> {f.th.fragmentation_ratio}): "
        f"RSS {size(mem.used_memory_rss)} for {size(mem.used_memory)} of data, "
        f"{size(f.wasted_bytes)} wasted (> {size(f.th.fragmentation_min_bytes)})",
    ]
    evidence += _fragmentation_cause(f)
    defrag_on = f.snap.settings.get("activedefrag", "").lower() == "yes"
    withheld: tuple[str, ...] = ()
    if defrag_on:
        evidence.append("activedefrag is already on: only a restart returns the memory now")
        withheld = ("enable-activedefrag",)
    evidence.append(_restart_warning(f))
    return Scenario(
        id="fragmentation",
        title="High memory fragmentation",
        runbook="Scenario 4: High Memory Fragmentation",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("fragmentation", without=withheld),
    )


def _fragmentation_cause(f: Facts) -> list[str]:
    mem = f.mem
    lines = []
    if mem.allocator_frag_ratio is not None and mem.allocator_frag_bytes is not None:
        lines.append(
            f"allocator fragmentation {mem.allocator_frag_ratio:.2f} "
            f"({size(mem.allocator_frag_bytes)}): the part activedefrag can reclaim"
        )
    if mem.used_memory > 0 and mem.used_memory_peak / mem.used_memory > PEAK_RATIO:
        lines.append(
            f"peak {size(mem.used_memory_peak)} is {mem.used_memory_peak / mem.used_memory:.1f}x "
            "current use: key churn after a spike left the RSS behind"
        )
    return lines


def _restart_warning(f: Facts) -> str:
    aof = f.snap.persistence.get("aof_enabled")
    if aof == "1":
        return "restart-redis: AOF is on, sessions are reloaded after the restart"
    return "restart-redis drops every session unless persistence is on (users log in again)"


def eviction_policy(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 5: the policy cannot free the memory sessions need."""
    problem = policy_problem(f)
    if problem is None:
        return None
    evidence, withheld = problem
    evidence.append(RUNBOOK_STEP4_VS_5)
    evidence.append(_policy_advice(f))
    if f.snap.policy_source == "info":
        evidence.append("maxmemory-policy read from INFO (CONFIG is disabled or renamed)")
    return Scenario(
        id="eviction-policy",
        title="Eviction policy ineffective",
        runbook="Scenario 5: Eviction Policy Ineffective",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("eviction-policy", without=withheld),
    )


def policy_problem(f: Facts) -> tuple[list[str], tuple[str, ...]] | None:
    """Scenario 5's rule: (evidence lines, withheld fixes), or None when the policy is fine."""
    if f.policy == "noeviction" and f.mem.maxmemory > 0:
        return [
            f"maxmemory-policy noeviction: at maxmemory ({size(f.mem.maxmemory)}, now "
            f"{pct(f.usage_ratio)} used) Redis refuses writes with OOM errors: new logins fail "
            "instead of old sessions being evicted"
        ], _POLICY_ONLY
    if f.policy.startswith("volatile-"):
        return _volatile_problem(f)
    evicted = f.snap.stats.evicted_keys
    if f.policy.endswith("-random") and evicted > 0:
        return [
            f"{f.policy} evicts active sessions as readily as idle ones: {evicted:,} evictions "
            "logged users out at random"
        ], _POLICY_ONLY
    return None


# Withheld when the policy alone is the fix: giving keys a TTL helps only a volatile-*
# policy that cannot evict the TTL-less ones.
_POLICY_ONLY = ("expire-keys-without-ttl",)


def _volatile_problem(f: Facts) -> tuple[list[str], tuple[str, ...]] | None:
    sessions_blocked = (
        f.enough_sample
        and f.ttl.without_ttl > 0
        and (f.ttl.without_ttl_ratio or 0) >= f.th.ttl_leak_ratio
    )
    db = f.db_keys_without_ttl
    pressure = f.snap.stats.evicted_keys > 0 or (
        f.usage_ratio is not None and f.usage_ratio >= f.th.warning_ratio
    )
    bulk_blocked = pressure and _ttl_less_bulk(f)
    if not (sessions_blocked or bulk_blocked):
        return None
    lines = [f"maxmemory-policy {f.policy} evicts only keys that have a TTL"]
    if db is not None:
        lines.append(
            f"{db[0]:,} of {db[1]:,} keys in db{f.snap.db} ({pct(db[0] / db[1])}) have no TTL "
            "and can never be evicted"
        )
    if sessions_blocked:
        lines.append(f"{pct(f.ttl.without_ttl_ratio)} of sampled session keys have no TTL")
    if f.snap.stats.evicted_keys > 0:
        lines.append(
            f"{f.snap.stats.evicted_keys:,} keys evicted since start, all from the keys with a "
            "TTL: live sessions go first while the TTL-less keys stay"
        )
    return lines, () if f.ttl.without_ttl else _POLICY_ONLY


def _ttl_less_bulk(f: Facts) -> bool:
    """Keys without TTL make up the bulk of the db, by count or by memory."""
    db = f.db_keys_without_ttl
    if db is None or db[0] == 0:
        return False
    if db[0] / db[1] >= f.th.sessions_share_ratio:
        return True
    # By memory: non-session keys hold most of it, and most of them have no TTL.
    share = f.session_share
    others = f.snap.dbsize - f.session_keys
    if share is None or others <= 0:
        return False
    others_without = db[0] - f.session_keys * (f.ttl.without_ttl_ratio or 0)
    return 1 - share >= f.th.sessions_share_ratio and others_without / others >= 0.5


def _policy_advice(f: Facts) -> str:
    if f.ttl.without_ttl > 0 or (f.db_keys_without_ttl or (0, 0))[0] > 0:
        return (
            "recommended: allkeys-lru while keys without TTL exist (or give them a TTL first, "
            "then volatile-lru protects non-session data)"
        )
    return "recommended: allkeys-lru (volatile-lru also works: every key has a TTL)"


def stale_sessions(f: Facts, actions: ActionRegistry = ACTIONS) -> Scenario | None:
    """Scenario 6: many sessions nobody has used for a long time."""
    idle = f.idle
    if idle.sampled < f.th.min_sample or idle.stale_ratio is None or idle.stale == 0:
        return None
    if idle.stale_ratio < f.th.stale_ratio:
        return None
    if idle.measure == "lfu":
        evidence = [
            f"{idle.stale:,} of {idle.sampled:,} sampled sessions ({pct(idle.stale_ratio)}) have "
            f"LFU counter 0 under {f.policy}: not read for at least several lfu-decay-time "
            "periods (idle time is not kept under LFU: a weaker signal)"
        ]
    else:
        evidence = [
            f"{idle.stale:,} of {idle.sampled:,} sampled sessions ({pct(idle.stale_ratio)}) idle "
            f"longer than {format_duration(f.th.stale_idle_seconds)} "
            f"(median idle {format_duration(idle.p50_idle_seconds)}, "
            f"max {format_duration(idle.max_idle_seconds)})"
        ]
    evidence.append(
        f"~{round(f.session_keys * idle.stale_ratio):,} abandoned sessions hold memory until "
        "their TTL runs out (runbook cause: users not logging out)"
    )
    evidence.append(
        "sliding-window expiry with a shorter TTL keeps active sessions alive and lets "
        "abandoned ones expire sooner"
    )
    # Deleting sessions logs users out: only worth it when memory is short.
    withheld: tuple[str, ...] = ("evict-idle-sessions",)
    if f.usage_ratio is not None and f.usage_ratio >= f.th.warning_ratio:
        evidence.append("memory is short: evicting the idlest sessions frees it now")
        withheld = ()
    return Scenario(
        id="stale-sessions",
        title="Stale user sessions",
        runbook="Scenario 6: Stale User Sessions",
        evidence=tuple(evidence),
        recommended_actions=actions.fixes("stale-sessions", without=withheld),
    )


# Runbook order: the order scenarios are listed in a diagnosis.
DETECTORS: tuple[Callable[[Facts, ActionRegistry], Scenario | None], ...] = (
    too_many_sessions,
    ttl_leak,
    large_sessions,
    fragmentation,
    eviction_policy,
    stale_sessions,
)


def find_scenarios(f: Facts, actions: ActionRegistry = ACTIONS) -> tuple[Scenario, ...]:
    """Every scenario the evidence supports, in runbook order, its fixes from ``actions``."""
    return tuple(s for s in (detect(f, actions) for detect in DETECTORS) if s is not None)
