"""The approval request as frozen data, its states, and who acts on it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.audit.entry import Source
from bot.remediation.params import ParamSpec

# A request id is uuid4().hex: the only thing a Slack button carries.
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


class RequestState(StrEnum):
    """Where a request is; only PENDING and EXECUTING are not final."""

    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"  # the re-check said the preview is stale: nothing ran

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

    def expired_at(self, now: datetime) -> bool:
        """Pending and past its expiry at ``now``."""
        return self.state is RequestState.PENDING and now >= self.expires_at


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
