"""Run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT.

Either way uvicorn serves ``/healthz``, ``/readyz`` and ``/metrics`` on PORT, so
Kubernetes probes and Prometheus work the same in both modes.
"""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from bot.audit.engine import make_engine
from bot.audit.entry import AuditEntry
from bot.audit.migrate import prepare_database
from bot.audit.store import SqlAuditStore
from bot.config import Settings
from bot.slack.app import build_app, slack_credentials
from bot.slack.metrics import BotMetrics
from bot.web import ReadyCheck, create_web_app
from bot.wiring import diagnosis_service


def run_bot(settings: Settings) -> None:
    """``redis-mem serve``: wire the audit store, the diagnosis and the Bolt app, then serve.

    Every configuration problem (Slack credentials, targets file, audit database
    behind its migrations) is a one-line ConfigError before anything listens.
    """
    slack_credentials(settings)
    prepare_database(settings.database_url)
    engine = make_engine(settings.database_url)
    registry = CollectorRegistry()
    app = build_app(
        settings=settings,
        diagnosis=diagnosis_service(settings),
        audit=StoreSink(SqlAuditStore(engine)),
        metrics=BotMetrics.create(registry),
    )
    serve(settings=settings, app=app, registry=registry, ready=database_ready(engine))


class StoreSink:
    """The SQL store as an ``AuditSink``: its ``record`` returns the row, the port returns None."""

    def __init__(self, store: SqlAuditStore) -> None:
        self._store = store

    def record(self, entry: AuditEntry) -> None:
        """Append durably, or raise AuditUnavailable."""
        self._store.record(entry)


def database_ready(engine: Engine) -> Callable[[], bool]:
    """Readiness: the audit database answers (changes must not run without it)."""

    def ready() -> bool:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    return ready


def serve(
    *,
    settings: Settings,
    app: App,
    registry: CollectorRegistry,
    ready: ReadyCheck | None = None,
    host: str = "0.0.0.0",
) -> None:
    """Serve until SIGTERM/SIGINT; raises ConfigError (one line) when Slack is not configured."""
    slack_credentials(settings)
    if not settings.slack_app_token:
        web = create_web_app(registry=registry, bolt_app=app, ready=ready)
        run_http(web, host=host, port=settings.port)
        return
    # Socket Mode: Slack events arrive over a websocket the handler keeps in its own
    # threads; uvicorn stays in the main thread so it owns the signal handlers.
    handler = SocketModeHandler(app, app_token=settings.slack_app_token)
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        run_http(create_web_app(registry=registry, ready=ready), host=host, port=settings.port)
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def run_http(web: Starlette, *, host: str, port: int) -> None:
    """Run uvicorn in this thread until it is told to stop."""
    uvicorn.run(web, host=host, port=port, log_level="info", access_log=False)
