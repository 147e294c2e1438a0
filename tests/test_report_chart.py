"""The report's chart: the PNG decodes at its size, and the figure plots exactly the stored points.

Reports are built from the model's dataclasses directly (the figures do not matter to
the chart, only the series); assertions read the figure's artists before saving, never
pixels. Artists are told apart by gid (``memory:NAME``, ``evictions:NAME``,
``threshold:80``).
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.dates import date2num, num2date
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from bot.diagnosis.model import Severity
from bot.reports.chart import (
    CHART_HEIGHT_PX,
    CHART_WIDTH_PX,
    EVICTIONS_GID,
    MEMORY_GID,
    THRESHOLD_GID,
    chart_figure,
    eviction_indexes,
    render_png,
)
from bot.reports.model import (
    AlertFigures,
    Forecast,
    KeyFigures,
    MemoryFigures,
    Outlook,
    Point,
    Report,
    Resolution,
    Series,
    TargetReport,
)

ROOT = Path(__file__).resolve().parent.parent
SINCE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MAXMEMORY = 512 * 1024 * 1024


def point(
    minute: int,
    ratio: float | None,
    *,
    evicted: int | None = 0,
    increase: int = 0,
    reachable: int = 1,
    maxmemory: int | None = MAXMEMORY,
) -> Point:
    """One raw sample ``minute`` minutes into the window (None ratio: a gap)."""
    used = None if ratio is None or maxmemory is None else int(ratio * maxmemory)
    return Point(
        at=SINCE + timedelta(minutes=minute),
        reachable=reachable,
        used=used,
        used_min=used,
        used_max=used,
        maxmemory=maxmemory if ratio is not None else None,
        ratio=ratio,
        ratio_min=ratio,
        ratio_max=ratio,
        evicted_first=evicted,
        evicted_last=evicted,
        evicted_increase=increase,
    )


def target(
    name: str, points: Sequence[Point], *, resolution: Resolution = Resolution.RAW
) -> TargetReport:
    """A target's report around its points; the figures are plausible, the chart reads none."""
    ratios = [p.ratio for p in points if p.ratio is not None]
    used = [p.used for p in points if p.used is not None]
    return TargetReport(
        target=name,
        samples=sum(p.samples for p in points),
        resolution=resolution,
        memory=MemoryFigures(
            now_bytes=used[-1] if used else None,
            peak_bytes=max(used, default=None),
            min_bytes=min(used, default=None),
            maxmemory=MAXMEMORY if ratios else None,
            now_ratio=ratios[-1] if ratios else None,
            peak_ratio=max(ratios, default=None),
            min_ratio=min(ratios, default=None),
            trend_bytes_per_hour=0.0 if len(used) > 1 else None,
        ),
        forecast=Forecast(Outlook.NOT_RISING if ratios else Outlook.UNKNOWN),
        evicted_keys=0,
        keys=KeyFigures(now=1000, change=0),
        alerts=AlertFigures(),
        fixes=(),
        live=None,
        severity=Severity.OK,
        series=Series(target=name, points=tuple(points), resolution=resolution),
    )


def report(
    targets: Sequence[TargetReport], *, zone: str = "Europe/Paris", hours: int = 3
) -> Report:
    """A report of ``targets`` over ``hours`` from SINCE."""
    until = SINCE + timedelta(hours=hours)
    return Report(
        generated_at=until,
        since=SINCE,
        until=until,
        timezone=zone,
        targets=tuple(targets),
        audit_head=None,
    )


def lines(figure: Figure, prefix: str) -> dict[str, Line2D]:
    """The main axes' lines whose gid starts with ``prefix``, by the rest of the gid."""
    found = {}
    for line in figure.axes[0].get_lines():
        gid = line.get_gid() or ""
        if gid.startswith(prefix):
            found[gid[len(prefix) :]] = line
    return found


