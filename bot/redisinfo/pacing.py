"""How fast a full scan may go: a share of Redis's own time, less when Redis is slow.

The scan tells the pacer what each batch cost Redis (the script's own ``TIME``, or
the fallback pipeline's round trip) and the pacer sleeps between batches so that
this busy time stays under ``budget`` of the wall time: at 0.5, Redis is idle for
the scan at least as long as it is busy with it. A ``PING`` between batches (every
``PROBE_INTERVAL``) measures how fast Redis answers everyone else; when it takes
``LATENCY_HIGH`` longer than the fastest PING seen (the network's share), the share
is halved again and again, and doubled back once Redis answers fast.
``LOADING``/``BUSY`` refusals are waited out and the batch retried. Batches are
sized from the measured cost per key so one script call stays near
``TARGET_CALL_SECONDS``: a concurrent client never waits long behind one.
See docs/decisions/sampling.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import BusyLoadingError, RedisError, ResponseError

DEFAULT_BUDGET = 0.5  # REDIS_MEM_SCAN_BUDGET's default: half of one Redis core
# Redis's time for one script call. A client arriving while one runs waits for the
# rest of it, so while the scan holds a few % of Redis the added p99 is about one call
# plus the scheduling noise of a busy host: aim well under the 1 ms allowed
# (bench/keyspace.py: 0.5 ms calls added 0.8-1.1 ms on this VM, 0.25 ms ones less).
TARGET_CALL_SECONDS = 0.00025
FIRST_BATCH = 50  # before any cost is known: about 0.1-0.4 ms of session keys
MIN_BATCH = 10
MAX_BATCH = 5000  # non-matching keys cost SCAN ~0.1 us each: sparse sessions go fast
GROWTH = 2.0  # a batch grows at most this much over the previous one
SMOOTHING = 0.3  # a falling cost per key is believed gradually, a rising one at once
MAX_CREDIT_SECONDS = 0.002  # Redis time a stalled client may catch up on in one go
# A PING this much slower than the fastest one of the scan (the network's own round
# trip) has queued behind other work in Redis: it is slow for everyone, back off.
LATENCY_HIGH = 0.001
PROBE_INTERVAL = 0.1  # seconds between PINGs (each costs one round trip)
MAX_BACKOFF = 16  # the share never drops below budget / 16: a scan still ends
RETRY_FIRST, RETRY_MAX, RETRY_GIVE_UP = 0.05, 1.0, 30.0  # LOADING/BUSY pauses (seconds)
LONG_CALL_SECONDS = 0.001  # counted in PaceStats.long_calls


class Pacer(Protocol):
    """What a scan asks of its pacing, batch after batch."""

    @property
    def count(self) -> int:
        """Keys for the next SCAN call (its COUNT)."""
        ...

    def record(self, count: int, seconds: float) -> None:
        """A script batch of ``count`` cost Redis ``seconds``: charge it, size by it."""
        ...

    def charge(self, seconds: float) -> None:
        """A batch cost Redis at most ``seconds`` (a round trip): charge it only."""
        ...

    def wait(self, ping: Callable[[], object] | None = None) -> None:
        """Sleep as long as the pacing wants before the next batch is sent."""
        ...

    def retry(self, err: RedisError) -> bool:
        """``err`` refused a batch: sleep and return True to retry it, False to give up."""
        ...


@dataclass
class PaceStats:
    """What a pacer saw, for benchmarks and tests."""

    batches: int = 0
    busy_seconds: float = 0.0  # Redis's time charged for the batches
    slept_seconds: float = 0.0  # pauses for the budget and the latency back-off
    longest_call_seconds: float = 0.0  # the costliest script call
    long_calls: int = 0  # script calls over LONG_CALL_SECONDS (the 1 ms)
    largest_count: int = 0
    slow_pings: int = 0
    retries: int = 0


def redis_busy(err: RedisError) -> bool:
    """True for a refusal that passes: LOADING (restart) or BUSY (a long script)."""
    if isinstance(err, BusyLoadingError):
        return True
    return isinstance(err, ResponseError) and str(err).startswith("BUSY")


class BatchSizer:
    """COUNT for the next SCAN call, so that one call costs Redis about ``target``."""

    def __init__(
        self,
        *,
        target: float = TARGET_CALL_SECONDS,
        first: int = FIRST_BATCH,
        min_count: int = MIN_BATCH,
        max_count: int = MAX_BATCH,
    ) -> None:
        self.target = target
        self.min_count = min(min_count, max_count)
        self.max_count = max_count
        self.count = max(self.min_count, min(first, max_count))
        self.per_key: float | None = None  # estimated Redis seconds per key scanned

    def observe(self, count: int, seconds: float) -> None:
        """A call of ``count`` keys took ``seconds`` of Redis's time."""
        if count <= 0:
            return
        cost = max(seconds, 0.0) / count
        estimate = self.per_key
        if estimate is None or cost > estimate:
            estimate = cost  # costlier keys now: shrink the very next batch
        else:
            estimate += SMOOTHING * (cost - estimate)
        self.per_key = estimate
        wanted = self.target / estimate if estimate > 0 else float(self.max_count)
        wanted = min(wanted, self.count * GROWTH)
        self.count = int(max(self.min_count, min(self.max_count, wanted)))


