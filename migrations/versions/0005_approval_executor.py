"""Approval requests: who is executing them, whether it is alive, and a cancel flag.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``executor_host`` / ``executor_pid`` / ``executor_boot``: the process that claimed the
request (POD_NAME or the hostname, its pid, and a random id per process start);
``heartbeat_at``: refreshed while it executes, so another process can tell a live
execution from one whose process is gone. ``progress_changed`` / ``progress_scanned``:
the counts of the last stored progress line (what an interrupted request reports).
``cancel_requested_by`` / ``cancel_requested_at``: a Cancel click on a running key
action, which the execution reads between batches. Existing rows keep NULLs: an
EXECUTING row from before this revision has no executor, so only the old one-hour
rule (``executing_limit``) ends it.

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "executor_host",
    "executor_pid",
    "executor_boot",
    "heartbeat_at",
    "progress_changed",
    "progress_scanned",
    "cancel_requested_by",
    "cancel_requested_at",
)


def upgrade() -> None:
    """Add the columns (all nullable: nothing to backfill)."""
    with op.batch_alter_table("approval_requests") as batch:
        batch.add_column(sa.Column("executor_host", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("executor_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("executor_boot", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("progress_changed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("progress_scanned", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancel_requested_by", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Drop the columns (who ran a request, and its cancel flag, are lost)."""
    with op.batch_alter_table("approval_requests") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
