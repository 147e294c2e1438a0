"""Turn database exceptions into one-line, secret-free AuditUnavailable errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.audit.engine import WRITE_LOCK
from bot.audit.scrub import scrub_text
from bot.errors import AuditUnavailable

_MAX_REASON = 200


def describe(err: BaseException) -> str:
    """The first line of the driver's message, URL passwords redacted, bounded length."""
    cause: BaseException = err
    if isinstance(err, DBAPIError) and err.orig is not None:
        cause = err.orig
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return scrub_text(text)[:_MAX_REASON]


def unavailable(engine: Engine, err: BaseException, *, doing: str) -> AuditUnavailable:
    """An AuditUnavailable naming the database (password hidden) and the reason."""
    where = engine.url.render_as_string(hide_password=True)
    return AuditUnavailable(f"audit database {where} unavailable while {doing}: {describe(err)}")


DB_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)


@contextmanager
def write_transaction(engine: Engine, *, doing: str) -> Iterator[Connection]:
    """One write transaction on ``engine``; a database error is AuditUnavailable (``doing``
    names what was being done). SQLite takes its write lock at BEGIN (waiting on the busy
    timeout), so concurrent writers queue instead of failing with "database is locked"."""
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_LOCK: True})
            with conn.begin():
                yield conn
    except DB_ERRORS as err:
        raise unavailable(engine, err, doing=doing) from None


def read_rows(engine: Engine, query: Executable, *, doing: str) -> list[Row[Any]]:
    """Every row of ``query``; a database error is AuditUnavailable."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())  # fetchall: cheaper than row by row
    except DB_ERRORS as err:
        raise unavailable(engine, err, doing=doing) from None
