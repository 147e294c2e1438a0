"""Record each slash command through the ``AuditSink`` port."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.audit.entry import AuditEntry, AuditSink
from bot.audit.scrub import scrub_parameters, scrub_text
from bot.errors import AuditUnavailable
from bot.slack.request import SlashRequest

log = logging.getLogger(__name__)


def command_entry(
    *,
    request: SlashRequest,
    subcommand: str,
    outcome: str,
    summary: str,
    target: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry of one handled ``/redis-mem <subcommand>``.

    Summary and parameters are scrubbed here, whatever the sink: they hold what was
    typed (a fix's raw ``key=value`` words, an error repeating a bad value).
    """
    return AuditEntry(
        actor=request.user_id,
        actor_name=request.user_name,
        source="slack",
        action=f"command.{subcommand}",
        outcome=outcome,
        summary=scrub_text(summary),
        target=target,
        parameters=scrub_parameters(parameters or {}),
        request_id=request.request_id,
        channel=request.channel_id,
    )


def record(audit: AuditSink, entry: AuditEntry) -> str | None:
    """Record the entry; when the trail is down, the warning line to show instead of failing.

    Read-only commands still answer without the audit trail; changes (later
    issues) must refuse to run instead, so they do not use this helper.
    """
    try:
        audit.record(entry)
    except AuditUnavailable as err:
        log.warning("audit trail unavailable for %s: %s", entry.action, err.message)
        return f"⚠ audit trail unavailable: {err.message}"
    return None
