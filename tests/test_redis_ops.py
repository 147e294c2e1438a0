"""Changes to a live Redis (bot.redisinfo.ops) against real redis-server processes.

Keys are aged with DUMP + RESTORE ... IDLETIME/FREQ, never by sleeping; the rate
limiter runs on a fake clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bot.errors import RedisUnavailable, UsageError
from bot.redisinfo.client import connect
from bot.redisinfo.ops import LiveRedisOps
from bot.redisinfo.ops_bulk import change_batch
from bot.redisinfo.ops_expire import expire_keys
from bot.redisinfo.ops_idle import IdlestHeap
from bot.redisinfo.snapshot import KeyStat
from bot.remediation.ports import BulkResult, RedisOps
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer

HOUR = 3600
DAY = 86400
NO_SCRIPTING = ("--rename-command", "EVAL", "", "--rename-command", "EVALSHA", "")


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def load(server: RedisServer, *, bare: int, with_ttl: int = 0, others: int = 0) -> None:
    """``bare`` sessions without TTL, ``with_ttl`` sessions with varied TTLs, other keys."""
    client = raw(server)
    pipe = client.pipeline(transaction=False)
    for i in range(bare):
        pipe.set(f"session:bare:{i}", "v" * 50)
    for i in range(with_ttl):
        pipe.set(f"session:ttl:{i}", "v" * 50, ex=DAY + i * 7)
    for i in range(others):
        pipe.set(f"cache:{i}", "x")
    pipe.execute()
    client.close()


def age(
    server: RedisServer, key: str | bytes, *, idle: int | None = None, freq: int | None = None
) -> None:
    """Give ``key`` an idle time (or LFU counter) without sleeping: DUMP + RESTORE."""
    client = raw(server)
    payload = client.dump(key)
    ttl_ms = max(client.pttl(key), 0)
    extra = ["IDLETIME", idle] if idle is not None else ["FREQ", freq]
    client.execute_command("RESTORE", key, ttl_ms, payload, "REPLACE", *extra)
    client.close()


def expire_times(server: RedisServer, pattern: str) -> dict[str, int]:
    """PEXPIRETIME (absolute, ms; -1 without TTL) of every key matching ``pattern``."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    keys = list(client.scan_iter(match=pattern, count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("PEXPIRETIME", key)
    times = dict(zip(keys, pipe.execute(), strict=True))
    client.close()
    return times


def ttls(server: RedisServer, pattern: str) -> dict[str, int]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    keys = list(client.scan_iter(match=pattern, count=1000))
    result = {key: int(client.ttl(key)) for key in keys}
    client.close()
    return result


def expire(ops: LiveRedisOps, **kwargs: object) -> BulkResult:
    args: dict[str, object] = {"pattern": "session:*", "seconds": HOUR, "max_keys": 10**6}
    args.update(kwargs)
    args.setdefault("rate", None)
    return ops.expire_without_ttl(**args)  # type: ignore[arg-type]


def test_live_ops_is_a_redis_ops() -> None:
    ops: RedisOps = LiveRedisOps(url="redis://127.0.0.1:1/0")
    assert "127.0.0.1" not in repr(ops)


# --- expire_without_ttl ----------------------------------------------------------------


def test_only_keys_without_ttl_get_one_and_ttls_are_kept_exactly(redis_server: RedisServer) -> None:
    load(redis_server, bare=700, with_ttl=300, others=200)
    before = expire_times(redis_server, "session:ttl:*")
    progress: list[tuple[int, int]] = []

    result = expire(LiveRedisOps(url=redis_server.url), progress=lambda *p: progress.append(p))

    assert result == BulkResult(scanned=1000, changed=700, skipped=300, stopped=None)
    assert expire_times(redis_server, "session:ttl:*") == before  # not reset, to the ms
    assert all(HOUR - 5 <= ttl <= HOUR for ttl in ttls(redis_server, "session:bare:*").values())
    assert set(ttls(redis_server, "cache:*").values()) == {-1}  # not matching: untouched
    assert len(progress) > 3 and progress[-1] == (1000, 700)
    assert progress == sorted(progress)


