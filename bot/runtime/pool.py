"""A bounded work pool: a job takes a slot before anyone is told it will run.

The Slack face acknowledges a request first and works afterwards. If the work ran on
the threads that acknowledge (Bolt's listener pool), twenty slow ``status`` commands
would hold every thread and the twenty-first ack would wait for one: Slack gives up
after 3 s. So listeners only reserve a slot here, ack, and hand the work over; when
every slot is taken the ack itself says "busy" (see docs/decisions/slack.md).

A slot is reserved *before* the ack so the ack can tell the truth, and the job is
queued *after* it so an answer never overtakes its own ack.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

log = logging.getLogger(__name__)

Job = Callable[[], object]  # what it returns is ignored


class Foreground:
    """Requests being acknowledged right now; background jobs wait (bounded) for none.

    A job starts only once no ack is in flight, or after ``max_wait`` at most: in a
    burst of twenty commands the twenty acks go first, then the work, instead of the
    first command's diagnosis taking the GIL from the nineteen acks behind it.
    """

    def __init__(self, *, max_wait: float = 0.1) -> None:
        """``max_wait``: the longest a job waits for acks (so a flood cannot starve it)."""
        self._cond = threading.Condition()
        self._busy = 0
        self._max_wait = max_wait

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around one request's ack (a Bolt middleware does it for every request)."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                if not self._busy:
                    self._cond.notify_all()

    def wait_idle(self) -> None:
        """Return once no ack is in flight, or after ``max_wait``."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy, timeout=self._max_wait)


class Slot:
    """One reserved place in the pool: ``run`` a job in it, or ``release`` it unused."""

    def __init__(self, pool: BoundedPool) -> None:
        """Made by ``BoundedPool.reserve`` only."""
        self._pool = pool
        self._used = False

    def run(self, job: Job, *, what: str, dropped: Job | None = None) -> None:
        """Queue ``job``; ``dropped`` is called instead if the pool stops before it starts.

        ``what`` names the job in the log when it raises (nothing is lost silently).
        """
        if self._used:
            raise RuntimeError("a slot runs one job")
        self._used = True
        self._pool._queue(job, what=what, dropped=dropped)

    def release(self) -> None:
        """Give the place back without running anything (the ack failed, say)."""
        if not self._used:
            self._used = True
            self._pool._free()


class BoundedPool:
    """``workers`` threads and at most ``queue`` jobs waiting; a ``Component`` (``stop``)."""

    def __init__(
        self,
        *,
        workers: int,
        queue: int,
        name: str = "work-pool",
        nice: int | None = None,
        after: Foreground | None = None,
    ) -> None:
        """``workers`` jobs run at once, ``queue`` more may wait; beyond that ``reserve``
        answers None. ``nice``: the workers' threads run at that lower CPU priority;
        ``after``: each job starts once those acks are done (``Foreground``)."""
        if workers < 1 or queue < 0:
            raise ValueError("a pool needs a worker and a non-negative queue")
        self.name = name
        self.capacity = workers + queue
        self._after = after
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix=name,
            initializer=None if nice is None else lambda: lower_priority(nice),
        )
        self._lock = threading.Lock()
        self._taken = 0
        self._stopping = False
        self._dropped: dict[Future[None], Job] = {}

    def reserve(self) -> Slot | None:
        """A slot, or None when the pool is full or stopping (say "busy", run nothing)."""
        with self._lock:
            if self._stopping or self._taken >= self.capacity:
                return None
            self._taken += 1
        return Slot(self)

    @property
    def taken(self) -> int:
        """Slots in use: jobs running or waiting, and reservations not yet run."""
        with self._lock:
            return self._taken

    def _queue(self, job: Job, *, what: str, dropped: Job | None) -> None:
        with self._lock:
            future = None if self._stopping else self._executor.submit(self._run, job, what)
            if future is None:
                self._taken -= 1
            elif dropped is not None:
                self._dropped[future] = dropped
        if future is None:
            if dropped is not None:
                _logged(dropped, f"{what} (not started)")
            return
        # Outside the lock: a job already done runs this callback here, at once.
        future.add_done_callback(self._finished)

    def _run(self, job: Job, what: str) -> None:
        if self._after is not None:
            self._after.wait_idle()
        _logged(job, what)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._dropped.pop(future, None)
        self._free()

    def _free(self) -> None:
        with self._lock:
            self._taken -= 1

    def start(self) -> None:
        """``Component``: threads start with the first job."""

    def stop(self) -> None:
        """``Component``: run nothing new, tell the queued jobs' askers, let running ones end.

        A job already running finishes (its Redis calls have timeouts); one still waiting
        would answer after the restart began, so its ``dropped`` says so instead.
        """
        with self._lock:
            self._stopping = True
            waiting = dict(self._dropped)
        cancelled = [job for future, job in waiting.items() if future.cancel()]
        if cancelled:
            log.warning("shutting down: %d queued Slack request(s) not started", len(cancelled))
        for job in cancelled:
            _logged(job, "a queued request's notice")
        self._executor.shutdown(wait=True, cancel_futures=True)


def lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice`` (Linux: per thread; elsewhere nothing).

    The work and the acks share one interpreter: when both want the CPU, the OS runs the
    ack first, so it gets the GIL back sooner (bench/slack_ack.py measures it).
    """
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + nice))
    except (AttributeError, OSError) as err:  # not Linux, or not allowed: run as we are
        log.debug("could not lower a worker's priority: %s", err)


def _logged(job: Job, what: str) -> None:
    """Run ``job``; an exception is logged with its traceback, never lost in a future."""
    try:
        job()
    except Exception:
        log.exception("%s failed", what)