def expected_xy(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    """What a line of these points must hold: date numbers, ratio x 100, NaN for gaps."""
    xs = np.array([date2num(p.at) for p in points], dtype=float)
    ys = np.array([math.nan if p.ratio is None else p.ratio * 100 for p in points])
    return xs, ys


def legend_texts(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.legends[0].get_texts()]


def growing(name_index: int, count: int = 180) -> list[Point]:
    """A store growing from 40% by a step of its own (so every target's line differs)."""
    step = 0.001 * (name_index + 1)
    return [point(minute, min(1.2, 0.40 + step * minute)) for minute in range(count)]


def test_the_png_decodes_at_the_chart_size() -> None:
    png = render_png(report([target("sessions", growing(0))]))

    assert png is not None
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (CHART_WIDTH_PX, CHART_HEIGHT_PX) == (1200, 600)


def test_each_line_holds_the_stored_points_with_gaps_as_nan() -> None:
    first = [point(0, 0.50), point(1, 0.55), point(2, None, reachable=0), point(3, 0.61)]
    second = [point(0, 0.30), point(2, 0.95), point(4, 1.07)]
    figure = chart_figure(report([target("sessions-a", first), target("sessions-b", second)]))

    drawn = lines(figure, MEMORY_GID)
    assert list(drawn) == ["sessions-a", "sessions-b"]
    for name, points in (("sessions-a", first), ("sessions-b", second)):
        xs, ys = expected_xy(points)
        np.testing.assert_array_equal(np.asarray(drawn[name].get_xdata(), dtype=float), xs)
        # assert_array_equal takes NaN == NaN: the gap must be NaN, not 0 and not dropped.
        np.testing.assert_array_equal(np.asarray(drawn[name].get_ydata(), dtype=float), ys)
    assert math.isnan(drawn["sessions-a"].get_ydata()[2])
    assert legend_texts(figure) == ["sessions-a", "sessions-b"]
    # y covers 0..max(100, data): 107% is above the frame's 100.
    low, high = figure.axes[0].get_ylim()
    assert low == 0 and high >= 107


def test_the_y_axis_runs_to_100_when_the_data_stays_below() -> None:
    figure = chart_figure(report([target("sessions", [point(0, 0.2), point(1, 0.3)])]))

    low, high = figure.axes[0].get_ylim()
    assert low == 0 and 100 <= high < 110


def test_the_80_and_90_thresholds_are_dashed_and_labelled() -> None:
    figure = chart_figure(report([target("sessions", growing(0))]))

    thresholds = lines(figure, THRESHOLD_GID)
    assert sorted(thresholds) == ["80", "90"]
    for name, line in thresholds.items():
        assert list(line.get_ydata()) == [float(name)] * 2
        assert line.get_linestyle() == "--"
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"80% warning", "90% critical"} <= texts


def test_evictions_are_marked_where_the_counter_rose_and_not_at_a_restart() -> None:
    # 0 0 5 5 | restart to 2 | 2 4 | unreachable | 9 : rises at 2, 6 and 8 (across the gap).
    counters: list[int | None] = [0, 0, 5, 5, 2, 2, 4, None, 9]
    points = [
        point(
            minute,
            None if evicted is None else 0.5 + minute / 100,
            evicted=evicted,
            reachable=0 if evicted is None else 1,
        )
        for minute, evicted in enumerate(counters)
    ]
    assert eviction_indexes(points) == (2, 6, 8)

    figure = chart_figure(report([target("sessions", points), target("calm", growing(1))]))

    markers = lines(figure, EVICTIONS_GID)
    assert list(markers) == ["sessions"]  # a target without evictions has no marker line
    xs, ys = expected_xy([points[i] for i in (2, 6, 8)])
    np.testing.assert_array_equal(np.asarray(markers["sessions"].get_xdata(), dtype=float), xs)
    np.testing.assert_array_equal(np.asarray(markers["sessions"].get_ydata(), dtype=float), ys)
    assert markers["sessions"].get_linestyle() == "None"
    assert legend_texts(figure) == ["sessions", "calm", "evictions"]


def test_a_bucket_that_counted_evictions_is_marked_even_with_a_flat_counter_between() -> None:
    # 5-minute aggregates: the store counted 3 evictions inside bucket 1 (restart-aware,
    # first 7 last 2 after a restart); bucket 2 starts where bucket 1 ended; bucket 3 rose.
    buckets = [
        Point(at=SINCE, samples=5, reachable=5, ratio=0.6, ratio_min=0.55, ratio_max=0.62,
              evicted_first=7, evicted_last=7),
        Point(at=SINCE + timedelta(minutes=5), samples=5, reachable=5, ratio=0.7,
              ratio_min=0.6, ratio_max=0.75, evicted_first=7, evicted_last=2,
              evicted_increase=3),
        Point(at=SINCE + timedelta(minutes=10), samples=5, reachable=5, ratio=0.7,
              ratio_min=0.68, ratio_max=0.71, evicted_first=2, evicted_last=2),
        Point(at=SINCE + timedelta(minutes=15), samples=5, reachable=5, ratio=0.72,
              ratio_min=0.7, ratio_max=1.15, evicted_first=4, evicted_last=4),
    ]  # fmt: skip
    assert eviction_indexes(buckets) == (1, 3)

    figure = chart_figure(
        report([target("sessions", buckets, resolution=Resolution.FIVE_MINUTES)], hours=1)
    )

    np.testing.assert_array_equal(
        np.asarray(lines(figure, EVICTIONS_GID)["sessions"].get_ydata(), dtype=float),
        [70.0, 72.0],
    )
    # The min..max band is shaded, and the y range covers the band's 115%.
    assert len(figure.axes[0].collections) == 1
    assert figure.axes[0].get_ylim()[1] >= 115


