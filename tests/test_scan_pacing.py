"""The full scan's pacing: Redis's time under a budget, backing off when Redis is slow.

The arithmetic runs on an injected clock (nothing sleeps); the scans run against real
redis-server processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
import redis
from redis.exceptions import BusyLoadingError, RedisError, ResponseError

from bot.config import Settings
from bot.errors import ConfigError
from bot.redisinfo.client import connect
from bot.redisinfo.fullscan import scan_sessions
from bot.redisinfo.pacing import (
    FIRST_BATCH,
    LATENCY_HIGH,
    MAX_BACKOFF,
    MAX_BATCH,
    MAX_CREDIT_SECONDS,
    MIN_BATCH,
    RETRY_FIRST,
    RETRY_GIVE_UP,
    TARGET_CALL_SECONDS,
    BatchSizer,
    ScanPacer,
)
from tests.clirun import run_cli
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer
from tests.test_redis_scan import load


class FakeTime:
    """A clock that only moves when told to, and a sleep that moves it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def pacer(self, budget: float) -> ScanPacer:
        return ScanPacer(budget, clock=self.clock, sleep=self.sleep)


def run_batches(
    time: FakeTime,
    pacer: ScanPacer,
    *,
    batches: int,
    cost: float,
    gap: float = 0.0,
    ping: Callable[[], object] | None = None,
) -> None:
    """``batches`` batches that each keep Redis busy ``cost`` s, ``gap`` s of client work."""
    for _ in range(batches):
        pacer.wait(ping=ping)
        time.now += cost
        pacer.record(pacer.count, cost)
        time.now += gap
    pacer.wait(ping=ping)


# --- the budget ------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [0.5, 0.25, 0.1])
def test_the_budget_bounds_the_busy_share(budget: float) -> None:
    time = FakeTime()
    pacer = time.pacer(budget)
    started = time.now

    run_batches(time, pacer, batches=200, cost=0.0008, gap=0.0001)

    busy = 200 * 0.0008
    idle = time.now - started - busy
    assert busy == pytest.approx(pacer.stats.busy_seconds)
    assert busy / (busy + idle) <= budget + 1e-9
    assert busy / (busy + idle) == pytest.approx(budget, rel=0.01)  # and no slower


def test_half_a_core_leaves_redis_idle_at_least_as_long_as_busy() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)

    for _ in range(50):
        pacer.wait()
        before = time.now
        time.now += 0.0005
        pacer.record(100, 0.0005)
        pacer.wait()
        assert time.now - before >= 2 * 0.0005 - 1e-12  # this batch's cost, then as long idle


def test_client_work_between_batches_counts_as_idle() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)

    run_batches(time, pacer, batches=100, cost=0.0005, gap=0.001)  # the client is the bound

    assert time.slept == []


def test_budget_one_never_sleeps_nor_pings() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0)
    pings: list[int] = []

    run_batches(time, pacer, batches=500, cost=0.001, ping=lambda: pings.append(1))

    assert (time.slept, pings, pacer.stats.slept_seconds) == ([], [], 0.0)


def test_pause_books_what_wait_would_sleep_without_sleeping() -> None:
    # The multiplexed cluster scan asks for the pause and sends no sooner; the standalone
    # scan sleeps it. Both must keep the same books.
    sleeping, asking = FakeTime(), FakeTime()
    slept, asked = sleeping.pacer(0.5), asking.pacer(0.5)
    pauses: list[float] = []

    for _ in range(40):
        slept.wait()
        pause = asked.pause()
        pauses.append(pause)
        asking.now += pause  # the caller waits it out its own way
        for time, pacer in ((sleeping, slept), (asking, asked)):
            time.now += 0.0004
            pacer.record(pacer.count, 0.0004)

    assert asking.slept == []
    assert [p for p in pauses if p > 0] == sleeping.slept and sleeping.slept
    assert asked.stats == slept.stats
    assert asking.now == pytest.approx(sleeping.now)


