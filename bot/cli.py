"""The ``redis-mem`` command: the terminal face of the same services the Slack bot uses.

Exit codes (a contract, see docs/DESIGN.md): 0 ok; 1 the check found a problem worth paging
for (critical); 2 usage or configuration error, one line on stderr, never a traceback.
An unexpected exception (a bug) is also exit 2 and one line, ``internal error: ...``:
exit 1 must only ever mean "page someone". ``REDIS_MEM_DEBUG=1`` adds its traceback.

Start-up time is part of the contract of a command an engineer types mid-incident: this
module imports typer and nothing heavy. Each command imports its machinery when it runs
(``redis-mem --help`` never loads the settings, Redis, SQLAlchemy or Alembic; see
docs/decisions/runtime.md and bench/cli_start.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Annotated, NoReturn, cast

import typer

from bot.errors import RedisMemError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from typer.core import TyperGroup

EXIT_OK, EXIT_CRITICAL, EXIT_USAGE = 0, 1, 2
DEBUG_ENV = "REDIS_MEM_DEBUG"
# PATH_MAX: no file name, URL or filter is longer; checked before any parsing.
MAX_ARG_CHARS = 4_096
_INTERNAL_MESSAGE_CHARS = 300

app = typer.Typer(
    name="redis-mem",
    help="Diagnose and fix a Redis session store running out of memory (RedisHighMemoryUsage).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _err_console() -> Console:
    from rich.console import Console  # only to print an error

    return Console(stderr=True)


def _finish(command: Callable[[], int]) -> NoReturn:
    """Run a command's body and exit with its code (a closed stdout: one line, exit 2)."""
    from bot.clikit import stdout_guard

    with stdout_guard():
        code = command()
    raise typer.Exit(code)


@app.command()
def diagnose(
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", help="Redis to diagnose (overrides REDIS_URL and the targets file)."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Target name from REDIS_MEM_TARGETS_FILE.")
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Scan every session key (rate-limited) instead of sampling."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the runbook's six diagnosis steps and name the scenario at fault."""
    from bot.clikit import diagnose_command

    _finish(
        lambda: diagnose_command(redis_url=redis_url, target=target, full=full, as_json=as_json)
    )


@app.command()
def capacity(
    users: Annotated[int, typer.Option("--users", help="Peak concurrent users.")],
    sessions_per_user: Annotated[
        int, typer.Option("--sessions-per-user", help="Sessions per user.")
    ],
    session_size: Annotated[
        str, typer.Option("--session-size", help="Average session size: 2KB, 1.5MB, 2048.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """The runbook's capacity formula: users x sessions x size x 1.2, then a 2-3x margin."""
    from bot.clikit import capacity_command

    _finish(
        lambda: capacity_command(
            users=users,
            sessions_per_user=sessions_per_user,
            session_size=session_size,
            as_json=as_json,
        )
    )


@app.command()
def demo(
    as_json: JsonOpt = False,
) -> None:
    """Start throwaway redis-servers loaded with each runbook scenario and diagnose them,
    then walk one through an alert's life cycle (pending, firing, escalated, resolved)."""
    from bot.cli_health import demo_command

    _finish(lambda: demo_command(as_json=as_json))


HealthTargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="Only this target from REDIS_MEM_TARGETS_FILE."),
]


@app.command()
def check(target: HealthTargetOpt = None, as_json: JsonOpt = False) -> None:
    """Run the scheduled health check once now and print every rule's state.

    Exit 1 when a critical rule's condition holds now (before its `for` has passed).
    """
    from bot.cli_health import check_command

    _finish(lambda: check_command(target=target, as_json=as_json))


@app.command()
def watch(
    target: HealthTargetOpt = None,
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, help="Stop after this many check rounds."),
    ] = None,
) -> None:
    """Run the scheduled checks in the foreground, one line per alert event (Ctrl-C stops)."""
    from bot.cli_health import watch_command

    _finish(lambda: watch_command(target=target, rounds=rounds))


@app.command()
def report(
    target: HealthTargetOpt = None,
    since: Annotated[
        str, typer.Option("--since", help="The window, up to now: 30m, 24h, 7d (1m to 30d).")
    ] = "24h",
    as_json: JsonOpt = False,
    png: Annotated[
        str | None, typer.Option("--png", metavar="FILE", help="Also write the chart there.")
    ] = None,
) -> None:
    """The channel health report: memory, trend, forecast, evictions, alerts, fixes, the
    capacity plan and the audit head (the anchor `audit verify --anchor` takes)."""
    from bot.cli_report import report_command

    _finish(lambda: report_command(target=target, since=since, as_json=as_json, png=png))


