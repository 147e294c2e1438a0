"""Build each runbook scenario for real in a throwaway Redis, and diagnose it.

Every store is made of real keys in a real ``redis-server``: evictions happen
because memory really is full, fragmentation because keys really churned, and
idle sessions are aged with ``RESTORE ... IDLETIME`` (never by sleeping). Bulk
writes run as Lua scripts in chunks, so a scenario loads in well under a
second.

Never point ``load_scenario`` at a Redis that matters: it writes and deletes keys.
The demo's last store, an alert's life cycle from pending to resolved, is in
``bot.demo_alerts`` (it reuses ``write_keys``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from bot.config import Target, Thresholds
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Diagnosis
from bot.errors import ConfigError, UsageError
from bot.redisproc import RedisServer, redis_server_available

if TYPE_CHECKING:
    from bot.services.diagnose import ProbeFactory

HEALTHY = "healthy"
SESSION_PATTERN = "session:*"
DAY = 86400
HOUR = 3600
CHUNK = 2000  # keys per Lua call: between calls Redis evicts and serves others

# The redis-server arguments each store needs (maxmemory and policy decide
# whether memory fills, who gets evicted and whether writes fail).
SCENARIO_SERVER_ARGS: dict[str, list[str]] = {
    HEALTHY: ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    # a small maxmemory that 30,000 sessions overflow: real evictions, usage ~100%
    "too-many-sessions": ["--maxmemory", "24mb", "--maxmemory-policy", "allkeys-lru"],
    "ttl-leak": ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    "large-sessions": ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    # activedefrag off so the churned allocator pages stay fragmented
    "fragmentation": [
        "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru", "--activedefrag", "no",
    ],
    # volatile-lru with TTL-less keys holding most of a small maxmemory: only sessions get evicted
    "eviction-policy": ["--maxmemory", "24mb", "--maxmemory-policy", "volatile-lru"],
    "stale-sessions": ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
}  # fmt: skip

DEMO_ORDER: tuple[str, ...] = tuple(SCENARIO_SERVER_ARGS)

# KEYS: none. ARGV: prefix, first index, count, value, ttl seconds (0: no TTL).
_WRITE = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local value, ttl = ARGV[4], tonumber(ARGV[5])
for i = first, first + count - 1 do
  if ttl > 0 then
    redis.call('SET', prefix .. i, value, 'EX', ttl)
  else
    redis.call('SET', prefix .. i, value)
  end
end
return count
"""

# ARGV: prefix, first, count, keep ratio. Unlinks each key with probability 1 - keep.
_CHURN = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local gone = 0
for i = first, first + count - 1 do
  if math.random() >= keep then
    gone = gone + redis.call('UNLINK', prefix .. i)
  end
end
return gone
"""

# ARGV: prefix, first, count, payload, ttl ms, min idle s, max idle s.
_AGE = """
local prefix, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local payload, ttl_ms = ARGV[4], ARGV[5]
local low, high = tonumber(ARGV[6]), tonumber(ARGV[7])
for i = first, first + count - 1 do
  local idle = math.random(low, high)
  redis.call('RESTORE', prefix .. i, ttl_ms, payload, 'REPLACE', 'IDLETIME', idle)
