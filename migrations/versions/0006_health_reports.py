"""Health reports: 5-minute aggregates of the samples, and the scheduled reports' slots.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``health_sample_aggregates``: one row per target and 5-minute bucket (``bucket_start``,
UTC), rolled up from ``health_samples`` once the bucket is complete, so raw samples can
go after REDIS_MEM_SAMPLE_RETENTION while a 30-day report still has its points. The
primary key (target, bucket_start) is what keeps two rollups from doubling a bucket.
``report_slots``: one row per channel and scheduled slot, inserted before the report is
posted (the insert is the claim: a second process or a restart loses it).

Plain SQLAlchemy types only (no imports from bot/): a migration is a frozen
snapshot and must keep working when the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _big(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _ratio(name: str) -> sa.Column:
    return sa.Column(name, sa.Float(), nullable=True)


def upgrade() -> None:
    """Create the aggregates and the slots."""
    op.create_table(
        "health_sample_aggregates",
        sa.Column("target", sa.String(length=200), nullable=False),
        _at("bucket_start"),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("reachable", sa.Integer(), nullable=False),
        *(_big(name) for name in ("used_min", "used_max", "used_last", "maxmemory_last")),
        *(_ratio(name) for name in ("ratio_min", "ratio_max", "ratio_last")),
        _big("evicted_first"),
        _big("evicted_last"),
        _big("evicted_increase", nullable=False),
        _big("dbsize_last"),
        sa.PrimaryKeyConstraint("target", "bucket_start", name=op.f("pk_health_sample_aggregates")),
        # SQLite: rows stored in key order, so a target's window is one range of pages (the
        # rollup writes every target's bucket at once: a rowid table interleaves them).
        sqlite_with_rowid=False,
    )
    # Retention deletes by time, and the rollup finds the newest bucket of all targets.
    op.create_index(
        op.f("ix_health_sample_aggregates_bucket_start"),
        "health_sample_aggregates",
        ["bucket_start"],
    )
    op.create_table(
        "report_slots",
        sa.Column("channel", sa.String(length=100), nullable=False),
        _at("slot"),
        _at("claimed_at"),
        _at("posted_at", nullable=True),
        sa.Column("message_ts", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("channel", "slot", name=op.f("pk_report_slots")),
    )


def downgrade() -> None:
    """Drop both (the raw samples and the audit trail are untouched)."""
    op.drop_table("report_slots")
    op.drop_table("health_sample_aggregates")
