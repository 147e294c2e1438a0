"""LiveSampleSource: the health check's reading of a target, one pipelined round trip.

One client per target (per shard of a cluster target) is kept between checks: a check
every minute should not pay a TCP (or TLS) handshake and an AUTH each time, and a healthy
target's check then costs well under a millisecond of Redis time. Timeouts are short and
retries off, so a hung Redis (SIGSTOP, a black-holed address) fails its own check within
``timeout``.

A cluster target is discovered anew on every check (a failover or a resharding shows at
once), then its primaries are read concurrently. The check's ``timeout`` bounds the
whole of it: discovery gets at most ``DISCOVERY_SHARE`` of it (shared among the seeds),
the primaries what is left (at least their share: a seed that answers slowly call after
call may overrun its own), so one hung primary costs its own shard's sample, never the
round (docs/decisions/cluster.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import ResponseError

from bot.config import Target
from bot.errors import RedisMemError
from bot.health.model import Sample
from bot.health.subjects import SubjectSamples, cluster_totals
from bot.redisinfo.client import client_for, redis_errors
from bot.redisinfo.cluster import discover, primaries
from bot.redisinfo.sentinel import target_url
from bot.shards import Shard, parent, subject

SECTIONS = ("memory", "stats", "clients")
DISCOVERY_SHARE = 0.5  # of a cluster check's timeout; the primaries read in the rest
MAX_PARALLEL_SHARDS = 16  # a cluster's primaries read at once (threads of one check)


class LiveSampleSource:
    """``SampleSource`` over redis-py: INFO memory/stats/clients and DBSIZE."""

    def __init__(self, *, timeout: float = 5.0, parallel: int = MAX_PARALLEL_SHARDS) -> None:
        """``timeout``: connect and read timeout of every check, in seconds; ``parallel``:
        a cluster's primaries read at once."""
        self._timeout = timeout
        self._parallel = max(1, parallel)
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

    def read_all(self, target: Target, *, at: datetime) -> SubjectSamples:
        """Every subject of ``target`` at ``at`` (``SampleSource``): one sample, or a
        cluster's own and one per shard; what cannot be read is an unreachable sample."""
        if target.mode == "cluster":
            return self._read_cluster(target, at)
        try:
            return SubjectSamples((self.read(target, at=at),))
        except RedisMemError as err:
            return SubjectSamples((_down(target.name, at, err.message),))

    def _read_cluster(self, target: Target, at: datetime) -> SubjectSamples:
        deadline = time.monotonic() + self._timeout
        try:
            topology = discover(target, timeout=self._timeout * DISCOVERY_SHARE)
        except RedisMemError as err:  # no seed answered, or a seed is not in cluster mode
            return SubjectSamples((_down(target.name, at, err.message),), complete=False)
        shards = primaries(target, topology)
        self._forget(target.name, keep={subject(target.name, s.name) for s, _ in shards})
        # A seed may answer slowly call after call and take more than its share: the
        # primaries still get theirs, or a slow seed would read as every shard down.
        floor = time.monotonic() + self._timeout * (1 - DISCOVERY_SHARE)
        samples = self._read_primaries(target.name, shards, at, max(deadline, floor))
        problem = topology.problem  # cluster_state not ok, a primary failed, slots unserved
        if problem is not None:
            return SubjectSamples((_down(target.name, at, problem), *samples))
        return SubjectSamples((cluster_totals(target.name, at, samples), *samples))

    def _read_primaries(
        self, name: str, shards: Sequence[tuple[Shard, str]], at: datetime, deadline: float
    ) -> tuple[Sample, ...]:
        """Each primary's sample, read concurrently; one not read by ``deadline`` is down."""
        if not shards:
            return ()
        workers = min(len(shards), self._parallel)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redis-mem-shard")
        try:
            futures = [pool.submit(self._read_shard, name, s, url, at) for s, url in shards]
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        finally:  # a hung primary's thread ends with its socket timeout, nobody waits for it
            pool.shutdown(wait=False, cancel_futures=True)
        return tuple(
            self._outcome(future, subject(name, shard.name), shard, at)
            for future, (shard, _) in zip(futures, shards, strict=True)
        )

    def _outcome(self, future: Future[Sample], name: str, shard: Shard, at: datetime) -> Sample:
        if future.cancelled():  # still queued at the deadline: the others' reads took it
            late = (
                f"{shard.primary} not read within the check's {self._timeout:g} s"
                f" (primaries read {self._parallel} at a time, the others took it)"
            )
            return _down(name, at, late)
        if not future.done():
            late = f"no answer from {shard.primary} within the check's {self._timeout:g} s"
            return _down(name, at, late)
        return future.result()  # anything but RedisMemError is a bug: the check reports it

    def _read_shard(self, name: str, shard: Shard, url: str, at: datetime) -> Sample:
        key = subject(name, shard.name)
        try:
            client = self._client(key, url)
            with redis_errors(url, timeout=self._timeout):
                return _sample(key, at, _pipeline(client))
        except RedisMemError as err:
            return _down(key, at, err.message)

    def _forget(self, target: str, *, keep: set[str]) -> None:
        """Close the kept clients of ``target``'s shards that are no longer shards."""
        with self._lock:
            gone = [k for k in self._clients if parent(k) == target and k != target]
            dropped = [self._clients.pop(k)[1] for k in gone if k not in keep]
        for client in dropped:
            client.close()

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


def _down(name: str, at: datetime, error: str) -> Sample:
    return Sample(name, at, reachable=False, error=error)


def _int(info: Mapping[str, Any], key: str) -> int | None:
    value = info.get(key)
    return None if value is None else int(value)


def _float(info: Mapping[str, Any], key: str) -> float | None:
    value = info.get(key)
    return None if value is None else float(value)
