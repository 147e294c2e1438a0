"""Health checks for a human at a terminal: the check's tables, one line per alert event.

``TerminalNotifier`` is the terminal's implementation of the ``Notifier`` port
(Slack's is the other): ``redis-mem watch`` and the demo print every event with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.config import Target
from bot.health.engine import Outcome
from bot.health.model import Alert, AlertEvent, EventKind, Sample
from bot.health.ports import Delivered
from bot.health.rules import RuleBook
from bot.health.serialize import evicted_per_second
from bot.health.service import TargetCheck
from bot.presenters.terminal import stdout_console
from bot.units import format_bytes, format_duration, prometheus_duration

_STATE_STYLE = {"inactive": "green", "pending": "yellow", "firing": "bold red"}
# What a line calls each event (FIRED reads as the state it enters); the rest: upper case.
_LABEL = {EventKind.FIRED: "FIRING"}
_EVENT_STYLE = {
    EventKind.PENDING: "yellow",
    EventKind.CLEARED: "green",
    EventKind.FIRED: "bold red",
    EventKind.ESCALATED: "bold red",
    EventKind.DEESCALATED: "yellow",
    EventKind.RESOLVED: "bold green",
    EventKind.REMINDER: "red",
    EventKind.SNOOZE_ENDED: "red",
}


def utc_stamp(moment: datetime) -> str:
    """``2026-12-01 10:42:00Z``: what the event lines and the tables show."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


# Error texts and details quote Redis and key names: they go in as Text, never as markup.
def render_check(checks: Sequence[TargetCheck], *, checked_at: datetime) -> RenderableType:
    """A summary row per target, then every enabled rule's state with its detail line."""
    summary = Table(title=f"Health check at {utc_stamp(checked_at)}", title_justify="left")
    for name in ("Target", "Reachable", "Memory", "Evictions/s", "Pending", "Firing"):
        summary.add_column(name, no_wrap=name != "Memory")
    rules = Table(title="Rules", title_justify="left", expand=True)
    for name in ("Target", "Rule", "Severity", "State", "Active for"):
        rules.add_column(name, no_wrap=True)
    rules.add_column("Detail", overflow="fold")
    for check in checks:
        summary.add_row(*_summary_cells(check))
        for outcome in check.outcomes:
            rules.add_row(*_rule_cells(check.target, outcome, checked_at))
    return Group(summary, rules)


def _summary_cells(check: TargetCheck) -> tuple[Text, ...]:
    rate = evicted_per_second(check)
    reachable = Text("yes", style="green") if check.sample.reachable else Text("NO", "bold red")
    return (
        Text(check.target, style="bold"),
        reachable,
        Text(memory_text(check.sample)),
        Text("n/a" if rate is None else f"{rate:,.1f}"),
        Text(_count(check.outcomes, "pending"), style="yellow"),
        Text(_count(check.outcomes, "firing"), style="bold red"),
    )


def memory_text(sample: Sample) -> str:
    """``83.2% of 64.0 MB``, ``12.0 MB used, no maxmemory`` or why there is no reading."""
    if not sample.reachable:
        return sample.error or "unreachable"
    if sample.used_memory is None:  # a cluster whose shard could not be read, or is gone
        return "no memory reading"
    ratio = sample.usage_ratio
    if ratio is None:
        return f"{format_bytes(sample.used_memory)} used, no maxmemory"
    return f"{ratio:.1%} of {format_bytes(sample.maxmemory)}"


def _count(outcomes: Sequence[Outcome], status: str) -> str:
    return ", ".join(o.rule.id for o in outcomes if o.status == status) or "-"


def _rule_cells(target: str, outcome: Outcome, checked_at: datetime) -> tuple[Text, ...]:
    state = outcome.state
    held = format_duration((checked_at - state.active_at).total_seconds()) if state else ""
    return (
        Text(target),
        Text(outcome.rule.id),
        Text(outcome.rule.config.severity.value),
        Text(outcome.status, style=_STATE_STYLE[outcome.status]),
        Text(held),
        Text(outcome.reading.detail),
    )


def event_line(event: AlertEvent) -> Text:
    """``2026-12-01 10:42:00Z  prod  memory-warning  FIRING  83.2% of 64.0 MB (threshold 80%)``."""
    label = _LABEL.get(event.kind, event.kind.value.upper())
    head = f"{utc_stamp(event.at)}  {event.target}  {event.rule}  "
    detail = f"  {event.detail}" if event.detail else ""
    return Text.assemble(head, (label, _EVENT_STYLE.get(event.kind, "")), detail)


def print_line(line: Text | str, *, console: Console | None = None) -> None:
    """One line on stdout (never wrapped), flushed: ``watch | grep`` sees it at once."""
    out = console or stdout_console(highlight=False)
    out.print(line, soft_wrap=True)
    out.file.flush()


class TerminalNotifier:
    """``Notifier`` that prints each event as one line (colours only on a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        """``console``: where the lines go (default: stdout)."""
        self._console = console or stdout_console(highlight=False)

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        """Print the event's line; nothing is posted, so there is no message to keep."""
        print_line(event_line(event), console=self._console)
        return Delivered()


def watch_header(
    *, targets: Mapping[str, Target], rules: RuleBook, interval: float, repeat_interval: float
) -> str:
    """The line ``watch`` starts with: what it watches, how often, each rule's ``for``."""
    watched = ", ".join(f"{t.name} ({t.safe_url})" for t in targets.values())
    fors = ", ".join(
        f"{r.id} for {prometheus_duration(r.config.for_seconds)}" for r in rules.enabled
    )
    reminders = f"reminders every {prometheus_duration(repeat_interval)}" if repeat_interval else ""
    parts = [f"watching {watched} every {interval:g}s", f"rules: {fors or 'none enabled'}"]
    return "; ".join([*parts, *([reminders] if reminders else []), "Ctrl-C stops"])
