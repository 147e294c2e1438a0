"""Scheduled jobs (APScheduler) that run only while this replica leads.

Every job is coalesced (missed runs collapse into one), runs one instance at a time
(a round stuck in timeouts is never doubled) and tolerates a late start (misfire
grace). Interval jobs start on the interval's grid, so rounds line up across restarts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.runtime.leadership import AlwaysLeader, Leadership

log = logging.getLogger(__name__)

GRID_OFFSET = timedelta(milliseconds=20)  # run just after the grid point it belongs to


class JobScheduler:
    """A ``Component``: APScheduler's background scheduler with leader-gated jobs."""

    name = "scheduler"

    def __init__(
        self,
        *,
        leadership: Leadership | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``leadership``: asked before each run (default: always the leader)."""
        self._leadership = leadership or AlwaysLeader()
        self._clock = clock
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def every(
        self,
        job_id: str,
        func: Callable[[], Any],
        *,
        seconds: float,
        run_now: bool = False,
    ) -> None:
        """Run ``func`` every ``seconds`` on the grid (and once at start when ``run_now``).

        The run at start is a job of its own: an interval job first run "now" would keep
        that phase (now + k * seconds), off the grid, and two replicas' rounds would not
        line up (a new leader could check a round its predecessor already checked).
        """
        now = self._clock()
        epoch = now.timestamp()
        start = datetime.fromtimestamp(math.ceil(epoch / seconds) * seconds, tz=UTC) + GRID_OFFSET
        gated = self._gated(job_id, func)
        grace = max(1, int(seconds))
        self._scheduler.add_job(
            gated,
            "interval",
            seconds=seconds,
            start_date=start,
            next_run_time=start,
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=grace,
        )
        if run_now:
            self._scheduler.add_job(
                gated, "date", run_date=now, id=f"{job_id}@start", misfire_grace_time=grace
            )

    def _gated(self, job_id: str, func: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            if not self._leadership.is_leader():
                return
            try:
                func()
            except Exception:  # APScheduler would log it too, but without our context
                log.exception("scheduled job %s failed", job_id)

        return run

    def intervals(self) -> dict[str, float]:
        """Each job's id and its interval in seconds (what ``every`` registered)."""
        return {
            job.id: job.trigger.interval.total_seconds()
            for job in self._scheduler.get_jobs()
            if isinstance(job.trigger, IntervalTrigger)
        }

    def start(self) -> None:
        """Start the scheduler thread."""
        self._scheduler.start()

    def stop(self) -> None:
        """Stop scheduling; a running job finishes on its own thread."""
        self._scheduler.shutdown(wait=False)
