"""The Alertmanager groups table (migration 0007), on the audit database's metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.audit.models import Base, CanonicalJSON, UTCDateTime


class AlertmanagerGroupRow(Base):
    """One Alertmanager group (groupKey): its newest notification and its Slack message.

    ``revision`` counts the notifications received, ``shown_revision`` the one the
    message shows: the group is pending while they differ. ``claimed_by``/``claimed_at``
    is the delivery in flight (one replica's worker), so two never post it at once.
    """

    __tablename__ = "alertmanager_groups"

    group_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON)
    revision: Mapped[int] = mapped_column(Integer)
    shown_revision: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str | None] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(64))
    shown_status: Mapped[str | None] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


GROUPS = cast(Table, AlertmanagerGroupRow.__table__)