def test_retry_pause_is_retry_without_the_sleep() -> None:
    sleeping, asking = FakeTime(), FakeTime()
    slept, asked = sleeping.pacer(0.5), asking.pacer(0.5)
    busy = ResponseError("BUSY Redis is busy running a script.")

    pauses: list[float] = []
    while slept.retry(busy):
        pause = asked.retry_pause(busy)
        assert pause is not None
        pauses.append(pause)
        asking.now += pause

    assert asked.retry_pause(busy) is None  # given up at the same point
    assert asking.slept == [] and pauses == sleeping.slept
    assert (asked.backoff, asked.stats) == (slept.backoff, slept.stats)
    assert asked.retry_pause(ResponseError("ERR unknown command 'EVALSHA'")) is None


def test_a_stalled_client_catches_up_on_little_redis_time() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)
    time.now += 60  # a minute without batches earns no burst

    run_batches(time, pacer, batches=10, cost=0.001)

    busy, wall = 10 * 0.001, 10 * 0.001 + sum(time.slept)
    assert busy <= 0.5 * wall + MAX_CREDIT_SECONDS + 1e-9


@pytest.mark.parametrize("budget", [0.0, -0.5, 1.01, float("nan")])
def test_a_budget_out_of_range_is_refused(budget: float) -> None:
    with pytest.raises(ValueError, match=r"scan budget must be in \(0, 1\]"):
        ScanPacer(budget)


# --- Redis's latency -------------------------------------------------------------------


def test_a_slow_ping_backs_off_and_a_fast_one_recovers() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)
    rtt = [0.0001]  # the network's own round trip

    def ping() -> None:
        time.now += rtt[0]

    run_batches(time, pacer, batches=1, cost=0.001, ping=ping)
    assert pacer.backoff == 1
    rtt[0] = 0.0001 + 2 * LATENCY_HIGH  # now PING queues behind other work in Redis
    for _ in range(12):  # a probe every PROBE_INTERVAL: each batch here takes 0.1 s
        run_batches(time, pacer, batches=1, cost=0.05, gap=0.05, ping=ping)
    assert pacer.backoff == MAX_BACKOFF
    assert pacer.stats.slow_pings >= 4

    time.slept.clear()
    run_batches(time, pacer, batches=1, cost=0.001, ping=ping)
    assert time.slept[-1] == pytest.approx(0.001 * MAX_BACKOFF / 0.5, rel=0.1)  # share / 16

    rtt[0] = 0.0001
    for _ in range(10):
        time.now += 0.2  # past the probe interval
        run_batches(time, pacer, batches=1, cost=0.001, ping=ping)
    assert pacer.backoff == 1


def test_a_far_redis_is_not_a_slow_one() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)

    def ping() -> None:  # 3 ms away, every time: the network, not Redis
        time.now += 3 * LATENCY_HIGH

    for _ in range(10):
        run_batches(time, pacer, batches=1, cost=0.05, gap=0.05, ping=ping)

    assert (pacer.backoff, pacer.stats.slow_pings) == (1, 0)


def test_a_ping_in_between_is_neither_slow_nor_fast() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)
    rtt = [0.0001]

    def ping() -> None:
        time.now += rtt[0]

    run_batches(time, pacer, batches=1, cost=0.001, ping=ping)
    pacer.backoff = 4
    rtt[0] = 0.0001 + LATENCY_HIGH * 0.75
    time.now += 0.2
    run_batches(time, pacer, batches=1, cost=0.001, ping=ping)

    assert pacer.backoff == 4


def test_a_busy_ping_counts_as_slow() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)

    def ping() -> None:
        raise ResponseError("BUSY Redis is busy running a script.")

    run_batches(time, pacer, batches=1, cost=0.001, ping=ping)

    assert (pacer.backoff, pacer.stats.slow_pings) == (2, 1)


# --- LOADING and BUSY ------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        BusyLoadingError("Redis is loading the dataset in memory"),
        ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL"),
    ],
)
def test_loading_or_busy_is_waited_out_then_given_up(error: RedisError) -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)
    started = time.now

    tries = 0
    while pacer.retry(error):
        tries += 1

    assert time.slept[:4] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 8 * RETRY_FIRST]
    assert max(time.slept) <= 1.0
    assert RETRY_GIVE_UP <= time.now - started <= RETRY_GIVE_UP + 1.0
    assert pacer.stats.retries == tries
    assert pacer.backoff == MAX_BACKOFF  # resumes gently


