"""The ``redis-mem`` command: the terminal face of the same services the Slack bot uses.

Exit codes (a contract, see DESIGN.md): 0 ok; 1 the check found a problem worth paging
for (critical); 2 usage or configuration error, one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Collection
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from bot.audit.scrub import scrub_text
from bot.errors import RedisMemError, UsageError

EXIT_OK, EXIT_CRITICAL, EXIT_USAGE = 0, 1, 2

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
    return Console(stderr=True)


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

    raise typer.Exit(
        diagnose_command(redis_url=redis_url, target=target, full=full, as_json=as_json)
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

    raise typer.Exit(
        capacity_command(
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

    raise typer.Exit(demo_command(as_json=as_json))


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

    raise typer.Exit(check_command(target=target, as_json=as_json))


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

    raise typer.Exit(watch_command(target=target, rounds=rounds))


@app.command()
def serve() -> None:
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT)."""
    from bot.clikit import serve_command

    raise typer.Exit(serve_command())


def _mount_subapps() -> None:
    from bot.cli_audit import audit_app, db_app

    app.add_typer(audit_app, name="audit", help="Read and verify the audit trail.")
    app.add_typer(db_app, name="db", help="Manage the audit database schema.")


def _fail(message: str) -> NoReturn:
    _err_console().print(
        f"redis-mem: error: {message}", markup=False, highlight=False, soft_wrap=True
    )
    sys.exit(EXIT_USAGE)


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; turns every expected error into one line and exit 2."""
    _mount_subapps()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="redis-mem", standalone_mode=False)
    except typer.Abort:
        _fail("aborted")
    except typer.TyperException as err:  # typer's own click: usage errors, bad parameters
        message = scrub_text(_usage_message(err))  # it may echo a mistyped URL with a password
        known = getattr(command, "commands", {})
        _record_rejection(argv if argv is not None else sys.argv[1:], message, known=known)
        _fail(message)
    except RedisMemError as err:
        _fail(err.message)
    except KeyboardInterrupt:
        _fail("interrupted")
    sys.exit(code if isinstance(code, int) else EXIT_OK)


__all__ = ["EXIT_CRITICAL", "EXIT_OK", "EXIT_USAGE", "UsageError", "app", "main"]
