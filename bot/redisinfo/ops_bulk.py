"""Bulk changes batch by batch: rate limit, cap, stop flag, exact counts on failure.

``run_bulk`` drives a step function (one batch, one short call to Redis) and
always returns a ``BulkResult`` once the change has started: the caller writes
the counts into the audit row, so a failure mid-way must not lose them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from bot.redisinfo.fullscan import TokenBucket
from bot.remediation.ports import BulkProgress, BulkResult, StopFlag

# A batch blocks Redis while its script runs: 100 EXPIRE NX or UNLINK calls take
# well under 0.2 ms here, short enough not to show in other clients' p99 (see
# docs/decisions/redis-changes.md and bench/remediation.py).
CHANGE_BATCH = 100
MIN_CHANGE_BATCH = 10


@dataclass(frozen=True)
class Batch:
    """What one batch did: keys looked at and changed, and whether keys remain."""

    looked: int
    changed: int
    more: bool


class BatchError(Exception):
    """A batch failed after changing ``changed`` of the ``looked`` keys (exact)."""

    def __init__(self, reason: str, *, looked: int = 0, changed: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.looked = looked
        self.changed = changed


Step = Callable[[int], Batch]  # the step gets how many keys it may still change


def change_batch(rate: int | None) -> int:
    """Keys per batch: CHANGE_BATCH, smaller under a low rate so pauses stay ~0.1 s."""
    if not rate:
        return CHANGE_BATCH
    return max(MIN_CHANGE_BATCH, min(CHANGE_BATCH, rate // 10))


def run_bulk(
    step: Step,
    *,
    max_keys: int,
    tokens: int,
    bucket: TokenBucket,
    progress: BulkProgress | None,
    should_stop: StopFlag | None,
) -> BulkResult:
    """Run ``step`` until the keys are done, ``max_keys`` changed, stopped, or an error."""
    scanned = changed = 0

    def result(stopped: str | None) -> BulkResult:
        return BulkResult(scanned, changed, scanned - changed, stopped)

    while True:
        if should_stop is not None and should_stop():
            return result("stopped")
        bucket.acquire(tokens)
        try:
            batch = step(max_keys - changed)
        except BatchError as err:
            scanned, changed = scanned + err.looked, changed + err.changed
            return result(f"error: {err.reason}")
        except RedisError as err:  # a step lets only read failures through: none in doubt
            return result(f"error: Redis failed: {one_line(err)}")
        scanned, changed = scanned + batch.looked, changed + batch.changed
        if progress is not None:
            try:
                progress(scanned, changed)
            except Exception as err:  # the caller's reporting failed: stop, counts intact
                return result(f"error: progress report failed: {one_line(err)}")
        if not batch.more:
            return result(None)
        if changed >= max_keys:
            return result("cap")


def one_line(err: BaseException) -> str:
    """``err`` as one line (its class name when it has no message)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__
