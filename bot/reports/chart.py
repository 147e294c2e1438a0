"""The report's chart: memory as % of maxmemory over the window, one line per target.

matplotlib is imported only inside the functions that draw (importing this module costs
nothing: the bot starts without it, and the CLI's other commands never load it). Drawing
uses ``Figure`` and ``FigureCanvasAgg`` directly, never pyplot: pyplot keeps a global
registry of figures and a global current figure, and reports may be drawn from several
threads at once. No rcParams are changed either (they are global): sizes are set per
artist.

What is drawn: the ``worst`` first targets of ``report.targets`` (they come worst first),
each point's last ``ratio`` as a percentage (a missing ratio is a gap, NaN, never 0), for
5-minute aggregates the bucket's min..max shaded, evictions marked, the 80% and 90%
thresholds dashed and labelled, time in the report's timezone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.limits import echo
from bot.reports.model import Point, Report, Resolution, Series, TargetReport
from bot.reports.window import window_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

# 1200x600 at 100 dpi: Slack shows an image's preview scaled to the message's width, so
# the fonts below are larger than matplotlib's defaults to stay readable at half size.
CHART_DPI = 100
CHART_WIDTH_PX = 1200
CHART_HEIGHT_PX = 600
DEFAULT_WORST = 10
# The runbook's alert lines (memory-warning at 80%, memory-critical at 90%).
THRESHOLDS: tuple[tuple[float, str, str], ...] = (
    (80.0, "80% warning", "#b8860b"),
    (90.0, "90% critical", "#8b0000"),
)
# matplotlib's tab10, spelled out so that choosing a colour needs no matplotlib.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Artists are named by gid so that a test (or a face) can tell them apart.
MEMORY_GID = "memory:"
EVICTIONS_GID = "evictions:"
THRESHOLD_GID = "threshold:"
# Where the plot sits in the figure (fractions); the right part is the legend's, as wide
# as its longest entry needs (at most 0.0125 of the width per character, at _LEGEND_SIZE).
_MARGINS = {"left": 0.075, "top": 0.88, "bottom": 0.1}
_LEGEND_CHAR = 0.0125
_LEGEND_PAD = 0.06  # the line sample and the frame
_NAME_CHARS = 24  # a legend entry longer than this is cut: it fits the right margin
_TITLE_SIZE = 16
_LABEL_SIZE = 13
_TICK_SIZE = 12
_LEGEND_SIZE = 12


def chart_figure(report: Report, *, worst: int = DEFAULT_WORST) -> Figure:
    """The report's chart as a matplotlib ``Figure`` (Agg canvas attached, not saved).

    ``worst``: how many of ``report.targets`` (worst first) get a line. ValueError for a
    ``worst`` below 1 or a timezone that does not exist (one line each).
    """
    if worst < 1:
        raise ValueError(f"chart: worst must be at least 1 (got {worst})")
    zone = _zone(report.timezone)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(
        figsize=(CHART_WIDTH_PX / CHART_DPI, CHART_HEIGHT_PX / CHART_DPI),
        dpi=CHART_DPI,
    )
    # Fixed margins, not the constrained layout: the image's size never changes, and the
    # layout engine measured every tick label twice (a third of the chart's time).
    figure.subplots_adjust(**_MARGINS)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown = report.targets[:worst]
    handles: list[Line2D] = []
    peak = 0.0
    evictions = False
    for index, target in enumerate(shown):
        drawn = _draw_target(axes, target, PALETTE[index % len(PALETTE)])
        handles.append(drawn.handle)
        peak = max(peak, drawn.peak)
        evictions = evictions or drawn.evictions
    _draw_thresholds(axes)
    _style_axes(axes, report, zone, top=max(100.0, peak))
    axes.set_title(_title(report, zone, worst=worst), fontsize=_TITLE_SIZE)
    if not report.has_samples:
        axes.text(
            0.5,
            0.5,
            "no samples in the window",
            transform=axes.transAxes,
            ha="center",
            va="center",
            fontsize=_TITLE_SIZE,
        )
    labels = [str(handle.get_label()) for handle in handles] + ["evictions"]
    figure.subplots_adjust(right=_plot_right(labels))
    _legend(figure, handles, evictions=evictions)
    return figure


def render_png(report: Report, *, worst: int = DEFAULT_WORST) -> bytes | None:
    """The chart as PNG bytes, CHART_WIDTH_PX x CHART_HEIGHT_PX; None when the report has
    no samples (a face says so instead of posting an empty chart)."""
    if not report.has_samples:
        return None
    figure = chart_figure(report, worst=worst)
    buffer = io.BytesIO()
    # No bbox_inches="tight": it would change the size; the fixed margins fit it.
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


def eviction_indexes(points: Sequence[Point]) -> tuple[int, ...]:
    """Indexes of the points where keys were evicted.

    A point is marked when its bucket saw evictions (``evicted_increase > 0``, which the
    store counts restart-aware) or when the counter rose since the last point that read
    it (``evicted_first`` above the previous ``evicted_last``; unread points between are
    skipped). A counter lower than before is a restart, not evictions: that point is not
    marked, and a rise after it is measured from the restarted value.
    """
    marked: list[int] = []
    last: int | None = None
    for index, point in enumerate(points):
        first = point.evicted_first if point.evicted_first is not None else point.evicted_last
        rose = first is not None and last is not None and first > last
        if point.evicted_increase > 0 or rose:
            marked.append(index)
        if point.evicted_last is not None:
            last = point.evicted_last
        elif first is not None:
            last = first
    return tuple(marked)


def absence(series: Series) -> str | None:
    """Why a target draws no line ("no samples", "unreachable", "no maxmemory"), or None
    when at least one of its points has a ratio."""
    if any(point.ratio is not None for point in series.points):
        return None
    if not series.points:
        return "no samples"
    if all(point.reachable == 0 for point in series.points):
        return "unreachable"
    return "no maxmemory"


class _Drawn:
    """What drawing one target left for the legend and the axes' limits."""

    __slots__ = ("evictions", "handle", "peak")

    def __init__(self, handle: Line2D, peak: float, evictions: bool) -> None:
        self.handle = handle
        self.peak = peak
        self.evictions = evictions


