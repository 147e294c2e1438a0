"""LiveRedisProbe: the real ``RedisProbe``, one connection per snapshot (or a pooled one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import redis

from bot.clock import utc_now
from bot.redisinfo.client import DEFAULT_TIMEOUT, connect, redis_errors
from bot.redisinfo.fullscan import scan_sessions
from bot.redisinfo.info import ServerInfo, read_server_info
from bot.redisinfo.pacing import DEFAULT_BUDGET
from bot.redisinfo.pool import ClientPool
from bot.redisinfo.sampling import sample_sessions
from bot.redisinfo.snapshot import KeySample, ProgressFn, Snapshot


class LiveRedisProbe:
    """Reads a Snapshot from the Redis at ``url``.

    ``scan_budget``: the share of one Redis core a full scan may use, in (0, 1]
    (1.0: as fast as possible; see ``bot.redisinfo.pacing``). Errors reach the
    caller as one-line ``RedisUnavailable`` (or ``ConfigError`` for a malformed URL).
    """

    def __init__(
        self,
        *,
        name: str,
        url: str,
        scan_budget: float = DEFAULT_BUDGET,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
        clients: ClientPool | None = None,
    ) -> None:
        """``clients``: where the target's pooled client lives (None: a new connection
        per snapshot, closed after it; see ``bot.redisinfo.pool``)."""
        self.name = name
        self._clients = clients
        self._url = url  # may hold a password: never show it (bot.config.redact_url)
        self._scan_budget = scan_budget
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"LiveRedisProbe(name={self.name!r})"

    def snapshot(
        self,
        *,
        pattern: str,
        sample_size: int,
        full: bool = False,
        progress: ProgressFn | None = None,
    ) -> Snapshot:
        """Read memory, stats, keyspace, policy and session keys (sampled or full)."""
        if self._clients is not None:
            pooled = self._clients.client(self._url, timeout=self._timeout)
            with redis_errors(self._url, timeout=self._timeout):
                return self._read(
                    pooled, pattern=pattern, sample_size=sample_size, full=full, progress=progress
                )
        client = connect(self._url, timeout=self._timeout)
        try:
            with redis_errors(self._url, timeout=self._timeout):
                return self._read(
                    client, pattern=pattern, sample_size=sample_size, full=full, progress=progress
                )
        finally:
            client.close()

    def _read(
        self,
        client: redis.Redis,
        *,
        pattern: str,
        sample_size: int,
        full: bool,
        progress: ProgressFn | None,
    ) -> Snapshot:
        taken_at = self._clock()
        info = read_server_info(client)
        if full:
            sample = scan_sessions(
                client,
                pattern=pattern,
                dbsize=info.dbsize,
                lfu=info.lfu,
                budget=self._scan_budget,
                progress=progress,
            )
        else:
            sample = sample_sessions(
                client, pattern=pattern, sample_size=sample_size, dbsize=info.dbsize, lfu=info.lfu
            )
        return snapshot_of(self.name, client, taken_at=taken_at, info=info, sample=sample)


def snapshot_of(
    name: str, client: redis.Redis, *, taken_at: datetime, info: ServerInfo, sample: KeySample
) -> Snapshot:
    """The Snapshot of ``client``'s Redis from its INFO (read at ``taken_at``) and keys.

    ``LiveRedisProbe`` reads both itself; a cluster's full scan reads every primary's INFO
    first and their keys together (``bot.redisinfo.multiscan``), then puts each together.
    """
    return Snapshot(
        target=name,
        taken_at=taken_at,
        redis_version=info.redis_version,
        memory=info.memory,
        stats=info.stats,
        keyspace=info.keyspace,
        db=int(client.get_connection_kwargs().get("db", 0) or 0),
        dbsize=info.dbsize,
        maxmemory_policy=info.maxmemory_policy,
        policy_source=info.policy_source,
        sample=sample,
        settings=info.settings,
        persistence=info.persistence,
    )