def test_old_servers_check_ttl_in_the_same_script(redis_server: RedisServer) -> None:
    """Without EXPIRE NX (Redis < 7.0) the script checks TTL == -1 itself."""
    load(redis_server, bare=400, with_ttl=250, others=50)
    before = expire_times(redis_server, "session:ttl:*")
    client = connect(redis_server.url)
    try:
        result = expire_keys(
            client, url=redis_server.url, timeout=5, pattern="session:*", seconds=HOUR,
            nx=False, max_keys=10**6, rate=None,
        )  # fmt: skip
    finally:
        client.close()

    assert result == BulkResult(scanned=650, changed=400, skipped=250)
    assert expire_times(redis_server, "session:ttl:*") == before
    assert -1 not in ttls(redis_server, "session:bare:*").values()


def test_cap_stops_at_exactly_max_keys(redis_server: RedisServer) -> None:
    load(redis_server, bare=1000, with_ttl=100)

    result = expire(LiveRedisOps(url=redis_server.url), max_keys=123)

    assert (result.changed, result.stopped) == (123, "cap")
    assert result.scanned == result.changed + result.skipped
    assert list(ttls(redis_server, "session:bare:*").values()).count(-1) == 1000 - 123


def test_should_stop_ends_between_batches_with_exact_counts(redis_server: RedisServer) -> None:
    load(redis_server, bare=2000)
    asked = [0]

    def should_stop() -> bool:
        asked[0] += 1
        return asked[0] > 3  # three batches run

    result = expire(LiveRedisOps(url=redis_server.url), should_stop=should_stop)

    assert result.stopped == "stopped"
    assert 0 < result.changed < 2000
    changed = [ttl for ttl in ttls(redis_server, "session:*").values() if ttl != -1]
    assert len(changed) == result.changed


def test_rate_limit_paces_the_batches_on_a_fake_clock(redis_server: RedisServer) -> None:
    load(redis_server, bare=1500)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ops = LiveRedisOps(url=redis_server.url, clock=lambda: now[0], sleep=sleep)
    result = expire(ops, rate=500)

    assert result.changed == 1500
    assert change_batch(500) == 50
    batches = len(slept) + 1  # the first batch uses the initial burst
    assert batches >= 1500 // 50
    assert sum(slept) == pytest.approx((batches - 1) * 50 / 500)


def test_scripting_disabled_falls_back_to_pipelines(redis_factory: RedisFactory) -> None:
    plain = redis_factory(*NO_SCRIPTING)
    load(plain, bare=600, with_ttl=200, others=100)
    before = expire_times(plain, "session:ttl:*")

    result = expire(LiveRedisOps(url=plain.url))

    assert result == BulkResult(scanned=800, changed=600, skipped=200)
    assert expire_times(plain, "session:ttl:*") == before
    assert -1 not in ttls(plain, "session:bare:*").values()
    assert set(ttls(plain, "cache:*").values()) == {-1}
    capped = expire(LiveRedisOps(url=plain.url), seconds=2 * HOUR, max_keys=5)
    assert capped == BulkResult(scanned=capped.scanned, changed=0, skipped=capped.scanned)
    assert capped.stopped is None  # every key has a TTL now: nothing to change


def test_scripting_disabled_cap_is_exact(redis_factory: RedisFactory) -> None:
    plain = redis_factory(*NO_SCRIPTING)
    load(plain, bare=500, with_ttl=500)

    result = expire(LiveRedisOps(url=plain.url), max_keys=77)

    assert (result.changed, result.stopped) == (77, "cap")
    assert list(ttls(plain, "session:bare:*").values()).count(-1) == 500 - 77


