"""Builders shared by the health tests: samples at given minutes, rule books, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import redis

from bot.config import Target
from bot.health.model import Sample
from bot.health.rules import ConfiguredRule, RuleBook
from bot.redisproc import RedisServer

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``T0`` plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def sample(minutes: float, *, used: int = 50, maxmemory: int = 100, **fields: object) -> Sample:
    """A reachable sample of ``prod`` at ``at(minutes)``."""
    values: dict[str, object] = {
        "used_memory": used,
        "maxmemory": maxmemory,
        "evicted_keys": 0,
        "expired_keys": 0,
        "dbsize": 10,
        "connected_clients": 5,
        "maxclients": 100,
        "rejected_connections": 0,
        "fragmentation_ratio": 1.1,
        **fields,
    }
    return Sample("prod", at(minutes), reachable=True, **values)  # type: ignore[arg-type]


def down(minutes: float, error: str = "cannot reach Redis: connection refused") -> Sample:
    """An unreachable sample of ``prod``."""
    return Sample("prod", at(minutes), reachable=False, error=error)


def book(**changes: dict[str, object]) -> RuleBook:
    """The default rules with some configs changed: ``book(**{"memory-warning": {...}})``."""
    rules = []
    for configured in RuleBook.defaults().rules:
        change = changes.get(configured.id, {})
        rules.append(ConfiguredRule(configured.rule, replace(configured.config, **change)))
    return RuleBook(tuple(rules))


def only(*rule_ids: str, **changes: dict[str, object]) -> RuleBook:
    """Only ``rule_ids`` enabled (with ``changes``), every other rule off."""
    off = {r.id: {"enabled": False} for r in RuleBook.defaults().rules if r.id not in rule_ids}
    return book(**{**off, **changes})


@dataclass
class Clock:
    """A clock the test moves by hand, from ``start``."""

    start: datetime = T0
    now: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> datetime:
        """``start`` plus some minutes."""
        return self.start + timedelta(minutes=minutes)


def target(name: str, url: str, channel: str | None = "C0ALERTS") -> Target:
    """A target with an alert channel."""
    return Target(name=name, redis_url=url, channel=channel)


# The two memory rules with short for's, every other rule off.
MEMORY = only(
    "memory-warning",
    "memory-critical",
    **{"memory-warning": {"for_seconds": 120}, "memory-critical": {"for_seconds": 60}},
)
STORE_ARGS = ("--maxmemory", "64mb", "--maxmemory-policy", "noeviction")


def session_store(
    start: Callable[..., RedisServer],
    *,
    ratio: float | None = None,
    megabytes: float = 3,
    ttl: int | None = 3600,
) -> RedisServer:
    """A real redis-server holding ~``megabytes`` of sessions (~1 KB each; ``ttl`` None: no
    TTL, a ttl-leak), at ``ratio`` of its maxmemory when given. ``start``: redis_factory."""
    server = start(*STORE_ARGS)
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(int(megabytes * 1024)):
            pipe.set(f"session:{i}", b"s" * 900, ex=ttl)
        pipe.execute()
    client.close()
    if ratio is not None:
        set_ratio(server, ratio)
    return server


def set_ratio(server: RedisServer, ratio: float) -> None:
    """Move used/maxmemory to ``ratio`` by CONFIG SET maxmemory from what INFO says is used."""
    client = redis.Redis.from_url(server.url)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(int(used / ratio)))
    client.close()
