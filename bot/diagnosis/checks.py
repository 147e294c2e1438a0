"""The runbook's six diagnosis steps, each as a ``Check`` with numbers behind it.

Only the memory check (step 1) can be critical: it is what the
``RedisHighMemoryUsage`` alert pages on. The others flag what needs fixing
(warning) so the overall severity does not page for a latent problem.
"""

from __future__ import annotations

from typing import Any

from bot.diagnosis.facts import Facts, pct, size
from bot.diagnosis.model import Check, Severity
from bot.diagnosis.scenarios import policy_problem
from bot.units import format_duration


def memory_check(f: Facts) -> Check:
    """Step 1: used memory against maxmemory."""
    mem = f.mem
    if f.usage_ratio is None:
        summary = (
            f"used {size(mem.used_memory)}, no maxmemory limit: Redis grows until the pod is "
            "OOM-killed and eviction never applies"
        )
    else:
        summary = f"used {size(mem.used_memory)} of {size(mem.maxmemory)} ({pct(f.usage_ratio)})"
    if f.snap.stats.evicted_keys:
        summary += f", {f.snap.stats.evicted_keys:,} keys evicted"
    return Check(
        id="memory",
        step=1,
        title="Memory usage",
        status=f.usage_severity,
        summary=summary,
        details={
            "used_memory": mem.used_memory,
            "maxmemory": mem.maxmemory,
            "usage_ratio": f.usage_ratio,
            "used_memory_rss": mem.used_memory_rss,
            "used_memory_peak": mem.used_memory_peak,
            "evicted_keys": f.snap.stats.evicted_keys,
            "warning_ratio": f.th.warning_ratio,
            "critical_ratio": f.th.critical_ratio,
        },
    )


def key_count_check(f: Facts) -> Check:
    """Step 2: DBSIZE and the session keys in it."""
    sample = f.snap.sample
    expected = f.th.expected_sessions
    over = expected is not None and f.session_keys > expected
    summary = f"{f.snap.dbsize:,} keys, ~{f.session_keys:,} match {sample.pattern!r}"
    if over:
        summary += f" (expected at most {expected:,})"
    return Check(
        id="key-count",
        step=2,
        title="Key count",
        status=Severity.WARNING if over else Severity.OK,
        summary=summary,
        details={
            "dbsize": f.snap.dbsize,
            "session_keys": f.session_keys,
            "pattern": sample.pattern,
            "mode": sample.mode,
            "probed": sample.probed,
            "matched": sample.matched,
            "method": sample.method,
            "expected_sessions": expected,
        },
    )


def ttl_check(f: Facts) -> Check:
    """Step 3: session keys without TTL, or with very long ones."""
    ttl = f.ttl
    details: dict[str, Any] = {
        "sampled": ttl.sampled,
        "without_ttl": ttl.without_ttl,
        "without_ttl_ratio": ttl.without_ttl_ratio,
        "long_ttl": ttl.long_ttl,
        "histogram": dict(ttl.histogram),
    }
    if not f.enough_sample:
        return _no_verdict("ttl", 3, "Session TTLs", f, details)
    leak = ttl.without_ttl > 0 and (ttl.without_ttl_ratio or 0) >= f.th.ttl_leak_ratio
    long_share = ttl.long_ttl / ttl.sampled
    very_long = ttl.long_ttl > 0 and long_share >= f.th.ttl_leak_ratio
    summary = (
        f"{ttl.without_ttl:,} of {ttl.sampled:,} sampled without TTL ({pct(ttl.without_ttl_ratio)})"
    )
    if ttl.long_ttl:
        summary += f", {ttl.long_ttl:,} with TTL over {format_duration(f.th.long_ttl_seconds)}"
    status = Severity.WARNING if leak or very_long else Severity.OK
    return Check(
        id="ttl", step=3, title="Session TTLs", status=status, summary=summary, details=details
    )


