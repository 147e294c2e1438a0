"""``alerts``: the pending rules and firing alerts of every target, from the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.clock import utc_now
from bot.diagnosis.model import Severity
from bot.errors import ConfigError
from bot.slack.blocks.alert import alerts_message
from bot.slack.deps import SlackDeps
from bot.slack.jobs import Result
from bot.slack.request import SlashRequest

NOT_CONFIGURED = "alerts are not configured in this process"


def run_alerts(
    deps: SlackDeps, request: SlashRequest, *, clock: Callable[[], datetime] = utc_now
) -> Result:
    """The overview as a message linking each alert's own; AuditUnavailable if unreadable."""
    if deps.health is None:
        raise ConfigError(NOT_CONFIGURED)
    overview = deps.health.overview()
    message = alerts_message(
        overview, team_domain=request.team_domain, now=clock(), rules=deps.health.rules
    )
    worst = max((a.severity for a in overview.firing), key=lambda s: s.rank, default=Severity.OK)
    summary = f"{len(overview.firing)} firing, {len(overview.pending)} pending"
    return Result(message=message, outcome=worst.value, summary=summary)