def test_a_batch_that_goes_through_restarts_the_retry_clock() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0)
    busy = ResponseError("BUSY Redis is busy running a script.")

    for _ in range(5):
        assert pacer.retry(busy)
    pacer.record(100, 0.0004)
    assert pacer.retry(busy)

    assert time.slept[-1] == RETRY_FIRST
    assert time.slept == [RETRY_FIRST * 2**i for i in range(5)] + [RETRY_FIRST]


def test_other_errors_are_not_retried() -> None:
    time = FakeTime()
    pacer = time.pacer(0.5)

    assert not pacer.retry(ResponseError("ERR unknown command 'EVALSHA'"))
    assert time.slept == []


# --- batch size ------------------------------------------------------------------------


def test_batches_are_sized_to_the_target_call() -> None:
    sizer = BatchSizer()
    assert sizer.count == FIRST_BATCH
    for _ in range(20):
        sizer.observe(sizer.count, sizer.count * 5e-6)  # 5 us a key
    assert sizer.count == pytest.approx(TARGET_CALL_SECONDS / 5e-6, abs=1)


def test_a_costlier_batch_shrinks_the_next_at_once_a_cheaper_grows_it_gently() -> None:
    sizer = BatchSizer()
    for _ in range(20):
        sizer.observe(sizer.count, sizer.count * 2e-6)
    settled = sizer.count

    sizer.observe(settled, settled * 20e-6)  # ten times costlier (a big-key region)
    assert sizer.count * 20e-6 <= TARGET_CALL_SECONDS

    counts = []
    for _ in range(5):
        sizer.observe(sizer.count, sizer.count * 2e-6)
        counts.append(sizer.count)
    assert counts == sorted(counts) and counts[-1] <= settled


def test_batch_size_stays_within_its_bounds() -> None:
    sizer = BatchSizer()
    counts = []
    for _ in range(30):
        sizer.observe(sizer.count, 0.0)  # free keys (nothing matches)
        counts.append(sizer.count)
    assert counts[0] == 2 * FIRST_BATCH  # grows at most 2x a batch
    assert counts[-1] == MAX_BATCH

    sizer.observe(sizer.count, 1.0)  # a batch that stalled for a second
    assert sizer.count == MIN_BATCH


# --- real scans ------------------------------------------------------------------------


