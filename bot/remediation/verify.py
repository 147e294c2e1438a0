"""Did it work? Compare the diagnosis before and after an action, in one verdict line."""

from __future__ import annotations

from bot.diagnosis.model import Diagnosis
from bot.remediation.model import Verification

# The runbook alerts (warning) at 80%: below it, the memory problem is fixed.
FIXED_RATIO = 0.80
# Less than one percentage point of change is noise (allocator, normal traffic).
NOISE = 0.01


def compare(
    before: Diagnosis,
    after: Diagnosis,
    *,
    pending: str = "no change yet",
    details: tuple[str, ...] = (),
) -> Verification:
    """Numbers before -> after and the verdict; ``pending`` explains a fix that acts slowly."""
    return Verification(
        used_memory_before=before.used_memory,
        used_memory_after=after.used_memory,
        usage_ratio_before=before.usage_ratio,
        usage_ratio_after=after.usage_ratio,
        evicted_keys_before=before.evicted_keys,
        evicted_keys_after=after.evicted_keys,
        dbsize_before=before.dbsize,
        dbsize_after=after.dbsize,
        session_keys_before=before.session_keys,
        session_keys_after=after.session_keys,
        verdict=verdict(before, after, pending=pending),
        details=details,
    )


def verdict(before: Diagnosis, after: Diagnosis, *, pending: str) -> str:
    """``memory 93% -> 47%: fixed`` / ``...: better, still above 80%`` / the pending line."""
    old, new = before.usage_ratio, after.usage_ratio
    if new is None:
        return f"no memory limit after the change ({after.used_memory:,} bytes used): {pending}"
    span = f"memory {_pct(old)} -> {_pct(new)}"
    if new < FIXED_RATIO and (old is None or old >= FIXED_RATIO or new <= old):
        return f"{span}: fixed"
    if old is not None and new < old - NOISE:
        return f"{span}: better, still above {_pct(FIXED_RATIO)}"
    if old is not None and new > old + NOISE:
        return f"{span}: worse: {pending}"
    return f"{span}: {pending}"


def _pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.0f}%"
