"""``GroupStore`` over the ``alertmanager_groups`` table (the audit database).

Two statements carry the concurrency, on SQLite and PostgreSQL alike:
- ``record`` is one INSERT ... ON CONFLICT DO UPDATE: concurrent re-sends of a group
  make one row and as many revisions (PostgreSQL: the loser waits on the winner's row,
  then updates it);
- ``claim`` is one UPDATE ... WHERE (not claimed, or the claim is stale) RETURNING: of
  concurrent claimers exactly one matches (PostgreSQL re-reads the row after the
  winner's commit and its WHERE no longer holds; SQLite writes one at a time).

Database errors become ``AuditUnavailable`` (one line, password hidden).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.alertmanager.model import Status
from bot.alertmanager.ports import StoredGroup
from bot.alertmanager.tables import GROUPS, AlertmanagerGroupRow
from bot.audit.failures import read_rows, write_transaction

_MAX_ERROR = 1000
Row = AlertmanagerGroupRow


class SqlGroupStore:
    """``GroupStore`` on ``engine`` (the audit database, migrated to 0007)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, *, group_hash: str, group_key: str, status: Status, payload: Mapping[str, Any],
        at: datetime,
    ) -> int:  # fmt: skip
        """Insert the group (revision 1) or store its newer notification (revision + 1)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(GROUPS).values(
            group_hash=group_hash, group_key=group_key, status=status, payload=dict(payload),
            revision=1, shown_revision=0, received_at=at, attempts=0,
        )  # fmt: skip
        stmt = insert.on_conflict_do_update(
            index_elements=[GROUPS.c.group_hash],
            set_={
                "status": insert.excluded.status,
                "payload": insert.excluded.payload,
                "received_at": insert.excluded.received_at,
                "revision": GROUPS.c.revision + 1,
                # A newer notification is worth a fresh try at once.
                "attempts": 0,
                "next_attempt_at": None,
            },
        ).returning(GROUPS.c.revision)
        with write_transaction(self.engine, doing="recording an Alertmanager group") as conn:
            return int(conn.execute(stmt).scalar_one())

    def pending(self, *, now: datetime, limit: int) -> Sequence[str]:
        """Groups whose newest revision is not shown and is due, oldest first."""
        query = select(Row.group_hash).where(*_due(now)).order_by(Row.received_at).limit(limit)
        rows = read_rows(self.engine, query, doing="reading pending Alertmanager groups")
        return [str(row.group_hash) for row in rows]

    def claim(
        self, group_hash: str, *, owner: str, now: datetime, lease: timedelta
    ) -> StoredGroup | None:
        """Take the delivery unless it is shown, not due, or claimed within ``lease``."""
        stmt = (
            update(GROUPS)
            .where(GROUPS.c.group_hash == group_hash, *_due(now))
            .where(
                or_(
                    GROUPS.c.claimed_by.is_(None),
                    and_(GROUPS.c.claimed_at.is_not(None), GROUPS.c.claimed_at < now - lease),
                )
            )
            .values(claimed_by=owner, claimed_at=now)
            .returning(
                GROUPS.c.group_hash,
                GROUPS.c.revision,
                GROUPS.c.status,
                GROUPS.c.payload,
                GROUPS.c.channel,
                GROUPS.c.message_ts,
                GROUPS.c.attempts,
                GROUPS.c.shown_status,
            )
        )
        with write_transaction(self.engine, doing="claiming an Alertmanager group") as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return StoredGroup(
            group_hash=row.group_hash,
            revision=int(row.revision),
            status=_status(row.status) or "firing",
            payload=row.payload,
            channel=row.channel,
            message_ts=row.message_ts,
            attempts=int(row.attempts),
            shown_status=_status(row.shown_status),
        )

    def delivered(
        self, group_hash: str, *, owner: str, revision: int, channel: str, ts: str,
        status: Status, at: datetime,
    ) -> None:  # fmt: skip
        """Store where the message is and which revision it shows; release the claim."""
        stmt = (
            update(GROUPS)
            .where(GROUPS.c.group_hash == group_hash, GROUPS.c.claimed_by == owner)
            .values(
                shown_revision=revision,
                channel=channel,
                message_ts=ts,
                shown_status=status,
                claimed_by=None,
                claimed_at=None,
                attempts=0,
                next_attempt_at=None,
                error=None,
            )
        )
        with write_transaction(self.engine, doing="storing an Alertmanager message") as conn:
            conn.execute(stmt)

    def failed(
        self, group_hash: str, *, owner: str, error: str, retry_at: datetime | None,
        give_up_revision: int | None = None,
    ) -> None:  # fmt: skip
        """Release the claim with the error; retry at ``retry_at`` or give the revision up."""
        values: dict[str, Any] = {
            "claimed_by": None,
            "claimed_at": None,
            "attempts": GROUPS.c.attempts + 1,
            "next_attempt_at": retry_at,
            "error": error[:_MAX_ERROR],
        }
        if give_up_revision is not None:
            values["shown_revision"] = give_up_revision
        stmt = (
            update(GROUPS)
            .where(GROUPS.c.group_hash == group_hash, GROUPS.c.claimed_by == owner)
            .values(**values)
        )
        with write_transaction(self.engine, doing="storing an Alertmanager failure") as conn:
            conn.execute(stmt)

    def get(self, group_hash: str) -> dict[str, Any] | None:
        """The group's row as a mapping (the CLI and tests read it)."""
        query = select(GROUPS).where(GROUPS.c.group_hash == group_hash)
        rows = read_rows(self.engine, query, doing="reading an Alertmanager group")
        return dict(rows[0]._mapping) if rows else None


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A group whose newest revision is not shown yet and whose next attempt is due."""
    return (
        GROUPS.c.revision > GROUPS.c.shown_revision,
        or_(GROUPS.c.next_attempt_at.is_(None), GROUPS.c.next_attempt_at <= now),
    )


def _status(value: str | None) -> Status | None:
    """A stored status as the type says it (None stays None)."""
    if value is None:
        return None
    return "resolved" if value == "resolved" else "firing"