def eviction_policy_check(f: Facts) -> Check:
    """Step 4: the eviction policy, judged by scenario 5's rules."""
    problem = policy_problem(f) is not None  # scenario 5's rule, without its evidence text
    source = "CONFIG" if f.snap.policy_source == "config" else "INFO (CONFIG unavailable)"
    summary = f"maxmemory-policy {f.policy} (read from {source})"
    if problem:
        summary += ": cannot free the memory sessions need"
    return Check(
        id="eviction-policy",
        step=4,
        title="Eviction policy",
        status=Severity.WARNING if problem else Severity.OK,
        summary=summary,
        details={"maxmemory_policy": f.policy, "source": f.snap.policy_source},
    )


def key_sizes_check(f: Facts) -> Check:
    """Step 5: session sizes (``MEMORY USAGE``, not DEBUG OBJECT's serialized length)."""
    sizes = f.sizes
    details: dict[str, Any] = {
        "sampled": sizes.sampled,
        "mean_bytes": sizes.mean_bytes,
        "p95_bytes": sizes.p95_bytes,
        "max_bytes": sizes.max_bytes,
        "session_bytes_estimate": f.session_bytes,
        "session_share": f.session_share,
    }
    if not f.enough_sample:
        return _no_verdict("key-sizes", 5, "Session sizes", f, details)
    summary = (
        f"mean {size(sizes.mean_bytes)}, p95 {size(sizes.p95_bytes)}, max {size(sizes.max_bytes)}; "
        f"sessions hold ~{size(f.session_bytes)} ({pct(f.session_share)} of used)"
    )
    status = Severity.WARNING if f.sessions_large else Severity.OK
    return Check(
        id="key-sizes",
        step=5,
        title="Session sizes",
        status=status,
        summary=summary,
        details=details,
    )


def fragmentation_check(f: Facts) -> Check:
    """Step 6: fragmentation ratio, judged with the bytes it wastes."""
    mem = f.mem
    ratio = mem.mem_fragmentation_ratio
    summary = f"mem_fragmentation_ratio {ratio:.2f}, RSS - used = {size(f.wasted_bytes)}"
    if f.fragmented:
        summary += ": high fragmentation"
    elif f.swapping:
        summary += ": below 1.0, memory is being swapped"
    elif ratio > f.th.fragmentation_ratio:
        summary += _small_store(f)
    return Check(
        id="fragmentation",
        step=6,
        title="Memory fragmentation",
        status=Severity.WARNING if f.fragmented or f.swapping else Severity.OK,
        summary=summary,
        details={
            "mem_fragmentation_ratio": ratio,
            "mem_fragmentation_bytes": f.wasted_bytes,
            "allocator_frag_ratio": mem.allocator_frag_ratio,
            "allocator_frag_bytes": mem.allocator_frag_bytes,
            "used_memory_rss": mem.used_memory_rss,
            "excess_fragmentation_bytes": f.excess_waste,
        },
    )


def _small_store(f: Facts) -> str:
    """Why a high ratio is not fragmentation, naming the figure compared with the floor.

    RSS - used may be over the floor while what is compared (the part beyond the
    process's baseline RSS) is under it: then both figures and the baseline are shown,
    or the reader sees "11.2 MB ... under 10.0 MB wasted" and a contradiction.
    """
    floor = size(f.th.fragmentation_min_bytes)
    if f.wasted_bytes <= f.th.fragmentation_min_bytes:
        return f": ratio high but under {floor} wasted (small store)"
    excess = max(f.excess_waste, 0)
    baseline = size(f.wasted_bytes - excess)
    if f.mem.allocator_frag_bytes is not None:
        part = f"{size(excess)} is allocator fragmentation and {baseline} the process's baseline"
    else:
        part = f"{size(excess)} beyond the {baseline} baseline of an empty Redis 7 process"
    return f", of which {part}: under {floor} wasted (small store)"


def _no_verdict(
    check_id: str, step: int, title: str, f: Facts, details: dict[str, object]
) -> Check:
    summary = f"only {f.sizes.sampled} session keys measured (< {f.th.min_sample}): no verdict"
    return Check(
        id=check_id, step=step, title=title, status=Severity.OK, summary=summary, details=details
    )


def run_checks(f: Facts) -> tuple[Check, ...]:
    """The six runbook steps in order (ids as ``model.CHECK_IDS``)."""
    return (
        memory_check(f),
        key_count_check(f),
        ttl_check(f),
        eviction_policy_check(f),
        key_sizes_check(f),
        fragmentation_check(f),
    )