class Retrier:
    """Pauses before retrying a refused batch, doubling; gives up after ``give_up`` s."""

    def __init__(
        self, clock: Callable[[], float], sleep: Callable[[float], None], give_up: float
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._give_up = give_up
        self._since: float | None = None
        self._pause = RETRY_FIRST

    def wait(self) -> tuple[bool, float]:
        """(retry?, seconds slept); the clock runs from the first refusal in a row."""
        pause = self.pause()
        if pause is None:
            return False, 0.0
        self._sleep(pause)
        return True, pause

    def pause(self) -> float | None:
        """Seconds to wait before the retry (not slept here), or None to give up."""
        now = self._clock()
        if self._since is None:
            self._since, self._pause = now, RETRY_FIRST
        if now - self._since >= self._give_up:
            return None
        pause = self._pause
        self._pause = min(RETRY_MAX, pause * 2)
        return pause

    def succeeded(self) -> None:
        """A batch went through: the next refusal starts from the first pause."""
        self._since = None


class ScanPacer:
    """Keeps a scan's share of Redis's time under ``budget``; less while Redis is slow.

    ``budget`` 1.0 never sleeps nor PINGs (as fast as possible); LOADING/BUSY are
    still waited out. ``clock``/``sleep`` are injected so tests do not sleep.
    """

    def __init__(
        self,
        budget: float = DEFAULT_BUDGET,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sizer: BatchSizer | None = None,
        give_up: float = RETRY_GIVE_UP,
    ) -> None:
        if not 0 < budget <= 1:
            raise ValueError(f"scan budget must be in (0, 1], not {budget!r}")
        self.budget = budget
        self.sizer = sizer or BatchSizer()
        self.stats = PaceStats()
        self.backoff = 1  # the share is budget / backoff
        self._clock = clock
        self._sleep = sleep
        self._retrier = Retrier(clock, sleep, give_up)
        self._credit = 0.0  # Redis seconds the scan may spend before it must pause
        self._last = clock()
        self._next_probe = self._last  # PING before the first batch
        self._fastest_ping: float | None = None  # the round trip of the network alone

    @property
    def count(self) -> int:
        """Keys for the next SCAN call."""
        return self.sizer.count

    def record(self, count: int, seconds: float) -> None:
        """A script batch of ``count`` keys cost Redis ``seconds``."""
        self.sizer.observe(count, seconds)
        self.stats.longest_call_seconds = max(self.stats.longest_call_seconds, seconds)
        self.stats.largest_count = max(self.stats.largest_count, count)
        self.stats.long_calls += seconds > LONG_CALL_SECONDS
        self.charge(seconds)

    def charge(self, seconds: float) -> None:
        """Count ``seconds`` of Redis's time against the budget."""
        self.stats.batches += 1
        self.stats.busy_seconds += seconds
        self._credit -= seconds
        self._retrier.succeeded()

    def wait(self, ping: Callable[[], object] | None = None) -> None:
        """Sleep until the budget allows the next batch; ``ping`` probes Redis's latency."""
        pause = self.pause(ping)
        if pause > 0:
            self._sleep(pause)

    def pause(self, ping: Callable[[], object] | None = None) -> float:
        """Seconds to wait before the next batch, booked as waited but not slept here.

        ``wait`` sleeps them; a driver of several scans at once (``bot.redisinfo.multiscan``)
        sends the next batch no sooner than that many seconds from now instead.
        """
        if self.budget >= 1:
            return 0.0
        if ping is not None and self._clock() >= self._next_probe:
            self._probe(ping)
        now = self._clock()
        share = self.budget / self.backoff
        self._credit = min(MAX_CREDIT_SECONDS, self._credit + (now - self._last) * share)
        self._last = now
        if self._credit >= 0:
            return 0.0
        pause = -self._credit / share
        self.stats.slept_seconds += pause
        self._credit = 0.0
        self._last = now + pause
        return pause

    def retry(self, err: RedisError) -> bool:
        """LOADING/BUSY refused a batch: pause (doubling), back off; False to give up."""
        pause = self.retry_pause(err)
        if pause is not None:
            self._sleep(pause)
        return pause is not None

    def retry_pause(self, err: RedisError) -> float | None:
        """``retry`` without the sleep: seconds to wait before the batch again, or None
        to give up (not LOADING/BUSY, or refused for ``give_up`` seconds in a row)."""
        if not redis_busy(err):
            return None
        pause = self._retrier.pause()
        if pause is not None:
            self.stats.retries += 1
            self.stats.slept_seconds += pause
            self.backoff = min(MAX_BACKOFF, self.backoff * 2)  # resume gently
            self._last = self._clock() + pause
        return pause

    def _probe(self, ping: Callable[[], object]) -> None:
        started = self._clock()
        try:
            ping()
            refused = False
        except RedisError as err:  # LOADING/BUSY: as slow as it gets; the batch will retry
            if not redis_busy(err):
                raise
            refused = True
        ended = self._clock()
        self._next_probe = ended + PROBE_INTERVAL
        rtt = ended - started
        if not refused and (self._fastest_ping is None or rtt < self._fastest_ping):
            self._fastest_ping = rtt
        queued = rtt - (self._fastest_ping if self._fastest_ping is not None else 0.0)
        if refused or queued > LATENCY_HIGH:
            self.stats.slow_pings += 1
            self.backoff = min(MAX_BACKOFF, self.backoff * 2)
        elif queued < LATENCY_HIGH / 2:
            self.backoff = max(1, self.backoff // 2)


class TokenBucket:
    """At most ``rate`` tokens a second with bursts of ``burst``; no rate means no limit.

    ``acquire`` may overdraw (a batch larger than the burst) and then sleeps off the
    debt, so the long-run rate holds whatever the batch size.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate or 0.0
        self._burst = burst
        self._tokens = burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()

    def acquire(self, tokens: float) -> float:
        """Take ``tokens``, sleeping if needed; returns the seconds slept."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= tokens
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self._rate
        self._sleep(wait)
        return wait


RATE_MAX_BATCH = 250  # the key actions' largest batch under a key rate


def batch_size(rate: int | None) -> int:
    """The largest batch under a key rate: 250, smaller under a low rate (~0.1 s pauses)."""
    if not rate:
        return RATE_MAX_BATCH
    return max(MIN_BATCH, min(RATE_MAX_BATCH, rate // 10))


class RatePacer:
    """The key actions' pacing (``scan_batches``): at most ``rate`` keys a second.

    Batches are still sized by cost (never over ``batch_size(rate)``) and LOADING/BUSY
    still waited out; there is no time budget.
    """

    def __init__(
        self,
        rate: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        cap = batch_size(rate)
        self.sizer = BatchSizer(first=min(FIRST_BATCH, cap), max_count=cap)
        self._bucket = TokenBucket(rate, burst=cap, clock=clock, sleep=sleep)
        self._retrier = Retrier(clock, sleep, RETRY_GIVE_UP)

    @property
    def count(self) -> int:
        """Keys for the next SCAN call."""
        return self.sizer.count

    def record(self, count: int, seconds: float) -> None:
        """Size the next batch by this one's cost."""
        self.sizer.observe(count, seconds)
        self._retrier.succeeded()

    def charge(self, seconds: float) -> None:
        """Nothing to charge: the rate counts keys."""
        self._retrier.succeeded()

    def wait(self, ping: Callable[[], object] | None = None) -> None:
        """Take the next batch's keys from the bucket (sleeping off any debt)."""
        self._bucket.acquire(self.count)

    def retry(self, err: RedisError) -> bool:
        """LOADING/BUSY refused a batch: pause (doubling); False to give up."""
        return redis_busy(err) and self._retrier.wait()[0]
