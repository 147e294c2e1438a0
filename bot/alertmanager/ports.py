"""What the Alertmanager service needs from the world, as Protocols; adapters are passed in.

The composition root (``bot.wiring_serve``) passes ``SqlGroupStore`` (the audit
database) and ``SlackGroupPoster`` (Slack).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.alertmanager.model import Status, WebhookAlert
from bot.diagnosis.model import Diagnosis


@dataclass(frozen=True)
class StoredGroup:
    """A group's row as a claim returns it: the newest payload and where its message is."""

    group_hash: str
    revision: int
    status: Status
    payload: Mapping[str, Any]
    channel: str | None
    message_ts: str | None
    attempts: int = 0
    shown_status: Status | None = None  # what the message shows (None: not posted yet)


class GroupStore(Protocol):
    """groupKey -> the latest notification and its Slack message (``alertmanager_groups``).

    Every method raises AuditUnavailable when the database cannot be used.
    """

    def record(
        self, *, group_hash: str, group_key: str, status: Status, payload: Mapping[str, Any],
        at: datetime,
    ) -> int:  # fmt: skip
        """Insert the group, or store its newer notification; the group's new revision."""
        ...

    def pending(self, *, now: datetime, limit: int) -> Sequence[str]:
        """Hashes of groups whose newest revision is not shown yet and is due."""
        ...

    def claim(self, group_hash: str, *, owner: str, now: datetime, lease: timedelta) -> (
        StoredGroup | None
    ):  # fmt: skip
        """Take the group's delivery for ``lease``; None when it is shown, not due, or
        another owner holds a live claim (exactly one concurrent caller wins)."""
        ...

    def delivered(
        self, group_hash: str, *, owner: str, revision: int, channel: str, ts: str,
        status: Status, at: datetime,
    ) -> None:  # fmt: skip
        """``revision`` is shown at ``channel``/``ts``; the claim is released."""
        ...

    def failed(
        self, group_hash: str, *, owner: str, error: str, retry_at: datetime | None,
        give_up_revision: int | None = None,
    ) -> None:  # fmt: skip
        """The delivery failed: try again at ``retry_at``; ``give_up_revision``: never
        (until a newer notification) for this one."""
        ...


@dataclass(frozen=True)
class MappedAlert:
    """An alert of the group and the target it maps to (None: unmapped, ``why`` says why)."""

    alert: WebhookAlert
    target: str | None
    why: str = ""


@dataclass(frozen=True)
class GroupView:
    """What the group's message shows (a pure function of it: see bot.alertmanager.slack)."""

    group_hash: str
    status: Status
    alerts: tuple[MappedAlert, ...]
    target: str | None  # the target diagnosed (the group's first mapped one)
    diagnosis: Diagnosis | None
    diagnosis_error: str | None
    received_at: datetime
    truncated_alerts: int = 0
    external_url: str = ""


@dataclass(frozen=True)
class Posted:
    """Where a message is: its channel id and ts."""

    channel: str
    ts: str


class PostError(Exception):
    """Slack did not take the message; ``transient``: worth trying again later."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class GroupPoster(Protocol):
    """Shows a group's message in Slack (``bot.alertmanager.slack.SlackGroupPoster``)."""

    def post(self, channel: str, view: GroupView) -> Posted:
        """Post the message; raises PostError."""
        ...

    def update(self, where: Posted, view: GroupView) -> Posted:
        """Re-render it in place (posted again if it was deleted); raises PostError."""
        ...
