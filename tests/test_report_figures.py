"""The report's figures: trend, forecast, evictions across restarts, alerts, capacity, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.diagnosis.capacity import plan_capacity
from bot.diagnosis.model import Severity
from bot.reports.figures import (
    alert_figures,
    capacity_line,
    evictions,
    forecast,
    key_figures,
    memory_figures,
    target_report,
    trend,
    worst_first,
)
from bot.reports.model import (
    AlertSpan,
    LiveView,
    Outlook,
    Point,
    Resolution,
    Series,
    TargetReport,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MB = 1024**2
GB = 1024**3


def raw(at: datetime, used: int | None, maxmemory: int = GB, **extra: int) -> Point:
    """A raw sample as the store hands it over."""
    ratio = used / maxmemory if used is not None and maxmemory else None
    return Point(
        at=at,
        used=used,
        used_min=used,
        used_max=used,
        maxmemory=maxmemory,
        ratio=ratio,
        ratio_min=ratio,
        ratio_max=ratio,
        reachable=int(used is not None),
        **extra,
    )


def growing(per_hour: int, *, start: int, hours: float, every: timedelta) -> list[Point]:
    """A store growing at ``per_hour`` bytes an hour from ``start``."""
    steps = int(timedelta(hours=hours) / every)
    return [
        raw(T0 + i * every, start + round(per_hour * (i * every).total_seconds() / 3600))
        for i in range(steps + 1)
    ]


def test_trend_of_a_line_is_its_slope_per_hour() -> None:
    points = [(T0 + timedelta(minutes=m), 1000.0 + 2.0 * m) for m in range(0, 120, 5)]
    assert trend(points) == pytest.approx(120.0)
    assert trend(points[:1]) is None
    assert trend([(T0, 1.0), (T0, 2.0)]) is None  # one instant: no slope


def test_forecast_of_a_store_growing_at_a_known_rate() -> None:
    points = growing(10 * MB, start=GB // 2, hours=6, every=timedelta(minutes=1))
    memory = memory_figures(points)
    assert memory.trend_bytes_per_hour == pytest.approx(10 * MB, rel=1e-6)
    result = forecast(points, memory)
    # From 50% + 60 MB at the newest point, 90% of 1 GB is (0.4 GB - 60 MB) / 10 MB/h away.
    expected = (0.9 * GB - (GB // 2 + 60 * MB)) / (10 * MB)
    assert result.outlook is Outlook.REACHES
    assert result.hours_left == pytest.approx(expected, rel=1e-6)
    assert result.ratio_90_at is not None
    assert abs(result.ratio_90_at - (points[-1].at + timedelta(hours=expected))) < timedelta(
        seconds=1
    )


@pytest.mark.parametrize(
    ("per_hour", "start", "outlook"),
    [
        (0, GB // 2, Outlook.NOT_RISING),
        (-5 * MB, GB // 2, Outlook.NOT_RISING),
        (1024, GB // 2, Outlook.BEYOND),  # 1 KB/h: centuries away
        (MB, int(0.95 * GB), Outlook.ALREADY),
    ],
)
def test_forecast_outlooks(per_hour: int, start: int, outlook: Outlook) -> None:
    points = growing(per_hour, start=start, hours=2, every=timedelta(minutes=5))
    result = forecast(points, memory_figures(points))
    assert result.outlook is outlook
    assert result.ratio_90_at is None


def test_forecast_without_a_limit_or_history_is_unknown() -> None:
    unlimited = [raw(T0, 10 * MB, maxmemory=0), raw(T0 + timedelta(minutes=1), 11 * MB, 0)]
    assert forecast(unlimited, memory_figures(unlimited)).outlook is Outlook.UNKNOWN
    one = [raw(T0, 10 * MB)]
    assert forecast(one, memory_figures(one)).outlook is Outlook.UNKNOWN


def test_memory_now_peak_and_minimum_skip_unreachable_checks() -> None:
    points = [
        raw(T0, 300 * MB),
        raw(T0 + timedelta(minutes=1), 700 * MB),
        raw(T0 + timedelta(minutes=2), None),  # unreachable
        raw(T0 + timedelta(minutes=3), 200 * MB),
        raw(T0 + timedelta(minutes=4), 400 * MB),
    ]
    memory = memory_figures(points)
    assert (memory.now_bytes, memory.peak_bytes, memory.min_bytes) == (400 * MB, 700 * MB, 200 * MB)
    assert memory.now_ratio == pytest.approx(400 / 1024)
    assert memory.peak_ratio == pytest.approx(700 / 1024)
    assert memory.min_ratio == pytest.approx(200 / 1024)


def test_evictions_count_restarts_as_restarts() -> None:
    counters = [0, 10, 20, 5, 15, 15]  # a restart after 20: the counter starts again at 0
    points = [
        raw(T0 + timedelta(minutes=i), 100, evicted_first=c, evicted_last=c)
        for i, c in enumerate(counters)
    ]
    assert evictions(points) == 20 + 5 + 10


def test_evictions_of_aggregates_add_inside_and_between_buckets() -> None:
    points = [
        Point(at=T0, evicted_first=100, evicted_last=160, evicted_increase=60),
        Point(
            at=T0 + timedelta(minutes=5), evicted_first=170, evicted_last=30, evicted_increase=40
        ),
        Point(at=T0 + timedelta(minutes=10), reachable=0),  # unreachable bucket: no counter
        Point(at=T0 + timedelta(minutes=15), evicted_first=35, evicted_last=35),
    ]
    assert evictions(points) == 60 + 10 + 40 + 5


# A counter's life: each step evicts N keys, or restarts Redis (the counter starts again at 0)
# and then evicts N.
counter_steps = st.lists(st.tuples(st.booleans(), st.integers(0, 1000)), min_size=1, max_size=60)


@given(steps=counter_steps, bucket=st.integers(1, 12))
def test_evictions_are_the_same_read_raw_or_in_buckets(
    steps: list[tuple[bool, int]], bucket: int
) -> None:
    """The total is what the counter rose after the first reading, restarts counted, and
    rolling the samples up into buckets (first, last, increase) never changes it."""
    counter, values, expected = 0, [], 0
    for index, (restart, evicted) in enumerate(steps):
        if restart and counter > 0:  # Redis restarted: the counter starts again from 0
            evicted = min(evicted, counter - 1)  # and is below where it was, or no reading
            counter = evicted  # could tell a restart happened (Prometheus cannot either)
        else:
            counter += evicted
        expected += evicted if index else 0  # the first reading is the baseline
        values.append(counter)
    points = [
        raw(T0 + timedelta(minutes=i), 1, evicted_first=v, evicted_last=v)
        for i, v in enumerate(values)
    ]
    assert evictions(points) == expected
    chunks = [points[i : i + bucket] for i in range(0, len(points), bucket)]
    rolled = [
        Point(
            at=chunk[0].at,
            evicted_first=chunk[0].evicted_first,
            evicted_last=chunk[-1].evicted_last,
            evicted_increase=evictions(chunk),
        )
        for chunk in chunks
    ]
    assert evictions(rolled) == evictions(points)


def test_keys_now_and_change() -> None:
    points = [
        raw(T0, 1, dbsize=1000),
        raw(T0 + timedelta(minutes=1), None),
        raw(T0 + timedelta(minutes=2), 1, dbsize=1300),
    ]
    figures = key_figures(points)
    assert (figures.now, figures.change) == (1300, 300)
    assert key_figures([]).now is None


def test_alerts_in_the_window_fired_per_rule_time_firing_and_open() -> None:
    since, until = T0, T0 + timedelta(hours=24)
    alerts = [
        # fired before the window, resolved inside: counts time, not a firing
        AlertSpan(
            "a",
            "prod",
            "memory-warning",
            Severity.WARNING,
            T0 - timedelta(hours=1),
            T0 + timedelta(minutes=30),
        ),
        AlertSpan(
            "b",
            "prod",
            "memory-warning",
            Severity.WARNING,
            T0 + timedelta(hours=2),
            T0 + timedelta(hours=3),
        ),
        AlertSpan("c", "prod", "memory-critical", Severity.CRITICAL, T0 + timedelta(hours=23)),
    ]
    figures = alert_figures(alerts, since=since, until=until)
    assert figures.fired == {"memory-critical": 1, "memory-warning": 1}
    assert figures.firing_seconds == pytest.approx((30 + 60 + 60) * 60)
    assert [a.id for a in figures.open] == ["c"]
    assert figures.total_fired == 2


def test_capacity_line_compares_maxmemory_with_the_measured_need() -> None:
    plan = plan_capacity(users=1000, sessions_per_user=3, session_size=10 * 1024)
    measured = LiveView(
        "prod",
        T0,
        session_keys=3000,
        capacity=plan.__class__(**{**plan.__dict__, "current_maxmemory": 512 * MB}),
    )
    report = target_report(
        series=Series("prod", (raw(T0, 100 * MB),)),
        alerts=[],
        fixes=[],
        live=measured,
        since=T0,
        until=T0,
    )
    line = capacity_line(report)
    assert line is not None
    need = plan.required_bytes
    assert line.startswith(
        f"maxmemory 512mb is {512 * MB / need:.1f}x what the measured sessions need"
    )
    assert "3,000 sessions" in line
    assert report.capacity_line == line
    small = LiveView(
        "prod", T0, capacity=plan.__class__(**{**plan.__dict__, "current_maxmemory": 40 * MB})
    )
    report = target_report(
        series=Series("prod", ()), alerts=[], fixes=[], live=small, since=T0, until=T0
    )
    assert "below the runbook's 2x margin" in (capacity_line(report) or "")
    nothing = target_report(
        series=Series("prod", ()), alerts=[], fixes=[], live=None, since=T0, until=T0
    )
    assert capacity_line(nothing) is None


def test_worst_first_by_severity_then_fullness_then_forecast() -> None:
    def report(name: str, used: int, severity: Severity = Severity.OK) -> TargetReport:
        live = LiveView(name, T0, severity=severity)
        series = Series(
            name,
            tuple(growing(MB, start=used, hours=1, every=timedelta(minutes=10))),
            Resolution.RAW,
        )
        return target_report(series=series, alerts=[], fixes=[], live=live, since=T0, until=T0)

    reports = [
        report("calm", 100 * MB),
        report("full", 850 * MB),
        report("sick", 10 * MB, Severity.CRITICAL),
        report("half", 500 * MB),
    ]
    assert [r.target for r in worst_first(reports)] == ["sick", "full", "half", "calm"]
    full = next(r for r in reports if r.target == "full")
    assert full.severity is Severity.WARNING


def test_time_firing_counts_overlapping_alerts_once() -> None:
    since, until = T0, T0 + timedelta(hours=2)
    alerts = [
        AlertSpan("a", "prod", "memory-critical", Severity.CRITICAL, T0, T0 + timedelta(hours=1)),
        AlertSpan(
            "b", "prod", "memory-forecast", Severity.WARNING, T0 + timedelta(minutes=30), None
        ),
    ]
    figures = alert_figures(alerts, since=since, until=until)
    assert figures.firing_seconds == 2 * 3600  # 00:00-01:00 and 00:30-02:00 overlap
    assert [a.id for a in figures.open] == ["b"]
