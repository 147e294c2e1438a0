"""Full scans of several Redis nodes (a cluster's primaries) driven by one thread.

Each node runs the standalone scan's steps (``fullscan.ScriptedScan``: one script call in
flight on a held connection, paced by its own ``ScanPacer`` against its own core). One
thread sends every node's next call when its pacer allows and takes the replies as they
arrive (a selector over the sockets), so the nodes' Redis processes work in parallel
while the bot spends one interpreter's time on the replies. A thread per node did the
same work with a third more of the bot's CPU (the threads contend for the GIL at every
reply; ``bench/cluster_mux.py`` runs both), and docs/decisions/cluster.md says why
neither reaches the issue's 1.5x on two cores.

Nothing here sleeps while another node could go on: a pacer's pause is a time before
which that node's next call is not sent, and LOADING/BUSY is waited out the same way.
A node whose call is unanswered for ``timeout`` seconds (a hung primary) fails alone,
with the one line a socket timeout gives; so does any other error of one node. Where
scripting is refused, that node goes on from its cursor with the pipeline fallback on a
thread of its own. The pacer's PING is still a blocking round trip on the node's own
connection (one every ``PROBE_INTERVAL``), bounded by the same socket timeout.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.errors import RedisUnavailable
from bot.redisinfo.client import describe_error
from bot.redisinfo.fullscan import (
    Refusal,
    ScriptedScan,
    SessionScan,
    full_sample,
    report_progress,
    unpack_reply,
)
from bot.redisinfo.pacing import ScanPacer
from bot.redisinfo.snapshot import KeySample, KeyStat, ProgressFn


@dataclass(frozen=True)
class ScanNode:
    """One node to scan fully: its client (already connected), the DBSIZE and eviction
    policy family read before the scan, and where its progress goes."""

    url: str  # names the node in a failure's one line (scrubbed there)
    client: redis.Redis
    dbsize: int
    lfu: bool
    progress: ProgressFn | None = None


ScanResult = KeySample | RedisUnavailable


def scan_nodes(
    nodes: Sequence[ScanNode],
    *,
    pattern: str,
    budget: float,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[ScanResult]:
    """Every key matching ``pattern`` on every node, each within ``budget`` of its own core.

    Returns, in the order of ``nodes``, each node's full KeySample, or why it failed (one
    line naming the node): a failure of one leaves the others' scans whole.
    """
    with (
        ThreadPoolExecutor(thread_name_prefix="scan-fallback") as fallbacks,
        selectors.DefaultSelector() as selector,
    ):
        runs = [
            _Run(node, pattern=pattern, budget=budget, timeout=timeout, clock=clock,
                 fallbacks=fallbacks, selector=selector)
            for node in nodes
        ]  # fmt: skip
        try:
            _drive(runs, selector=selector, clock=clock)
        finally:
            for run in runs:
                run.release()
    return [run.result() for run in runs]


def _drive(
    runs: list[_Run], *, selector: selectors.BaseSelector, clock: Callable[[], float]
) -> None:
    """Send, wait, receive until every run has ended, failed or gone to the fallback.

    A run's socket stays registered from its first call to its end (one call in flight:
    it is readable only when that call's reply arrives), so a round costs one poll.
    """
    for run in runs:
        run.step(run.start)
    live = [run for run in runs if run.active]
    while live:
        now = clock()
        for run in live:
            if not run.in_flight and run.due <= now:
                run.step(run.send)
        for key, _ in _ready(selector, live, _wait(live, now)):
            run = key.data
            run.step(run.receive)
        now = clock()
        for run in live:
            if run.in_flight and now - run.sent_at >= run.timeout:
                run.fail(RedisTimeoutError("no reply to a scan batch"))
            if not run.active:
                run.unwatch()
        live = [run for run in live if run.active]


def _ready(
    selector: selectors.BaseSelector, live: list[_Run], wait: float
) -> list[tuple[selectors.SelectorKey, int]]:
    """The runs whose reply has come, waiting at most ``wait`` seconds for one.

    With no call in flight nothing can come: sleep the pacers' pause exactly. The
    selector's epoll counts in whole milliseconds, and pauses are fractions of one (a
    0.25 ms call at half a core pauses 0.25 ms): waited for by epoll, every pause of all
    the nodes at once would take a full millisecond.
    """
    if not any(run.in_flight for run in live):
        time.sleep(wait)
        return []
    return selector.select(wait)


def _wait(live: list[_Run], now: float) -> float:
    """Seconds until something is due: a paced node's next send, or a call's deadline."""
    due = [run.sent_at + run.timeout if run.in_flight else run.due for run in live]
    return max(0.0, min(due) - now)


class _Run:
    """One node's scan in progress: its state between the driver's steps."""

    def __init__(
        self,
        node: ScanNode,
        *,
        pattern: str,
        budget: float,
        timeout: float,
        clock: Callable[[], float],
        fallbacks: ThreadPoolExecutor,
        selector: selectors.BaseSelector,
    ) -> None:
        self.node = node
        self.selector = selector
        self.watched: int | None = None  # the number registered with the selector
        self._watched_sock: object = None  # and the socket it was then
        self.pattern = pattern
        self.timeout = timeout  # for the call in flight, as the socket's own
        self.clock = clock
        self.fallbacks = fallbacks
        self.pacer = ScanPacer(budget, clock=clock)  # its sleep serves only the fallback
        self.conn: Any = None  # a redis-py Connection (untyped), held from ``start``
        self._scan: ScriptedScan | None = None
        self.found: dict[str, KeyStat] = {}
        self.scanned = 0
        self.method = "scan+pipeline"
        self.due = 0.0  # not before this (monotonic) time may the next call go
        self.sent_at = 0.0
        self.done = False
        self.error: RedisUnavailable | None = None
        self.fallback: Future[None] | None = None

    @property
    def active(self) -> bool:
        """Still the driver's: not ended, failed or handed to the fallback."""
        return not self.done and self.error is None and self.fallback is None

    @property
    def scan(self) -> ScriptedScan:
        """The node's scan steps (once ``start`` has held a connection)."""
        if self._scan is None:
            raise RuntimeError("the scan has not started")
        return self._scan

    @property
    def in_flight(self) -> bool:
        """A call was sent and its reply not read yet."""
        return self._scan is not None and self._scan.in_flight

    def watch(self) -> None:
        """Have the selector report this run's socket (again, if redis-py reconnected).

        Compared by object, not by number: redis-py drops the connection on LOADING and
        the next call reconnects, often on the same descriptor number, and epoll forgets
        a closed socket on its own, so a number alone would leave the new one unwatched.
        """
        sock = self.conn._sock  # redis-py keeps it private; send_command connected it
        if sock is not self._watched_sock:
            self.unwatch()
            self.selector.register(sock.fileno(), selectors.EVENT_READ, self)
            self._watched_sock, self.watched = sock, sock.fileno()

    def unwatch_if_dropped(self) -> None:
        """Unwatch a socket redis-py has closed (LOADING drops the connection) before
        another run's reconnect can be handed the same descriptor number."""
        if self.watched is not None and self.conn._sock is not self._watched_sock:
            self.unwatch()

    def unwatch(self) -> None:
        """Stop reporting this run's socket (its scan ended, failed or fell back)."""
        if self.watched is not None:
            self.selector.unregister(self.watched)  # a closed socket's number is fine
            self._watched_sock, self.watched = None, None

    def step(self, action: Callable[[], None]) -> None:
        """Run one step; a Redis error fails this node only (one line naming it)."""
        try:
            action()
        except RedisError as err:
            self.fail(err)

    def start(self) -> None:
        """Hold a connection; the first call goes after the pacer's first PING."""
        self.conn = self.node.client.connection_pool.get_connection()  # it connects
        self._scan = ScriptedScan(self.conn, pattern=self.pattern, lfu=self.node.lfu,
                                  pacer=self.pacer)  # fmt: skip
        self.due = self.clock() + self.pacer.pause(ping=self.scan.ping)

    def send(self, *, load: bool = False) -> None:
        """Send the next batch (the pacer allowed it when it set ``due``)."""
        self.scan.send(load=load)
        self.sent_at = self.clock()
        self.watch()

    def receive(self) -> None:
        """Take the reply: send the next call at once when the pacer allows, then unpack."""
        try:
            reply = self.scan.receive()
        except (BusyLoadingError, ResponseError) as err:
            self.unwatch_if_dropped()
            self._refused(err)
            return
        self.method = "scan+lua"
        self.scanned += self.scan.count
        more = self.scan.take(reply)
        if more:
            pause = self.pacer.pause(ping=self.scan.ping)  # a LOADING PING drops it too
            self.unwatch_if_dropped()
            if pause <= 0:  # Redis runs batch n+1 while batch n is unpacked
                self.send()
            else:
                self.due = self.clock() + pause
        self.found.update((stat.key, stat) for stat in unpack_reply(reply, lfu=self.node.lfu))
        report_progress(self.node.progress, self.scanned, self.node.dbsize)
        self.done = not more

    def _refused(self, err: BusyLoadingError | ResponseError) -> None:
        refusal = self.scan.refusal(err)
        if refusal is Refusal.FALLBACK:
            self.method = "scan+pipeline"
            self.fallback = self.fallbacks.submit(self._pipelines, self.scan.cursor)
            return
        if refusal is Refusal.RELOAD:
            self.send(load=True)
            return
        pause = self.pacer.retry_pause(err) if refusal is Refusal.RETRY else None
        if pause is None:
            raise err
        self.due = self.clock() + pause  # the same batch again, then

    def _pipelines(self, cursor: int) -> None:
        """The rest of the scan from ``cursor`` by SCAN + pipelines (on a fallback thread)."""
        scan = SessionScan(
            self.node.client, pattern=self.pattern, lfu=self.node.lfu, pacer=self.pacer,
            clock=self.clock,
        )  # fmt: skip
        scan.scanned = self.scanned
        for stats in scan.pipeline_batches(cursor=cursor):
            self.found.update((stat.key, stat) for stat in stats)
            report_progress(self.node.progress, scan.scanned, self.node.dbsize)

    def fail(self, err: RedisError) -> None:
        """This node's scan ends with ``err``, said in one line naming the node."""
        self.error = RedisUnavailable(describe_error(err, url=self.node.url, timeout=self.timeout))
        self.unwatch()  # now: redis-py may have closed the socket, its number reused at once

    def release(self) -> None:
        """Give the connection back; one left with a reply pending is closed first."""
        if self.conn is None:
            return
        if self.in_flight or self.error is not None:
            self.conn.disconnect()
        self.node.client.connection_pool.release(self.conn)

    def result(self) -> ScanResult:
        """The node's KeySample, or its failure (the fallback's included)."""
        if self.fallback is not None and self.error is None:
            try:
                self.fallback.result()
            except RedisError as err:
                self.fail(err)
        if self.error is not None:
            return self.error
        report_progress(self.node.progress, self.node.dbsize, self.node.dbsize, done=True)
        return full_sample(self.found, pattern=self.pattern, dbsize=self.node.dbsize,
                           method=self.method)  # fmt: skip
