"""Run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT.

Either way uvicorn serves ``/healthz``, ``/readyz`` and ``/metrics`` on PORT, so
Kubernetes probes and Prometheus work the same in both modes.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from starlette.applications import Starlette

from bot.alertmanager.http import Webhook
from bot.config import Settings
from bot.errors import ConfigError
from bot.slack.app import slack_credentials
from bot.web import ReadyCheck, create_web_app

log = logging.getLogger(__name__)

GIL_SWITCH_SECONDS = 0.001


def serve(
    *,
    settings: Settings,
    app: App,
    registry: CollectorRegistry,
    ready: ReadyCheck | None = None,
    host: str = "0.0.0.0",
    webhook: Webhook | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; raises ConfigError (one line) when Slack is not configured.

    ``webhook``: Alertmanager's ``POST /alertmanager`` on PORT, in both modes.
    """
    slack_credentials(settings)
    # A fatal signal (SIGBUS from a memory-mapped file, SIGSEGV in a C extension) ends the
    # process before any Python handler runs: leave at least the failing thread's stack in
    # the log. The known cause, SQLite's -shm file, is refused before use (bot.audit.shm_guard).
    faulthandler.enable(all_threads=False)
    # Acks and the work share one interpreter: a thread waiting for the GIL gets it after
    # at most this long, not Python's 5 ms, so an ack waits less behind a diagnosis
    # (bench/slack_ack.py; docs/decisions/slack.md).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    if not settings.slack_app_token:
        web = create_web_app(registry=registry, bolt_app=app, ready=ready, webhook=webhook)
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
        web = create_web_app(registry=registry, ready=ready, webhook=webhook)
        run_http(web, host=host, port=settings.port)
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
    """Run uvicorn in this thread until SIGTERM/SIGINT, then return (see ``keep_draining``)."""
    config = uvicorn.Config(web, host=host, port=port, log_level="info", access_log=False)
    server = StoppingServer(config)
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        # uvicorn logs the bind error and exits with its own code: say it in one line.
        raise ConfigError(f"cannot listen on {host}:{port} (port in use or not allowed)") from None
    keep_draining()


def keep_draining() -> None:
    """After the server stopped: a further SIGTERM is logged, not obeyed, while the clean-up
    runs (running fixes finish; queued approvers are told).

    uvicorn puts the default handlers back when it returns, so a second SIGTERM (a
    supervisor's retry, a hurried operator) would kill the process with fixes halfway.
    Kubernetes' SIGKILL at the end of the grace period stays the hard stop; a second
    SIGINT (Ctrl-C) still interrupts at once.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _still_draining)


def _still_draining(sig: int, frame: FrameType | None) -> None:
    log.warning("SIGTERM again: still stopping (running fixes finish first)")
