"""Session key sampling and full scans against real redis-server processes."""

from __future__ import annotations

import pytest
import redis

from bot.errors import RedisUnavailable
from bot.redisinfo.client import connect, key_bytes
from bot.redisinfo.fullscan import scan_batches
from bot.redisinfo.pacing import TokenBucket, batch_size
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.sampling import GlobMatcher, key_stat
from bot.redisinfo.snapshot import KeySample, KeyStat, Snapshot
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer

DAY = 86400


def snap(
    url: str,
    *,
    full: bool = False,
    sample_size: int = 1000,
    pattern: str = "session:*",
    scan_budget: float = 1.0,
    progress: list[tuple[int, int]] | None = None,
) -> Snapshot:
    probe = LiveRedisProbe(name="t", url=url, scan_budget=scan_budget)
    return probe.snapshot(
        pattern=pattern,
        sample_size=sample_size,
        full=full,
        progress=None if progress is None else lambda done, total: progress.append((done, total)),
    )


def load(
    url: str, *, sessions: int, others: int = 0, without_ttl: int = 0, value: str = "v" * 300
) -> None:
    """``sessions`` session keys (the first ``without_ttl`` of them without TTL) + others."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for i in range(sessions):
        pipe.set(f"session:{i}", value, ex=None if i < without_ttl else DAY)
        if i % 1000 == 999:
            pipe.execute()
    for i in range(others):
        pipe.set(f"cache:{i}", "x")
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    client.close()


def age(url: str, key: str, *, idle: int | None = None, freq: int | None = None) -> None:
    """Give ``key`` an idle time (or LFU counter) without sleeping: DUMP + RESTORE."""
    client = redis.Redis.from_url(url)
    payload = client.dump(key)
    ttl_ms = max(client.pttl(key), 0)
    extra = ["IDLETIME", idle] if idle is not None else ["FREQ", freq]
    client.execute_command("RESTORE", key, ttl_ms, payload, "REPLACE", *extra)
    client.close()


def stats_by_key(sample: KeySample) -> dict[str, KeyStat]:
    return {stat.key: stat for stat in sample.keys}


# --- glob matching is Redis's --------------------------------------------------------


GLOB_KEYS = [
    "session:1", "session:", "session:abc", "Session:1", "sessions:1", "sess:1", "session:a*b",
    "session:[x]", "session:\\", "x-session:1", "session:ä", "a]b", "ab", "a-b", "ac", "^x", "]",
    "session:\nnl",
]  # fmt: skip
GLOB_PATTERNS = [
    "session:*", "session:?", "sess*:*", "session:[0-9]", "session:[^0-9]*", "[sS]ession:*",
    "session:a\\*b", "session:\\[x\\]", "*", "a[b-c]", "a[c-b]", "a[\\]]b", "[^a]*", "[", "a[",
    "session:??", "*:*", "a[-]b", "[]]", "session:*l",
]  # fmt: skip


@pytest.mark.parametrize("pattern", GLOB_PATTERNS)
def test_glob_matches_what_scan_match_returns(redis_client: redis.Redis, pattern: str) -> None:
    for key in GLOB_KEYS:
        redis_client.set(key, "v")
    server_side = set(redis_client.scan_iter(match=pattern, count=1000))

    client_side = {key for key in GLOB_KEYS if GlobMatcher(pattern)(key)}

    assert client_side == server_side


# --- sampled mode ----------------------------------------------------------------------


def test_empty_keyspace(redis_server: RedisServer) -> None:
    progress: list[tuple[int, int]] = []
    for full in (False, True):
        sample = snap(redis_server.url, full=full, progress=progress).sample
        assert (sample.keys, sample.matched, sample.session_keys_estimate) == ((), 0, 0)
    assert progress == [(0, 0)]


def test_no_session_keys_small_keyspace(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=0, others=500)

    sample = snap(redis_server.url).sample

    assert (sample.method, sample.probed, sample.matched) == ("scan", 500, 0)
    assert (sample.keys, sample.session_keys_estimate) == ((), 0)


def test_no_session_keys_large_keyspace(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=0, others=3000)

    sample = snap(redis_server.url, sample_size=100).sample

    assert sample.method == "randomkey+scan"
    assert (sample.keys, sample.matched, sample.session_keys_estimate) == ((), 0, 0)
    assert 100 <= sample.probed <= 100 + 10 * 100 + 1000  # bounded top-up


def test_small_keyspace_is_counted_exactly_keys_without_ttl_too(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=300, others=200, without_ttl=40)

    sample = snap(redis_server.url).sample

    assert (sample.method, sample.probed, sample.matched) == ("scan", 500, 300)
    assert sample.session_keys_estimate == 300
    assert len(sample.keys) == 300
    assert sum(1 for s in sample.keys if s.ttl == -1) == 40
    assert all(0 < s.ttl <= DAY for s in sample.keys if s.ttl != -1)
    assert all(s.bytes >= 300 for s in sample.keys)
    assert all(s.idle_seconds is not None and s.freq is None for s in sample.keys)


def test_sample_size_bounds_the_keys_measured(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=800)

    sample = snap(redis_server.url, sample_size=100).sample

    assert len(sample.keys) == 100
    assert sample.session_keys_estimate == 800


def test_sampled_estimate_on_20k_keys_with_a_quarter_sessions(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=5000, others=15000, without_ttl=1000)

    sample = snap(redis_server.url, sample_size=1000).sample

    assert sample.mode == "sampled"
    assert sample.method in ("randomkey", "randomkey+scan")
    assert abs(sample.session_keys_estimate - 5000) <= 0.15 * 5000
    assert 500 <= len(sample.keys) <= 1000
    assert len({s.key for s in sample.keys}) == len(sample.keys)
    without_ttl = sum(1 for s in sample.keys if s.ttl == -1) / len(sample.keys)
    assert 0.1 <= without_ttl <= 0.3  # 20% of sessions have none


def test_rare_sessions_are_topped_up_by_a_bounded_scan(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=400, others=19600)

    sample = snap(redis_server.url, sample_size=1000).sample

    assert sample.method == "randomkey+scan"
    assert sample.probed <= 1000 + 10 * 1000 + 1000
    assert len(sample.keys) >= 100
    assert abs(sample.session_keys_estimate - 400) <= 0.35 * 400


def test_idle_time_is_read_without_resetting_it(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=20)
    age(redis_server.url, "session:7", idle=5000)

    for full in (False, True, False):
        stat = stats_by_key(snap(redis_server.url, full=full).sample)["session:7"]
        assert stat.idle_seconds is not None and stat.idle_seconds >= 5000
        assert 0 < stat.ttl <= DAY  # RESTORE kept the TTL


def test_lfu_policy_reads_freq_not_idle(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory-policy", "allkeys-lfu")
    load(server.url, sessions=20)
    age(server.url, "session:3", freq=42)

    for full in (False, True):
        sample = snap(server.url, full=full).sample
        assert all(s.idle_seconds is None and s.freq is not None for s in sample.keys)
        assert stats_by_key(sample)["session:3"].freq == 42


def test_binary_key_names_survive_the_round_trip(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    raw.set(b"session:\xff\xfe", b"v", ex=100)
    raw.close()

    (stat,) = snap(redis_server.url).sample.keys
    client = connect(redis_server.url)
    try:
        assert stat.key == "session:\udcff\udcfe"
        assert client.ttl(key_bytes(stat.key)) == stat.ttl  # the same bytes again
    finally:
        client.close()


# --- full mode -------------------------------------------------------------------------


TRICKY_KEYS = [
    b"session:\xff\xfe", b'session:"quoted"', b"session:back\\slash/", b"session:\x00\x01\n\x7f",
    "session:ä€😀".encode(), b"session:\xe2\x82", b"session:[1]{}", b"session:12345",
]  # fmt: skip


def test_full_scan_returns_binary_and_escaped_key_names_byte_for_byte(
    redis_server: RedisServer,
) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    for i, key in enumerate(TRICKY_KEYS):
        raw.set(key, b"v" * (10 + i), ex=1000 + i)
    raw.close()

    sample = snap(redis_server.url, full=True).sample

    assert sample.method == "scan+lua"
    by_bytes = {key_bytes(stat.key): stat for stat in sample.keys}
    assert sorted(by_bytes) == sorted(TRICKY_KEYS)
    for i, key in enumerate(TRICKY_KEYS):
        assert 990 + i <= by_bytes[key].ttl <= 1000 + i
        assert by_bytes[key].bytes > 0 and by_bytes[key].idle_seconds is not None


def test_full_scan_counts_exactly(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=5000, others=3000, without_ttl=123)
    progress: list[tuple[int, int]] = []

    sample = snap(redis_server.url, full=True, progress=progress).sample

    assert (sample.mode, sample.method) == ("full", "scan+lua")
    assert sample.matched == sample.session_keys_estimate == len(sample.keys) == 5000
    assert sample.probed == 8000
    assert sum(1 for s in sample.keys if s.ttl == -1) == 123
    assert all(s.bytes >= 300 and s.idle_seconds is not None for s in sample.keys)
    assert progress[-1] == (8000, 8000)
    assert len(progress) >= 8
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_the_key_actions_scan_is_held_to_its_key_rate(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=2000, others=1000)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = connect(redis_server.url)
    try:
        batches = list(
            scan_batches(
                client, pattern="session:*", lfu=False, rate=1000,
                clock=lambda: now[0], sleep=sleep,
            )
        )  # fmt: skip
    finally:
        client.close()

    assert len({stat.key for batch in batches for stat in batch}) == 2000
    assert batch_size(1000) == 100
    assert max(len(batch) for batch in batches) <= 150  # COUNT <= 100 (SCAN may exceed it)
    assert len(batches) >= 3000 // 100
    assert sum(slept) >= 0.8 * (3000 - 100) / 1000  # ~3,000 keys looked at, 100 of burst


def test_token_bucket_holds_the_rate() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(500, burst=100, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire(100) for _ in range(11)]

    assert waits[0] == 0
    assert now[0] == pytest.approx(1000 / 500)  # 1,100 tokens, 100 of them burst
    assert TokenBucket(None, burst=1).acquire(10**9) == 0


def renamed_scripting(factory: RedisFactory) -> RedisServer:
    return factory("--rename-command", "EVAL", "", "--rename-command", "EVALSHA", "")


def test_full_scan_falls_back_to_pipelines_without_scripting(redis_factory: RedisFactory) -> None:
    lua_server, plain_server = redis_factory(), renamed_scripting(redis_factory)
    for server in (lua_server, plain_server):
        load(server.url, sessions=1500, others=500, without_ttl=100)
        age(server.url, "session:1", idle=7777)
        age(server.url, "session:900", idle=3333)

    with_lua = snap(lua_server.url, full=True).sample
    fallback = snap(plain_server.url, full=True).sample

    assert (with_lua.method, fallback.method) == ("scan+lua", "scan+pipeline")
    assert fallback.matched == with_lua.matched == 1500
    lua_stats, plain_stats = stats_by_key(with_lua), stats_by_key(fallback)
    assert lua_stats.keys() == plain_stats.keys()
    for key, stat in lua_stats.items():
        other = plain_stats[key]
        assert stat.bytes == other.bytes
        assert abs(stat.ttl - other.ttl) <= 2
        assert stat.idle_seconds is not None and other.idle_seconds is not None
        assert abs(stat.idle_seconds - other.idle_seconds) <= 2
    assert plain_stats["session:1"].idle_seconds >= 7777  # type: ignore[operator]


def test_scripting_denied_by_acl_falls_back(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all", "-@scripting")
    admin.close()
    load(server.url, sessions=300)

    sample = snap(f"redis://bot:pw@127.0.0.1:{server.port}/0", full=True).sample

    assert (sample.method, sample.matched) == ("scan+pipeline", 300)


def test_memory_usage_denied_is_one_line(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all", "-memory")
    admin.close()
    load(server.url, sessions=30)

    for full in (False, True):
        with pytest.raises(RedisUnavailable, match=r"^Redis at .* refused a command: .*memory"):
            snap(f"redis://bot:pw@127.0.0.1:{server.port}/0", full=full)


def test_works_when_redis_is_out_of_memory(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(10_000):
            client.set(f"session:{i}", "v" * 1000)
    client.close()

    full = snap(server.url, full=True).sample
    sampled = snap(server.url).sample

    assert full.matched == sampled.session_keys_estimate > 100
    assert full.method == "scan+lua"


def test_key_stat_drops_vanished_keys() -> None:
    assert key_stat("k", ttl=-2, size=None, age=None, lfu=False) is None
    assert key_stat("k", ttl=5, size=None, age=None, lfu=False) is None
    assert key_stat("k", ttl=-1, size=60, age=3, lfu=False) == KeyStat("k", -1, 60, 3, None)
    assert key_stat("k", ttl=-1, size=60, age=-1, lfu=True) == KeyStat("k", -1, 60, None, None)


def test_sampling_without_randomkey_scans_instead(redis_factory: RedisFactory) -> None:
    server = redis_factory("--rename-command", "RANDOMKEY", "")
    load(server.url, sessions=2000, others=2000)

    sample = snap(server.url, sample_size=100).sample

    assert sample.method == "scan"
    assert len(sample.keys) == 100
    assert abs(sample.session_keys_estimate - 2000) <= 0.35 * 2000


def test_script_flushed_mid_scan_is_loaded_again(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=4000)
    admin = redis.Redis.from_url(redis_server.url)

    def flush(done: int, total: int) -> None:
        admin.script_flush()  # lands while the next batch's EVALSHA is on its way

    sample = LiveRedisProbe(name="t", url=redis_server.url, scan_budget=1.0).snapshot(
        pattern="session:*", sample_size=10, full=True, progress=flush
    )
    admin.close()

    assert (sample.sample.method, sample.sample.matched) == ("scan+lua", 4000)


def test_scripting_revoked_mid_scan_falls_back_from_that_cursor(
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">pw", "~*", "+@all")
    load(server.url, sessions=4000, others=1000)
    calls: list[int] = []

    def revoke(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            admin.execute_command("ACL", "SETUSER", "bot", "-@scripting")

    probe = LiveRedisProbe(name="t", url=f"redis://bot:pw@127.0.0.1:{server.port}/0")
    sample = probe.snapshot(pattern="session:*", sample_size=10, full=True, progress=revoke)
    admin.close()

    assert (sample.sample.method, sample.sample.matched) == ("scan+pipeline", 4000)
    assert len({s.key for s in sample.sample.keys}) == 4000
