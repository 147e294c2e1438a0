"""Changes to a live Redis: CONFIG SET, TTLs on keys without one, evicting idle keys.

Implements ``bot.remediation.ports.RedisOps``. Bulk changes run in short batches
(one Lua call each, a pipeline where scripting is refused), rate-limited, and
always report exactly what they did, even when Redis fails mid-way. See
docs/decisions/redis-changes.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import NoPermissionError, ResponseError

from bot.errors import UsageError
from bot.redisinfo.client import DEFAULT_TIMEOUT, connect, redis_errors
from bot.redisinfo.ops_bulk import one_line
from bot.redisinfo.ops_expire import expire_keys
from bot.redisinfo.ops_idle import idlest
from bot.redisinfo.ops_unlink import unlink_keys
from bot.remediation.ports import BulkProgress, BulkResult, LiveSetting, StopFlag

# EXPIRE ... NX exists from Redis 7.0.
NX_VERSION = (7, 0)


class LiveRedisOps:
    """``RedisOps`` against the Redis at ``url``; connects per call, never at construction.

    ``clock``/``sleep`` pace the rate limiter (tests inject a fake clock).
    """

    def __init__(
        self,
        *,
        url: str,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return "LiveRedisOps(url=<redacted>)"

    def config_get(self, name: str) -> str | None:
        """A CONFIG value, or None when CONFIG is unavailable (renamed, denied) or unknown."""
        with self._client() as client, redis_errors(self.url, timeout=self.timeout):
            try:
                reply = client.config_get(name)
            except ResponseError:
                return None
        value = reply.get(name)
        return None if value is None else str(value)

    def config_set(self, name: str, value: str) -> LiveSetting:
        """CONFIG SET; ``applied=False`` with a one-line reason when the server refuses."""
        if not name.strip():
            raise UsageError("a CONFIG setting name is required")
        with self._client() as client, redis_errors(self.url, timeout=self.timeout):
            try:
                client.config_set(name, value)
            except ResponseError as err:
                return LiveSetting(name, value, applied=False, reason=refusal(err))
        return LiveSetting(name, value, applied=True)

    def expire_without_ttl(
        self,
        *,
        pattern: str,
        seconds: int,
        max_keys: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
    ) -> BulkResult:
        """``EXPIRE key seconds NX`` on matching keys without a TTL, in rate-limited batches.

        Keys that have a TTL keep it exactly. Stops after ``max_keys`` changed
        ("cap"), when ``should_stop()`` ("stopped"), or on a Redis failure mid-way
        ("error: ..."), always with exact counts. RedisUnavailable if Redis cannot
        be reached at the start (then nothing was touched).
        """
        _check(pattern=pattern, rate=rate, seconds=seconds, max_keys=max_keys)
        with self._client() as client:
            nx = _version(client, self.url, self.timeout) >= NX_VERSION
            with redis_errors(self.url, timeout=self.timeout):  # taking the connection
                return expire_keys(
                    client, url=self.url, timeout=self.timeout, pattern=pattern,
                    seconds=seconds, nx=nx, max_keys=max_keys, rate=rate,
                    progress=progress, should_stop=should_stop,
                    clock=self._clock, sleep=self._sleep,
                )  # fmt: skip

    def idlest_keys(self, *, pattern: str, count: int, rate: int | None) -> list[tuple[str, int]]:
        """The ``count`` matching keys idle longest, idlest first: (key, idle seconds),
        or (key, LFU counter) lowest first under an LFU policy. Memory O(count)."""
        _check(pattern=pattern, rate=rate, count=count)
        with self._client() as client, redis_errors(self.url, timeout=self.timeout):
            lfu = _uses_lfu(client)
            return idlest(
                client, pattern=pattern, count=count, lfu=lfu, rate=rate,
                clock=self._clock, sleep=self._sleep,
            )  # fmt: skip

    def unlink_if_idle(
        self,
        *,
        keys: list[str],
        min_idle_seconds: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
        max_freq: int | None = None,
    ) -> BulkResult:
        """UNLINK each key still idle >= ``min_idle_seconds``, re-checked inside Redis.

        Under an LFU policy (no idle time) a key goes only if its LFU counter is
        still <= ``max_freq`` (None: 0, i.e. not used for several decay periods).
        A key used since it was measured is skipped. Exact counts as for
        ``expire_without_ttl``.
        """
        _check(rate=rate, min_idle_seconds=min_idle_seconds, max_freq=max_freq or 0)
        with self._client() as client, redis_errors(self.url, timeout=self.timeout):
            return unlink_keys(
                client, url=self.url, timeout=self.timeout, keys=keys,
                min_idle_seconds=min_idle_seconds, max_freq=max_freq or 0, rate=rate,
                progress=progress, should_stop=should_stop,
                clock=self._clock, sleep=self._sleep,
            )  # fmt: skip

    def uses_lfu(self) -> bool:
        """Whether this Redis evicts by LFU counter (else by idle time): its policy now."""
        with self._client() as client, redis_errors(self.url, timeout=self.timeout):
            return _uses_lfu(client)

    @contextmanager
    def _client(self) -> Iterator[redis.Redis]:
        client = connect(self.url, timeout=self.timeout)
        try:
            yield client
        finally:
            client.close()


def _uses_lfu(client: redis.Redis) -> bool:
    return "lfu" in str(client.info("memory").get("maxmemory_policy", ""))


def refusal(err: ResponseError) -> str:
    """Why Redis refused a CONFIG SET, in one line."""
    text = one_line(err)
    if "unknown command" in text.lower():
        return "CONFIG is disabled on this server (renamed or removed): not applied live"
    if isinstance(err, NoPermissionError) or "noperm" in text.lower():
        return "the Redis user may not run CONFIG SET (ACL): not applied live"
    return f"Redis rejected it: {text}"


def _version(client: redis.Redis, url: str, timeout: float) -> tuple[int, ...]:
    with redis_errors(url, timeout=timeout):
        raw = str(client.info("server").get("redis_version", "0"))
    parts = [int(part) if part.isdecimal() else 0 for part in raw.split(".")[:2]]
    return tuple(parts)


def _check(*, pattern: str = "*", rate: int | None, **positive: int) -> None:
    """Refuse bad arguments before touching Redis (EXPIRE 0 would delete keys)."""
    if not pattern:
        raise UsageError("a key pattern is required")
    if rate is not None and rate <= 0:
        raise UsageError(f"rate must be a positive number of keys a second, not {rate}")
    for name, value in positive.items():
        least = 0 if name in ("min_idle_seconds", "max_freq") else 1
        if value < least:
            raise UsageError(f"{name} must be at least {least}, not {value}")
