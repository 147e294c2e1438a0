"""Health checks: samples, rule states (the ``for`` timers), alerts and their event outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the four health tables and their indexes."""
    _samples()
    _rule_states()
    _alerts()
    _events()


def _samples() -> None:
    counters = (
        "used_memory",
        "maxmemory",
        "evicted_keys",
        "expired_keys",
        "dbsize",
        "connected_clients",
        "maxclients",
        "rejected_connections",
    )
    op.create_table(
        "health_samples",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        _at("at"),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in counters),
        sa.Column("fragmentation_ratio", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_samples")),
    )
    op.create_index(op.f("ix_health_samples_at"), "health_samples", ["at"])
    op.create_index("ix_health_samples_target_at", "health_samples", ["target", "at"])


def _rule_states() -> None:
    op.create_table(
        "health_rule_states",
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("active_at"),
        _at("fired_at", nullable=True),
        _at("keep_firing_since", nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("target", "rule", name=op.f("pk_health_rule_states")),
    )


def _alerts() -> None:
    op.create_table(
        "health_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("rule_group", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        _at("active_at"),
        _at("fired_at"),
        _at("last_notified_at"),
        _at("resolved_at", nullable=True),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("message_ts", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        _at("acknowledged_at", nullable=True),
        sa.Column("snoozed_by", sa.String(length=200), nullable=True),
        _at("snoozed_until", nullable=True),
        sa.Column("diagnosis", sa.Text(), nullable=True),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_health_alerts_open_key")),
    )
    for column in ("fired_at", "status", "target"):
        op.create_index(op.f(f"ix_health_alerts_{column}"), "health_alerts", [column])


def _events() -> None:
    op.create_table(
        "health_alert_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        _at("at"),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("audited", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("next_attempt_at", nullable=True),
        _at("delivered_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_alert_events")),
    )
    for column in ("alert_id", "delivered_at"):
        op.create_index(op.f(f"ix_health_alert_events_{column}"), "health_alert_events", [column])


def downgrade() -> None:
    """Drop the health tables (the audit trail keeps every alert transition)."""
    for table in ("health_alert_events", "health_alerts", "health_rule_states", "health_samples"):
        op.drop_table(table)
