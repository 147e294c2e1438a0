"""The health tables (migration 0003), on the audit database's metadata."""

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


SAMPLES = cast(Table, SampleRow.__table__)
RULE_STATES = cast(Table, RuleStateRow.__table__)
ALERTS = cast(Table, AlertRow.__table__)
EVENTS = cast(Table, AlertEventRow.__table__)