@app.command()
def serve() -> None:
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT)."""
    from bot.clikit import serve_command

    _finish(serve_command)


@functools.cache
def _command() -> TyperGroup:
    """The click command of ``app`` with its sub-apps, built once per process.

    ``main`` may run many times in one process (the in-process tests do): mounting the
    sub-apps on every call would add them again each time.
    """
    from bot.cli_audit import audit_app, db_app

    app.add_typer(audit_app, name="audit", help="Read and verify the audit trail.")
    app.add_typer(db_app, name="db", help="Manage the audit database schema.")
    return cast("TyperGroup", typer.main.get_command(app))  # an app of commands is a group


def _fail(message: str) -> NoReturn:
    """One ``redis-mem: error:`` line on stderr, exit 2.

    Every message is scrubbed here, whatever raised it: it may repeat what the user
    typed (a URL with its password, ``password=x``, control characters).
    """
    from bot.audit.scrub import scrub_text  # it reads bot.config, which loads pydantic

    line = " ".join(scrub_text(message).split()) or "error"
    _err_console().print(
        f"redis-mem: error: {line}", markup=False, highlight=False, emoji=False, soft_wrap=True
    )
    sys.exit(EXIT_USAGE)


def _internal_error(err: Exception) -> NoReturn:
    """A bug reached the user: one line (the traceback only with REDIS_MEM_DEBUG=1), exit 2.

    Exit 2, not a code of its own: callers already read 2 as "redis-mem could not
    answer, see stderr", and 1 must only ever mean a critical finding.
    """
    from bot.audit.scrub import scrub_text

    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    if debug:  # scrubbed too: a traceback quotes source lines and arguments
        sys.stderr.write(scrub_text("".join(traceback.format_exception(err))))
    # Scrubbed whole, then cut: a cut made first could split a URL before its "@".
    text = " ".join(scrub_text(str(err)).split())
    if len(text) > _INTERNAL_MESSAGE_CHARS:
        text = text[:_INTERNAL_MESSAGE_CHARS] + "…"
    detail = f"{type(err).__name__}: {text}" if text else type(err).__name__
    hint = "" if debug else f" (run with {DEBUG_ENV}=1 for the traceback)"
    _fail(f"internal error: {detail}{hint}")


def _check_argv(argv: list[str]) -> None:
    """UsageError for an argument no command can take, before anything parses it."""
    for position, arg in enumerate(argv, start=1):
        if len(arg) > MAX_ARG_CHARS:
            raise UsageError(
                f"argument {position} is {len(arg):,} characters long (at most {MAX_ARG_CHARS:,})"
            )
        if not _is_text(arg):
            raise UsageError(f"argument {position} is not valid UTF-8 text")


def _is_text(arg: str) -> bool:
    """False for bytes that were not UTF-8 (decoded with surrogateescape) or a NUL.

    No real command line holds a NUL (exec cannot pass one); a caller in process can,
    and SQLite, file names and sockets all refuse it.
    """
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in arg


def _usage_message(err: typer.TyperException) -> str:
    format_message = getattr(err, "format_message", None)
    text = format_message() if callable(format_message) else str(err)
    return " ".join(str(text).split()) or "bad usage"


def _record_rejection(argv: list[str], message: str, *, known: Collection[str]) -> None:
    """Audit a refused command line (best effort: its own error line stays the only output).

    Only a known command name is kept: any other word may be a mistyped secret.
    """
    from bot.clikit import record_cli
    from bot.config import Settings

    words = [word for word in argv if not word.startswith("-")]
    name = words[0] if words and words[0] in known else "unknown"
    # No settings, no audit: the user still gets the one-line error.
    with contextlib.suppress(RedisMemError):
        record_cli(
            Settings.load(),
            action="command.rejected",
            outcome="rejected",
            summary=message,
            parameters={"command": name},
            quiet=True,
        )


def _reject(argv: list[str], message: str, *, known: Collection[str]) -> NoReturn:
    """A command line refused before any command ran: audited, then one line, exit 2."""
    from bot.audit.scrub import scrub_text

    message = scrub_text(message)  # it may echo a mistyped URL with a password
    _record_rejection(argv, message, known=known)
    _fail(message)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; every error becomes one line and exit 2."""
    if argv is None:  # this process is the command (a caller in process passes argv)
        _skip_last_collection()
    try:
        _main(list(argv if argv is not None else sys.argv[1:]))
    except Exception as err:  # last resort, for a bug: never a traceback, never exit 1
        _internal_error(err)


def _audit_epilog() -> str:
    """The end of ``--help``: where the audit trail is (computed per run, not at import)."""
    from bot.datadir import default_database_path

    # "\b": click leaves that paragraph unwrapped (it would break the path at a hyphen).
    return (
        "Audit trail: DATABASE_URL, else this SQLite file"
        " (`redis-mem db current` shows the one in use):"
        f"\n\n\b\n{default_database_path()}"
    )


def _skip_last_collection() -> None:
    """Spare the process the garbage collection the interpreter runs as it exits.

    It walks every object the imports made (SQLAlchemy, pydantic, typer) only to free
    memory the OS takes back anyway: 50-80 ms of a 450 ms ``diagnose`` here. Frozen
    objects are skipped by it; reference counting still closes files and sockets, and
    atexit handlers registered later still run first.
    """
    import atexit
    import gc

    atexit.register(gc.freeze)


def _main(args: list[str]) -> NoReturn:
    command = _command()
    command.epilog = _audit_epilog()
    known = command.commands
    try:
        _check_argv(args)
    except UsageError as err:
        _reject(args, err.message, known=known)
    try:
        code = command.main(args=args, prog_name="redis-mem", standalone_mode=False)
    except typer.Abort:
        _fail("aborted")
    except typer.TyperException as err:  # typer's own click: usage errors, bad parameters
        _reject(args, _usage_message(err), known=known)
    except RedisMemError as err:
        _fail(err.message)
    except KeyboardInterrupt:
        _fail("interrupted")
    sys.exit(code if isinstance(code, int) else EXIT_OK)


__all__ = ["EXIT_CRITICAL", "EXIT_OK", "EXIT_USAGE", "UsageError", "app", "main"]
