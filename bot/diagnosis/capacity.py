"""The runbook's capacity formula, with its safety margin and pod headroom.

    sessions = users x sessions_per_user
    required = sessions x session_size x overhead (1.2: 20% for fragmentation)
    margin   = 2-3x required, for peak load

The suggested ``maxmemory`` is the 3x end rounded up to whole MB: for a
session store an eviction is a user logged out, so we size generously (the
runbook's own example lands on the 200-300 MB it quotes). The pod limit keeps
1.5x headroom over maxmemory, as the runbook does (1024mb -> 1.5Gi), because a
limit at or below maxmemory gets the pod OOM-killed before Redis evicts; the
request equals maxmemory (runbook: request 1Gi for maxmemory 1024mb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bot.diagnosis.model import Diagnosis
from bot.errors import UsageError

MIB = 1024**2
DEFAULT_OVERHEAD = 1.2
MARGIN_MIN = 2
MARGIN_MAX = 3
POD_HEADROOM = 1.5


@dataclass(frozen=True)
class CapacityPlan:
    """What the store needs, and what to configure (bytes unless named otherwise)."""

    sessions: int
    session_size: int
    overhead: float
    required_bytes: int
    recommended_min_bytes: int  # 2x required
    recommended_max_bytes: int  # 3x required
    maxmemory_mb: int  # suggested maxmemory, whole MB (redis.conf "<n>mb")
    pod_memory_request_bytes: int
    pod_memory_limit_bytes: int  # maxmemory x 1.5
    users: int | None = None
    sessions_per_user: int | None = None
    current_maxmemory: int | None = None  # measured plans: the store's maxmemory now (0: none)

    @property
    def maxmemory_bytes(self) -> int:
        """The suggested maxmemory in bytes."""
        return self.maxmemory_mb * MIB

    @property
    def maxmemory_directive(self) -> str:
        """The suggested maxmemory as redis.conf writes it, e.g. ``211mb``."""
        return f"{self.maxmemory_mb}mb"

    @property
    def pod_memory_limit(self) -> str:
        """The pod limit as Kubernetes writes it, e.g. ``317Mi``."""
        return f"{math.ceil(self.pod_memory_limit_bytes / MIB)}Mi"

    @property
    def pod_memory_request(self) -> str:
        """The pod request as Kubernetes writes it."""
        return f"{math.ceil(self.pod_memory_request_bytes / MIB)}Mi"

    @property
    def current_is_enough(self) -> bool | None:
        """Whether the current maxmemory covers the 2x margin; None when not measured."""
        if self.current_maxmemory is None:
            return None
        return self.current_maxmemory > 0 and self.current_maxmemory >= self.recommended_min_bytes


def plan_capacity(
    *,
    users: int,
    sessions_per_user: int,
    session_size: int,
    overhead: float = DEFAULT_OVERHEAD,
) -> CapacityPlan:
    """The runbook formula for ``users`` x ``sessions_per_user`` sessions of ``session_size`` bytes.

    Raises UsageError (one line) for a count below 1, a size below 1 byte or an
    overhead below 1.
    """
    _at_least_one("users", users)
    _at_least_one("sessions per user", sessions_per_user)
    plan = _plan(sessions=users * sessions_per_user, session_size=session_size, overhead=overhead)
    return replace(plan, users=users, sessions_per_user=sessions_per_user)


def plan_from_diagnosis(d: Diagnosis, *, overhead: float = DEFAULT_OVERHEAD) -> CapacityPlan | None:
    """The formula fed with the measured session count and mean size; None if nothing measured."""
    mean = d.sizes.mean_bytes
    if d.session_keys < 1 or mean is None or mean < 1:
        return None
    plan = _plan(sessions=d.session_keys, session_size=round(mean), overhead=overhead)
    return replace(plan, current_maxmemory=d.maxmemory)


def _plan(*, sessions: int, session_size: int, overhead: float) -> CapacityPlan:
    _at_least_one("session size", session_size)
    if not (isinstance(overhead, int | float) and math.isfinite(overhead) and overhead >= 1):
        raise UsageError(f"invalid overhead {overhead!r}: must be a number of at least 1")
    required = math.ceil(sessions * session_size * overhead)
    maxmemory_mb = math.ceil(required * MARGIN_MAX / MIB)
    return CapacityPlan(
        sessions=sessions,
        session_size=session_size,
        overhead=overhead,
        required_bytes=required,
        recommended_min_bytes=required * MARGIN_MIN,
        recommended_max_bytes=required * MARGIN_MAX,
        maxmemory_mb=maxmemory_mb,
        pod_memory_request_bytes=maxmemory_mb * MIB,
        pod_memory_limit_bytes=math.ceil(maxmemory_mb * POD_HEADROOM) * MIB,
    )


# Far beyond any session store, and small enough that the float maths stays finite.
MAX_COUNT = 10**12


def _at_least_one(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"invalid {what} {value!r}: must be a whole number of at least 1")
    if value > MAX_COUNT:
        raise UsageError(
            f"invalid {what}: must be at most {MAX_COUNT:,} (got {len(str(value))} digits)"
        )