end
return count
"""


def load_scenario(client: redis.Redis, scenario_id: str, *, scale: float = 1.0) -> None:
    """Fill the Redis behind ``client`` so that it shows ``scenario_id`` (or ``healthy``).

    The server should run with ``SCENARIO_SERVER_ARGS[scenario_id]``. ``scale``
    multiplies key counts (not sizes); the stores that must overflow their
    maxmemory never scale below 1. Raises UsageError for an unknown id.
    """
    loader = _LOADERS.get(scenario_id)
    if loader is None:
        known = ", ".join(DEMO_ORDER)
        raise UsageError(f"unknown demo scenario {scenario_id!r} (known: {known})")
    if not scale > 0:
        raise UsageError(f"invalid scale {scale!r}: must be above 0")
    loader(client, scale)
    _settle(client)


def _n(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def write_keys(
    client: redis.Redis, *, prefix: str, count: int, value_bytes: int, ttl: int, first: int = 0
) -> None:
    """SET ``count`` keys ``<prefix><i>`` of ``value_bytes`` bytes, TTL ``ttl`` s (0: none).

    Runs in Lua chunks; an OOM error (noeviction, or nothing evictable) is raised.
    """
    value = "x" * value_bytes
    for start in range(first, first + count, CHUNK):
        size = min(CHUNK, first + count - start)
        client.eval(_WRITE, 0, prefix, start, size, value, ttl)


def _healthy(client: redis.Redis, scale: float) -> None:
    # 4,000 sessions of ~1 KB with TTLs of hours, touched recently: ~6 MB of 64 MB.
    write_keys(client, prefix="session:", count=_n(4000, scale), value_bytes=900, ttl=12 * HOUR)


def _too_many_sessions(client: redis.Redis, scale: float) -> None:
    # 30,000 normal 1 KB sessions into 24 MB: allkeys-lru evicts the oldest.
    # A scale below 1 would not fill maxmemory: never write fewer than 30,000.
    count = _n(30_000, max(scale, 1.0))
    write_keys(client, prefix="session:", count=count, value_bytes=1000, ttl=DAY)


def _ttl_leak(client: redis.Redis, scale: float) -> None:
    # One session in five created with SET but no EXPIRE (the runbook's leak).
    write_keys(client, prefix="session:", count=_n(4000, scale), value_bytes=900, ttl=DAY)
    write_keys(client, prefix="session:noexp:", count=_n(1000, scale), value_bytes=900, ttl=0)


def _large_sessions(client: redis.Redis, scale: float) -> None:
    # 700 sessions carrying 20-60 KB of state each (~25 MB).
    per = max(1, _n(700, scale) // 3)
    for index, kb in enumerate((20, 30, 60)):
        write_keys(client, prefix=f"session:big{index}:", count=per, value_bytes=kb * 1024, ttl=DAY)


def _fragmentation(client: redis.Redis, scale: float) -> None:
    # Key churn: 60,000 sessions of 600 B, 90% of them unlinked at random. jemalloc
    # keeps the pages the survivors are scattered over (measured: ratio ~10, ~38 MB
    # of allocator fragmentation for ~6 MB of data; 0.4 s of writes and unlinks).
    count = _n(60_000, scale)
    write_keys(client, prefix="session:", count=count, value_bytes=600, ttl=DAY)
    for start in range(0, count, 10 * CHUNK):
        size = min(10 * CHUNK, count - start)
        client.eval(_CHURN, 0, "session:", start, size, 0.1)


def _eviction_policy(client: redis.Redis, scale: float) -> None:
    # TTL-less profile keys hold most of the 24 MB; sessions (with TTL) overflow
    # the rest, so volatile-lru evicts live sessions and never the profiles.
    # Fixed profile count: more TTL-less data than maxmemory would make every write fail.
    write_keys(client, prefix="profile:", count=12_000, value_bytes=1000, ttl=0)
    count = _n(14_000, max(scale, 1.0))
    write_keys(client, prefix="session:", count=count, value_bytes=1000, ttl=DAY)


def _stale_sessions(client: redis.Redis, scale: float) -> None:
    # 3,000 sessions with a day's TTL; 70% of them last used 6-20 hours ago.
    total = _n(3000, scale)
    fresh = total - round(total * 0.7)
    write_keys(client, prefix="session:", count=total, value_bytes=900, ttl=DAY)
    template = "session:0"
    payload = client.dump(template)
    if not isinstance(payload, bytes):
        raise RuntimeError(f"DUMP {template} returned nothing: the key was evicted")
    for start in range(fresh, total, CHUNK):
        size = min(CHUNK, total - start)
        client.eval(_AGE, 0, "session:", start, size, payload, DAY * 1000, 6 * HOUR, 20 * HOUR)


def _settle(client: redis.Redis) -> None:
    # INFO's RSS and fragmentation figures are refreshed by the server cron
    # (every 100 ms at hz 10): read them before that and they describe the store
    # before the load. Wait for one cron tick after the last write.
    hz = _config_int(client, "hz", default=10)
    time.sleep(2.5 / max(1, hz))


def _config_int(client: redis.Redis, name: str, *, default: int) -> int:
    try:
        reply: Any = client.config_get(name)
        return int(reply.get(name, default))
    except (redis.RedisError, ValueError, TypeError):
        return default


_LOADERS: dict[str, Callable[[redis.Redis, float], None]] = {
    HEALTHY: _healthy,
    "too-many-sessions": _too_many_sessions,
    "ttl-leak": _ttl_leak,
    "large-sessions": _large_sessions,
    "fragmentation": _fragmentation,
    "eviction-policy": _eviction_policy,
    "stale-sessions": _stale_sessions,
}


def run_demo(
    *,
    on_result: Callable[[str, Diagnosis], None],
    probe_for: ProbeFactory,
    thresholds: Thresholds,
    scenarios: tuple[str, ...] = DEMO_ORDER,
    scale: float = 1.0,
    sample_size: int = 1000,
) -> None:
    """Start a throwaway redis-server per scenario, load it, diagnose it, report it.

    ``probe_for``: how a store is read (``bot.wiring.probe_for``, as ``diagnose`` reads
    a target). Raises ConfigError (one line) when ``redis-server`` is not installed.
    """
    if not redis_server_available():
        raise ConfigError("redis-mem demo needs redis-server (apt-get install redis-server)")
    for scenario_id in scenarios:
        if scenario_id not in SCENARIO_SERVER_ARGS:
            raise UsageError(f"unknown demo scenario {scenario_id!r}")
        on_result(
            scenario_id,
            demo_one(
                scenario_id,
                probe_for=probe_for,
                thresholds=thresholds,
                scale=scale,
                sample_size=sample_size,
            ),
        )


def demo_one(
    scenario_id: str,
    *,
    probe_for: ProbeFactory,
    thresholds: Thresholds,
    scale: float = 1.0,
    sample_size: int = 1000,
) -> Diagnosis:
    """One scenario in its own redis-server, read through ``probe_for`` and diagnosed."""
    with RedisServer(*SCENARIO_SERVER_ARGS[scenario_id]) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            load_scenario(client, scenario_id, scale=scale)
        finally:
            client.close()
        probe = probe_for(Target(name=f"demo-{scenario_id}", redis_url=server.url))
        snapshot = probe.snapshot(pattern=SESSION_PATTERN, sample_size=sample_size)
    return diagnose(snapshot, thresholds)
