"""The runbook's capacity formula, margins and pod headroom."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.diagnosis.capacity import plan_capacity, plan_from_diagnosis
from bot.diagnosis.model import Diagnosis, IdleStats, Severity, SizeStats, TtlStats
from bot.diagnosis.serialize import capacity_to_dict
from bot.errors import UsageError

MIB = 1024**2


def test_runbook_example() -> None:
    plan = plan_capacity(users=10_000, sessions_per_user=3, session_size=2048)
    assert plan.sessions == 30_000
    assert plan.required_bytes == 73_728_000  # "~73 MB"
    assert plan.required_bytes / MIB == pytest.approx(70.3, abs=0.05)
    assert plan.recommended_min_bytes == 147_456_000
    assert plan.recommended_max_bytes == 221_184_000  # the runbook's "200-300 MB" margin
    assert 200 <= plan.maxmemory_mb <= 300
    assert plan.maxmemory_directive == "211mb"
    assert plan.pod_memory_limit_bytes >= plan.maxmemory_bytes * 1.5
    assert plan.pod_memory_limit == "317Mi"
    assert plan.pod_memory_request == "211Mi"


def test_sizes_scale_linearly() -> None:
    small = plan_capacity(users=1, sessions_per_user=1, session_size=1)
    assert small.required_bytes == 2  # ceil(1.2)
    assert small.maxmemory_mb == 1
    big = plan_capacity(users=1_000_000, sessions_per_user=5, session_size=10 * 1024, overhead=1.5)
    assert big.required_bytes == 1_000_000 * 5 * 10 * 1024 * 1.5
    assert big.maxmemory_mb * MIB >= big.recommended_max_bytes


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 0, "sessions_per_user": 3, "session_size": 2048},
        {"users": 10, "sessions_per_user": 0, "session_size": 2048},
        {"users": 10, "sessions_per_user": 3, "session_size": 0},
        {"users": -5, "sessions_per_user": 3, "session_size": 2048},
        {"users": 10, "sessions_per_user": 3, "session_size": 2048, "overhead": 0.5},
    ],
)
def test_bad_input_is_a_usage_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(UsageError) as err:
        plan_capacity(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def _diagnosis(*, session_keys: int, mean: float | None, maxmemory: int) -> Diagnosis:
    return Diagnosis(
        target="t",
        checked_at=datetime(2026, 1, 1, tzinfo=UTC),
        severity=Severity.OK,
        used_memory=1,
        maxmemory=maxmemory,
        usage_ratio=None,
        evicted_keys=0,
        mem_fragmentation_ratio=1.0,
        dbsize=session_keys,
        maxmemory_policy="allkeys-lru",
        session_keys=session_keys,
        sample_mode="sampled",
        ttl=TtlStats(0, 0, None, {}, 0),
        sizes=SizeStats(1 if mean else 0, mean, None, None, ()),
        idle=IdleStats(0, "idletime", 0, None, None, None),
        checks=(),
        scenarios=(),
        findings=(),
        recommended_actions=(),
    )


def test_plan_from_measured_sessions() -> None:
    plan = plan_from_diagnosis(_diagnosis(session_keys=30_000, mean=2048.4, maxmemory=100 * MIB))
    assert plan is not None
    assert plan.required_bytes == 73_728_000
    assert plan.current_maxmemory == 100 * MIB
    assert plan.current_is_enough is False  # 100 MB < 2 x 70.3 MB
    doc = capacity_to_dict(plan)
    assert doc["maxmemory"] == "211mb" and doc["current_is_enough"] is False


def test_plan_from_nothing_measured() -> None:
    assert plan_from_diagnosis(_diagnosis(session_keys=0, mean=None, maxmemory=0)) is None