@dataclass
class RecordingPacer:
    """A ScanPacer that also keeps every batch's (COUNT sent, Redis seconds)."""

    inner: ScanPacer
    batches: list[tuple[int, float]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.inner.count

    def record(self, count: int, seconds: float) -> None:
        self.batches.append((count, seconds))
        self.inner.record(count, seconds)

    def charge(self, seconds: float) -> None:
        self.inner.charge(seconds)

    def wait(self, ping: Callable[[], object] | None = None) -> None:
        self.inner.wait(ping)

    def retry(self, err: RedisError) -> bool:
        return self.inner.retry(err)


def full_scan(
    url: str, budget: float, *, dbsize: int, sleep: Callable[[float], None] | None = None
) -> tuple[dict[str, tuple[int, int]], RecordingPacer, str]:
    """(key -> (ttl, bytes), the pacer, method) of one full scan of ``session:*``."""
    time = FakeTime()
    pacer = RecordingPacer(ScanPacer(budget, sleep=sleep or time.sleep))
    client = connect(url)
    try:
        sample = scan_sessions(client, pattern="session:*", dbsize=dbsize, lfu=False, pacer=pacer)
    finally:
        client.close()
    return {s.key: (s.ttl, s.bytes) for s in sample.keys}, pacer, sample.method


def test_budget_one_and_a_half_find_the_same_keys(redis_server: RedisServer) -> None:
    load(redis_server.url, sessions=6000, others=2000, without_ttl=500)

    fast, fast_pacer, fast_method = full_scan(redis_server.url, 1.0, dbsize=8000)
    paced, paced_pacer, _ = full_scan(redis_server.url, 0.5, dbsize=8000)

    assert fast_method == "scan+lua"
    assert len(fast) == 6000
    assert fast.keys() == paced.keys()
    assert all(fast[k][1] == paced[k][1] and abs(fast[k][0] - paced[k][0]) <= 2 for k in fast)
    assert fast_pacer.inner.stats.slept_seconds == 0.0
    assert paced_pacer.inner.stats.busy_seconds > 0  # the script's own TIME was read


def test_the_batch_size_follows_the_cost_per_key(redis_factory: RedisFactory) -> None:
    dense, sparse = redis_factory(), redis_factory()
    load(dense.url, sessions=20_000)
    load(sparse.url, sessions=1000, others=39_000)  # 2.5%: SCAN mostly skips keys

    _, dense_pacer, _ = full_scan(dense.url, 1.0, dbsize=20_000)
    _, sparse_pacer, _ = full_scan(sparse.url, 1.0, dbsize=40_000)

    for pacer in (dense_pacer, sparse_pacer):
        batches = pacer.batches
        assert all(seconds >= 0 for _, seconds in batches)
        assert all(MIN_BATCH <= count <= MAX_BATCH for count, _ in batches)
        # the next COUNT at the cost per key just measured stays within the target
        for (count, seconds), (following, _) in pairwise(batches):
            planned = following * seconds / count
            assert following == MIN_BATCH or planned <= TARGET_CALL_SECONDS * (1 + 1e-9)
    dense_counts = sorted(count for count, _ in dense_pacer.batches)
    sparse_counts = sorted(count for count, _ in sparse_pacer.batches)
    assert sparse_counts[len(sparse_counts) // 2] > 2 * dense_counts[len(dense_counts) // 2]


def test_a_busy_script_is_waited_out(redis_factory: RedisFactory) -> None:
    server = redis_factory("--lua-time-limit", "10")
    load(server.url, sessions=3000)
    client = connect(server.url)  # connected before Redis is busy
    admin = redis.Redis.from_url(server.url)
    hog = threading.Thread(target=run_forever_script, args=(server.url,))
    hog.start()
    wait_until_busy(admin)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the long script ends while we "sleep"
        slept.append(seconds)
        if len(slept) == 1:
            admin.script_kill()

    try:
        sample = scan_sessions(
            client, pattern="session:*", dbsize=3000, lfu=False, budget=0.5, sleep=sleep
        )
    finally:
        hog.join()
        client.close()
        admin.close()

    assert (sample.method, sample.matched) == ("scan+lua", 3000)
    assert slept[0] == RETRY_FIRST


def run_forever_script(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.eval("while true do end", 0)
    except ResponseError:  # killed by SCRIPT KILL
        pass
    finally:
        client.close()


def wait_until_busy(admin: redis.Redis) -> None:
    """Block (no sleep) until Redis answers BUSY: the hog script is running."""
    for _ in range(1000):
        try:
            admin.ping()
        except ResponseError as err:
            if str(err).startswith("BUSY"):
                return
            raise
    pytest.fail("the long script never made Redis busy")


# --- the setting -----------------------------------------------------------------------


def test_the_budget_defaults_to_half_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_MEM_SCAN_BUDGET", raising=False)
    assert Settings.load().scan_budget == 0.5
    monkeypatch.setenv("REDIS_MEM_SCAN_BUDGET", "1")
    assert Settings.load().scan_budget == 1.0


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "greater than 0"),
        ("-0.5", "greater than 0"),
        ("1.5", "less than or equal to 1"),
        ("nan", "less than or equal to 1"),
        ("half", "a valid number"),
        ("", "a valid number"),
    ],
)
def test_a_bad_budget_is_one_line(value: str, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MEM_SCAN_BUDGET", value)
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    message = str(caught.value)
    assert message.startswith("invalid configuration: REDIS_MEM_SCAN_BUDGET: ")
    assert why in message and "\n" not in message


def test_the_cli_refuses_a_bad_budget_in_one_line(redis_server: RedisServer) -> None:
    result = run_cli(
        "diagnose", "--redis-url", redis_server.url, "--full",
        env={"REDIS_MEM_SCAN_BUDGET": "0"},
    )  # fmt: skip

    assert result.code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_MEM_SCAN_BUDGET" in lines[0], result.stderr
    assert result.stdout == ""
