"""MEMORY DOCTOR style remarks that are not runbook scenarios.

Severity ``ok`` on a finding means "for information".
"""

from __future__ import annotations

from collections.abc import Callable

from bot.diagnosis.facts import PEAK_RATIO, Facts, pct, size
from bot.diagnosis.model import Finding, Severity
from bot.replication import ReplicaLag

# MEMORY DOCTOR's own cut-offs for "high allocator fragmentation" and "peak".
ALLOCATOR_FRAG_RATIO = 1.1


def no_limit(f: Facts) -> Finding | None:
    """maxmemory 0: nothing bounds Redis but the pod limit."""
    if f.mem.maxmemory > 0:
        return None
    return Finding(
        "no-maxmemory",
        Severity.WARNING,
        f"maxmemory is 0 (no limit): Redis grows until the pod is OOM-killed and "
        f"maxmemory-policy {f.policy} never applies; set maxmemory below the pod limit "
        f"(runbook keeps 1.5x headroom). Used now: {size(f.mem.used_memory)}",
    )


def mitigation(f: Facts) -> Finding | None:
    """Above ``mitigation_ratio`` the runbook says to free memory now."""
    ratio = f.usage_ratio
    if ratio is None or ratio < f.th.mitigation_ratio:
        return None
    return Finding(
        "immediate-mitigation",
        Severity.CRITICAL,
        f"memory at {pct(ratio)} (>= {pct(f.th.mitigation_ratio)}): runbook immediate mitigation: "
        "evict the idlest sessions (measured idle time, not arbitrary keys); "
        "those users log in again",
    )


def evictions(f: Facts) -> Finding | None:
    """Sessions evicted before their TTL are users logged out."""
    evicted = f.snap.stats.evicted_keys
    if evicted <= 0:
        return None
    return Finding(
        "evictions",
        Severity.WARNING,
        f"{evicted:,} keys evicted since Redis started (policy {f.policy}): sessions dropped "
        "before their TTL log users out",
    )


def swapping(f: Facts) -> Finding | None:
    """Fragmentation ratio below 1.0: the OS swapped part of Redis out."""
    if not f.swapping:
        return None
    return Finding(
        "swapping",
        Severity.WARNING,
        f"mem_fragmentation_ratio {f.mem.mem_fragmentation_ratio:.2f} < 1.0: RSS "
        f"{size(f.mem.used_memory_rss)} is below the {size(f.mem.used_memory)} in use, so part "
        "of Redis is swapped out (latency); give the pod more memory or lower maxmemory",
    )


def peak(f: Facts) -> Finding | None:
    """Peak far above current: RSS may stay high after a spike."""
    mem = f.mem
    if mem.used_memory <= 0 or f.fragmented:
        return None  # the fragmentation scenario already says it
    grew = mem.used_memory_peak / mem.used_memory
    if grew <= PEAK_RATIO or mem.used_memory_peak - mem.used_memory <= f.th.fragmentation_min_bytes:
        return None
    return Finding(
        "peak-memory",
        Severity.OK,
        f"peak memory {size(mem.used_memory_peak)} is {grew:.1f}x the current "
        f"{size(mem.used_memory)}: the RSS may stay high after the spike",
    )


def allocator_fragmentation(f: Facts) -> Finding | None:
    """High allocator fragmentation that the scenario did not already report."""
    mem = f.mem
    if f.fragmented or mem.allocator_frag_ratio is None or mem.allocator_frag_bytes is None:
        return None
    if mem.allocator_frag_ratio <= ALLOCATOR_FRAG_RATIO:
        return None
    if mem.allocator_frag_bytes <= f.th.fragmentation_min_bytes:
        return None
    return Finding(
        "allocator-fragmentation",
        Severity.OK,
        f"allocator fragmentation {mem.allocator_frag_ratio:.2f} "
        f"({size(mem.allocator_frag_bytes)}): activedefrag can reclaim it",
    )


def sample_size(f: Facts) -> Finding | None:
    """Too few session keys measured to judge them: say so instead of guessing."""
    sample = f.snap.sample
    if f.enough_sample:
        return None
    if f.sizes.sampled == 0 and f.snap.dbsize > 0:
        return Finding(
            "no-session-keys",
            Severity.WARNING,
            f"no key matched {sample.pattern!r} among {sample.probed:,} keys looked at "
            f"(dbsize {f.snap.dbsize:,}): is the session pattern right?",
        )
    return Finding(
        "few-session-keys",
        Severity.OK,
        f"only {f.sizes.sampled} session keys measured (< {f.th.min_sample}): no verdict on "
        "TTLs, sizes or idle time",
    )


def other_keys(f: Facts) -> Finding | None:
    """Memory is high but sessions are not what holds it."""
    share = f.session_share
    ratio = f.usage_ratio
    if ratio is None or ratio < f.th.warning_ratio or not f.enough_sample or share is None:
        return None
    if share >= f.th.sessions_share_ratio:
        return None
    return Finding(
        "other-keys",
        Severity.WARNING,
        f"session keys hold only ~{pct(share)} of used memory: the rest is other keys "
        f"({f.snap.dbsize:,} keys, ~{f.session_keys:,} sessions) or overhead",
    )


def policy_from_info(f: Facts) -> Finding | None:
    """CONFIG is disabled: the policy came from INFO and CONFIG SET fixes will not work live."""
    if f.snap.policy_source != "info":
        return None
    return Finding(
        "policy-from-info",
        Severity.OK,
        "CONFIG is disabled or renamed: maxmemory-policy was read from INFO; fixes that need "
        "CONFIG SET apply only through the ConfigMap and a restart",
    )


# A replica further behind than this is a warning: a failover now would lose those writes.
REPLICA_LAG_WARNING_BYTES = 1024**2


def replicas(f: Facts) -> tuple[Finding, ...]:
    """A sentinel target's replicas: how far each trails the primary, or that none is left."""
    reading = f.snap.sentinel
    if reading is None:
        return ()
    if not reading.replicas:
        return (
            Finding(
                "no-replica",
                Severity.WARNING,
                f"the sentinels list no replica of {reading.master_name}: "
                "a failover has nowhere to go",
            ),
        )
    return tuple(_replica(lag) for lag in reading.replicas)


def _replica(lag: ReplicaLag) -> Finding:
    if lag.lag_bytes is None:
        reason = lag.error or "no replication offset"
        message = f"replica {lag.address} lag unknown (link {lag.link}): {reason}"
        return Finding("replica-lag", Severity.WARNING, message)
    behind = lag.lag_bytes > REPLICA_LAG_WARNING_BYTES or lag.link != "up"
    return Finding(
        "replica-lag",
        Severity.WARNING if behind else Severity.OK,
        f"replica {lag.address} is {lag.lag_bytes:,} bytes behind (link {lag.link})",
    )


FINDERS: tuple[Callable[[Facts], Finding | None], ...] = (
    mitigation,
    no_limit,
    evictions,
    swapping,
    other_keys,
    sample_size,
    peak,
    allocator_fragmentation,
    policy_from_info,
)


def find_findings(f: Facts) -> tuple[Finding, ...]:
    """Every finding that applies, most urgent first."""
    found = [x for x in (finder(f) for finder in FINDERS) if x is not None]
    found.extend(replicas(f))
    return tuple(sorted(found, key=lambda x: -x.severity.rank))