def test_only_the_ten_worst_of_fifteen_are_drawn_and_the_title_says_so() -> None:
    targets = [target(f"sessions-{index:02d}", growing(index)) for index in range(15)]
    figure = chart_figure(report(targets))

    assert list(lines(figure, MEMORY_GID)) == [f"sessions-{index:02d}" for index in range(10)]
    assert legend_texts(figure) == [f"sessions-{index:02d}" for index in range(10)]
    assert "10 worst of 15" in figure.axes[0].get_title()

    three = chart_figure(report(targets), worst=3)
    assert len(lines(three, MEMORY_GID)) == 3
    assert "3 worst of 15" in three.axes[0].get_title()
    assert "worst" not in chart_figure(report(targets[:10])).axes[0].get_title()


def test_a_target_without_maxmemory_draws_nothing_and_the_legend_says_so() -> None:
    limitless = [point(minute, None, maxmemory=None) for minute in range(5)]
    down = [point(minute, None, reachable=0, evicted=None) for minute in range(5)]
    figure = chart_figure(
        report([target("limitless", limitless), target("down", down), target("ok", growing(0))])
    )

    assert list(lines(figure, MEMORY_GID)) == ["ok"]
    assert legend_texts(figure) == ["limitless (no maxmemory)", "down (unreachable)", "ok"]


def test_no_samples_is_no_png() -> None:
    assert render_png(report([target("sessions", []), target("other", [])])) is None
    assert render_png(report([])) is None


def test_time_is_in_the_reports_timezone() -> None:
    # Kathmandu is UTC+5:45: ticks on its round hours fall at a quarter past, in UTC.
    figure = chart_figure(report([target("sessions", growing(0))], zone="Asia/Kathmandu"))
    figure.canvas.draw()
    axes = figure.axes[0]

    ticks = [num2date(tick, tz=UTC) for tick in axes.get_xticks()]
    assert ticks and all(tick.minute in (15, 45) for tick in ticks)
    assert axes.get_xlim() == (date2num(SINCE), date2num(SINCE + timedelta(hours=3)))
    assert "2026-12-01 14:45 to 2026-12-01 17:45 Asia/Kathmandu" in axes.get_title()
    assert axes.get_xlabel() == "time (Asia/Kathmandu)"


def test_bad_arguments_are_one_line() -> None:
    with pytest.raises(ValueError, match=r'^chart: unknown timezone "Mars/…"$'):
        chart_figure(report([target("sessions", growing(0))], zone="Mars/Olympus_Mons"))
    with pytest.raises(ValueError, match=r"^chart: worst must be at least 1 \(got 0\)$"):
        render_png(report([target("sessions", growing(0))]), worst=0)


def test_a_target_name_is_text_not_mathtext() -> None:
    names = ["a$b$c", "$\\frac", "x" * 300]
    png = render_png(report([target(name, growing(i)) for i, name in enumerate(names)]))

    assert png is not None
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (CHART_WIDTH_PX, CHART_HEIGHT_PX)


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.reports.chart\n"
        "print(sorted(m for m in ('matplotlib', 'PIL', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_four_threads_draw_at_once_each_its_own_chart() -> None:
    reports = [
        report([target(f"thread-{index}-{n}", growing(index + n)) for n in range(3)])
        for index in range(8)
    ]
    # Four at a time pass the barrier together (it resets after each trip): real overlap.
    start = threading.Barrier(4)

    def draw(one: Report) -> tuple[bytes | None, dict[str, Line2D]]:
        start.wait(timeout=60)
        return render_png(one), lines(chart_figure(one), MEMORY_GID)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(draw, reports))

    for one, (png, drawn) in zip(reports, results, strict=True):
        assert png is not None
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (CHART_WIDTH_PX, CHART_HEIGHT_PX)
        assert list(drawn) == [t.target for t in one.targets]
        for each in one.targets:
            _, ys = expected_xy(each.series.points)
            np.testing.assert_array_equal(np.asarray(drawn[each.target].get_ydata()), ys)
