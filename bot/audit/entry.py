"""The audit event as the rest of the bot hands it over, and the port it is handed to.

Faces and services depend only on ``AuditSink``; the SQLAlchemy store implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Source = Literal["slack", "cli", "scheduler", "webhook"]


@dataclass(frozen=True)
class AuditEntry:
    """One thing that happened: who, from where, to what, with which outcome.

    actor: Slack user id, ``scheduler`` or ``cli:<os user>``.
    action: dotted name, e.g. ``command.diagnose``, ``remediation.approved``, ``access.denied``.
    parameters: JSON-safe arguments, secrets already removed by the caller.
    outcome: ``ok``, ``error``, ``denied``, ``critical``... (short word).
    """

    actor: str
    source: Source
    action: str
    outcome: str
    summary: str
    target: str | None = None
    actor_name: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    channel: str | None = None
    message_ts: str | None = None


class AuditSink(Protocol):
    """Where audit entries go. ``record`` raises ``AuditUnavailable`` when it cannot write."""

    def record(self, entry: AuditEntry) -> None:
        """Append the entry durably, or raise AuditUnavailable."""
        ...
