"""Render a Diagnosis for a human at a terminal: a header, a gauge, tables, not a dump."""

from __future__ import annotations

import errno
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.diagnosis.capacity import CapacityPlan
from bot.diagnosis.model import Check, Diagnosis, Severity
from bot.units import format_bytes

SEVERITY_STYLE = {Severity.OK: "green", Severity.WARNING: "yellow", Severity.CRITICAL: "bold red"}
_MARK = {Severity.OK: "OK", Severity.WARNING: "WARN", Severity.CRITICAL: "CRIT"}


def gauge(ratio: float | None, width: int = 30) -> str:
    """A text bar like ``[#########-----] 62%``; ``no limit`` when there is no ratio."""
    if ratio is None:
        return "[" + "?" * width + "] no limit"
    filled = min(width, round(ratio * width))
    return "[" + "#" * filled + "-" * (width - filled) + f"] {ratio:.0%}"


def render_diagnosis(diagnosis: Diagnosis) -> RenderableType:
    """Everything a paged engineer reads first, in the order they read it."""
    parts: list[RenderableType] = [
        _header(diagnosis),
    ]
    if diagnosis.shards:  # a cluster: which shard is worst before what the whole says
        parts.append(_shards_table(diagnosis))
    parts.append(_checks_table(diagnosis.checks))
    if diagnosis.scenarios:
        parts.append(_scenarios_table(diagnosis))
    else:
        parts.append(Text("No runbook scenario matches: nothing to fix.", style="green"))
    if diagnosis.findings:
        parts.append(_findings_table(diagnosis))
    if diagnosis.recommended_actions:
        parts.append(Text("Recommended actions: " + ", ".join(diagnosis.recommended_actions)))
    return Group(*parts)


def _header(d: Diagnosis) -> Panel:
    style = SEVERITY_STYLE[d.severity]
    used = format_bytes(d.used_memory)
    amount = f"{used} of {format_bytes(d.maxmemory)}" if d.maxmemory else f"{used} used"
    lines = [
        Text.assemble(("Memory ", "bold"), gauge(d.usage_ratio), f"  {amount}"),
        Text(
            f"policy {d.maxmemory_policy} ({d.policy_source})   evicted {d.evicted_keys:,}   "
            f"fragmentation {d.mem_fragmentation_ratio:.2f}   keys {d.dbsize:,}   "
            f"sessions ~{d.session_keys:,} ({d.sample_mode})"
        ),
    ]
    if d.primary_label:  # a sentinel target: which node this diagnosis read
        lines.append(Text(d.primary_label))
    title = f"{d.severity.value.upper()}  {d.target}  (Redis {d.redis_version or '?'})"
    return Panel(Group(*lines), title=title, title_align="left", border_style=style)


def _shards_table(d: Diagnosis) -> Table:
    table = Table(title="Shards (worst first)", title_justify="left", expand=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Shard", no_wrap=True)
    table.add_column("Primary", no_wrap=True)
    table.add_column("Memory", no_wrap=True)
    table.add_column("Used / max", no_wrap=True)
    table.add_column("Keys", justify="right", no_wrap=True)
    table.add_column("Scenarios", min_width=24)
    for shard in d.shards:
        status = Text(_MARK[shard.severity], style=SEVERITY_STYLE[shard.severity])
        one = shard.diagnosis
        if one is None:
            unread = Text(f"unreadable: {shard.error}", style="bold red")
            table.add_row(status, shard.name, shard.shard.primary, "-", "-", "-", unread)
            continue
        limit = format_bytes(one.maxmemory) if one.maxmemory else "no limit"
        table.add_row(
            status,
            shard.name,
            shard.shard.primary,
            Text(gauge(one.usage_ratio, width=10)),  # "[###--]" is no markup tag
            f"{format_bytes(one.used_memory)} / {limit}",
            f"{one.dbsize:,}",
            ", ".join(shard.scenario_ids) or "-",
        )
    return table


# Summaries, evidence and findings quote key names and Redis text: they go in as Text,
# never as strings, so a key named "session:[/bold]" is shown, not parsed as markup.
def _checks_table(checks: tuple[Check, ...]) -> Table:
    table = Table(title="Runbook diagnosis", title_justify="left", expand=True)
    table.add_column("#", justify="right", width=2)
    table.add_column("Check", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Result")
    for check in checks:
        status = Text(_MARK[check.status], style=SEVERITY_STYLE[check.status])
        table.add_row(str(check.step), check.title, status, Text(check.summary))
    return table


def _scenarios_table(d: Diagnosis) -> Table:
    table = Table(title="Runbook scenarios", title_justify="left", expand=True, show_lines=True)
    table.add_column("Scenario", no_wrap=True)
    table.add_column("Evidence")
    table.add_column("Actions", no_wrap=True)
    for scenario in d.scenarios:
        name = Text.assemble((scenario.id, "bold"), "\n", (scenario.runbook, "dim"))
        evidence = "\n".join(f"- {line}" for line in scenario.evidence)
        table.add_row(name, Text(evidence), "\n".join(scenario.recommended_actions))
    return table


def _findings_table(d: Diagnosis) -> Table:
    table = Table(title="Also noticed", title_justify="left", expand=True, show_header=False)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Finding")
    for finding in d.findings:
        mark = Text(_MARK[finding.severity], style=SEVERITY_STYLE[finding.severity])
        table.add_row(mark, Text(finding.message))
    return table


class StdoutConsole(Console):
    """A Console on stdout whose reader may stop reading (``redis-mem audit list | head``).

    rich's own answer to a broken pipe is ``SystemExit(1)``, which is "critical, page
    someone" for redis-mem: this one raises the BrokenPipeError for the CLI to report
    (``bot.clikit.stdout_guard``).
    """

    def on_broken_pipe(self) -> None:
        """Print nothing more; let the caller decide the exit code."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of stdout closed it")


def stdout_console(**options: Any) -> Console:
    """The Console every command prints its output with (``options``: rich's)."""
    return StdoutConsole(**options)


def print_renderable(renderable: RenderableType, *, console: Console | None = None) -> None:
    """Print to stdout (wide enough for the tables even when piped)."""
    if console is None:
        console = stdout_console()
        if not console.is_terminal:
            console.width = 120
    console.print(renderable)


def render_capacity(plan: CapacityPlan) -> RenderableType:
    """The runbook formula, each step shown, then what to configure."""
    table = Table(title="Capacity plan (runbook formula)", title_justify="left")
    table.add_column("Step")
    table.add_column("Value", justify="right")
    if plan.users is not None and plan.sessions_per_user is not None:
        table.add_row(
            "sessions = users x sessions/user",
            f"{plan.users:,} x {plan.sessions_per_user} = {plan.sessions:,}",
        )
    else:
        table.add_row("sessions (measured)", f"{plan.sessions:,}")
    table.add_row("session size", format_bytes(plan.session_size))
    table.add_row(
        f"required = sessions x size x {plan.overhead}", format_bytes(plan.required_bytes)
    )
    table.add_row(
        "with 2-3x safety margin",
        f"{format_bytes(plan.recommended_min_bytes)} - {format_bytes(plan.recommended_max_bytes)}",
    )
    table.add_row("suggested maxmemory", plan.maxmemory_directive)
    table.add_row(
        "pod memory request / limit (1.5x)", f"{plan.pod_memory_request} / {plan.pod_memory_limit}"
    )
    if plan.current_maxmemory is not None:
        now = format_bytes(plan.current_maxmemory) if plan.current_maxmemory else "no limit"
        verdict = "enough" if plan.current_is_enough else "too small"
        table.add_row("current maxmemory", f"{now} ({verdict})")
    return table
