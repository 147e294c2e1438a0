"""A channel health report for a human at a terminal (``redis-mem report``).

One row per target, worst first, then what does not fit a cell (scenarios, live errors,
fixes, the capacity plan), then the audit head as the anchor ``redis-mem audit verify
--anchor`` takes. Target names, summaries and errors go in as Text, never as markup.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.presenters.terminal import SEVERITY_STYLE, print_renderable, stdout_console
from bot.reports.model import FORECAST_HORIZON, Outlook, Report, TargetReport
from bot.reports.window import window_text
from bot.units import format_bytes, format_duration

# Short headers, compact cells: one line per target, ~105 columns plus the longest name
# (piped output is laid out PIPE_WIDTH wide); the notes below the table say the rest.
_COLUMNS = ("Target", "Samples", "Memory\nnow/peak/min", "Trend\nMB/h", "Reaches 90%\nat",
            "Evicted", "Keys\n(change)", "No TTL\n(sampled)", "Alerts\nfired/time/open",
            "Fixes")  # fmt: skip
_RIGHT = frozenset({"Samples", "Trend\nMB/h", "Evicted", "Fixes"})
MB = 1024**2
PIPE_WIDTH = 200
MAX_NAME_WIDTH = 40  # a target name wider than this may be cut on a narrow terminal


def render_report(report: Report) -> RenderableType:
    """The report's table, its notes and the capacity lines (the audit head apart:
    ``audit_head_line``, printed unwrapped)."""
    zone = report.zone
    table = Table(
        title=_title(report, zone),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,  # two spaces between columns, not three
    )
    names = max((len(target.target) for target in report.targets), default=6)
    for name in _COLUMNS:
        # Cells are never wrapped (a figure split over two lines misreads); too narrow a
        # terminal cuts figures with an ellipsis (--json has them whole), never a name.
        table.add_column(
            name,
            justify="right" if name in _RIGHT else "left",
            no_wrap=True,
            min_width=min(names, MAX_NAME_WIDTH) if name == "Target" else None,
        )
    for target in report.targets:
        table.add_row(*target_cells(target, zone))
    parts: list[RenderableType] = [table] if report.targets else [Text("No targets.")]
    parts += [line for target in report.targets for line in _notes(target, zone)]
    parts += [Text(line) for target in report.targets if (line := _capacity(target))]
    return Group(*parts)


def _title(report: Report, zone: ZoneInfo) -> str:
    span = f"{_time(report.since, zone)} to {_time(report.until, zone)} {report.timezone}"
    where = f" for {report.channel}" if report.channel else ""
    return f"Health report{where}: last {window_text(report.window)} ({span})"


def target_cells(target: TargetReport, zone: ZoneInfo) -> tuple[Text, ...]:
    """One row: every figure of the target as its cell shows it."""
    memory, alerts = target.memory, target.alerts
    trend = memory.trend_bytes_per_hour
    return (
        Text(target.target, style=SEVERITY_STYLE[target.severity]),
        Text(f"{target.samples:,}"),
        Text(memory_text(target)),
        Text("n/a" if trend is None else f"{trend / MB:+,.1f}"),
        Text(forecast_text(target, zone)),
        Text(f"{target.evicted_keys:,}", style="red" if target.evicted_keys else ""),
        Text(_keys(target)),
        Text(without_ttl_text(target)),
        Text(
            f"{alerts.total_fired}/{format_duration(alerts.firing_seconds)}/{len(alerts.open)}",
            style="bold red" if alerts.open else "",
        ),
        Text(str(len(target.fixes))),
    )


def memory_text(target: TargetReport) -> str:
    """``83% / 91% / 40%`` of maxmemory; bytes when there is no limit; or no samples."""
    memory = target.memory
    if memory.now_bytes is None and memory.now_ratio is None:
        return "no samples"
    if memory.now_ratio is None:  # no maxmemory: a share of nothing
        sizes = (memory.now_bytes, memory.peak_bytes, memory.min_bytes)
        return "/".join(format_bytes(size) for size in sizes) + " (no limit)"
    ratios = (memory.now_ratio, memory.peak_ratio, memory.min_ratio)
    return "/".join(_percent(ratio) for ratio in ratios)


def forecast_text(target: TargetReport, zone: ZoneInfo) -> str:
    """When memory reaches 90%: a time in the report's zone, "> 30 days", "not rising"."""
    forecast = target.forecast
    if forecast.outlook is Outlook.REACHES and forecast.ratio_90_at is not None:
        left = forecast.hours_left
        when = f"{forecast.ratio_90_at.astimezone(zone):%m-%d %H:%M}"  # within 30 days
        return when + ("" if left is None else f" ({left:,.0f}h)")
    return {
        Outlook.ALREADY: "at 90% now",
        Outlook.BEYOND: f"> {FORECAST_HORIZON.days} days",
        Outlook.NOT_RISING: "not rising",
    }.get(forecast.outlook, "n/a")


def without_ttl_text(target: TargetReport) -> str:
    """Sessions without a TTL in the live sample: ``12 (6%)`` (of the sessions sampled);
    why there is no figure, else."""
    live = target.live
    if live is None:
        return "n/a"
    if live.error is not None:
        return "no diagnosis"
    if not live.sampled:
        return "no sessions"
    share = "" if live.without_ttl_ratio is None else f" ({live.without_ttl_ratio:.0%})"
    return f"{live.without_ttl:,}{share}"


def audit_head_line(report: Report) -> str:
    """``audit head: SEQ:HASH``: print it unwrapped and uncut (``soft_wrap``), it is copied
    whole as an anchor for ``redis-mem audit verify --anchor``."""
    head = report.audit_head
    if head is None:
        return "audit head: none (the audit trail is empty)"
    return f"audit head: {head.anchor}"


def print_report(report: Report) -> None:
    """The report on stdout: its tables, then the audit head on a line of its own.

    Piped output is laid out PIPE_WIDTH wide (no figure cut for grep); a terminal its own.
    """
    console = stdout_console()
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    print_renderable(render_report(report), console=console)
    console.print(
        audit_head_line(report), markup=False, highlight=False, emoji=False, soft_wrap=True
    )


def _notes(target: TargetReport, zone: ZoneInfo) -> list[Text]:
    """What a cell cannot hold: the live error or scenarios, open alerts, each fix."""
    name, live = target.target, target.live
    notes: list[Text] = []
    if live is not None and live.error is not None:
        notes.append(Text(f"{name}: no diagnosis now: {live.error}", style="yellow"))
    elif live is not None and live.scenarios:
        found = ", ".join(f"{s.id} ({s.title})" for s in live.scenarios)
        notes.append(Text(f"{name}: scenarios now: {found}", style=SEVERITY_STYLE[live.severity]))
    for alert in target.alerts.open:
        since = _time(alert.fired_at, zone)
        notes.append(Text(f"{name}: {alert.rule} firing since {since}", style="bold red"))
    for fix in target.fixes:
        who = f"requested by {fix.requester or 'unknown'}, approved by {fix.approver}"
        notes.append(
            Text(f"{name}: fix {fix.action} {fix.outcome} at {_time(fix.at, zone)} ({who})")
        )
    return notes


def _capacity(target: TargetReport) -> str | None:
    line = target.capacity_line
    return None if line is None else f"{target.target}: {line}"


def _keys(target: TargetReport) -> str:
    now, change = target.keys.now, target.keys.change
    if now is None:
        return "n/a"
    return f"{now:,}" if change is None else f"{now:,} ({change:+,})"


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.0%}"  # whole percents: 0.5% steps are noise


def _time(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"
