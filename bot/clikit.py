"""What each ``redis-mem`` command does, kept apart from argument parsing in ``bot.cli``.

Each function returns the process exit code; expected failures raise RedisMemError
subclasses, which ``bot.cli.main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.config import Settings
from bot.diagnosis.model import Diagnosis, Severity
from bot.errors import UsageError
from bot.redisinfo.snapshot import ProgressFn

EXIT_OK, EXIT_CRITICAL = 0, 1


def _print_json(data: dict[str, Any] | list[Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _exit_code(diagnosis: Diagnosis) -> int:
    return EXIT_CRITICAL if diagnosis.severity is Severity.CRITICAL else EXIT_OK


@contextmanager
def _scan_progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A progress bar on stderr for ``--full`` scans (only when stderr is a terminal)."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("scan", total=None)

        def update(scanned: int, total: int) -> None:
            progress.update(task, completed=scanned, total=max(total, scanned))

        yield update


def diagnose_command(*, redis_url: str | None, target: str | None, full: bool, as_json: bool) -> int:
    """``redis-mem diagnose``: exit 1 when critical."""
    from bot.diagnosis.serialize import diagnosis_to_dict
    from bot.presenters.terminal import print_renderable, render_diagnosis
    from bot.wiring import diagnosis_service, targets_for

    settings = Settings.load()
    try:
        targets = targets_for(settings, redis_url=redis_url, name=target)
    except ValidationError as err:
        raise UsageError(f"--redis-url: {err.errors()[0]['msg']}") from None
    service = diagnosis_service(settings, targets)
    with _scan_progress(full) as progress:
        diagnosis = service.diagnose(target, full=full, progress=progress)
    if as_json:
        _print_json(diagnosis_to_dict(diagnosis))
    else:
        print_renderable(render_diagnosis(diagnosis))
    return _exit_code(diagnosis)


def capacity_command(*, users: int, sessions_per_user: int, session_size: str, as_json: bool) -> int:
    """``redis-mem capacity``: the runbook formula."""
    from bot.diagnosis.capacity import plan_capacity
    from bot.diagnosis.serialize import capacity_to_dict
    from bot.presenters.terminal import print_renderable, render_capacity
    from bot.units import parse_size

    plan = plan_capacity(
        users=users, sessions_per_user=sessions_per_user, session_size=parse_size(session_size)
    )
    if as_json:
        _print_json(capacity_to_dict(plan))
    else:
        print_renderable(render_capacity(plan))
    return EXIT_OK


def demo_command(*, as_json: bool) -> int:
    """``redis-mem demo``: each scenario built for real in a throwaway redis-server, diagnosed."""
    from bot.demo import run_demo
    from bot.diagnosis.serialize import diagnosis_to_dict
    from bot.presenters.terminal import print_renderable, render_diagnosis

    settings = Settings.load()
    results: list[dict[str, Any]] = []

    def show(scenario: str, diagnosis: Diagnosis) -> None:
        if as_json:
            results.append({"demo_scenario": scenario, **diagnosis_to_dict(diagnosis)})
            return
        Console().rule(f"demo store: {scenario}")
        print_renderable(render_diagnosis(diagnosis))

    run_demo(on_result=show, thresholds=settings.thresholds)
    if as_json:
        _print_json(results)
    return EXIT_OK


def serve_command() -> int:
    """``redis-mem serve``: the Slack bot until interrupted."""
    from bot.serve import run_bot

    run_bot(Settings.load())
    return EXIT_OK
