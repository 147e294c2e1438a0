"""The ``approval_requests`` table (migrations 0002, 0004, 0005), on the audit metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.audit.models import Base, CanonicalJSON, UTCDateTime


class ApprovalRow(Base):
    """One approval request; its ``state`` moves only by conditional UPDATEs (see store.py)."""

    __tablename__ = "approval_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON)
    preview: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON)
    requester: Mapped[str] = mapped_column(String(200))
    requester_name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    channel: Mapped[str | None] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(CanonicalJSON)
    error: Mapped[str | None] = mapped_column(Text)
    # Migration 0004: the requester's Slack team, and what its message shows (MessageLedger).
    team: Mapped[str | None] = mapped_column(String(32))
    shown_state: Mapped[str | None] = mapped_column(String(16))
    message_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sync_error: Mapped[str | None] = mapped_column(Text)
    # Migration 0005: the process executing it and its heartbeat (bot/approvals/liveness.py),
    # the counts of the last progress line, and a Cancel click on a running key action.
    executor_host: Mapped[str | None] = mapped_column(String(253))
    executor_pid: Mapped[int | None] = mapped_column(Integer)
    executor_boot: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_changed: Mapped[int | None] = mapped_column(Integer)
    progress_scanned: Mapped[int | None] = mapped_column(Integer)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


REQUESTS = cast(Table, ApprovalRow.__table__)
