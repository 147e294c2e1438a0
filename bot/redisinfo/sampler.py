"""LiveSampleSource: the health check's reading of a target, one pipelined round trip.

One client per target is kept between checks: a check every minute should not pay a
TCP (or TLS) handshake and an AUTH each time, and a healthy target's check then costs
well under a millisecond of Redis time. Timeouts are short and retries off, so a
hung Redis (SIGSTOP, a black-holed address) fails its own check within ``timeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import ResponseError

from bot.config import Target
from bot.health.model import Sample
from bot.redisinfo.client import client_for, redis_errors
from bot.redisinfo.sentinel import target_url

SECTIONS = ("memory", "stats", "clients")


class LiveSampleSource:
    """``SampleSource`` over redis-py: INFO memory/stats/clients and DBSIZE."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        """``timeout``: connect and read timeout of every check, in seconds."""
        self._timeout = timeout
        self._clients: dict[str, tuple[str, redis.Redis]] = {}
        self._lock = threading.Lock()

    def read(self, target: Target, *, at: datetime) -> Sample:
        """The target's sample stamped ``at``; RedisUnavailable/ConfigError when unreadable."""
        # A sentinel target's primary is asked anew each check: a failover moves the client.
        url = target_url(target, timeout=self._timeout)
        client = self._client(target.name, url)
        with redis_errors(url, timeout=self._timeout):
            replies = _pipeline(client)
        return _sample(target.name, at, replies)

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for _, client in clients.values():
            client.close()

    def _client(self, name: str, url: str) -> redis.Redis:
        with self._lock:
            kept = self._clients.get(name)
            if kept is not None and kept[0] == url:
                return kept[1]
            client = client_for(url, timeout=self._timeout)
            self._clients[name] = (url, client)
        if kept is not None:  # the URL changed (a rotated password): drop the old one
            kept[1].close()
        return client


def _pipeline(client: redis.Redis) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for section in SECTIONS:
        pipe.info(section)
    pipe.dbsize()
    replies: list[Any] = pipe.execute(raise_on_error=False)
    for reply in replies[: len(SECTIONS) + 1]:
        if isinstance(reply, Exception):
            raise reply
    if "maxclients" not in replies[2]:  # INFO clients has it from Redis 7.0 on
        replies.append(_config_maxclients(client))
    return replies


def _config_maxclients(client: redis.Redis) -> int | None:
    try:
        value = client.config_get("maxclients").get("maxclients")
    except ResponseError:  # CONFIG renamed or denied: the ratio rule has no data
        return None
    return int(value) if value is not None else None


def _sample(name: str, at: datetime, replies: list[Any]) -> Sample:
    memory, stats, clients, dbsize = replies[:4]
    maxclients = clients.get("maxclients") if len(replies) == 4 else replies[4]
    return Sample(
        target=name,
        at=at,
        reachable=True,
        used_memory=_int(memory, "used_memory"),
        maxmemory=_int(memory, "maxmemory"),
        evicted_keys=_int(stats, "evicted_keys"),
        expired_keys=_int(stats, "expired_keys"),
        dbsize=int(dbsize),
        connected_clients=_int(clients, "connected_clients"),
        maxclients=None if maxclients is None else int(maxclients),
        rejected_connections=_int(stats, "rejected_connections"),
        fragmentation_ratio=_float(memory, "mem_fragmentation_ratio"),
    )


def _int(info: Mapping[str, Any], key: str) -> int | None:
    value = info.get(key)
    return None if value is None else int(value)


def _float(info: Mapping[str, Any], key: str) -> float | None:
    value = info.get(key)
    return None if value is None else float(value)
