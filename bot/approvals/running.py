"""The executions running in this process: their heartbeat, and the flag that stops them.

One ``Running`` per service. ``start`` registers a claimed request and returns its
``StopSignal`` (the action's ``should_stop``, asked before every batch). It says stop when:

- a Cancel click reached this process (``signal``): the very next batch does not start;
- the row says so, read at most every ``poll`` seconds: a cancel clicked on another
  replica (``cancel_requested_by``), or the row is no longer ours (another process ended
  it as interrupted, believing this one gone: at most one more batch runs).

A single heartbeat thread refreshes ``heartbeat_at`` of every registered request every
``HEARTBEAT``; it starts with the first execution and ends with the last. A refresh that
finds the row no longer ours stops that execution too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from bot.approvals.liveness import ExecutorId, Liveness
from bot.approvals.model import RequestState
from bot.approvals.ports import ApprovalStorePort

log = logging.getLogger(__name__)


class StopSignal:
    """``StopFlag`` of one execution; remembers who cancelled it (None: not cancelled)."""

    def __init__(
        self,
        *,
        request_id: str,
        store: ApprovalStorePort,
        me: ExecutorId,
        poll: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.request_id = request_id
        self.cancelled_by: str | None = None
        self.lost = False  # the row was taken from us (ended by another process)
        self._store = store
        self._me = me
        self._poll = poll
        self._monotonic = monotonic
        self._event = threading.Event()
        self._polled: float | None = None

    def __call__(self) -> bool:
        """True once the execution must stop before its next batch."""
        if self._event.is_set():
            return True
        now = self._monotonic()
        if self._polled is None or now - self._polled >= self._poll:
            self._polled = now
            self._check_row()
        return self._event.is_set()

    def cancel(self, by: str) -> None:
        """A cancel by ``by``: stop before the next batch."""
        if self.cancelled_by is None:
            self.cancelled_by = by
        self._event.set()

    def take_away(self) -> None:
        """The row is no longer ours: stop (its end is stored by whoever took it)."""
        self.lost = True
        self._event.set()

    def _check_row(self) -> None:
        try:
            row = self._store.get(self.request_id)
        except Exception as err:  # a database hiccup must not stop a fix: ask again later
            log.warning("could not read the cancel flag of request %s: %s", self.request_id, err)
            return
        if row is None:
            return
        if row.state is not RequestState.EXECUTING or row.executor_boot != self._me.boot:
            self.take_away()
        elif row.cancel_requested_by:
            self.cancel(row.cancel_requested_by)


class Running:
    """The registry of this process's executions and their one heartbeat thread."""

    def __init__(
        self,
        *,
        store: ApprovalStorePort,
        me: ExecutorId,
        clock: Callable[[], datetime],
        liveness: Liveness | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``liveness``: the heartbeat period and how often a signal reads its row."""
        live = liveness or Liveness()
        self.me = me
        self._store = store
        self._clock = clock
        self._period = live.heartbeat
        self._poll = live.cancel_poll
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._signals: dict[str, StopSignal] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def start(self, request_id: str) -> StopSignal:
        """Register a claimed request (its heartbeat runs until ``finish``)."""
        signal = StopSignal(
            request_id=request_id,
            store=self._store,
            me=self.me,
            poll=self._poll,
            monotonic=self._monotonic,
        )
        with self._lock:
            self._signals[request_id] = signal
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat_loop, name="redis-mem-heartbeat", daemon=True
                )
                self._thread.start()
        return signal

    def finish(self, request_id: str) -> None:
        """The execution ended (whatever way): its heartbeat stops."""
        with self._lock:
            self._signals.pop(request_id, None)
            if not self._signals:
                self._wake.set()

    def signal(self, request_id: str, *, by: str) -> bool:
        """Stop the request's execution if it runs here; True if it does."""
        with self._lock:
            signal = self._signals.get(request_id)
        if signal is None:
            return False
        signal.cancel(by)
        return True

    def beat(self) -> None:
        """Refresh every registered request's heartbeat once (the thread calls this)."""
        with self._lock:
            signals = list(self._signals.values())
        now = self._clock()
        for signal in signals:
            try:
                ours = self._store.beat(signal.request_id, boot=self.me.boot, at=now)
            except Exception as err:  # logged; the next beat tries again
                log.warning("heartbeat of request %s failed: %s", signal.request_id, err)
                continue
            if not ours and self._running(signal):  # (a finished one is simply no longer ours)
                log.error(
                    "request %s was ended by another process while running here: stopping it",
                    signal.request_id,
                )
                signal.take_away()

    def _running(self, signal: StopSignal) -> bool:
        with self._lock:
            return self._signals.get(signal.request_id) is signal

    def _beat_loop(self) -> None:
        while True:
            self._wake.wait(self._period)
            with self._lock:
                self._wake.clear()
                if not self._signals:
                    self._thread = None
                    return
            self.beat()
