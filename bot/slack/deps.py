"""What the Slack listeners need, handed to every ``register(app, deps)``."""

from __future__ import annotations

from dataclasses import dataclass

from bot.audit.entry import AuditSink
from bot.config import Settings
from bot.services.diagnose import DiagnosisService
from bot.slack.metrics import BotMetrics


@dataclass(frozen=True)
class SlackDeps:
    """Services and ports the listeners call; built once by ``build_app``."""

    settings: Settings
    diagnosis: DiagnosisService
    audit: AuditSink
    metrics: BotMetrics
