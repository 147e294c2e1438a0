"""expire-keys-without-ttl and evict-idle-sessions on a real redis-server with real keys,
TTLs and idle times (aged with DUMP + RESTORE ... IDLETIME, never by sleeping)."""

from __future__ import annotations

import math

import pytest
import redis

from bot.errors import UsageError
from bot.remediation.catalogue import get_action
from bot.remediation.model import RemediationLimits
from tests.conftest import RedisFactory
from tests.fakekube import FakeKube
from tests.remediation_support import (
    Env,
    load_sessions,
    make_env,
)

EXPIRE = get_action("expire-keys-without-ttl")
EVICT = get_action("evict-idle-sessions")

pytest_plugins = ("tests.remediation_support",)  # the env/kube fixtures


def _leaky(env: Env) -> None:
    """300 session keys without TTL, 200 with a 1h TTL, and a non-session key without TTL."""
    load_sessions(env.client, 300, ttl=None)
    load_sessions(env.client, 200, start=300, ttl=3600)
    env.client.set("config:feature-flags", "{}")


# expire-keys-without-ttl -------------------------------------------------------------------


def test_expire_not_offered_without_leaked_keys(env: Env) -> None:
    load_sessions(env.client, 100)
    ctx = env.ctx()
    assert EXPIRE.preconditions(ctx, EXPIRE.defaults(ctx)) == [
        "the diagnosis found no session keys without TTL (100 sampled)"
    ]


def test_expire_defaults_and_ttl_bounds(env: Env) -> None:
    _leaky(env)
    ctx = env.ctx()
    assert EXPIRE.defaults(ctx) == {"ttl_seconds": 86400}
    with pytest.raises(
        UsageError, match=r"^ttl_seconds must be between 60 and 2592000 \(got 30\)$"
    ):
        EXPIRE.resolve(ctx, {"ttl_seconds": "30"})
    with pytest.raises(UsageError, match=r"\(got 2678400\)$"):
        EXPIRE.resolve(ctx, {"ttl_seconds": "31d"})


def test_expire_touches_only_session_keys_without_ttl(env: Env) -> None:
    _leaky(env)
    ctx = env.ctx()
    params = EXPIRE.resolve(ctx, {})
    preview = EXPIRE.preview(ctx, params)
    assert preview.changes[0].line() == (
        "EXPIRE NX 86400 on session:* keys without TTL: ~300 keys without TTL -> TTL 86400s (1.0d)"
    )
    assert not preview.loses_data and not preview.logs_users_out
    seen: list[tuple[int, int]] = []
    result = EXPIRE.execute(ctx, params, lambda s, c: seen.append((s, c)), preview=preview)
    assert result.complete, result.state
    assert result.keys_changed == 300
    assert result.state == "EXPIRE NX 86400 set on 300 keys (500 scanned, 200 already had a TTL)"
    assert seen and seen[-1][1] == 300
    ttls = [env.client.ttl(f"session:{i}") for i in range(500)]
    assert all(86300 < t <= 86400 for t in ttls[:300])
    assert all(0 < t <= 3600 for t in ttls[300:])  # NX: kept their own TTL
    assert env.client.ttl("config:feature-flags") == -1  # not a session key
    check = EXPIRE.verify(ctx.diagnosis, env.diagnose(), params)
    assert check.details == ("sampled session keys without TTL 300/500 -> 0/500",)
    assert check.verdict.endswith("memory frees as these keys expire (within 1.0d)")


def test_expire_stops_at_the_cap_with_exact_counts(env: Env) -> None:
    _leaky(env)
    ctx = env.ctx(RemediationLimits(max_keys=100))
    preview = EXPIRE.preview(ctx, {"ttl_seconds": 86400})
    assert "~300 keys have no TTL, above the cap of 100: run it again for the rest" in (
        preview.warnings
    )
    result = EXPIRE.execute(ctx, {"ttl_seconds": 86400})
    assert not result.complete
    assert result.keys_changed == 100
    assert result.state.endswith(": stopped at the cap of 100 keys: run it again for the rest")
    assert sum(env.client.ttl(f"session:{i}") == -1 for i in range(300)) == 200


def test_expire_redis_down_mid_action_says_what_was_done(env: Env) -> None:
    load_sessions(env.client, 400, ttl=None)
    ctx = env.ctx()
    calls = {"n": 0}

    def stop_redis_after_first_batch() -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            env.server.stop()
        return False

    result = EXPIRE.execute(ctx, {"ttl_seconds": 3600}, should_stop=stop_redis_after_first_batch)
    assert not result.complete
    assert result.bulk is not None and result.bulk.stopped is not None
    assert result.bulk.stopped.startswith("error: ")
    assert 0 < (result.keys_changed or 0) < 400
    assert f"set on {result.keys_changed:,} keys" in result.state
    assert "stopped early (error: " in result.state


def test_expire_recheck_refuses_when_the_leak_shrank(env: Env) -> None:
    _leaky(env)
    ctx = env.ctx()
    params = EXPIRE.resolve(ctx, {})
    preview = EXPIRE.preview(ctx, params)
    assert EXPIRE.recheck(env.ctx(), params, preview) is None
    for i in range(250):
        env.client.expire(f"session:{i}", 600)
    reason = EXPIRE.recheck(env.ctx(), params, preview)
    assert reason == (
        "keys without TTL (estimated) changed since the preview (300 -> 50): "
        "request the action again"
    )
    for i in range(250, 300):
        env.client.expire(f"session:{i}", 600)
    assert EXPIRE.recheck(env.ctx(), params, preview) == (
        "the diagnosis found no session keys without TTL (500 sampled)"
    )


# evict-idle-sessions ---------------------------------------------------------------------------


