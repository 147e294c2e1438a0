"""The diagnosis engine on hand-built snapshots: cheap, many edge cases."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import Thresholds
from bot.diagnosis.engine import diagnose, rank_actions
from bot.diagnosis.model import (
    ACTION_IDS,
    CHECK_IDS,
    SCENARIO_IDS,
    Diagnosis,
    Scenario,
    Severity,
)
from bot.diagnosis.serialize import diagnosis_to_dict
from bot.diagnosis.stats import idle_stats, percentile, size_stats, ttl_stats
from bot.redisinfo.snapshot import KeySample, KeyspaceDb, KeyStat, MemoryInfo, Snapshot, StatsInfo

MB = 1024**2
TH = Thresholds()


def sessions(
    n: int,
    *,
    size: int = 1200,
    ttl: int = 3600 * 12,
    idle: int | None = 60,
    freq: int | None = None,
    prefix: str = "session:",
) -> list[KeyStat]:
    """n live session keys with the same shape."""
    return [KeyStat(f"{prefix}{i}", ttl, size, idle, freq) for i in range(n)]


def snap(
    *,
    used: int = 20 * MB,
    maxmemory: int = 100 * MB,
    rss: int | None = None,
    peak: int | None = None,
    policy: str = "allkeys-lru",
    keys: list[KeyStat] | None = None,
    estimate: int | None = None,
    evicted: int = 0,
    dbsize: int | None = None,
    expires: int | None = None,
    allocator: tuple[float, int] | None = None,
    settings: dict[str, str] | None = None,
    policy_source: str = "config",
    mode: str = "sampled",
) -> Snapshot:
    """A snapshot with sensible defaults; every scenario starts from a healthy store."""
    keys = sessions(200) if keys is None else keys
    rss = int(used * 1.1) if rss is None else rss
    estimate = len(keys) if estimate is None else estimate
    dbsize = estimate if dbsize is None else dbsize
    with_ttl = sum(1 for k in keys if k.ttl >= 0)
    expires = round(dbsize * with_ttl / len(keys)) if expires is None and keys else expires or 0
    memory = MemoryInfo(
        used_memory=used,
        used_memory_rss=rss,
        used_memory_peak=peak if peak is not None else used,
        maxmemory=maxmemory,
        maxmemory_policy=policy,
        mem_fragmentation_ratio=rss / used,
        mem_fragmentation_bytes=rss - used,
        allocator_frag_ratio=allocator[0] if allocator else 1.01,
        allocator_frag_bytes=allocator[1] if allocator else 100_000,
    )
    sample = KeySample(
        mode=mode,  # type: ignore[arg-type]
        pattern="session:*",
        keys=tuple(keys),
        probed=max(len(keys), 1),
        matched=len(keys),
        session_keys_estimate=estimate,
        method="randomkey",
    )
    return Snapshot(
        target="test",
        taken_at=datetime(2026, 11, 29, 3, 0, tzinfo=UTC),
        redis_version="7.0.15",
        memory=memory,
        stats=StatsInfo(evicted_keys=evicted, expired_keys=0),
        keyspace=(KeyspaceDb(0, dbsize, expires, 0),) if dbsize else (),
        db=0,
        dbsize=dbsize,
        maxmemory_policy=policy,
        policy_source=policy_source,  # type: ignore[arg-type]
        sample=sample,
        settings=settings or {},
    )


def ids(d: Diagnosis) -> set[str]:
    """Scenario ids of a diagnosis."""
    return {s.id for s in d.scenarios}


def scenario(d: Diagnosis, scenario_id: str) -> Scenario:
    """The named scenario (fails the test when absent)."""
    return next(s for s in d.scenarios if s.id == scenario_id)


def finding_ids(d: Diagnosis) -> set[str]:
    """Finding ids of a diagnosis."""
    return {f.id for f in d.findings}


# --- a healthy store, and the shape of every diagnosis -------------------------------


def test_healthy_store_names_no_scenario() -> None:
    d = diagnose(snap(), TH)
    assert d.severity is Severity.OK
    assert d.scenarios == ()
    assert d.recommended_actions == ()
    assert [c.id for c in d.checks] == list(CHECK_IDS)
    assert all(c.status is Severity.OK for c in d.checks)
    assert d.usage_ratio == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("used_mb", "severity"),
    [(79, Severity.OK), (80, Severity.WARNING), (89, Severity.WARNING), (90, Severity.CRITICAL)],
)
def test_severity_at_runbook_thresholds(used_mb: int, severity: Severity) -> None:
    keys = sessions(200, size=100)  # sessions are a small share: no scenario
    d = diagnose(snap(used=used_mb * MB, keys=keys), TH)
    assert d.severity is severity
    assert d.checks[0].status is severity


def test_thresholds_are_configurable() -> None:
    d = diagnose(snap(used=70 * MB), Thresholds(warning_ratio=0.6, critical_ratio=0.65))
    assert d.severity is Severity.CRITICAL


# --- maxmemory 0 ----------------------------------------------------------------------


def test_maxmemory_zero_has_no_ratio_and_warns() -> None:
    d = diagnose(snap(maxmemory=0, policy="noeviction"), TH)
    assert d.usage_ratio is None
    assert d.severity is Severity.WARNING
    assert "no-maxmemory" in finding_ids(d)
    assert "OOM-killed" in d.checks[0].summary
    # noeviction without a limit is the no-limit finding, not scenario 5
    assert "eviction-policy" not in ids(d)
    assert diagnosis_to_dict(d)["usage_ratio"] is None


# --- empty keyspace, no session keys, few samples ------------------------------------


def test_empty_keyspace() -> None:
    d = diagnose(snap(keys=[], dbsize=0, used=1 * MB), TH)
    assert d.scenarios == ()
    assert d.ttl.without_ttl_ratio is None
    assert d.sizes.mean_bytes is None
    assert "few-session-keys" in finding_ids(d)
    json.dumps(diagnosis_to_dict(d))


def test_no_session_keys_in_a_busy_db_says_check_the_pattern() -> None:
    d = diagnose(snap(keys=[], estimate=0, dbsize=50_000, used=95 * MB), TH)
    assert "no-session-keys" in finding_ids(d)
    assert "too-many-sessions" not in ids(d)
    assert d.severity is Severity.CRITICAL


def test_few_sampled_keys_give_no_verdict() -> None:
    keys = sessions(10, ttl=-1, size=50_000, idle=10 * 86400)
    d = diagnose(snap(keys=keys, estimate=10), TH)
    assert d.scenarios == ()
    assert "few-session-keys" in finding_ids(d)
    assert "no verdict" in d.checks[2].summary


def test_vanished_keys_are_left_out() -> None:
    keys = [*sessions(30), KeyStat("session:gone", -2, 0)]
    d = diagnose(snap(keys=keys), TH)
    assert d.ttl.sampled == 30
    assert d.ttl.without_ttl == 0


# --- scenario 1: too many sessions ----------------------------------------------------


def test_too_many_sessions_when_sessions_fill_memory() -> None:
    # 80,000 sessions x 1.2 KB ~ 92 MB of 100 MB
    d = diagnose(snap(used=93 * MB, keys=sessions(500), estimate=80_000, evicted=1200), TH)
    assert ids(d) == {"too-many-sessions"}
    s = scenario(d, "too-many-sessions")
    assert s.recommended_actions == (
        "raise-maxmemory",
        "shorten-session-ttl",
        "limit-concurrent-sessions",
    )
    assert any("80,000" in line for line in s.evidence)
    assert d.severity is Severity.CRITICAL


def test_too_many_sessions_needs_sessions_to_hold_the_memory() -> None:
    d = diagnose(snap(used=93 * MB, keys=sessions(500), estimate=5_000), TH)
    assert "too-many-sessions" not in ids(d)
    assert "other-keys" in finding_ids(d)


def test_too_many_sessions_from_expected_count_without_pressure() -> None:
    d = diagnose(snap(estimate=60_000), Thresholds(expected_sessions=30_000))
    assert "too-many-sessions" in ids(d)
    assert d.checks[1].status is Severity.WARNING


# --- scenario 2: ttl leak -------------------------------------------------------------


def test_ttl_leak() -> None:
    keys = sessions(180) + sessions(20, ttl=-1, prefix="session:leak:")
    d = diagnose(snap(keys=keys, estimate=40_000), TH)
    assert ids(d) == {"ttl-leak"}
    assert d.ttl.without_ttl_ratio == pytest.approx(0.1)
    assert d.recommended_actions == ("expire-keys-without-ttl",)
    assert any("20 of 200" in line for line in scenario(d, "ttl-leak").evidence)


def test_a_few_keys_without_ttl_below_the_ratio_is_not_a_leak() -> None:
    keys = sessions(199) + sessions(1, ttl=-1, prefix="session:x:")
    assert "ttl-leak" not in ids(diagnose(snap(keys=keys), TH))


def test_ttl_leak_ratio_is_configurable() -> None:
    keys = sessions(199) + sessions(1, ttl=-1, prefix="session:x:")
    assert "ttl-leak" in ids(diagnose(snap(keys=keys), Thresholds(ttl_leak_ratio=0.005)))


def test_ttl_histogram_buckets() -> None:
    keys = [KeyStat(f"s{i}", t, 100) for i, t in enumerate([-1, 10, 3600, 86399, 86400, 8 * 86400])]
    t = ttl_stats(keys, long_ttl_seconds=7 * 86400)
    assert t.histogram == {"none": 1, "<1h": 1, "1h-24h": 2, "1d-7d": 1, ">7d": 1}
    assert t.long_ttl == 1


# --- scenario 3: large sessions -------------------------------------------------------


def test_large_sessions_name_the_top_keys() -> None:
    keys = sessions(150, size=30_000) + sessions(50, size=900_000, prefix="session:huge:")
    d = diagnose(snap(used=40 * MB, keys=keys, estimate=200), TH)
    assert ids(d) == {"large-sessions"}
    s = scenario(d, "large-sessions")
    assert any("session:huge:" in line for line in s.evidence)
    assert any("application" in line for line in s.evidence)
    assert s.recommended_actions == ()  # no memory pressure: nothing to buy time for
    assert d.sizes.top_keys[0][1] == 900_000


def test_large_sessions_under_pressure_recommend_more_memory_as_stop_gap() -> None:
    keys = sessions(200, size=40_000)
    d = diagnose(snap(used=85 * MB, keys=keys, estimate=2_000), TH)
    assert "large-sessions" in ids(d)
    assert "too-many-sessions" not in ids(d)  # it is their size, not their number
    assert scenario(d, "large-sessions").recommended_actions == ("raise-maxmemory",)


def test_a_few_large_outliers_are_not_large_sessions() -> None:
    keys = sessions(198, size=1000) + sessions(2, size=500_000, prefix="session:big:")
    assert "large-sessions" not in ids(diagnose(snap(keys=keys), TH))


# --- scenario 4: fragmentation --------------------------------------------------------


def test_fragmentation_with_wasted_bytes() -> None:
    d = diagnose(snap(used=40 * MB, rss=120 * MB, peak=300 * MB, allocator=(2.5, 70 * MB)), TH)
    assert ids(d) == {"fragmentation"}
    s = scenario(d, "fragmentation")
    assert s.recommended_actions == ("enable-activedefrag", "restart-redis")
    assert d.recommended_actions == ("enable-activedefrag", "restart-redis")
    assert d.checks[5].status is Severity.WARNING


@pytest.mark.parametrize(
    ("used", "rss", "allocator"),
    [
        # measured on fresh redis-server 7.0 processes (the ~12 MB is the process baseline)
        (964_224, 12_341_248, (1.08, 148_256)),  # empty: ratio 12.8
        (5_544_616, 17_244_160, (1.06, 363_960)),  # 5 MB of sessions: ratio 3.11
        (18_061_208, 29_974_528, (1.02, 346_528)),  # 18 MB: ratio 1.66, 11.9 MB "wasted"
    ],
)
def test_small_store_with_huge_ratio_is_not_fragmentation(
    used: int, rss: int, allocator: tuple[float, int]
) -> None:
    d = diagnose(snap(used=used, rss=rss, allocator=allocator, keys=sessions(50)), TH)
    assert d.mem_fragmentation_ratio > 1.5
    assert "fragmentation" not in ids(d)
    assert d.checks[5].status is Severity.OK


def test_small_store_message_shows_the_figure_it_compares() -> None:
    # The case: RSS - used over the 10 MB floor, the part beyond the baseline under it.
    used = 20 * MB
    wasted = round(11.2 * MB)
    s = snap(used=used, rss=used + wasted, allocator=(1.05, round(1.9 * MB)), keys=sessions(50))
    check = diagnose(s, TH).checks[5]
    assert check.status is Severity.OK
    assert check.summary == (
        "mem_fragmentation_ratio 1.56, RSS - used = 11.2 MB, of which 1.9 MB is allocator "
        "fragmentation and 9.3 MB the process's baseline: under 10.0 MB wasted (small store)"
    )
    assert check.details["excess_fragmentation_bytes"] == round(1.9 * MB)


def test_small_store_message_without_allocator_stats_names_the_baseline() -> None:
    s = snap(used=18 * MB, rss=31 * MB, keys=sessions(50))
    s = replace(s, memory=replace(s.memory, allocator_frag_ratio=None, allocator_frag_bytes=None))
    assert diagnose(s, TH).checks[5].summary == (
        "mem_fragmentation_ratio 1.72, RSS - used = 13.0 MB, of which 1.0 MB beyond the "
        "12.0 MB baseline of an empty Redis 7 process: under 10.0 MB wasted (small store)"
    )


def test_small_store_message_when_rss_minus_used_is_under_the_floor() -> None:
    s = snap(used=5 * MB, rss=13 * MB, keys=sessions(50))
    assert diagnose(s, TH).checks[5].summary == (
        "mem_fragmentation_ratio 2.60, RSS - used = 8.0 MB: ratio high but under 10.0 MB "
        "wasted (small store)"
    )


def test_small_store_without_allocator_stats_discounts_the_baseline() -> None:
    s = snap(used=18 * MB, rss=30 * MB, keys=sessions(50))
    s = replace(s, memory=replace(s.memory, allocator_frag_ratio=None, allocator_frag_bytes=None))
    assert "fragmentation" not in ids(diagnose(s, TH))
    s = replace(
        s, memory=replace(s.memory, used_memory_rss=60 * MB, mem_fragmentation_bytes=42 * MB)
    )
    assert "fragmentation" in ids(diagnose(s, TH))


def test_churned_store_is_fragmentation() -> None:
    # measured: 300k keys written, 90% unlinked at random, activedefrag off
    d = diagnose(
        snap(used=16_646_688, rss=93_671_424, peak=79_451_512, allocator=(4.53, 60_541_584)), TH
    )
    assert "fragmentation" in ids(d)
    assert any("peak" in e for e in scenario(d, "fragmentation").evidence)


def test_fragmentation_with_activedefrag_already_on_recommends_restart_only() -> None:
    d = diagnose(
        snap(
            used=40 * MB, rss=120 * MB, allocator=(2.5, 70 * MB), settings={"activedefrag": "yes"}
        ),
        TH,
    )
    assert scenario(d, "fragmentation").recommended_actions == ("restart-redis",)


def test_swapping_is_a_finding_not_fragmentation() -> None:
    d = diagnose(snap(used=60 * MB, rss=40 * MB), TH)
    assert "swapping" in finding_ids(d)
    assert "fragmentation" not in ids(d)
    assert d.checks[5].status is Severity.WARNING


def test_tiny_store_below_one_is_not_swapping() -> None:
    d = diagnose(snap(used=2 * MB, rss=1 * MB), TH)
    assert "swapping" not in finding_ids(d)


# --- scenario 5: eviction policy ------------------------------------------------------


def test_noeviction_with_a_limit() -> None:
    d = diagnose(snap(policy="noeviction"), TH)
    assert ids(d) == {"eviction-policy"}
    s = scenario(d, "eviction-policy")
    assert s.recommended_actions == ("set-eviction-policy",)
    assert any("volatile-* policies can only evict keys that carry a TTL" in e for e in s.evidence)
    assert d.checks[3].status is Severity.WARNING


def test_volatile_policy_with_sessions_without_ttl() -> None:
    keys = sessions(150) + sessions(50, ttl=-1, prefix="session:nottl:")
    d = diagnose(snap(policy="volatile-lru", keys=keys), TH)
    assert {"eviction-policy", "ttl-leak"} <= ids(d)
    assert scenario(d, "eviction-policy").recommended_actions == (
        "set-eviction-policy",
        "expire-keys-without-ttl",
    )
    assert d.recommended_actions[:2] == ("set-eviction-policy", "expire-keys-without-ttl")


def test_volatile_policy_with_ttl_less_bulk_under_pressure() -> None:
    # sessions all have a TTL, but 80% of the db (other keys) has none and evictions happen
    d = diagnose(
        snap(
            policy="volatile-lru",
            used=85 * MB,
            estimate=2_000,
            dbsize=10_000,
            expires=2_000,
            evicted=500,
        ),
        TH,
    )
    s = scenario(d, "eviction-policy")
    assert s.recommended_actions == ("set-eviction-policy",)
    assert any("8,000 of 10,000" in e for e in s.evidence)


def test_volatile_policy_with_ttl_less_bulk_but_no_pressure_is_fine() -> None:
    d = diagnose(snap(policy="volatile-lru", estimate=2_000, dbsize=10_000, expires=2_000), TH)
    assert "eviction-policy" not in ids(d)


def test_random_policy_evicting_sessions() -> None:
    d = diagnose(snap(policy="allkeys-random", evicted=10), TH)
    assert "eviction-policy" in ids(d)
    assert "eviction-policy" not in ids(diagnose(snap(policy="allkeys-random"), TH))


def test_policy_read_from_info() -> None:
    d = diagnose(snap(policy="noeviction", policy_source="info"), TH)
    assert "policy-from-info" in finding_ids(d)
    assert "INFO" in d.checks[3].summary


# --- scenario 6: stale sessions, LRU and LFU ------------------------------------------


def test_stale_sessions() -> None:
    keys = sessions(60, idle=30) + sessions(140, idle=6 * 3600, prefix="session:old:")
    d = diagnose(snap(keys=keys, estimate=20_000), TH)
    assert ids(d) == {"stale-sessions"}
    assert d.idle.stale_ratio == pytest.approx(0.7)
    assert d.severity is Severity.WARNING  # no check flags idle time, the scenario does
    # no memory pressure: logging users out would free memory nobody needs
    assert d.recommended_actions == ("shorten-session-ttl", "enable-sliding-window")


def test_stale_sessions_under_pressure_recommend_evicting_the_idlest() -> None:
    keys = sessions(60, idle=30) + sessions(140, idle=6 * 3600, prefix="session:old:")
    d = diagnose(snap(keys=keys, used=85 * MB, estimate=20_000), TH)
    assert scenario(d, "stale-sessions").recommended_actions[-1] == "evict-idle-sessions"


def test_stale_ratio_below_threshold() -> None:
    keys = sessions(160, idle=30) + sessions(40, idle=6 * 3600, prefix="session:old:")
    assert "stale-sessions" not in ids(diagnose(snap(keys=keys), TH))
    assert "stale-sessions" in ids(diagnose(snap(keys=keys), Thresholds(stale_ratio=0.2)))


def test_lfu_stale_means_counter_zero() -> None:
    keys = sessions(50, idle=None, freq=5) + sessions(150, idle=None, freq=0, prefix="session:c:")
    d = diagnose(snap(policy="allkeys-lfu", keys=keys), TH)
    assert d.idle.measure == "lfu"
    assert d.idle.p50_idle_seconds is None
    assert "stale-sessions" in ids(d)
    assert any("LFU counter 0" in e for e in scenario(d, "stale-sessions").evidence)


def test_idle_stats() -> None:
    keys = [KeyStat(f"k{i}", 10, 1, idle_seconds=i * 3600) for i in range(10)]
    idle = idle_stats(keys, stale_idle_seconds=4 * 3600)
    assert (idle.stale, idle.p50_idle_seconds, idle.max_idle_seconds) == (5, 4 * 3600, 9 * 3600)


# --- immediate mitigation and action ranking ------------------------------------------


def test_immediate_mitigation_puts_eviction_of_idle_sessions_first() -> None:
    d = diagnose(snap(used=97 * MB, keys=sessions(500), estimate=80_000, evicted=10), TH)
    assert d.recommended_actions[0] == "evict-idle-sessions"
    assert "immediate-mitigation" in finding_ids(d)
    assert d.findings[0].severity is Severity.CRITICAL
    assert len(set(d.recommended_actions)) == len(d.recommended_actions)


def test_rank_actions_union_without_duplicates() -> None:
    a = Scenario("stale-sessions", "", "", (), ("enable-sliding-window", "evict-idle-sessions"))
    b = Scenario("ttl-leak", "", "", (), ("expire-keys-without-ttl", "evict-idle-sessions"))
    assert rank_actions([a, b], mitigate=False) == (
        "expire-keys-without-ttl",
        "enable-sliding-window",
        "evict-idle-sessions",
    )


def test_every_id_is_from_the_contract() -> None:
    keys = sessions(100, size=40_000, idle=9 * 3600) + sessions(
        100, ttl=-1, size=40_000, idle=9 * 3600, prefix="session:n:"
    )
    d = diagnose(
        snap(
            policy="volatile-lru",
            used=98 * MB,
            rss=300 * MB,
            allocator=(2.0, 150 * MB),
            keys=keys,
            estimate=2_400,
            evicted=5,
        ),
        TH,
    )
    assert set(ids(d)) <= set(SCENARIO_IDS)
    assert {
        "ttl-leak",
        "large-sessions",
        "fragmentation",
        "eviction-policy",
        "stale-sessions",
    } <= ids(d)
    assert set(d.recommended_actions) <= set(ACTION_IDS)
    for s in d.scenarios:
        assert set(s.recommended_actions) <= set(ACTION_IDS)
        assert s.evidence


# --- stats helpers --------------------------------------------------------------------


def test_percentile_and_sizes() -> None:
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile([7], 0.95) == 7
    s = size_stats([KeyStat(f"k{i}", 10, i) for i in range(1, 101)])
    assert (s.mean_bytes, s.p95_bytes, s.max_bytes) == (50.5, 95, 100)
    assert len(s.top_keys) == 10 and s.top_keys[0] == ("k100", 100)


# --- JSON -----------------------------------------------------------------------------

CONTRACT_KEYS = {
    "target", "checked_at", "used_memory", "maxmemory", "usage_ratio", "severity",
    "evicted_keys", "mem_fragmentation_ratio", "dbsize", "maxmemory_policy", "session_keys",
    "ttl", "sizes", "scenarios",
}  # fmt: skip


def test_json_has_the_contract_keys() -> None:
    keys = sessions(180) + sessions(20, ttl=-1, prefix="session:leak:")
    doc: dict[str, Any] = json.loads(json.dumps(diagnosis_to_dict(diagnose(snap(keys=keys), TH))))
    assert set(doc) >= CONTRACT_KEYS
    assert doc["checked_at"] == "2026-11-29T03:00:00Z"
    assert {"sampled", "without_ttl", "without_ttl_ratio", "histogram"} <= set(doc["ttl"])
    assert {"sampled", "mean_bytes", "p95_bytes", "max_bytes", "top_keys"} <= set(doc["sizes"])
    assert set(doc["sizes"]["top_keys"][0]) == {"key", "bytes"}
    assert doc["scenarios"][0]["id"] == "ttl-leak"
    assert {"id", "evidence", "recommended_actions"} <= set(doc["scenarios"][0])
    assert doc["severity"] == "warning"  # the TTL check flags the leak
    assert doc["capacity"]["sessions"] == 200


def test_json_of_naive_time_is_utc() -> None:
    s = replace(snap(), taken_at=datetime(2026, 1, 2, 3, 4, 5))
    assert diagnosis_to_dict(diagnose(s, TH))["checked_at"] == "2026-01-02T03:04:05Z"
