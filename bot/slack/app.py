"""The Bolt app factory: builds the App and registers the listeners, nothing else.

Its Web API client, like every service it hands the listeners, is built by the
composition root (``bot.wiring.slack_clients``) and passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient

from bot.audit.entry import AuditSink
from bot.config import Settings
from bot.errors import ConfigError
from bot.runtime.pool import BoundedPool, Foreground
from bot.services.diagnose import DiagnosisService
from bot.slack.deps import AuditReader, SlackDeps, aside_pool, work_pool
from bot.slack.listeners import register_all
from bot.slack.metrics import BotMetrics

if TYPE_CHECKING:
    from bot.approvals.service import RemediationService
    from bot.health.service import HealthService
    from bot.reports.service import ReportService


def build_app(
    *,
    settings: Settings,
    client: WebClient,
    diagnosis: DiagnosisService,
    audit: AuditSink,
    remediation: RemediationService,
    metrics: BotMetrics | None = None,
    audit_reader: AuditReader | None = None,
    fix_executor: Executor | None = None,
    health: HealthService | None = None,
    reports: ReportService | None = None,
    work: BoundedPool | None = None,
    aside: BoundedPool | None = None,
    foreground: Foreground | None = None,
) -> App:
    """A Bolt App with every listener registered, answering through ``client``
    (``bot.wiring.slack_clients(settings).listeners``: its bounded retries are the listeners').

    Bolt calls ``auth.test`` here to check the token: a rejected token or an
    unreachable Slack becomes a one-line ConfigError. ``process_before_response``
    is True: every listener acks and hands its work to ``work`` (bot/slack/afterack.py)
    and returns, so Bolt answers the HTTP request as soon as the listener returns, and
    neither the work nor the client's bounded retries (429 with a short Retry-After,
    500/503, dropped connections; see bot/slack/retry.py) ever delay an ack.
    """
    _, secret = slack_credentials(settings)
    try:
        app = App(
            client=client,
            signing_secret=secret,
            # Our listeners only ack and hand work over (bot/slack/afterack.py), so Bolt
            # may run them before answering: no thread hop, no 10 ms polling for the ack.
            process_before_response=True,
        )
    except BoltError:
        # Bolt's message embeds the whole auth.test answer; one line is enough here.
        raise ConfigError("Slack did not accept SLACK_BOT_TOKEN (auth.test failed)") from None
    except OSError as err:  # URLError: Slack (or SLACK_API_URL) unreachable
        reason = getattr(err, "reason", err)
        raise ConfigError(f"cannot reach the Slack API to check the bot token: {reason}") from None
    acks = foreground or Foreground()
    deps = SlackDeps(
        settings=settings,
        diagnosis=diagnosis,
        audit=audit,
        metrics=metrics or BotMetrics.create(),
        audit_reader=audit_reader,
        remediation=remediation,
        fix_executor=fix_executor,
        health=health,
        reports=reports,
        work=work
        or work_pool(workers=settings.slack_workers, queue=settings.slack_queue, after=acks),
        aside=aside or aside_pool(after=acks),
    )
    register_acks_first(app, acks)
    register_all(app, deps)
    return app


def register_acks_first(app: App, acks: Foreground) -> None:
    """Every request, from its first middleware to its listener's return, is an ack in
    flight: the work pools start no job meanwhile (``bot.runtime.pool.Foreground``).
    Registered first, so it spans Bolt's own checks too; HTTP and Socket Mode alike."""

    @app.middleware
    def acks_first(next_: Callable[[], BoltResponse]) -> BoltResponse:
        with acks.acking():
            return next_()


def slack_credentials(settings: Settings) -> tuple[str, str]:
    """The bot token and signing secret; one line naming what is missing.

    Socket Mode (SLACK_APP_TOKEN set) receives no signed HTTP requests, so it
    needs no signing secret.
    """
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN")
    if not settings.slack_signing_secret and not settings.slack_app_token:
        missing.append("SLACK_SIGNING_SECRET")
    if missing:
        raise ConfigError(f"Slack is not configured: set {' and '.join(missing)}")
    return settings.slack_bot_token or "", settings.slack_signing_secret or ""


def api_base_url(url: str | None) -> str:
    """SLACK_API_URL with the trailing slash slack_sdk joins method names onto."""
    if not url:
        return WebClient.BASE_URL
    return url if url.endswith("/") else url + "/"
