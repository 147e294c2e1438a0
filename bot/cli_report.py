"""What ``redis-mem report`` does, kept apart from argument parsing in ``bot.cli``.

The same report the channel gets (``bot.reports``): a table, or ``--json`` (keys are a
contract: ``bot.reports.serialize``), and the chart where ``--png`` says. Every bad
input (a window, a target, a file in a missing folder) is one line and exit 2, checked
before anything is read where it can be. The audit trail is opened read-only: a trail
that cannot be read is neither created nor written (as ``redis-mem check``).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.clikit import EXIT_OK, print_json, record_cli
from bot.config import Settings
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.reports.model import Report

NO_CHART = "no samples in this window: no chart written"


def report_command(*, target: str | None, since: str, as_json: bool, png: str | None) -> int:
    """``redis-mem report``: the report over the last ``since`` (exit 0; 2 for bad input)."""
    from bot.reports.window import parse_window

    window = parse_window(since, name="--since")
    if png is not None:
        check_png_path(png)
    settings = Settings.load()
    report = _build(settings, window=window, target=target, since=since)
    note = None if png is None else _write_chart(report, png)
    _show(report, as_json=as_json)
    if note is not None:  # stdout holds the JSON document alone; a table has it below
        (sys.stderr if as_json else sys.stdout).write(note + "\n")
    return EXIT_OK


def _build(settings: Settings, *, window: timedelta, target: str | None, since: str) -> Report:
    """The report, audited once the trail could be opened (a refused target too)."""
    from bot.wiring_reports import report_reader

    params: dict[str, Any] = {"target": target, "since": since}
    opened = False
    try:
        with report_reader(settings) as service:
            opened = True
            report = service.build(window=window, target=target)
    except UsageError as err:  # an unknown target: refused before any read
        if opened:
            _record(settings, "rejected", err.message, target=target, params=params)
        raise
    names = ", ".join(t.target for t in report.targets) or "no target"
    _record(settings, "ok", f"report over {since}: {names}", target=target, params=params)
    return report


def _record(
    settings: Settings, outcome: str, summary: str, *, target: str | None, params: dict[str, Any]
) -> None:
    record_cli(
        settings,
        action="command.report",
        outcome=outcome,
        summary=summary,
        target=target,
        parameters=params,
        quiet=outcome != "ok",  # a refusal's own error line stays the only one
    )


def check_png_path(path: str) -> None:
    """UsageError unless ``path`` names a file that can be created: its folder exists."""
    if not path:
        raise UsageError("--png '': expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--png {path}: is a directory, expected a file name")
    if not os.path.isdir(folder):
        # The path as typed, never normalized: abspath("redis://:pw@h") reads
        # "redis:/:pw@h", which the scrubber no longer sees as a URL with a password.
        raise UsageError(f"--png {path}: its directory does not exist")


def _write_chart(report: Report, path: str) -> str:
    """Write the PNG, or nothing when there are no samples; the line that says which."""
    from bot.reports.chart import render_png

    png = render_png(report)
    if png is None:
        return NO_CHART
    try:
        with open(path, "wb") as handle:
            handle.write(png)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    return f"chart written to {path} ({len(png):,} bytes)"


def _show(report: Report, *, as_json: bool) -> None:
    if as_json:
        from bot.reports.serialize import report_json

        print_json(report_json(report))
        return
    from bot.presenters.report import print_report

    print_report(report)
