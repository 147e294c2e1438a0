"""UNLINK keys that are still idle, re-checked inside Redis just before each UNLINK.

The idle times were measured earlier (``idlest_keys``); a session used since then
must be spared. The Lua call checks ``OBJECT IDLETIME`` (or the LFU counter under
an LFU policy) and UNLINKs in one atomic step. Where scripting is refused, a
pipeline of OBJECT reads then a pipeline of UNLINKs: one round trip apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import ResponseError

from bot.redisinfo.client import key_bytes
from bot.redisinfo.fullscan import ScriptingUnavailable, TokenBucket
from bot.redisinfo.ops_bulk import Batch, BatchError, change_batch, one_line, run_bulk
from bot.redisinfo.ops_scripts import UNLINK_SCRIPT
from bot.redisinfo.ops_wire import Wire, WireLost
from bot.remediation.ports import BulkProgress, BulkResult, StopFlag


def unlink_keys(
    client: redis.Redis,
    *,
    url: str,
    timeout: float,
    keys: list[str],
    min_idle_seconds: int,
    max_freq: int,
    rate: int | None,
    progress: BulkProgress | None = None,
    should_stop: StopFlag | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BulkResult:
    """UNLINK each of ``keys`` still idle >= ``min_idle_seconds`` (LFU: counter <= max_freq)."""
    if not keys:
        return BulkResult(0, 0, 0)
    count = change_batch(rate)
    wire = Wire(client, url=url, timeout=timeout)
    try:
        step = UnlinkStep(wire, keys=keys, count=count, thresholds=(min_idle_seconds, max_freq))
        bucket = TokenBucket(rate, burst=count, clock=clock, sleep=sleep)
        return run_bulk(
            step, max_keys=len(keys), tokens=count, bucket=bucket,
            progress=progress, should_stop=should_stop,
        )  # fmt: skip
    finally:
        wire.close()


class UnlinkStep:
    """The next ``count`` keys per call, by Lua while scripting works, then by pipeline."""

    def __init__(
        self, wire: Wire, *, keys: list[str], count: int, thresholds: tuple[int, int]
    ) -> None:
        self.wire = wire
        self.keys = keys
        self.count = count
        self.min_idle, self.max_freq = thresholds
        self.pos = 0
        self.lua = True

    def __call__(self, limit: int) -> Batch:
        """Re-check and UNLINK the next batch of keys (``limit`` is never below it)."""
        batch = self.keys[self.pos : self.pos + self.count]
        if self.lua:
            try:
                looked, changed = self._by_script(batch)
            except ScriptingUnavailable:
                self.lua = False
        if not self.lua:
            looked, changed = self._by_pipeline(batch)
        self.pos += looked
        return Batch(looked, changed, more=self.pos < len(self.keys))

    def _by_script(self, batch: list[str]) -> tuple[int, int]:
        names = [key_bytes(key) for key in batch]
        try:
            reply = self.wire.eval(UNLINK_SCRIPT, names, self.min_idle, self.max_freq)
        except WireLost as err:
            note = f" ({len(batch)} keys in flight, outcome unknown)" if err.sent else ""
            raise BatchError(err.reason + note) from None
        except ResponseError as err:  # the script failed before any write
            raise BatchError(f"Redis refused the script: {one_line(err)}") from None
        looked, changed = int(reply[0]), int(reply[1])
        if len(reply) > 2:
            raise BatchError(f"Redis refused UNLINK: {reply[2]}", looked=looked, changed=changed)
        return looked, changed

    def _by_pipeline(self, batch: list[str]) -> tuple[int, int]:
        idle = [key for key, age in zip(batch, self._ages(batch), strict=True) if self._idle(age)]
        try:
            replies = self.wire.pipeline([("UNLINK", key_bytes(key)) for key in idle])
        except WireLost as err:
            changed = sum(int(r) for r in err.replies if not isinstance(r, Exception))
            lost = len(idle) - len(err.replies)
            note = f" ({lost} UNLINK sent, outcome unknown)" if err.sent else ""
            raise BatchError(err.reason + note, looked=len(batch), changed=changed) from None
        failed = [r for r in replies if isinstance(r, Exception)]
        changed = sum(int(r) for r in replies if not isinstance(r, Exception))
        if failed:
            reason = f"Redis refused UNLINK: {one_line(failed[0])}"
            raise BatchError(reason, looked=len(batch), changed=changed)
        return len(batch), changed

    def _ages(self, batch: list[str]) -> list[tuple[Any, Any]]:
        """(OBJECT IDLETIME, OBJECT FREQ) of each key: one of them errors, per policy."""
        commands = []
        for key in batch:
            commands += [("OBJECT", "IDLETIME", key_bytes(key)), ("OBJECT", "FREQ", key_bytes(key))]
        try:
            replies = self.wire.pipeline(commands)
        except WireLost as err:  # reads only: nothing changed
            raise BatchError(err.reason) from None
        return list(zip(replies[::2], replies[1::2], strict=True))

    def _idle(self, age: tuple[Any, Any]) -> bool:
        idle, freq = age
        if isinstance(idle, int):
            return idle >= self.min_idle
        return isinstance(idle, ResponseError) and isinstance(freq, int) and freq <= self.max_freq
