"""Turn database exceptions into one-line, secret-free AuditUnavailable errors."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

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
