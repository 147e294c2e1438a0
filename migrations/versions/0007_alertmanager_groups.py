"""Alertmanager groups: each groupKey's newest notification and the Slack message showing it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``alertmanager_groups``: one row per Alertmanager group, keyed by a hash of its
``groupKey`` (the key itself, which may be long, is kept beside it). Receiving a
notification inserts the row or bumps its ``revision`` (one statement: concurrent
re-sends cannot make two rows); a worker claims the row (``claimed_by``/``claimed_at``),
posts or updates the message and stores ``channel``/``message_ts`` and the revision it
shows (``shown_revision``): a later re-send updates that message, never posts again.

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the groups table."""
    op.create_table(
        "alertmanager_groups",
        sa.Column("group_hash", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("shown_revision", sa.Integer(), nullable=False),
        _at("received_at"),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("message_ts", sa.String(length=64), nullable=True),
        sa.Column("shown_status", sa.String(length=16), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        _at("claimed_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("next_attempt_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("group_hash", name=op.f("pk_alertmanager_groups")),
    )


def downgrade() -> None:
    """Drop it (the audit trail keeps every received alert)."""
    op.drop_table("alertmanager_groups")
