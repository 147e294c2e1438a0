"""``redis-mem audit ...`` and ``redis-mem db ...``: read, verify, export, migrate.

Settings are read when a command runs, never at import; the engine and the store come
from ``bot.wiring`` (``audit_engine``, ``audit_reader``). Every expected failure is one
line on stderr and exit 2; ``audit verify`` exits 1 on a broken chain, or one that no
longer holds an ``--anchor`` (a head copied from a channel report).

``bot.cli`` mounts these sub-apps for every command line (``--help`` lists them), so
this module imports typer only: SQLAlchemy and rich's tables load when a command runs.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, TextIO, TypeVar

import typer

from bot.errors import RedisMemError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")

audit_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def cli_actor() -> str:
    """The actor recorded for CLI actions: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary uids)
        return "cli:unknown"


def _run(action: Callable[[], T]) -> T:
    """Run a command body; a RedisMemError becomes one line on stderr and exit 2."""
    from bot.audit.scrub import scrub_text
    from bot.clikit import stdout_guard

    try:
        with stdout_guard():
            return action()
    except RedisMemError as err:
        # Scrubbed: a message may repeat what was typed (--since, a revision, a path).
        sys.stderr.write(f"redis-mem: error: {' '.join(scrub_text(err.message).split())}\n")
        raise typer.Exit(EXIT_USAGE) from None


@audit_app.command("list")
def list_command(
    since: Annotated[str | None, typer.Option(help="ISO date/time or an age: 30m, 1h, 2d.")] = None,
    actor: Annotated[str | None, typer.Option(help="Slack user id, scheduler, cli:<user>.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, or a prefix ending in . or *")] = None,
    target: Annotated[str | None, typer.Option(help="Target name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the newest audit entries, newest first."""

    def body() -> None:
        from rich.table import Table
        from rich.text import Text

        from bot.audit.since import parse_since
        from bot.config import Settings
        from bot.presenters.terminal import stdout_console
        from bot.wiring import audit_reader

        when = parse_since(since) if since is not None else None  # '' is an error, not "all"
        with audit_reader(Settings.load()) as store:
            entries = store.list_entries(
                since=when, actor=actor, action=action, target=target, limit=limit
            )
        if as_json:
            sys.stdout.write(json.dumps([e.as_dict() for e in entries], indent=2) + "\n")
            return
        table = Table()
        for name in ("seq", "when (UTC)", "actor", "action", "target", "outcome"):
            table.add_column(name, no_wrap=True)  # ids must stay greppable
        table.add_column("summary", overflow="fold", min_width=20)
        for e in entries:
            who = f"{e.actor} ({e.actor_name})" if e.actor_name else e.actor
            cells = (str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), who, e.action,
                     e.target or "", e.outcome, e.summary)  # fmt: skip
            # Text, not str: a "[/x]" typed by a user is data, not rich markup.
            table.add_row(*(Text(cell) for cell in cells))
        # Piped output keeps whole lines (for grep); a terminal wraps the summary.
        stdout_console(width=None if sys.stdout.isatty() else 1000).print(table)

    _run(body)


@audit_app.command("verify")
def verify_command(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes (big trails).")] = min(
        4, os.cpu_count() or 1
    ),
    anchors: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head copied from a channel report; repeat for several (all must match).",
        ),
    ] = None,
) -> None:
    """Walk the hash chain; exit 0 when intact (and every --anchor matches), 1 naming the
    first bad row or anchor."""

    def body() -> int:
        from bot.audit.verify import check_anchors, parse_anchor, verify_chain
        from bot.config import Settings
        from bot.wiring import audit_engine

        # Parsed before the database is opened: a mistyped anchor is exit 2, not "broken".
        wanted = [parse_anchor(text) for text in anchors or ()]
        with audit_engine(Settings.load()) as engine:
            result = verify_chain(engine, workers=workers)
            if not result.ok or not wanted:
                (sys.stdout if result.ok else sys.stderr).write(result.describe() + "\n")
                return EXIT_OK if result.ok else EXIT_BROKEN
            anchored = check_anchors(engine, wanted, last_seq=result.last_seq)
        if not anchored.ok:
            sys.stderr.write(anchored.describe() + "\n")
            return EXIT_BROKEN
        sys.stdout.write(f"{result.describe()}\n{anchored.describe()}\n")
        return EXIT_OK

    raise typer.Exit(_run(body))


@audit_app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="ISO date/time or an age: 30m, 1h, 2d.")] = None,
    # A str, not a Path: errors name the file as typed (Path("redis://:pw@h") would
    # read "redis:/:pw@h", which the scrubber no longer sees as a URL with a password).
    output: Annotated[str | None, typer.Option("--output", "-o", help="File, else stdout.")] = None,
) -> None:
    """Stream every entry, oldest first, as JSON lines or CSV (constant memory)."""

    def body() -> None:
        from bot.audit.export import FORMATS, write_csv, write_jsonl
        from bot.audit.since import parse_since
        from bot.config import Settings
        from bot.limits import echo
        from bot.wiring import audit_reader

        if fmt not in FORMATS:
            raise UsageError(f"--format '{echo(fmt)}': expected one of {', '.join(FORMATS)}")
        when = parse_since(since) if since is not None else None  # '' is an error, not "all"
        writer = write_jsonl if fmt == "jsonl" else write_csv
        with audit_reader(Settings.load()) as store, _open(output) as out:
            writer(store.iter_entries(since=when), out)

    _run(body)


@contextmanager
def _open(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    if not path:
        raise UsageError("--output '': expected a file name")
    try:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    try:
        with handle:
            yield handle
    except OSError as err:  # a full disk (/dev/full) fails on write or on close
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


@db_app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the audit database migrations to DATABASE_URL."""

    def body() -> None:
        from bot.audit.migrate import current_revision, upgrade
        from bot.config import Settings
        from bot.datadir import ensure_default_database_dir
        from bot.wiring import audit_engine

        settings = Settings.load()
        ensure_default_database_dir(settings.database_url)  # its first write
        with audit_engine(settings, read_only=False) as engine:
            upgrade(engine, revision=revision)
            sys.stdout.write(f"audit database at revision {current_revision(engine)}\n")

    _run(body)


@db_app.command("current")
def current_command() -> None:
    """Print where the audit database is, its revision and the code's head."""

    def body() -> None:
        from bot.audit.migrate import check_exists, current_revision, head_revision
        from bot.config import Settings
        from bot.wiring import audit_engine

        with audit_engine(Settings.load(), read_only=False) as engine:
            check_exists(engine)  # reading the revision must not create the file
            sys.stdout.write(f"audit database {_where(engine)}\n")
            current = current_revision(engine)
        head = head_revision()
        state = "up to date" if current == head else "behind: run `redis-mem db upgrade`"
        sys.stdout.write(f"database {current or 'none'}, code head {head} ({state})\n")

    _run(body)


def _where(engine: Engine) -> str:
    """The database as a user can find it: a SQLite file's path, else the URL (no password)."""
    url, database = engine.url, engine.url.database or ""
    if url.get_backend_name() == "sqlite" and database and not url.query.get("uri"):
        return database if database == ":memory:" else os.path.abspath(database)
    return url.render_as_string(hide_password=True)
