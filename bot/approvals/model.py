"""The approval request as frozen data, its states, and who acts on it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.audit.entry import Source
from bot.remediation.params import MIB, ParamSpec

# A request id is uuid4().hex: the only thing a Slack button carries.
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


class RequestState(StrEnum):
    """Where a request is; only PENDING and EXECUTING are not final.

    INTERRUPTED: the process executing it is gone (killed, crashed); what it did is known
    up to its last stored progress. CANCELLED: a Cancel click stopped a running key action
    between two batches; its counts are exact (docs/decisions/approvals.md).
    """

    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"  # the re-check said the preview is stale: nothing ran
    INTERRUPTED = "interrupted"  # its process died while executing (migration 0005)
    CANCELLED = "cancelled"  # stopped on request while executing, between batches

    @property
    def final(self) -> bool:
        """True once nothing more can happen to the request."""
        return self not in (RequestState.PENDING, RequestState.EXECUTING)


@dataclass(frozen=True)
class Actor:
    """Who does something: a Slack user id (U.../W...), ``scheduler`` or ``cli:<user>``."""

    id: str
    name: str | None = None
    source: Source = "slack"


SCHEDULER = Actor(id="scheduler", name=None, source="scheduler")


@dataclass(frozen=True)
class Origin:
    """Where a click was made: the Slack team (workspace) id and the channel id.

    A decision counts only from the request's own team and channel (see
    docs/decisions/approvals.md, "A click is tied to its workspace and channel").
    """

    team: str | None
    channel: str | None

    def refusal(self, request: ApprovalRequest) -> str | None:
        """Why a click from here does not count on ``request``; None when it does.

        A request stored before migration 0004 has no team, so no click matches it (fail
        closed): it expires within the approval TTL and can simply be requested again.
        """
        if request.team is None:
            return "this request predates the workspace check: request it again"
        if self.team != request.team:
            return "this request belongs to another Slack workspace"
        if request.channel is not None and self.channel != request.channel:
            return "this request can only be decided on its own message, in its channel"
        return None


@dataclass(frozen=True)
class ApprovalRequest:
    """One requested fix, stored server-side; buttons carry only ``id``."""

    id: str
    action_id: str
    target: str
    params: dict[str, Any]
    preview: dict[str, Any]  # bot.remediation.model.Preview.to_dict()
    requester: str
    requester_name: str | None
    state: RequestState
    created_at: datetime
    expires_at: datetime
    channel: str | None = None
    message_ts: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    progress: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    team: str | None = None  # the Slack team id it was requested from (None: before 0004)
    shown_state: RequestState | None = None  # what its message last showed (None: not posted)
    # Migration 0005: who executes it (bot/approvals/liveness.py), the last counts, a cancel.
    executor_host: str | None = None
    executor_pid: int | None = None
    executor_boot: str | None = None
    heartbeat_at: datetime | None = None
    progress_changed: int | None = None
    progress_scanned: int | None = None
    cancel_requested_by: str | None = None
    cancel_requested_at: datetime | None = None

    def expired_at(self, now: datetime) -> bool:
        """Pending and past its expiry at ``now``."""
        return self.state is RequestState.PENDING and now >= self.expires_at


@dataclass(frozen=True)
class LaggingMessage:
    """A request whose message shows an older state than the stored one, due for a retry."""

    request: ApprovalRequest
    attempts: int  # failed updates since the message last took one


RESYNC_FIRST = timedelta(seconds=30)
RESYNC_MAX = timedelta(minutes=10)
RETRY_AFTER_MAX = timedelta(hours=1)  # a Retry-After beyond this is a broken header


def resync_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """When to try again after the ``attempts``-th failed update of a message.

    30 s doubling up to 10 min, and never sooner than Slack's ``Retry-After``.
    """
    doublings = min(max(attempts - 1, 0), 10)
    delay = min(RESYNC_FIRST * (1 << doublings), RESYNC_MAX)
    if retry_after:
        delay = max(delay, min(timedelta(seconds=retry_after), RETRY_AFTER_MAX))
    return delay


@dataclass(frozen=True)
class ActionForm:
    """What the request modal shows: the parameters, prefilled, and why it cannot run (if so)."""

    action_id: str
    title: str
    target: str
    specs: tuple[ParamSpec, ...]
    defaults: dict[str, str]
    preconditions: tuple[str, ...]


def valid_request_id(text: str) -> bool:
    """Whether ``text`` has the shape of a request id (uuid4 hex)."""
    return bool(REQUEST_ID.match(text or ""))


def raw_text(spec: ParamSpec, value: Any) -> str:
    """A value as text the parameter parses back (prefill): sizes in mb, seconds plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.kind == "size" and isinstance(value, int) and value % MIB == 0:
        return f"{value // MIB}mb"
    return str(value)