def test_redis_killed_mid_action_reports_exactly_what_was_done(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path))
    server = redis_factory(*durable)
    load(server, bare=3000)
    seen: list[tuple[int, int]] = []

    def progress(scanned: int, changed: int) -> None:
        seen.append((scanned, changed))
        if len(seen) == 4:
            server.stop()

    result = expire(LiveRedisOps(url=server.url, timeout=2), progress=progress)

    assert result.stopped is not None
    assert result.stopped.startswith("error: cannot reach Redis at redis://127.0.0.1")
    assert result.stopped.endswith(": it closed the connection (stopped or restarted?)")
    assert "\n" not in result.stopped and "unknown" not in result.stopped  # not sent at all
    assert (result.scanned, result.changed) == seen[-1]
    restarted = redis_factory(*durable)  # the same data, from the append-only file
    changed = [ttl for ttl in ttls(restarted, "session:*").values() if ttl != -1]
    assert len(changed) == result.changed > 0


def test_a_lost_reply_is_reported_as_unknown(redis_server: RedisServer) -> None:
    """Redis paused past our timeout: the batch was sent and ran later, its reply lost."""
    load(redis_server, bare=2000)
    admin = raw(redis_server)
    seen: list[tuple[int, int]] = []

    def progress(scanned: int, changed: int) -> None:
        seen.append((scanned, changed))
        if len(seen) == 3:
            admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")

    result = expire(LiveRedisOps(url=redis_server.url, timeout=0.3), progress=progress)

    assert result.stopped is not None
    assert result.stopped.startswith("error: cannot reach Redis at redis://127.0.0.1")
    assert result.stopped.endswith("(the batch in flight may or may not have been applied)")
    assert (result.scanned, result.changed) == seen[-1]
    changed = [ttl for ttl in ttls(redis_server, "session:*").values() if ttl != -1]
    assert result.changed <= len(changed) <= result.changed + 200  # the batch ran later
    admin.close()


