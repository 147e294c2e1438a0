"""The report's figures, computed from a target's points, alerts, fixes and live view.

Pure functions over ``bot.reports.model``: no clock, no I/O. Each takes the window
(``since``..``until``) it speaks for, so a report is a function of what is stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot.diagnosis.model import Severity
from bot.health.rollup import counter_increase
from bot.reports.model import (
    FORECAST_HORIZON,
    FORECAST_RATIO,
    AlertFigures,
    AlertSpan,
    FixRecord,
    Forecast,
    KeyFigures,
    LiveView,
    MemoryFigures,
    Outlook,
    Point,
    Series,
    TargetReport,
)
from bot.units import format_bytes

HOUR = 3600.0
# Memory now at or above these shares makes the target warning / critical in the report
# (the memory rules' defaults: 80% warning, 90% critical).
WARNING_RATIO = 0.80


def target_report(
    *,
    series: Series,
    alerts: Sequence[AlertSpan],
    fixes: Sequence[FixRecord],
    live: LiveView | None,
    since: datetime,
    until: datetime,
) -> TargetReport:
    """One target's figures over [since, until]."""
    points = series.points
    memory = memory_figures(points)
    figures = alert_figures(alerts, since=since, until=until)
    return TargetReport(
        target=series.target,
        samples=sum(p.samples for p in points),
        resolution=series.resolution,
        memory=memory,
        forecast=forecast(points, memory),
        evicted_keys=evictions(points),
        keys=key_figures(points),
        alerts=figures,
        fixes=tuple(sorted(fixes, key=lambda f: f.at)),
        live=live,
        severity=severity_of(memory, figures, live),
        series=series,
    )


# Memory --------------------------------------------------------------------------------------


def memory_figures(points: Sequence[Point]) -> MemoryFigures:
    """Now (the newest reading), peak and minimum over the window, and the trend.

    One pass over the points: a 7-day report of a hundred targets reads ~200k of them.
    """
    read = [p for p in points if p.used is not None]
    if not read:
        return MemoryFigures(None, None, None, None, None, None, None, None)
    last = read[-1]
    highs = [p.used if p.used_max is None else p.used_max for p in read]
    lows = [p.used if p.used_min is None else p.used_min for p in read]
    ratios_max = [p.ratio_max for p in read if p.ratio_max is not None]
    ratios_min = [p.ratio_min for p in read if p.ratio_min is not None]
    origin = read[0].at
    hours = [(p.at - origin).total_seconds() / HOUR for p in read]
    return MemoryFigures(
        now_bytes=last.used,
        peak_bytes=max(highs),  # type: ignore[type-var]  # every p.used is set here
        min_bytes=min(lows),  # type: ignore[type-var]
        maxmemory=last.maxmemory or None,
        now_ratio=last.ratio,
        peak_ratio=max(ratios_max) if ratios_max else None,
        min_ratio=min(ratios_min) if ratios_min else None,
        trend_bytes_per_hour=slope(hours, [float(p.used) for p in read]),  # type: ignore[arg-type]
    )


def trend(points: Sequence[tuple[datetime, float]]) -> float | None:
    """Least-squares slope of ``points`` in units per hour; None for fewer than two times."""
    if not points:
        return None
    origin = points[0][0]
    return slope([(at - origin).total_seconds() / HOUR for at, _ in points], [y for _, y in points])


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs; None for fewer than two distinct xs."""
    count = len(xs)
    if count < 2:
        return None
    mean_x = sum(xs) / count
    mean_y = sum(ys) / count
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def forecast(points: Sequence[Point], memory: MemoryFigures) -> Forecast:
    """When memory reaches 90% of maxmemory at the window's trend, from the newest reading."""
    slope, used, limit = memory.trend_bytes_per_hour, memory.now_bytes, memory.maxmemory
    if not limit or used is None or slope is None:
        return Forecast(Outlook.UNKNOWN)
    if used >= FORECAST_RATIO * limit:
        return Forecast(Outlook.ALREADY, hours_left=0.0)
    if slope <= 0:
        return Forecast(Outlook.NOT_RISING)
    hours = (FORECAST_RATIO * limit - used) / slope
    if hours > FORECAST_HORIZON.total_seconds() / HOUR:
        return Forecast(Outlook.BEYOND)
    newest = max(p.at for p in points if p.used is not None)
    return Forecast(Outlook.REACHES, ratio_90_at=newest + timedelta(hours=hours), hours_left=hours)


# Counters ------------------------------------------------------------------------------------


