"""Alembic environment for the audit database.

Migrations run only through ``bot.audit.migrate`` (``redis-mem db upgrade``, the
bot's start-up, the tests), which hands over an open connection in
``config.attributes["connection"]``: there is no alembic.ini, no URL here and
no offline (``--sql``) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from bot.alertmanager import tables as _alertmanager_tables  # noqa: F401  (registers its table)
from bot.approvals import table as _approvals_table  # noqa: F401  (registers its table)
from bot.audit.models import Base
from bot.health import tables as _health_tables  # noqa: F401  (registers its tables)

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    """Migrate over the caller's connection (the caller commits)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run the audit migrations with `redis-mem db upgrade` (bot.audit.migrate)")
run_migrations(_connection)