def _crowded(env: Env) -> None:
    """1,000 recent sessions, 200 idle 2h, 100 idle a day; maxmemory so usage is ~85%.

    noeviction: Redis itself must not evict the idle keys under test (allkeys-lru would
    as soon as client buffers push used memory over the limit).
    """
    env.client.config_set("maxmemory-policy", "noeviction")
    load_sessions(env.client, 1000, idle=100)
    load_sessions(env.client, 200, start=1000, idle=7200)
    load_sessions(env.client, 100, start=1200, idle=86400)
    used = int(env.client.info("memory")["used_memory"])
    env.client.config_set("maxmemory", str(math.ceil(used / 0.85)))


def test_evict_default_count_brings_usage_to_80_percent(env: Env) -> None:
    _crowded(env)
    ctx = env.ctx()
    d = ctx.diagnosis
    assert d.sizes.mean_bytes is not None
    expected = math.ceil((d.used_memory - 0.8 * d.maxmemory) / d.sizes.mean_bytes)
    assert EVICT.defaults(ctx) == {"count": expected}
    assert 50 < expected < 1300


def test_evict_refuses_above_the_cap_and_above_the_sessions(env: Env) -> None:
    _crowded(env)
    ctx = env.ctx()
    with pytest.raises(UsageError) as err:
        EVICT.resolve(ctx, {"count": "200000"})
    assert str(err.value) == "count must be between 1 and 100000 (got 200000)"
    with pytest.raises(UsageError, match=r"^count 5,000 is more than the ~1,300 session keys"):
        EVICT.resolve(ctx, {"count": "5000"})


def test_evict_not_offered_below_80_percent(env: Env) -> None:
    load_sessions(env.client, 100)
    ctx = env.ctx()
    (reason,) = EVICT.preconditions(ctx, {"count": 10})
    assert reason.endswith("below 80%: evicting sessions would log users out for nothing")


def test_evict_removes_the_idlest_and_spares_keys_used_since(env: Env) -> None:
    _crowded(env)
    ctx = env.ctx()
    params = EVICT.resolve(ctx, {"count": "300"})
    preview = EVICT.preview(ctx, params)
    assert preview.loses_data and preview.logs_users_out
    assert (
        preview.changes[0]
        .line()
        .startswith(
            "UNLINK the 300 idlest session:* keys: each idle at least 2.0h (the idlest 1.0d)"
        )
    )
    assert "data loss: 300 sessions are deleted and those users are logged out" in preview.warnings
    env.client.get("session:1000")  # a user comes back between preview and approval
    result = EVICT.execute(ctx, params, preview=preview)
    assert result.keys_changed == 299, result.state
    assert result.complete
    assert env.client.exists("session:1000") == 1
    assert sum(env.client.exists(f"session:{i}") for i in range(1001, 1300)) == 0
    assert env.client.dbsize() == 1001
    check = EVICT.verify(ctx.diagnosis, env.diagnose(), params)
    assert check.details == ("session keys ~1,300 -> ~1,001",)
    assert check.used_memory_after < check.used_memory_before


def test_evict_recheck_refuses_when_the_idle_sessions_came_back(env: Env) -> None:
    _crowded(env)
    ctx = env.ctx()
    params = {"count": 300}
    preview = EVICT.preview(ctx, params)
    assert EVICT.recheck(env.ctx(), params, preview) is None
    for i in range(1000, 1300):
        env.client.get(f"session:{i}")
    reason = EVICT.recheck(env.ctx(), params, preview)
    assert reason is not None
    assert reason.startswith("the idlest sessions were used since the preview (idle threshold 7")


def test_evict_typed_count_above_the_cap_names_the_cap(env: Env) -> None:
    _crowded(env)
    with pytest.raises(UsageError) as err:
        EVICT.validate(env.ctx(RemediationLimits(max_keys=50)), {"count": 60})
    assert str(err.value) == "count 60 is above the cap of 50 keys per action (max_keys)"


def _set_freq(env: Env, keys: list[str], freq: int) -> None:
    raw = redis.Redis.from_url(env.server.url)
    for key in keys:
        dumped = raw.dump(key)
        raw.execute_command("RESTORE", key, 0, dumped, "REPLACE", "FREQ", freq)
    raw.close()


def test_evict_under_lfu_uses_the_counters(
    redis_factory: RedisFactory, kube: tuple[FakeKube, object]
) -> None:
    env = next(make_env(redis_factory, kube, "--maxmemory-policy", "allkeys-lfu"))  # type: ignore[arg-type]
    load_sessions(env.client, 100)
    _set_freq(env, [f"session:{i}" for i in range(100)], 100)  # hot
    _set_freq(env, [f"session:{i}" for i in range(80, 100)], 0)  # cold
    ctx = env.ctx()
    assert ctx.diagnosis.idle.measure == "lfu"
    params = EVICT.resolve(ctx, {"count": "20"})
    preview = EVICT.preview(ctx, params)
    assert preview.changes[0].after.startswith("LFU counter at most 0")
    _set_freq(env, ["session:99"], 100)  # used a lot since the preview
    result = EVICT.execute(ctx, params, preview=preview)
    assert result.keys_changed == 19, result.state
    assert env.client.exists("session:99") == 1
    assert env.client.dbsize() == 81
    _set_freq(env, [f"session:{i}" for i in range(20)], 0)
    fresh = EVICT.preview(env.ctx(), params)
    _set_freq(env, [f"session:{i}" for i in range(20)], 50)
    reason = EVICT.recheck(env.ctx(), params, fresh)
    assert reason is not None and reason.startswith("the idlest sessions were used since")


def test_show_params_is_human(env: Env) -> None:
    assert EXPIRE.show_params(RemediationLimits(), {"ttl_seconds": 86400}) == {
        "TTL to set": "86400s (1.0d)"
    }
