"""A background loop that runs a function when woken, or every ``poll`` seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bot.runtime.leadership import AlwaysLeader, Leadership

log = logging.getLogger(__name__)


class WakeableWorker:
    """A ``Component``: one thread that calls ``func`` on ``wake()`` and every ``poll`` s.

    Used for the alert outbox: a check round or a click wakes it at once; the poll
    picks up what another replica queued and retries failed deliveries.
    """

    def __init__(
        self,
        name: str,
        func: Callable[[], Any],
        *,
        poll: float = 5.0,
        leadership: Leadership | None = None,
    ) -> None:
        """``leadership``: the worker runs ``func`` only while this replica leads."""
        self.name = name
        self._func = func
        self._poll = poll
        self._leadership = leadership or AlwaysLeader()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Run ``func`` soon (coalesced: many wakes before it runs make one run)."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._loop, name=f"redis-mem-{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Finish the run in progress, then stop (waits at most a few seconds)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stopping.is_set():
                break
            if not self._leadership.is_leader():
                continue
            try:
                self._func()
            except Exception:
                log.exception("%s failed", self.name)
