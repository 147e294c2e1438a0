"""Apply and check Alembic migrations of the audit database, from any working directory.

Alembic is imported only to migrate (or to explain why a database is behind): every CLI
command checks the schema, and Alembic's machinery costs more start-up time than most
commands' work. The check reads ``alembic_version`` with one plain SELECT and compares
it with ``HEAD_REVISION`` (``bot.audit.revision``; docs/decisions/runtime.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from bot.audit.engine import make_engine
from bot.audit.failures import DB_ERRORS, unavailable
from bot.audit.revision import HEAD_REVISION, VERSION_TABLE
from bot.errors import ConfigError, UsageError
from bot.limits import echo

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_ENV = "REDIS_MEM_MIGRATIONS_DIR"


def migrations_dir() -> Path:
    """``$REDIS_MEM_MIGRATIONS_DIR``, else the top-level ``migrations/`` beside ``bot/``."""
    configured = os.environ.get(MIGRATIONS_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise ConfigError(
            f"audit migrations not found at {path} (set {MIGRATIONS_ENV} to the migrations folder)"
        )
    return path


def alembic_config(*, connection: Connection | None = None) -> Config:
    """An Alembic Config built in code: no alembic.ini, no dependence on the cwd."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code ships, as Alembic reads it from the migrations folder."""
    head = _scripts().get_current_head()
    if head is None:
        raise ConfigError("audit migrations folder has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated); AuditUnavailable if unreachable.

    A plain SELECT of ``alembic_version``, as Alembic's MigrationContext reads it, without
    importing Alembic. Several rows (branches, which we never make) read as None: never
    taken for the head, so they reach Alembic's own upgrade or the "behind" error.
    """
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
            versions = [str(version) for version in rows]
    except DB_ERRORS as err:
        raise unavailable(engine, err, doing="reading its migration revision") from None
    return versions[0] if len(versions) == 1 else None


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over the engine; UsageError for an unknown one.

    ``revision``: ``head``, ``+N`` (N steps forward) or a revision id the code ships.
    """
    from alembic import command

    revision = _checked_revision(revision, end="head", step="+")
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, *, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` removes every audit table).

    ``revision``: ``base``, ``-N`` (N steps back) or a revision id the code ships.
    """
    from alembic import command

    revision = _checked_revision(revision, end="base", step="-")
    _run(engine, lambda config: command.downgrade(config, revision))


# Alembic's own grammar (ranges, branch labels, "head+5", partial ids) is wider than any
# of our uses and fails inside alembic on some values: '' and 'head+5' with an
# AssertionError, '+<5,000 digits>' with a ValueError. We take three forms only.
_STEPS = re.compile(r"[1-9][0-9]{0,2}")


def _checked_revision(revision: str, *, end: str, step: str) -> str:
    """``revision`` when it is ``end``, ``<step>N`` or a shipped revision id; else UsageError."""
    known = sorted(script.revision for script in _scripts().walk_revisions())
    if revision == end or revision in known:
        return revision
    if revision.startswith(step) and _STEPS.fullmatch(revision[1:]):
        return revision
    raise UsageError(
        f"cannot migrate the audit database: unknown revision '{echo(revision)}':"
        f" expected {end}, {step}N"
        f" or one of {', '.join(known)}"
    )


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def prepare_database(url: str) -> None:
    """Before writing: migrate SQLite when behind; refuse a PostgreSQL behind head.

    At head (every run but the first after an upgrade) this is one SELECT, no Alembic.
    """
    engine = make_engine(url)
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
        if engine.dialect.name == "sqlite":
            upgrade(engine)
            return
        ensure_current(engine)
    finally:
        engine.dispose()


def check_readable(engine: Engine) -> None:
    """For read-only commands: never create nor migrate. ConfigError when a SQLite file is
    missing (a mistyped path must not read as an empty, intact trail) or the database is
    not at head; AuditUnavailable when it cannot be reached."""
    check_exists(engine)
    ensure_current(engine)


def check_exists(engine: Engine) -> None:
    """ConfigError when a SQLite database file is missing (opening it would create it)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "")
        if not url.query.get("uri") and not path.exists():
            raise ConfigError(f"audit database {path} does not exist")


def ensure_current(engine: Engine) -> None:
    """Raise ConfigError unless the database is at the head revision."""
    current = current_revision(engine)
    if current == HEAD_REVISION:
        return
    head = head_revision()  # Alembic's reading: for the message, and should the constant lag
    if current != head:
        raise ConfigError(
            f"audit database is at revision {current or 'none'}, code needs {head}: "
            "run `redis-mem db upgrade`"
        )


def _run(engine: Engine, step: Callable[[Config], object]) -> None:
    from alembic.util.exc import CommandError

    try:
        with engine.connect() as conn:
            step(alembic_config(connection=conn))
            conn.commit()
    except DB_ERRORS as err:
        raise unavailable(engine, err, doing="applying migrations") from None
    except CommandError as err:  # e.g. an unknown revision name
        message = " ".join(str(err).split())[:300]
        raise UsageError(f"cannot migrate the audit database: {message}") from None