def evictions(points: Sequence[Point]) -> int:
    """Keys evicted over the window, restarts counted (Prometheus's ``increase``).

    Inside a point: its ``evicted_increase``. Between two points: the rise of the counter
    from one's last reading to the next one's first; a counter that went down restarted,
    so its new value is what was evicted since the restart.
    """
    total = 0
    previous: int | None = None
    for point in points:
        total += point.evicted_increase
        if point.evicted_first is not None:
            if previous is not None:
                total += counter_increase(previous, point.evicted_first)
            previous = point.evicted_last if point.evicted_last is not None else previous
    return total


def key_figures(points: Sequence[Point]) -> KeyFigures:
    """DBSIZE now and its change since the window's first reading."""
    sizes = [p.dbsize for p in points if p.dbsize is not None]
    if not sizes:
        return KeyFigures(now=None, change=None)
    return KeyFigures(now=sizes[-1], change=sizes[-1] - sizes[0])


# Alerts and fixes ----------------------------------------------------------------------------


def alert_figures(alerts: Iterable[AlertSpan], *, since: datetime, until: datetime) -> AlertFigures:
    """Fired per rule (those that fired inside the window), the time inside the window during
    which at least one alert was firing (overlaps counted once), and those still open."""
    fired: dict[str, int] = {}
    spans: list[tuple[datetime, datetime]] = []
    still_open = []
    for alert in alerts:
        if since <= alert.fired_at <= until:
            fired[alert.rule] = fired.get(alert.rule, 0) + 1
        end = alert.resolved_at if alert.resolved_at is not None else until
        start, stop = max(alert.fired_at, since), min(end, until)
        if stop > start:
            spans.append((start, stop))
        if alert.resolved_at is None or alert.resolved_at > until:
            still_open.append(alert)
    return AlertFigures(
        fired=dict(sorted(fired.items())),
        firing_seconds=_union_seconds(spans),
        open=tuple(still_open),
    )


def _union_seconds(spans: list[tuple[datetime, datetime]]) -> float:
    """The length of the union of ``spans``."""
    total = 0.0
    reach: datetime | None = None
    for start, stop in sorted(spans):
        if reach is not None and start < reach:
            start = reach
        if stop > start:
            total += (stop - start).total_seconds()
        reach = stop if reach is None else max(reach, stop)
    return total


def severity_of(memory: MemoryFigures, alerts: AlertFigures, live: LiveView | None) -> Severity:
    """The worst of the live diagnosis, the open alerts and memory now."""
    levels = [live.severity if live is not None else Severity.OK]
    levels += [alert.severity for alert in alerts.open]
    ratio = memory.now_ratio
    if ratio is not None:
        if ratio >= FORECAST_RATIO:
            levels.append(Severity.CRITICAL)
        elif ratio >= WARNING_RATIO:
            levels.append(Severity.WARNING)
    return max(levels, key=lambda s: s.rank)


def worst_first(reports: Iterable[TargetReport]) -> tuple[TargetReport, ...]:
    """Most severe first; then the fullest store; then the soonest to reach 90%; then by name."""

    def key(report: TargetReport) -> tuple[int, float, float, str]:
        ratio = report.memory.now_ratio
        hours = report.forecast.hours_left
        return (
            -report.severity.rank,
            -(ratio if ratio is not None else -1.0),
            hours if hours is not None else math.inf,
            report.target,
        )

    return tuple(sorted(reports, key=key))


# The capacity plan ---------------------------------------------------------------------------


def capacity_line(report: TargetReport) -> str | None:
    """The runbook formula fed with the measured sessions, against maxmemory now.

    "maxmemory 512mb is 2.4x what the measured sessions need (212 MB: 18,000 sessions x
    9.8 KB x 1.2)". None when nothing was measured (no sessions sampled, no diagnosis).
    """
    live = report.live
    plan = live.capacity if live is not None else None
    if plan is None or plan.required_bytes <= 0:
        return None
    inputs = f"{plan.sessions:,} sessions x {format_bytes(plan.session_size)} x {plan.overhead:g}"
    current = plan.current_maxmemory
    if not current:
        return (
            f"no maxmemory set: the measured sessions need {format_bytes(plan.required_bytes)} "
            f"({inputs}); the runbook suggests maxmemory {plan.maxmemory_directive}"
        )
    ratio = current / plan.required_bytes
    verdict = (
        ""
        if ratio >= 2
        else f"; below the runbook's 2x margin: raise it to {plan.maxmemory_directive}"
    )
    return (
        f"maxmemory {_directive(current)} is {ratio:.1f}x what the measured sessions need "
        f"({format_bytes(plan.required_bytes)}: {inputs}){verdict}"
    )


def _directive(size: int) -> str:
    """A maxmemory as redis.conf writes it when it is whole MB (``512mb``), else bytes."""
    mib = 1024**2
    return f"{size // mib}mb" if size % mib == 0 else format_bytes(size)
