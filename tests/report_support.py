"""Report objects built directly from bot/reports/model.py, for the faces' tests.

``make_report(100)`` is a channel of 100 targets, worst first (memory from 95% down),
each with ``points`` samples rising towards its ratio; ``make_target`` takes overrides.
The figures are consistent with the points (now/peak/min are the series'), but they are
not computed by bot/reports/figures.py: a face's test must not depend on the arithmetic.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.diagnosis.model import Severity
from bot.reports.model import (
    AlertFigures,
    AlertSpan,
    AuditHead,
    FixRecord,
    Forecast,
    KeyFigures,
    LiveView,
    MemoryFigures,
    Outlook,
    Point,
    Report,
    Resolution,
    ScenarioLine,
    Series,
    TargetReport,
)

MB = 1024**2
MAXMEMORY = 512 * MB
UNTIL = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEAD = AuditHead(seq=1234, hash="abcd" + "0123456789abcdef" * 3 + "ef012345678a")


def severity_for(ratio: float) -> Severity:
    """As the memory rule sees it: 90% critical, 80% warning."""
    if ratio >= 0.9:
        return Severity.CRITICAL
    return Severity.WARNING if ratio >= 0.8 else Severity.OK


def make_series(
    name: str,
    *,
    ratio: float,
    points: int,
    until: datetime = UNTIL,
    window: timedelta = timedelta(hours=24),
    maxmemory: int = MAXMEMORY,
    start_ratio: float | None = None,
) -> Series:
    """``points`` samples spread over the window, memory rising linearly to ``ratio``."""
    first = ratio * 0.8 if start_ratio is None else start_ratio
    step = window / max(points, 1)
    made = []
    for index in range(points):
        share = first + (ratio - first) * (index / max(points - 1, 1))
        used = int(share * maxmemory)
        made.append(
            Point(
                at=until - window + step * (index + 1),
                used=used,
                used_min=used,
                used_max=used,
                maxmemory=maxmemory,
                ratio=share,
                ratio_min=share,
                ratio_max=share,
                evicted_first=0,
                evicted_last=0,
                dbsize=10_000 + index * 10,
            )
        )
    return Series(target=name, points=tuple(made))


def forecast_for(memory: MemoryFigures, *, until: datetime) -> Forecast:
    """What the trend says of 90%, as the figures would (the builder stays consistent)."""
    trend, now = memory.trend_bytes_per_hour, memory.now_bytes
    if trend is None or now is None or not memory.maxmemory:
        return Forecast(outlook=Outlook.UNKNOWN)
    if now >= 0.9 * memory.maxmemory:
        return Forecast(outlook=Outlook.ALREADY)
    if trend <= 0:
        return Forecast(outlook=Outlook.NOT_RISING)
    hours = (0.9 * memory.maxmemory - now) / trend
    if hours > 30 * 24:
        return Forecast(outlook=Outlook.BEYOND)
    return Forecast(Outlook.REACHES, ratio_90_at=until + timedelta(hours=hours), hours_left=hours)


def make_target(
    name: str,
    *,
    ratio: float = 0.5,
    points: int = 12,
    until: datetime = UNTIL,
    window: timedelta = timedelta(hours=24),
    **changes: Any,
) -> TargetReport:
    """A target whose figures match its series; ``changes`` override TargetReport fields."""
    series = make_series(name, ratio=ratio, points=points, until=until, window=window)
    used = [p.used for p in series.points if p.used is not None]
    ratios = [p.ratio for p in series.points if p.ratio is not None]
    memory = MemoryFigures(
        now_bytes=used[-1] if used else None,
        peak_bytes=max(used) if used else None,
        min_bytes=min(used) if used else None,
        maxmemory=MAXMEMORY if used else None,
        now_ratio=ratios[-1] if ratios else None,
        peak_ratio=max(ratios) if ratios else None,
        min_ratio=min(ratios) if ratios else None,
        trend_bytes_per_hour=(used[-1] - used[0]) / window.total_seconds() * 3600
        if len(used) > 1
        else None,
    )
    dbsize = [p.dbsize for p in series.points if p.dbsize is not None]
    report = TargetReport(
        target=name,
        samples=points,
        resolution=Resolution.RAW,
        memory=memory,
        forecast=forecast_for(memory, until=until),
        evicted_keys=0,
        keys=KeyFigures(
            now=dbsize[-1] if dbsize else None,
            change=dbsize[-1] - dbsize[0] if dbsize else None,
        ),
        alerts=AlertFigures(),
        fixes=(),
        live=None,
        severity=severity_for(ratio) if points else Severity.OK,
        series=series,
    )
    return replace(report, **changes)


def make_report(
    n_targets: int = 3,
    *,
    points: int = 12,
    window: timedelta = timedelta(hours=24),
    until: datetime = UNTIL,
    timezone: str = "UTC",
    audit_head: AuditHead | None = HEAD,
    prefix: str = "store",
    targets: tuple[TargetReport, ...] | None = None,
) -> Report:
    """A channel's report: ``n_targets`` targets worst first (95% down to 10%)."""
    if targets is None:
        span = max(n_targets - 1, 1)
        targets = tuple(
            make_target(
                f"{prefix}-{index:03d}",
                ratio=0.95 - 0.85 * index / span,
                points=points,
                until=until,
                window=window,
            )
            for index in range(n_targets)
        )
    return Report(
        generated_at=until,
        since=until - window,
        until=until,
        timezone=timezone,
        targets=targets,
        audit_head=audit_head,
    )


def make_fix(
    target: str, *, at: datetime = UNTIL - timedelta(hours=2), **changes: Any
) -> FixRecord:
    """An executed set-ttl fix requested by U0ALICE, approved by U0BOB."""
    fix = FixRecord(
        at=at,
        target=target,
        action="set-ttl",
        outcome="ok",
        summary="set a TTL on 1,200 session keys without one",
        approver="U0BOB",
        request_id="r-1",
        requester="U0ALICE",
    )
    return replace(fix, **changes)


def make_alert(
    target: str, *, rule: str = "memory-critical", open_: bool = False, **changes: Any
) -> AlertSpan:
    """A critical alert that fired 3 hours before UNTIL (resolved after an hour unless open)."""
    fired = UNTIL - timedelta(hours=3)
    span = AlertSpan(
        id=f"a-{target}-{rule}",
        target=target,
        rule=rule,
        severity=Severity.CRITICAL,
        fired_at=fired,
        resolved_at=None if open_ else fired + timedelta(hours=1),
    )
    return replace(span, **changes)


def make_live(target: str, **changes: Any) -> LiveView:
    """A live view: 400 of 1,000 sampled sessions without TTL, the ttl-leak scenario."""
    live = LiveView(
        target=target,
        checked_at=UNTIL,
        severity=Severity.CRITICAL,
        session_keys=118_000,
        sampled=1000,
        without_ttl=400,
        without_ttl_ratio=0.4,
        mean_session_bytes=4096.0,
        maxmemory=MAXMEMORY,
        scenarios=(ScenarioLine(id="ttl-leak", title="Sessions without TTL pile up"),),
    )
    return replace(live, **changes)