def _draw_target(axes: Axes, target: TargetReport, color: str) -> _Drawn:
    """One target's line, its min..max band (5-minute points) and its eviction markers."""
    from matplotlib.lines import Line2D

    name = _legend_name(target.target)
    missing = absence(target.series)
    if missing is not None:
        # Nothing to draw: the legend still names the target and says why.
        proxy = Line2D([], [], color=color, linestyle=":", label=f"{name} ({missing})")
        return _Drawn(proxy, 0.0, False)
    points = target.series.points
    xs = _date_numbers([point.at for point in points])
    ys = _percent([point.ratio for point in points])
    (line,) = axes.plot(
        xs, ys, color=color, linewidth=2, label=name, gid=MEMORY_GID + target.target
    )
    peak = max((y for y in ys if not math.isnan(y)), default=0.0)
    if target.series.resolution is Resolution.FIVE_MINUTES:
        low = _percent([point.ratio_min for point in points])
        high = _percent([point.ratio_max for point in points])
        axes.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
        peak = max(peak, max((y for y in high if not math.isnan(y)), default=0.0))
    marked = [i for i in eviction_indexes(points) if not math.isnan(ys[i])]
    if marked:
        axes.plot(
            [xs[i] for i in marked],
            [ys[i] for i in marked],
            linestyle="none",
            marker="v",
            markersize=9,
            color=color,
            markeredgecolor="black",
            gid=EVICTIONS_GID + target.target,
        )
    return _Drawn(line, peak, bool(marked))


