"""Approval requests: the server-side state of every requested fix.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create approval_requests with indexes on state and expires_at."""
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("action_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("requester_name", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("message_ts", sa.String(length=64), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    for column in ("expires_at", "state"):
        op.create_index(op.f(f"ix_approval_requests_{column}"), "approval_requests", [column])


def downgrade() -> None:
    """Drop the table (pending requests are lost; the audit trail keeps their history)."""
    for column in ("state", "expires_at"):
        op.drop_index(op.f(f"ix_approval_requests_{column}"), table_name="approval_requests")
    op.drop_table("approval_requests")
