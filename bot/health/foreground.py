"""Check rounds in the foreground (``redis-mem watch``, the demo): round, then deliver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from bot.clock import utc_now
from bot.health.dispatch import Dispatcher
from bot.health.service import HealthService, RoundResult

GRID_LAG_SECONDS = 0.02  # a round starts just after the grid point it belongs to


class ForegroundChecks:
    """Check rounds in this process whose events a Dispatcher hands to a notifier at once."""

    def __init__(
        self,
        *,
        service: HealthService,
        dispatcher: Dispatcher,
        on_close: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``on_close``: releases what the caller built for it (its private database)."""
        self.service = service
        self.dispatcher = dispatcher
        self._on_close = on_close
        self._clock = clock

    def run_round(self, now: datetime | None = None) -> RoundResult:
        """One round at ``now`` (default: the current grid time), then deliver its events."""
        result = self.service.run_round(now)
        self.dispatcher.run_once()
        return result

    def paced(self, sleep: Callable[[float], None] | None = None) -> Iterator[RoundResult]:
        """Rounds on the interval grid, the first one now, until the caller stops."""
        pause = sleep or time.sleep
        while True:
            at = self.service.round_time()
            yield self.run_round(at)
            next_at = at + timedelta(seconds=self.service.interval)
            delay = (next_at - self._clock()).total_seconds() + GRID_LAG_SECONDS
            if delay > 0:  # a round longer than the interval skips grid points (coalesced)
                pause(delay)

    def close(self) -> None:
        """Stop the workers, drop the Redis connections and the private database."""
        self.service.close()
        self._on_close()
