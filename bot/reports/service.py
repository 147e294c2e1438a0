"""Build a channel health report: stored history read once, live views taken concurrently.

Reads (docs/decisions/reports.md): the window's series, alerts and fixes in three
queries for every target of the report, then one diagnosis per target, concurrently
and bounded, each within ``live_timeout`` (a hung store costs its own timeout and its
report says why, never the others'). The figures are pure (``bot.reports.figures``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor, TimeoutError, wait
from datetime import datetime, timedelta

from bot.clock import utc_now
from bot.config import Target
from bot.errors import TargetNotFound
from bot.limits import echo
from bot.reports.figures import target_report, worst_first
from bot.reports.model import DEFAULT_WINDOW, LiveView, Report, Series
from bot.reports.ports import LiveSource, ReportSource
from bot.shards import parent

log = logging.getLogger(__name__)

MAX_PARALLEL = 8  # diagnoses at once: each samples up to REDIS_MEM_SAMPLE_SIZE keys
LIVE_GRACE_SECONDS = 1.0  # the report waits this much beyond the per-target timeout


class ReportService:
    """Reports over every target, one channel's targets, or one target."""

    def __init__(
        self,
        *,
        targets: Mapping[str, Target],
        source: ReportSource,
        live: LiveSource | None,
        timezone: str = "UTC",
        default_channel: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        live_timeout: float = 5.0,
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        """``live``: None builds reports from stored history alone (no sessions, no scenarios);
        ``timezone``: an IANA name, checked by the caller (``bot.config``)."""
        self.targets = dict(targets)
        self.timezone = timezone
        self._source = source
        self._live = live
        self._default_channel = default_channel
        self._clock = clock
        self._live_timeout = live_timeout
        workers = max(1, min(max_parallel, len(self.targets)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redis-mem-report")

    def channels(self) -> dict[str, tuple[str, ...]]:
        """Each channel and its targets (a target's ``channel``, else REDIS_MEM_CHANNEL);
        targets with neither have no scheduled report."""
        groups: dict[str, list[str]] = {}
        for target in self.targets.values():
            channel = target.channel or self._default_channel
            if channel is not None:
                groups.setdefault(channel, []).append(target.name)
        return {channel: tuple(names) for channel, names in groups.items()}

    def build(
        self,
        *,
        window: timedelta = DEFAULT_WINDOW,
        target: str | None = None,
        channel: str | None = None,
    ) -> Report:
        """The report over the last ``window``: one target, a channel's targets, or all.

        Raises TargetNotFound (before reading anything) and AuditUnavailable.
        """
        names = self._names(target=target, channel=channel)
        until = self._clock()
        since = until - window
        stored = self._source.series(targets=names, since=since, until=until)
        alerts = self._source.alerts(since=since, until=until)
        fixes = self._source.fixes(since=since, until=until)
        head = self._source.audit_head()
        live = self._live_views(names)
        reports = [
            target_report(
                series=stored.get(name) or Series(target=name, points=()),
                alerts=[a for a in alerts if parent(a.target) == name],  # its shards' too
                fixes=[f for f in fixes if f.target == name],
                live=live.get(name),
                since=since,
                until=until,
            )
            for name in names
        ]
        return Report(
            generated_at=until,
            since=since,
            until=until,
            timezone=self.timezone,
            targets=worst_first(reports),
            audit_head=head,
            channel=channel,
            labels={n: self.targets[n].labels for n in names if self.targets[n].labels},
        )

    def _names(self, *, target: str | None, channel: str | None) -> tuple[str, ...]:
        if target is not None:
            if target not in self.targets:
                known = ", ".join(sorted(self.targets))
                raise TargetNotFound(f"unknown target '{echo(target)}' (known: {known})")
            return (target,)
        if channel is not None:
            return self.channels().get(channel, ())
        return tuple(self.targets)

    def _live_views(self, names: Collection[str]) -> dict[str, LiveView]:
        """A live view per target, concurrently; one past its timeout says so."""
        if self._live is None or not names:
            return {}
        live = self._live
        futures = {name: self._pool.submit(live, name) for name in names}
        done, _ = wait(futures.values(), timeout=self._live_timeout + LIVE_GRACE_SECONDS)
        views: dict[str, LiveView] = {}
        now = self._clock()
        for name, future in futures.items():
            try:
                views[name] = future.result(timeout=0) if future in done else _late(name, now)
            except TimeoutError:
                views[name] = _late(name, now)
            except Exception:  # the live source never raises; a bug must not lose the report
                log.exception("live view of %s failed", name)
                views[name] = LiveView.failed(name, now, "internal error")
        return views

    def close(self) -> None:
        """Stop the diagnosis workers (a stuck one ends with its socket timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _late(name: str, now: datetime) -> LiveView:
    return LiveView.failed(name, now, "no diagnosis: the store did not answer in time")
