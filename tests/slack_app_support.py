"""``build_app`` as ``bot.wiring_serve.run_bot`` calls it, for tests that serve the Bolt app.

The Slack client comes from ``bot.wiring.slack_clients`` (the fake Slack's URL in the
settings). Every Slack-facing process has a remediation service; a test that brings none
of its own gets a real one (``bot.wiring.remediation_service``) over an empty in-memory
SQLite database. That is enough for what those tests click (a fix form reads only the
diagnosis); migrating it would cost Alembic's import and its log lines (tests count the
server's). A test that requests, approves or lists fixes passes its own, over a migrated
database (``tests/slack_remediation_support.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.audit.engine import make_engine
from bot.wiring import remediation_service, slack_clients

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.approvals.service import RemediationService
    from bot.audit.entry import AuditSink
    from bot.config import Settings
    from bot.services.diagnose import DiagnosisService


def bolt_app(
    settings: Settings,
    *,
    diagnosis: DiagnosisService,
    audit: AuditSink,
    remediation: RemediationService | None = None,
    **optional: Any,
) -> App:
    """The Bolt app (auth.test against the settings' Slack API); ``optional``: build_app's
    keyword arguments with defaults (metrics, audit_reader, health, pools...)."""
    from bot.slack.app import build_app

    client = slack_clients(settings).listeners  # missing credentials: the one line first
    if remediation is None:
        remediation = remediation_service(
            settings, engine=make_engine("sqlite://"), audit=audit, diagnosis=diagnosis
        )
    return build_app(
        settings=settings,
        client=client,
        diagnosis=diagnosis,
        audit=audit,
        remediation=remediation,
        **optional,
    )
