"""Approval requests: the requester's workspace, and what their Slack message last showed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

``team``: the Slack team id the request was made from; clicks from another team are
refused. ``shown_state`` / ``message_synced_at``: the state the approval message last
showed and when Slack took it; ``sync_attempts`` / ``sync_due_at`` / ``sync_error``: the
redelivery's backoff, and why it gave up (a deleted message). Existing rows are taken
as shown (``shown_state = state``): the first redelivery sweep after the upgrade must not
re-render every request ever made.

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("team", "shown_state", "message_synced_at", "sync_attempts", "sync_due_at", "sync_error")


def upgrade() -> None:
    """Add the columns; mark every existing request as shown in its current state."""
    with op.batch_alter_table("approval_requests") as batch:
        batch.add_column(sa.Column("team", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("shown_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("message_synced_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("sync_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("sync_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sync_error", sa.Text(), nullable=True))
    op.execute("UPDATE approval_requests SET shown_state = state")


def downgrade() -> None:
    """Drop the columns (a request's team and its delivery state are lost)."""
    with op.batch_alter_table("approval_requests") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
