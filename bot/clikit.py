"""What each ``redis-mem`` command does, kept apart from argument parsing in ``bot.cli``.

Each function returns the process exit code; expected failures raise RedisMemError
subclasses, which ``bot.cli.main`` prints as one line with exit code 2.

Each command imports what it uses when it runs (start-up time: ``diagnose --json``
never loads rich, ``capacity`` never loads Redis; docs/decisions/runtime.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from bot.config import Settings
from bot.errors import AuditUnavailable, ConfigError, RedisMemError, UsageError

if TYPE_CHECKING:
    from bot.diagnosis.model import Diagnosis
    from bot.redisinfo.snapshot import ProgressFn

EXIT_OK, EXIT_CRITICAL = 0, 1


def print_json(data: dict[str, Any] | list[Any]) -> None:
    """``--json`` output: indented, one document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def warn(message: str) -> None:
    """A ``redis-mem: warning: ...`` line on stderr (the command still answers)."""
    from rich.console import Console

    Console(stderr=True).print(
        f"redis-mem: warning: {message}", markup=False, highlight=False, soft_wrap=True
    )


@contextmanager
def stdout_guard() -> Iterator[None]:
    """Turn a reader closing stdout early (``| head``) into a one-line error, exit 2.

    Below click on purpose: click (and rich) turn a BrokenPipeError into exit 1, which
    is "critical, page someone" for redis-mem.
    """
    try:
        yield
    except BrokenPipeError:
        # (Redis, database and Slack clients wrap their sockets' errors: this is stdout.)
        # The interpreter flushes stdout again at exit, which would fail once more.
        with suppress(OSError, ValueError):  # no file descriptor (in-process tests)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        raise RedisMemError("stdout was closed before the output ended (broken pipe)") from None


def _exit_code(diagnosis: Diagnosis) -> int:
    from bot.diagnosis.model import Severity

    return EXIT_CRITICAL if diagnosis.severity is Severity.CRITICAL else EXIT_OK


@contextmanager
def _scan_progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A progress bar on stderr for ``--full`` scans (only when stderr is a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("scan", total=None)

        def update(scanned: int, total: int) -> None:
            progress.update(task, completed=scanned, total=max(total, scanned))

        yield update


def record_cli(
    settings: Settings,
    *,
    action: str,
    outcome: str,
    summary: str,
    target: str | None = None,
    parameters: dict[str, Any] | None = None,
    quiet: bool = False,
) -> None:
    """Write one audit row for a CLI command (actor ``cli:<os user>``).

    Read-only commands answer even when the trail is down: then one warning line
    goes to stderr (none when ``quiet``, used for rejected input whose own error
    line must stay the only one).
    """
    from bot.audit.entry import AuditEntry
    from bot.audit.scrub import scrub_text
    from bot.cli_audit import cli_actor
    from bot.wiring import record_entry

    entry = AuditEntry(
        actor=cli_actor(),
        source="cli",
        action=action,
        outcome=outcome,
        summary=scrub_text(summary),
        target=target,
        parameters=parameters or {},
    )
    try:
        record_entry(settings, entry)
    except (AuditUnavailable, ConfigError) as err:
        if not quiet:
            warn(f"audit trail unavailable: {err.message}")


def diagnosis_summary(diagnosis: Diagnosis) -> str:
    """``critical: ttl-leak, eviction-policy`` (what the audit row says)."""
    ids = ", ".join(s.id for s in diagnosis.scenarios) or "no scenario"
    return f"{diagnosis.severity.value}: {ids}"


def diagnose_command(
    *, redis_url: str | None, target: str | None, full: bool, as_json: bool
) -> int:
    """``redis-mem diagnose``: exit 1 when critical."""
    from bot.redisinfo.client import check_url
    from bot.wiring import diagnosis_service, targets_for

    settings = Settings.load()
    params: dict[str, Any] = {"full": full, "target": target, "redis_url": redis_url}
    try:
        if redis_url is not None:  # the same one line a connection would give, before any work
            check_url(redis_url)
        targets = targets_for(settings, redis_url=redis_url, name=target)
        service = diagnosis_service(settings, targets)
        with _scan_progress(full) as progress:
            diagnosis = service.diagnose(target, full=full, progress=progress)
    except RedisMemError as err:
        record_cli(
            settings,
            action="command.diagnose",
            outcome="error",
            summary=err.message,
            target=target,
            parameters=params,
            quiet=True,
        )
        raise
    record_cli(
        settings,
        action="command.diagnose",
        outcome=diagnosis.severity.value,
        summary=diagnosis_summary(diagnosis),
        target=diagnosis.target,
        parameters=params,
    )
    if as_json:
        from bot.diagnosis.serialize import diagnosis_to_dict

        print_json(diagnosis_to_dict(diagnosis))
    else:
        from bot.presenters.terminal import print_renderable, render_diagnosis

        print_renderable(render_diagnosis(diagnosis))
    return _exit_code(diagnosis)


def capacity_command(
    *, users: int, sessions_per_user: int, session_size: str, as_json: bool
) -> int:
    """``redis-mem capacity``: the runbook formula."""
    from bot.diagnosis.capacity import plan_capacity
    from bot.units import parse_size

    settings = Settings.load()
    params: dict[str, Any] = {
        "users": users,
        "sessions_per_user": sessions_per_user,
        "session_size": session_size,
    }
    try:
        plan = plan_capacity(
            users=users, sessions_per_user=sessions_per_user, session_size=parse_size(session_size)
        )
    except UsageError as err:
        record_cli(
            settings,
            action="command.capacity",
            outcome="rejected",
            summary=err.message,
            parameters=params,
            quiet=True,
        )
        raise
    record_cli(
        settings,
        action="command.capacity",
        outcome="ok",
        parameters=params,
        summary=f"{plan.sessions:,} sessions x {plan.session_size} B: {plan.maxmemory_directive}",
    )
    if as_json:
        from bot.diagnosis.serialize import capacity_to_dict

        print_json(capacity_to_dict(plan))
    else:
        from bot.presenters.terminal import print_renderable, render_capacity

        print_renderable(render_capacity(plan))
    return EXIT_OK


def serve_command() -> int:
    """``redis-mem serve``: the Slack bot until interrupted."""
    from bot.wiring_serve import run_bot

    run_bot(Settings.load())
    return EXIT_OK
