"""Audit rows of an applied change that the database refused, kept on the request meanwhile.

Once a change has run, a refused audit INSERT must neither hide the change nor lose the row.
The execution goes on, and the request's stored ``result`` keeps the rows under
``audit_backlog`` (with why, and when each happened); its ``error`` says "applied, but not
recorded in the audit trail: <reason>". ``bot.approvals.backlog`` writes them when the
database takes inserts again, marked as recorded late, and clears the mark. The request row
is the backlog: it survives a restart, and any replica can flush it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from bot.approvals.model import ApprovalRequest
from bot.audit.entry import AuditEntry

NOT_RECORDED = "not recorded in the audit trail"
BACKLOG_KEY = "audit_backlog"
RECORDED_LATE_KEY = "audit_recorded_late"
MAX_ERROR = 1000  # the error column is text, but keep it a line


@dataclass(frozen=True)
class Backlog:
    """What a request still owes the audit trail."""

    entries: tuple[dict[str, Any], ...]  # encoded AuditEntry fields plus ``occurred_at``
    reason: str  # why the database refused the first of them
    error: str | None  # the request's error once they are written (None: it succeeded)


def encode(entry: AuditEntry, *, occurred_at: datetime) -> dict[str, Any]:
    """The entry as JSON-safe fields, with the time it happened."""
    data = asdict(entry)
    data["parameters"] = dict(entry.parameters)
    data["occurred_at"] = occurred_at.isoformat()
    return data


def unrecorded_error(error: str | None, reason: str) -> str:
    """The request's error while rows are missing: what happened, and that it is not recorded."""
    if error is None:
        return f"applied, but {NOT_RECORDED}: {reason}"[:MAX_ERROR]
    return f"{error}; {NOT_RECORDED}: {reason}"[:MAX_ERROR]


def with_backlog(result: Mapping[str, Any] | None, backlog: Backlog) -> dict[str, Any]:
    """``result`` carrying the backlog."""
    return {
        **(result or {}),
        BACKLOG_KEY: {
            "entries": list(backlog.entries),
            "reason": backlog.reason,
            "error": backlog.error,
        },
    }


def backlog_of(request: ApprovalRequest) -> Backlog | None:
    """The rows ``request`` still owes the trail, or None."""
    data = (request.result or {}).get(BACKLOG_KEY)
    if not isinstance(data, Mapping) or not data.get("entries"):
        return None
    error = data.get("error")
    return Backlog(
        entries=tuple(dict(e) for e in data["entries"]),
        reason=str(data.get("reason") or "audit unavailable"),
        error=None if error is None else str(error),
    )


def late_entries(backlog: Backlog) -> list[AuditEntry]:
    """The entries to append now, each saying it is recorded late and when it happened."""
    entries = []
    for data in backlog.entries:
        fields = {k: v for k, v in data.items() if k != "occurred_at"}
        entry = AuditEntry(**fields)
        parameters = {
            **entry.parameters,
            "recorded_late": True,
            "occurred_at": data.get("occurred_at"),
        }
        entries.append(
            replace(entry, parameters=parameters, summary=f"{entry.summary} [recorded late]")
        )
    return entries


def recorded(
    request: ApprovalRequest, backlog: Backlog, *, at: datetime
) -> tuple[dict[str, Any], str | None]:
    """The request's (result, error) once its rows are in the trail."""
    result = {k: v for k, v in (request.result or {}).items() if k != BACKLOG_KEY}
    result[RECORDED_LATE_KEY] = {"at": at.isoformat(), "reason": backlog.reason}
    return result, backlog.error
