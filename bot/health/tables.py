"""The health tables (migrations 0003 and 0006), on the audit database's metadata.

The report slots live here too (migration 0006): one tables module for the reports' storage
keeps ``migrations/env.py`` and the models-match-migrations test registering every table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.audit.models import Base, BigId, CanonicalJSON, UTCDateTime


class SampleRow(Base):
    """One check of one target (retention: REDIS_MEM_SAMPLE_RETENTION)."""

    __tablename__ = "health_samples"
    __table_args__ = (Index("ix_health_samples_target_at", "target", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reachable: Mapped[bool] = mapped_column(Boolean)
    used_memory: Mapped[int | None] = mapped_column(BigInteger)
    maxmemory: Mapped[int | None] = mapped_column(BigInteger)
    evicted_keys: Mapped[int | None] = mapped_column(BigInteger)
    expired_keys: Mapped[int | None] = mapped_column(BigInteger)
    dbsize: Mapped[int | None] = mapped_column(BigInteger)
    connected_clients: Mapped[int | None] = mapped_column(BigInteger)
    maxclients: Mapped[int | None] = mapped_column(BigInteger)
    rejected_connections: Mapped[int | None] = mapped_column(BigInteger)
    fragmentation_ratio: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class RuleStateRow(Base):
    """A pending or firing rule of a target (an inactive rule has no row)."""

    __tablename__ = "health_rule_states"

    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    active_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keep_firing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    value: Mapped[float | None] = mapped_column(Float)


class AlertRow(Base):
    """One alert (one Slack message) from firing to resolved.

    open_key is ``target/group`` while firing and NULL once resolved: unique, so a
    target never has two open alerts of one group (NULLs never collide).
    """

    __tablename__ = "health_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target: Mapped[str] = mapped_column(String(200), index=True)
    rule_group: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text)
    active_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    channel: Mapped[str | None] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(64))
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    snoozed_by: Mapped[str | None] = mapped_column(String(200))
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(CanonicalJSON)
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True)


class AlertEventRow(Base):
    """The outbox: every event until it is audited (when it must be) and delivered."""

    __tablename__ = "health_alert_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(200))
    audited: Mapped[bool] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    error: Mapped[str | None] = mapped_column(Text)


class AggregateRow(Base):
    """A target's samples of one 5-minute bucket (retention: REDIS_MEM_AGGREGATE_RETENTION).

    ``*_last``: the bucket's last reading; ``evicted_increase``: what the counter rose in
    the bucket, a drop counted as a restart (the new value is the increase). The key
    (target, bucket_start) is what keeps two rollups from writing a bucket twice.
    """

    __tablename__ = "health_sample_aggregates"
    # SQLite keeps the rows in key order (a target's window is one range of pages): a
    # 7-day report of 100 targets reads 30% faster than from a rowid table.
    __table_args__ = ({"sqlite_with_rowid": False},)

    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True, index=True)
    samples: Mapped[int] = mapped_column(Integer)
    reachable: Mapped[int] = mapped_column(Integer)
    used_min: Mapped[int | None] = mapped_column(BigInteger)
    used_max: Mapped[int | None] = mapped_column(BigInteger)
    used_last: Mapped[int | None] = mapped_column(BigInteger)
    maxmemory_last: Mapped[int | None] = mapped_column(BigInteger)
    ratio_min: Mapped[float | None] = mapped_column(Float)
    ratio_max: Mapped[float | None] = mapped_column(Float)
    ratio_last: Mapped[float | None] = mapped_column(Float)
    evicted_first: Mapped[int | None] = mapped_column(BigInteger)
    evicted_last: Mapped[int | None] = mapped_column(BigInteger)
    evicted_increase: Mapped[int] = mapped_column(BigInteger)
    dbsize_last: Mapped[int | None] = mapped_column(BigInteger)


class ReportSlotRow(Base):
    """A scheduled report's slot of a channel: inserting it is the claim."""

    __tablename__ = "report_slots"

    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_ts: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


SAMPLES = cast(Table, SampleRow.__table__)
RULE_STATES = cast(Table, RuleStateRow.__table__)
ALERTS = cast(Table, AlertRow.__table__)
EVENTS = cast(Table, AlertEventRow.__table__)
AGGREGATES = cast(Table, AggregateRow.__table__)
REPORT_SLOTS = cast(Table, ReportSlotRow.__table__)