def test_works_when_redis_is_out_of_memory(redis_factory: RedisFactory) -> None:
    """The moment the bot is needed: at maxmemory with noeviction, writes refused."""
    server = redis_factory("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    client = raw(server)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(10_000):
            client.set(f"session:bare:{i}", "v" * 1000)
    stored = client.dbsize()
    client.config_resetstat()
    ops = LiveRedisOps(url=server.url)

    assert expire(ops).changed == stored
    client.config_set("maxmemory", "0")  # RESTORE (to age keys) is refused at maxmemory
    for i in range(10):
        age(server, f"session:bare:{i}", idle=HOUR * 2)
    client.config_set("maxmemory", "3mb")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("still", "full")
    gone = ops.unlink_if_idle(
        keys=[f"session:bare:{i}" for i in range(20)], min_idle_seconds=HOUR, rate=None
    )
    assert (gone.changed, gone.stopped) == (10, None)
    assert "cmdstat_evalsha" in client.info("commandstats")  # by script, not the fallback
    client.close()


def test_refused_expire_stops_with_exact_counts(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    admin = raw(server)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all", "-expire")
    admin.close()
    load(server, bare=300)

    result = expire(LiveRedisOps(url=f"redis://bot:pw@127.0.0.1:{server.port}/0"))

    assert result.changed == 0
    assert result.stopped is not None and result.stopped.startswith("error: Redis refused EXPIRE")
    assert set(ttls(server, "session:*").values()) == {-1}


def test_fallback_with_scan_denied_is_an_error_not_a_traceback(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    admin = raw(server)
    admin.execute_command(
        "ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all", "-@scripting", "-scan"
    )
    admin.close()
    load(server, bare=30)

    result = expire(LiveRedisOps(url=f"redis://bot:pw@127.0.0.1:{server.port}/0"))

    assert result == BulkResult(0, 0, 0, result.stopped)
    assert result.stopped is not None and result.stopped.startswith("error: Redis refused SCAN")


def test_progress_failure_stops_with_counts_intact(redis_server: RedisServer) -> None:
    load(redis_server, bare=1000)

    def progress(scanned: int, changed: int) -> None:
        raise RuntimeError("slack said no")

    result = expire(LiveRedisOps(url=redis_server.url), progress=progress)

    assert result.stopped == "error: progress report failed: slack said no"
    changed = [ttl for ttl in ttls(redis_server, "session:*").values() if ttl != -1]
    assert len(changed) == result.changed > 0


def test_redis_down_at_start_raises_and_bad_arguments_are_refused(
    redis_server: RedisServer,
) -> None:
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        expire(LiveRedisOps(url="redis://127.0.0.1:1/0", timeout=1))
    load(redis_server, bare=10)
    ops = LiveRedisOps(url=redis_server.url)
    for bad in ({"seconds": 0}, {"max_keys": 0}, {"rate": 0}, {"pattern": ""}):
        with pytest.raises(UsageError):
            expire(ops, **bad)
    assert set(ttls(redis_server, "session:*").values()) == {-1}  # EXPIRE 0 would delete


def test_binary_key_names_round_trip(redis_server: RedisServer) -> None:
    client = raw(redis_server)
    names = [b"session:\xff\xfe", b"session:caf\xc3\xa9", b"session:\x00nul"]
    for name in names:
        client.set(name, "v")
    ops = LiveRedisOps(url=redis_server.url)

    assert expire(ops).changed == 3
    assert all(0 < client.ttl(name) <= HOUR for name in names)
    for name in names:
        age(redis_server, name, idle=9999)
    idlest = ops.idlest_keys(pattern="session:*", count=10, rate=None)
    gone = ops.unlink_if_idle(keys=[k for k, _ in idlest], min_idle_seconds=9000, rate=None)
    assert (gone.changed, client.exists(*names)) == (3, 0)
    client.close()


# --- idlest_keys --------------------------------------------------------------------


def test_idlest_keys_are_the_truly_idlest_under_lru(redis_server: RedisServer) -> None:
    load(redis_server, bare=400, with_ttl=100, others=20)
    idle_times = {f"session:bare:{i}": 1000 + (i * 7919) % 50_000 for i in range(0, 400, 3)}
    for key, idle in idle_times.items():
        age(redis_server, key, idle=idle)
    age(redis_server, "cache:1", idle=10**6)  # idlest of all, but not a session

    found = LiveRedisOps(url=redis_server.url).idlest_keys(pattern="session:*", count=10, rate=None)

    expected = sorted(idle_times, key=lambda k: idle_times[k], reverse=True)[:10]
    assert [key for key, _ in found] == expected
    for key, idle in found:
        assert idle_times[key] <= idle <= idle_times[key] + 5


def test_idlest_keys_under_lfu_are_the_lowest_counters(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lfu")
    load(server, bare=200)
    for i in range(200):
        age(server, f"session:bare:{i}", freq=10 + i % 50)
    rare = {"session:bare:3": 0, "session:bare:77": 1, "session:bare:150": 2}
    for key, freq in rare.items():
        age(server, key, freq=freq)

    found = LiveRedisOps(url=server.url).idlest_keys(pattern="session:*", count=3, rate=None)

    assert found == list(rare.items())


def test_idlest_heap_is_bounded_and_keeps_a_repeated_key_once() -> None:
    heap = IdlestHeap(3, lfu=False)
    heap.add(KeyStat(f"k{i}", -1, 10, i, None) for i in range(100))
    heap.add([KeyStat("k99", -1, 10, 99, None), KeyStat("gone", -2, 0, None, None)])

    assert heap.idlest_first() == [("k99", 99), ("k98", 98), ("k97", 97)]
    assert IdlestHeap(0, lfu=False).idlest_first() == []


# --- unlink_if_idle -----------------------------------------------------------------


def test_unlink_spares_a_key_used_since_it_was_measured(redis_server: RedisServer) -> None:
    load(redis_server, bare=250)
    for i in range(250):
        age(redis_server, f"session:bare:{i}", idle=HOUR * 5 if i < 150 else 60)
    ops = LiveRedisOps(url=redis_server.url)
    idlest = ops.idlest_keys(pattern="session:*", count=150, rate=None)
    client = raw(redis_server)
    client.get("session:bare:7")  # the user came back after the measurement

    result = ops.unlink_if_idle(keys=[k for k, _ in idlest], min_idle_seconds=HOUR, rate=None)

    assert result == BulkResult(scanned=150, changed=149, skipped=1)
    assert client.exists("session:bare:7") == 1
    assert client.dbsize() == 101
    client.close()


def test_unlink_under_lfu_uses_the_counter(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lfu")
    load(server, bare=20)
    for i in range(20):
        age(server, f"session:bare:{i}", freq=0 if i < 10 else 30)
    ops = LiveRedisOps(url=server.url)
    idlest = ops.idlest_keys(pattern="session:*", count=10, rate=None)
    client = raw(server)
    client.get("session:bare:4")  # counter 0 -> 1: used again

    result = ops.unlink_if_idle(keys=[k for k, _ in idlest], min_idle_seconds=HOUR, rate=None)

    assert result == BulkResult(scanned=10, changed=9, skipped=1)
    assert client.exists("session:bare:4") == 1
    client.close()


def test_unlink_without_scripting_gives_the_same_result(redis_factory: RedisFactory) -> None:
    plain = redis_factory(*NO_SCRIPTING)
    load(plain, bare=300)
    for i in range(0, 300, 2):
        age(plain, f"session:bare:{i}", idle=HOUR * 2)
    keys = [f"session:bare:{i}" for i in range(300)] + ["session:missing"]
    progress: list[tuple[int, int]] = []

    result = LiveRedisOps(url=plain.url).unlink_if_idle(
        keys=keys, min_idle_seconds=HOUR, rate=None, progress=lambda *p: progress.append(p)
    )

    assert result == BulkResult(scanned=301, changed=150, skipped=151)
    assert progress[-1] == (301, 150)
    assert raw(plain).dbsize() == 150


def test_unlink_stop_flag_and_empty_list(redis_server: RedisServer) -> None:
    load(redis_server, bare=500)
    for i in range(500):
        age(redis_server, f"session:bare:{i}", idle=HOUR * 2)
    ops = LiveRedisOps(url=redis_server.url)
    keys = [f"session:bare:{i}" for i in range(500)]
    asked = [0]

    def should_stop() -> bool:
        asked[0] += 1
        return asked[0] > 2

    result = ops.unlink_if_idle(
        keys=keys, min_idle_seconds=HOUR, rate=None, should_stop=should_stop
    )

    assert result == BulkResult(scanned=200, changed=200, skipped=0, stopped="stopped")
    assert raw(redis_server).dbsize() == 300
    assert ops.unlink_if_idle(keys=[], min_idle_seconds=HOUR, rate=None) == BulkResult(0, 0, 0)


# --- CONFIG ---------------------------------------------------------------------------


def test_config_set_applies_and_reads_back(redis_server: RedisServer) -> None:
    ops = LiveRedisOps(url=redis_server.url)

    setting = ops.config_set("maxmemory-policy", "volatile-lru")

    assert (setting.applied, setting.reason) == (True, "")
    assert ops.config_get("maxmemory-policy") == "volatile-lru"
    assert ops.config_get("no-such-setting") is None


def test_config_set_rejected_value_is_reported_not_raised(redis_server: RedisServer) -> None:
    setting = LiveRedisOps(url=redis_server.url).config_set("maxmemory", "lots")

    assert not setting.applied
    assert setting.reason.startswith("Redis rejected it: CONFIG SET failed")
    assert "\n" not in setting.reason


def test_config_disabled_is_reported_not_raised(redis_factory: RedisFactory) -> None:
    server = redis_factory("--rename-command", "CONFIG", "")
    ops = LiveRedisOps(url=server.url)

    setting = ops.config_set("maxmemory", "100mb")

    assert not setting.applied
    assert (
        setting.reason == "CONFIG is disabled on this server (renamed or removed): not applied live"
    )
    assert ops.config_get("maxmemory") is None


def test_config_denied_by_acl_is_reported(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    admin = raw(server)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all", "-config|set")
    admin.close()

    setting = LiveRedisOps(url=f"redis://bot:pw@127.0.0.1:{server.port}/0").config_set(
        "maxmemory", "100mb"
    )

    assert not setting.applied
    assert setting.reason == "the Redis user may not run CONFIG SET (ACL): not applied live"


def test_config_on_a_dead_redis_raises() -> None:
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        LiveRedisOps(url="redis://127.0.0.1:1/0", timeout=1).config_set("maxmemory", "1gb")
