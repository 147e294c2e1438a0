"""Read INFO, DBSIZE and CONFIG in one round trip and parse them into snapshot types.

CONFIG may be renamed away (``rename-command CONFIG ""``) or denied by an ACL, as
managed Redis services often do: then the eviction policy comes from
``INFO memory`` (``policy_source="info"``) and ``config_available`` is False.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ResponseError

from bot.redisinfo.snapshot import KeyspaceDb, MemoryInfo, PolicySource, StatsInfo

INFO_SECTIONS = ("server", "memory", "stats", "keyspace", "persistence")
# Read one by one: CONFIG GET with several names needs Redis 7.
CONFIG_SETTINGS = (
    "maxmemory-policy",
    "maxmemory",
    "activedefrag",
    "lfu-decay-time",
    "appendonly",
    "save",
)


@dataclass(frozen=True)
class ServerInfo:
    """Everything of a snapshot that is not about keys."""

    redis_version: str
    memory: MemoryInfo
    stats: StatsInfo
    keyspace: tuple[KeyspaceDb, ...]
    persistence: dict[str, str]
    dbsize: int
    maxmemory_policy: str
    policy_source: PolicySource
    settings: dict[str, str]

    @property
    def config_available(self) -> bool:
        """CONFIG answered (else the policy came from INFO)."""
        return self.policy_source == "config"

    @property
    def lfu(self) -> bool:
        """True under an LFU policy: OBJECT IDLETIME errors, OBJECT FREQ works."""
        return "lfu" in self.maxmemory_policy


def read_server_info(client: redis.Redis) -> ServerInfo:
    """INFO sections, DBSIZE and the CONFIG settings, pipelined (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for section in INFO_SECTIONS:
        pipe.info(section)
    pipe.dbsize()
    for name in CONFIG_SETTINGS:
        pipe.config_get(name)
    replies = pipe.execute(raise_on_error=False)
    infos = [_ok(reply) for reply in replies[: len(INFO_SECTIONS)]]
    server, memory, stats, keyspace, persistence = infos
    dbsize = int(_ok(replies[len(INFO_SECTIONS)]))
    settings = parse_config(replies[len(INFO_SECTIONS) + 1 :])
    memory_info = parse_memory(memory)
    config_policy = settings.get("maxmemory-policy")
    return ServerInfo(
        redis_version=str(server.get("redis_version", "unknown")),
        memory=memory_info,
        stats=parse_stats(stats),
        keyspace=parse_keyspace(keyspace),
        persistence={str(k): str(v) for k, v in persistence.items()},
        dbsize=dbsize,
        maxmemory_policy=config_policy or memory_info.maxmemory_policy,
        policy_source="config" if config_policy else "info",
        settings=settings,
    )


def _ok(reply: Any) -> Any:
    """A pipelined reply, or raise the error Redis answered with."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def parse_config(replies: list[Any]) -> dict[str, str]:
    """The CONFIG GET answers that worked; errors (renamed, ACL NOPERM) are skipped."""
    settings: dict[str, str] = {}
    for reply in replies:
        if isinstance(reply, ResponseError):
            continue
        if isinstance(reply, Exception):
            raise reply
        settings.update({str(k): str(v) for k, v in dict(reply).items()})
    return settings


def parse_memory(info: Mapping[str, Any]) -> MemoryInfo:
    """``INFO memory`` as parsed by redis-py (numbers already converted)."""
    used = _int(info, "used_memory")
    rss = _int(info, "used_memory_rss")
    frag_bytes = _opt_int(info, "mem_fragmentation_bytes")  # Redis >= 5
    return MemoryInfo(
        used_memory=used,
        used_memory_rss=rss,
        used_memory_peak=_int(info, "used_memory_peak"),
        maxmemory=_int(info, "maxmemory"),
        maxmemory_policy=str(info.get("maxmemory_policy", "unknown")),
        mem_fragmentation_ratio=_float(info, "mem_fragmentation_ratio"),
        mem_fragmentation_bytes=rss - used if frag_bytes is None else frag_bytes,
        allocator_frag_ratio=_opt_float(info, "allocator_frag_ratio"),
        allocator_frag_bytes=_opt_int(info, "allocator_frag_bytes"),
        used_memory_dataset=_opt_int(info, "used_memory_dataset"),
        total_system_memory=_opt_int(info, "total_system_memory"),
    )


def parse_stats(info: Mapping[str, Any]) -> StatsInfo:
    """``INFO stats``: evictions, expiries, hits and misses."""
    return StatsInfo(
        evicted_keys=_int(info, "evicted_keys"),
        expired_keys=_int(info, "expired_keys"),
        keyspace_hits=_int(info, "keyspace_hits"),
        keyspace_misses=_int(info, "keyspace_misses"),
    )


def parse_keyspace(info: Mapping[str, Any]) -> tuple[KeyspaceDb, ...]:
    """``INFO keyspace``: one KeyspaceDb per ``dbN`` line, by db number."""
    dbs = []
    for name, fields in info.items():
        if not (str(name).startswith("db") and str(name)[2:].isdecimal()):
            continue
        values = fields if isinstance(fields, Mapping) else {}
        dbs.append(
            KeyspaceDb(
                db=int(str(name)[2:]),
                keys=_int(values, "keys"),
                expires=_int(values, "expires"),
                avg_ttl_ms=_int(values, "avg_ttl"),
            )
        )
    return tuple(sorted(dbs, key=lambda db: db.db))


def _opt_int(info: Mapping[str, Any], key: str) -> int | None:
    raw = info.get(key)
    if isinstance(raw, int):  # redis-py already converted it: keep it exact
        return raw
    value = _opt_float(info, key)
    return None if value is None else int(value)


def _opt_float(info: Mapping[str, Any], key: str) -> float | None:
    try:
        return float(info[key])
    except (KeyError, TypeError, ValueError):
        return None


def _int(info: Mapping[str, Any], key: str) -> int:
    value = _opt_int(info, key)
    return 0 if value is None else value


def _float(info: Mapping[str, Any], key: str) -> float:
    value = _opt_float(info, key)
    return 0.0 if value is None else value
