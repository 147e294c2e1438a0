"""Run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT.

Either way uvicorn serves ``/healthz``, ``/readyz`` and ``/metrics`` on PORT, so
Kubernetes probes and Prometheus work the same in both modes.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from starlette.applications import Starlette

from bot.config import Settings
from bot.errors import ConfigError
from bot.slack.app import slack_credentials
from bot.web import ReadyCheck, create_web_app


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
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except SlackApiError as err:
        error = err.response.get("error", "rejected")
        raise ConfigError(
            f"Slack did not accept SLACK_APP_TOKEN (apps.connections.open: {error})"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot reach Slack's Socket Mode endpoint: {err}") from None
    try:
        run_http(create_web_app(registry=registry, ready=ready), host=host, port=settings.port)
    finally:
        handler.close()  # type: ignore[no-untyped-call]


class StoppingServer(uvicorn.Server):
    """uvicorn that returns on SIGTERM/SIGINT instead of re-raising the signal.

    Plain uvicorn re-raises the signal after its graceful shutdown, which kills the
    process before our own clean-up runs: running fixes would stop halfway and the
    Socket Mode connection and the scheduler would not be closed.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: stop serving; a second SIGINT: stop at once (as uvicorn does)."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def run_http(web: Starlette, *, host: str, port: int) -> None:
    """Run uvicorn in this thread until SIGTERM/SIGINT, then return."""
    config = uvicorn.Config(web, host=host, port=port, log_level="info", access_log=False)
    server = StoppingServer(config)
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        # uvicorn logs the bind error and exits with its own code: say it in one line.
        raise ConfigError(f"cannot listen on {host}:{port} (port in use or not allowed)") from None
