"""Audit entries for the approval flow: one shape, so every row names the request the same way.

Parameters carry the action id, the typed params, the request id, its Slack team and
(after a change) ``keys_changed`` and the state line; never the preview's reads nor any
secret (``SqlAuditStore`` scrubs again on the way in).
"""

from __future__ import annotations

from typing import Any

from bot.approvals.model import Actor, ApprovalRequest
from bot.audit.entry import AuditEntry

_MAX_ID = 64  # a forged id is attacker text: keep what we log of it short


def request_event(
    request: ApprovalRequest,
    *,
    actor: Actor,
    action: str,
    outcome: str,
    summary: str,
    **extra: Any,
) -> AuditEntry:
    """An entry about ``request`` (``remediation.*`` or ``access.denied``)."""
    parameters: dict[str, Any] = {
        "action_id": request.action_id,
        "params": dict(request.params),
        "request_id": request.id,
        **extra,
    }
    if request.team is not None:  # the workspace it belongs to (clicks from others are refused)
        parameters["team"] = request.team
    return AuditEntry(
        actor=actor.id,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        outcome=outcome,
        summary=summary,
        target=request.target,
        parameters=parameters,
        request_id=request.id,
        channel=request.channel,
        message_ts=request.message_ts,
    )


def loose_event(
    *,
    actor: Actor,
    action: str,
    outcome: str,
    summary: str,
    request_id: str | None = None,
    target: str | None = None,
    channel: str | None = None,
    **extra: Any,
) -> AuditEntry:
    """An entry with no stored request behind it (unknown id, a request refused before storing)."""
    short_id = None if request_id is None else request_id[:_MAX_ID]
    parameters: dict[str, Any] = {**extra}
    if short_id is not None:
        parameters["request_id"] = short_id
    return AuditEntry(
        actor=actor.id,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        outcome=outcome,
        summary=summary,
        target=target,
        parameters=parameters,
        request_id=short_id,
        channel=channel,
    )
