"""One call in flight per key: callers who ask while it runs share its result.

Twenty people typing ``/redis-mem status`` in an incident channel want the same
figures; twenty concurrent sampled diagnoses of one store would cost twenty times
the CPU (and Redis time) for one answer, and hold the acks of everyone else behind
the GIL (docs/decisions/slack.md). Nothing is cached: a caller who asks after the
call ended starts a fresh one, so an answer is never older than the caller's request
by more than one diagnosis.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Call(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """``do(key, fn)``: run ``fn`` unless a call for ``key`` is running; then wait for it."""

    def __init__(self) -> None:
        """No call in flight."""
        self._lock = threading.Lock()
        self._calls: dict[K, _Call[V]] = {}
        self.shared = 0  # calls answered by another caller's run (for tests and metrics)

    def do(self, key: K, fn: Callable[[], V]) -> V:
        """``fn()``'s value, or that of the call for ``key`` already running.

        A follower gets the leader's exception as a copy of its own (the same message,
        a traceback of its own), never the leader's object shared across threads.
        """
        with self._lock:
            running = self._calls.get(key)
            if running is not None:
                self.shared += 1
            else:
                call = self._calls[key] = _Call()
        if running is not None:
            return self._follow(running)
        try:
            call.value = fn()
            return call.value
        except BaseException as err:
            call.error = err
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    @staticmethod
    def _follow(call: _Call[V]) -> V:
        call.done.wait()
        if call.error is not None:
            raise copy.copy(call.error) from None
        return call.value  # type: ignore[return-value]  # set whenever error is not
