"""Give a TTL to the keys that have none, and only to them (never reset a TTL).

Per SCAN batch one Lua call (``EXPIRE key s NX`` on Redis >= 7.0, else TTL == -1
then EXPIRE in the same call); where scripting is refused, SCAN plus a pipeline
of ``EXPIRE ... NX`` (atomic per key). Without NX and without scripting there is
no atomic way, so nothing is touched.
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
from bot.redisinfo.ops_scripts import EXPIRE_SCRIPT
from bot.redisinfo.ops_wire import Wire, WireLost
from bot.remediation.ports import BulkProgress, BulkResult, StopFlag

UNKNOWN = "the batch in flight may or may not have been applied"


def expire_keys(
    client: redis.Redis,
    *,
    url: str,
    timeout: float,
    pattern: str,
    seconds: int,
    nx: bool,
    max_keys: int,
    rate: int | None,
    progress: BulkProgress | None = None,
    should_stop: StopFlag | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BulkResult:
    """``seconds`` of TTL on keys matching ``pattern`` that have none; ``nx``: EXPIRE NX exists."""
    count = change_batch(rate)
    wire = Wire(client, url=url, timeout=timeout)
    try:
        step = ExpireStep(wire, pattern=pattern, seconds=seconds, count=count, nx=nx)
        bucket = TokenBucket(rate, burst=count, clock=clock, sleep=sleep)
        return run_bulk(
            step, max_keys=max_keys, tokens=count, bucket=bucket,
            progress=progress, should_stop=should_stop,
        )  # fmt: skip
    finally:
        wire.close()


class ExpireStep:
    """One SCAN batch per call, by Lua while scripting works, then by pipeline."""

    def __init__(self, wire: Wire, *, pattern: str, seconds: int, count: int, nx: bool) -> None:
        self.wire = wire
        self.pattern = pattern
        self.seconds = seconds
        self.count = count
        self.nx = nx
        self.cursor = "0"
        self.lua = True

    def __call__(self, limit: int) -> Batch:
        """Look at one SCAN batch, changing at most ``limit`` keys."""
        if self.lua:
            try:
                return self._by_script(limit)
            except ScriptingUnavailable:
                self.lua = False  # refused, so not run: go on from the same cursor
        return self._by_pipeline(limit)

    def _by_script(self, limit: int) -> Batch:
        args = (self.cursor, self.pattern, self.count, self.seconds, limit, int(self.nx))
        try:
            reply = self.wire.eval(EXPIRE_SCRIPT, (), *args)
        except WireLost as err:
            raise BatchError(err.reason + (f" ({UNKNOWN})" if err.sent else "")) from None
        except ResponseError as err:  # the script failed before any write
            raise BatchError(f"Redis refused the script: {one_line(err)}") from None
        cursor, looked, changed, total = str(reply[0]), *(int(n) for n in reply[1:4])
        if len(reply) > 4:
            reason = f"Redis refused EXPIRE: {reply[4]}"
            raise BatchError(reason, looked=looked, changed=changed)
        self.cursor = cursor
        return Batch(looked, changed, more=cursor != "0" or looked < total)

    def _by_pipeline(self, limit: int) -> Batch:
        if not self.nx:
            raise BatchError(
                "scripting is disabled and this Redis has no EXPIRE NX (< 7.0): "
                "refusing, as keys that have a TTL could be reset"
            )
        try:
            cursor, keys = self.wire.call(
                "SCAN", self.cursor, "MATCH", self.pattern, "COUNT", self.count
            )
        except WireLost as err:  # a read: nothing changed
            raise BatchError(err.reason) from None
        except ResponseError as err:
            raise BatchError(f"Redis refused SCAN: {one_line(err)}") from None
        looked, changed = self._expire_all(list(keys), limit)
        self.cursor = str(cursor)
        return Batch(looked, changed, more=self.cursor != "0" or looked < len(keys))

    def _expire_all(self, keys: list[str], limit: int) -> tuple[int, int]:
        """EXPIRE NX in pipelines of at most the changes left, so the cap is exact."""
        looked = changed = 0
        while looked < len(keys) and changed < limit:
            chunk = keys[looked : looked + limit - changed]
            replies, failure = self._send(chunk)
            done = [r for r in replies if not isinstance(r, Exception)]
            looked += len(done)
            changed += sum(int(r) for r in done)
            if failure is not None:
                raise BatchError(failure, looked=looked, changed=changed)
        return looked, changed

    def _send(self, chunk: list[str]) -> tuple[list[Any], str | None]:
        commands = [("EXPIRE", key_bytes(key), self.seconds, "NX") for key in chunk]
        try:
            replies = self.wire.pipeline(commands)
        except WireLost as err:
            lost = len(chunk) - len(err.replies)
            note = f" ({lost} EXPIRE sent, outcome unknown)" if err.sent else ""
            return err.replies, err.reason + note
        errors = [r for r in replies if isinstance(r, Exception)]
        if errors:
            return replies, f"Redis refused EXPIRE: {one_line(errors[0])}"
        return replies, None
