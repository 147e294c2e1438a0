"""Each runbook scenario built for real in a redis-server, read by the real adapter, diagnosed.

Nothing is faked: the demo loader writes real keys (evictions and fragmentation
happen because the server really runs out of room or really churned), the
probe samples them over the wire, and the engine must name exactly the
scenario that was built: no more (false positives) and no less.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from bot.config import Settings, Thresholds
from bot.demo import SCENARIO_SERVER_ARGS, load_scenario, run_demo
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import SCENARIO_IDS, Diagnosis, Severity
from bot.errors import UsageError
from bot.redisinfo.probe import LiveRedisProbe
from bot.wiring import probe_for
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer

TH = Thresholds()


def diagnose_scenario(redis_factory: RedisFactory, scenario_id: str) -> Diagnosis:
    """Start the scenario's server, load it, snapshot it through the probe, diagnose it."""
    server = redis_factory(*SCENARIO_SERVER_ARGS[scenario_id])
    load(server, scenario_id)
    probe = LiveRedisProbe(name=scenario_id, url=server.url)
    return diagnose(probe.snapshot(pattern="session:*", sample_size=1000), TH)


def load(server: RedisServer, scenario_id: str) -> None:
    """Run the demo loader against ``server``."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        load_scenario(client, scenario_id)
    finally:
        client.close()


@pytest.mark.parametrize("scenario_id", SCENARIO_IDS)
def test_each_scenario_is_named_alone(redis_factory: RedisFactory, scenario_id: str) -> None:
    d = diagnose_scenario(redis_factory, scenario_id)
    assert [s.id for s in d.scenarios] == [scenario_id]
    assert d.severity is not Severity.OK
    assert all(s.evidence for s in d.scenarios)


def test_healthy_store_names_nothing(redis_factory: RedisFactory) -> None:
    d = diagnose_scenario(redis_factory, "healthy")
    assert d.scenarios == ()
    assert d.severity is Severity.OK
    assert d.recommended_actions == ()
    # a small store: the ratio reads high only because of the process's baseline RSS
    assert d.mem_fragmentation_ratio > 1.5


def test_too_many_sessions_really_evicts_and_needs_mitigation(redis_factory: RedisFactory) -> None:
    d = diagnose_scenario(redis_factory, "too-many-sessions")
    assert d.evicted_keys > 0
    assert d.severity is Severity.CRITICAL
    assert d.recommended_actions[0] == "evict-idle-sessions"


def test_eviction_policy_volatile_evicts_only_sessions(redis_factory: RedisFactory) -> None:
    d = diagnose_scenario(redis_factory, "eviction-policy")
    assert d.maxmemory_policy == "volatile-lru"
    assert d.evicted_keys > 0
    assert "set-eviction-policy" in d.recommended_actions
    profiles = d.dbsize - d.session_keys
    assert profiles >= 11_000  # the TTL-less keys were never evicted


@pytest.fixture
def lfu_stale(redis_factory: RedisFactory) -> Iterator[RedisServer]:
    """Sessions under allkeys-lfu, most with an LFU counter of 0 (set by RESTORE ... FREQ 0)."""
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lfu")
    client = redis.Redis.from_url(server.url)
    pipe = client.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"session:{i}", b"x" * 500, ex=86400)
    pipe.execute()
    payload = client.dump("session:0")
    assert isinstance(payload, bytes)
    for i in range(100, 300):
        pipe.restore(f"session:{i}", 86_400_000, payload, replace=True, frequency=0)
    pipe.execute()
    client.close()
    yield server


def test_stale_sessions_under_lfu(lfu_stale: RedisServer) -> None:
    probe = LiveRedisProbe(name="lfu", url=lfu_stale.url)
    d = diagnose(probe.snapshot(pattern="session:*", sample_size=1000), TH)
    assert d.idle.measure == "lfu"
    assert [s.id for s in d.scenarios] == ["stale-sessions"]


def test_run_demo_reports_each_result() -> None:
    seen: list[tuple[str, Diagnosis]] = []
    run_demo(
        on_result=lambda sid, d: seen.append((sid, d)),
        probe_for=probe_for(Settings()),
        thresholds=TH,
        scenarios=("healthy",),
    )
    assert [sid for sid, _ in seen] == ["healthy"]
    assert seen[0][1].target == "demo-healthy"


def test_unknown_scenario_is_a_usage_error(redis_client: redis.Redis) -> None:
    with pytest.raises(UsageError, match="unknown demo scenario"):
        load_scenario(redis_client, "nope")