def _draw_thresholds(axes: Axes) -> None:
    """The 80% and 90% lines, dashed, each labelled at the right edge."""
    for percent, text, color in THRESHOLDS:
        axes.axhline(
            percent, color=color, linestyle="--", linewidth=1.2, gid=f"{THRESHOLD_GID}{percent:g}"
        )
        # x in axes units (the right edge), y in data units: the label sits on its line.
        axes.text(
            0.995,
            percent,
            text,
            transform=axes.get_yaxis_transform(),
            ha="right",
            va="bottom",
            color=color,
            fontsize=_TICK_SIZE - 1,
            # A line crossing the label must not hide it.
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )


def _style_axes(axes: Axes, report: Report, zone: ZoneInfo, *, top: float) -> None:
    """The window as the x range, in ``zone``; 0..top percent as the y range."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import PercentFormatter

    locator = AutoDateLocator(tz=zone)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=zone))
    since, until = _date_numbers([report.since, report.until])
    axes.set_xlim(since, until)
    # A little room above the top so a line at 100% is not drawn on the frame.
    axes.set_ylim(0.0, top * 1.04)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=100))
    axes.set_ylabel("memory, % of maxmemory", fontsize=_LABEL_SIZE)
    axes.set_xlabel(f"time ({report.timezone})", fontsize=_LABEL_SIZE)
    axes.tick_params(labelsize=_TICK_SIZE)
    axes.grid(True, alpha=0.3)


def _plot_right(labels: Sequence[str]) -> float:
    """Where the plot ends, so that the legend's longest entry fits right of it (names are
    cut at _NAME_CHARS: the plot keeps at least 60% of the width)."""
    longest = max((len(label) for label in labels), default=0)
    return max(0.6, 1 - _LEGEND_PAD - _LEGEND_CHAR * longest)


def _legend(figure: Figure, handles: list[Line2D], *, evictions: bool) -> None:
    """Target names (and the eviction marker, when one is drawn) right of the plot."""
    from matplotlib.lines import Line2D

    entries = list(handles)
    if evictions:
        entries.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="v",
                markersize=9,
                color="white",
                markeredgecolor="black",
                label="evictions",
            )
        )
    if entries:
        labels = [str(entry.get_label()) for entry in entries]
        # Right of the plot, in the margin _plot_right left for it.
        figure.legend(
            entries,
            labels,
            loc="upper left",
            bbox_to_anchor=(figure.subplotpars.right + 0.01, _MARGINS["top"]),
            fontsize=_LEGEND_SIZE,
        )


def _title(report: Report, zone: ZoneInfo, *, worst: int) -> str:
    """``Memory, % of maxmemory: last 24h (10 worst of 15)`` and the time range."""
    head = f"Memory, % of maxmemory: last {window_text(report.window)}"
    if len(report.targets) > worst:
        head += f" ({worst} worst of {len(report.targets)})"
    since = report.since.astimezone(zone)
    until = report.until.astimezone(zone)
    return f"{head}\n{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} {report.timezone}"


def _legend_name(name: str) -> str:
    """A target's name as a legend shows it: cut, and no mathtext (``$`` is literal)."""
    if len(name) > _NAME_CHARS:
        name = name[: _NAME_CHARS - 1] + "…"
    return name.replace("$", r"\$")


def _zone(name: str) -> ZoneInfo:
    """The report's IANA zone; ValueError (one line) for one that does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'chart: unknown timezone "{echo(name)}"') from None


def _date_numbers(times: Sequence[datetime]) -> list[float]:
    """matplotlib date numbers (days since the epoch, UTC) of aware datetimes."""
    from matplotlib.dates import date2num

    numbers: Any = date2num(list(times))
    return [float(number) for number in numbers]


def _percent(ratios: Sequence[float | None]) -> list[float]:
    """Ratios as percentages, NaN for a missing one (a gap in the line, not a zero)."""
    return [math.nan if ratio is None else ratio * 100.0 for ratio in ratios]
