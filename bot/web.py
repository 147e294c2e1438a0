"""The HTTP face: Slack requests at ``POST /slack/events``, health and metrics beside them."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.alertmanager.http import Webhook, WebhookLog, alertmanager_route
from bot.errors import ConfigError
from bot.webguard import RefusalLog, Refused, SlackRequestGuard

ReadyCheck = Callable[[], bool]
Endpoint = Callable[[Request], Awaitable[Response]]

logger = logging.getLogger(__name__)


def create_web_app(
    *,
    registry: CollectorRegistry,
    bolt_app: App | None = None,
    ready: ReadyCheck | None = None,
    clock: Callable[[], float] = time.monotonic,
    webhook: Webhook | None = None,
) -> Starlette:
    """The ASGI app; without ``bolt_app`` (Socket Mode) only health and metrics are served.

    ``clock`` paces the log of refused Slack requests (see ``bot.webguard``).
    ``webhook``: ``POST /alertmanager`` in both modes (None: off, 404).
    """
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz_endpoint(ready), methods=["GET"]),
        Route("/metrics", metrics_endpoint(registry), methods=["GET"]),
    ]
    if bolt_app is not None:
        guard = SlackRequestGuard(
            signing_secret=bolt_signing_secret(bolt_app),
            refusals=RefusalLog(registry=registry, clock=clock),
        )
        routes.append(
            Route("/slack/events", slack_endpoint(bolt_app, guard), methods=["GET", "POST"])
        )
    if webhook is not None:
        routes.append(alertmanager_route(webhook, log=WebhookLog(registry=registry, clock=clock)))
    return Starlette(routes=routes)


async def healthz(request: Request) -> Response:
    """The process is alive and serving."""
    return PlainTextResponse("ok")


def readyz_endpoint(ready: ReadyCheck | None) -> Endpoint:
    """200 when ``ready()`` says so (the app is built; later: the database answers)."""

    async def readyz(request: Request) -> Response:
        ok = True if ready is None else await run_in_threadpool(ready)
        return PlainTextResponse("ready" if ok else "not ready", status_code=200 if ok else 503)

    return readyz


def metrics_endpoint(registry: CollectorRegistry) -> Endpoint:
    """Prometheus text exposition of ``registry``."""

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def bolt_signing_secret(bolt_app: App) -> str:
    """The secret ``bolt_app`` verifies requests with, so the guard can never disagree with it.

    Bolt has no public accessor; if an upgrade renames the attribute, start-up says so.
    """
    secret = getattr(bolt_app, "_signing_secret", None)
    if not isinstance(secret, str) or not secret.strip():
        raise ConfigError("HTTP mode needs the Bolt app's signing secret (SLACK_SIGNING_SECRET)")
    return secret


def slack_endpoint(bolt_app: App, guard: SlackRequestGuard) -> Endpoint:
    """Guard the request, then hand it to the sync Bolt App in a worker thread.

    Bolt's own Starlette adapter calls ``App.dispatch`` on the event loop, which
    would block every other request while Bolt waits for a listener's ack.
    """

    async def slack_events(request: Request) -> Response:
        if request.method == "GET":
            return ssl_check_get(request)
        try:
            bolt_request = await guard.admit(request)
        except Refused as refusal:
            reason = refusal.reason
            return PlainTextResponse(reason.text, status_code=reason.status)
        except ClientDisconnect:  # nobody is left to answer
            return Response(status_code=400)
        if bolt_request is None:  # ssl_check: what Bolt answers, without Bolt
            return Response(status_code=200)
        try:
            bolt_response = await run_in_threadpool(bolt_app.dispatch, bolt_request)
            return to_starlette_response(bolt_response)
        except Exception:  # a signed request Bolt failed on: a bug, never user input
            logger.exception("Slack request failed in Bolt")
            return PlainTextResponse("internal error", status_code=500)

    return slack_events


def ssl_check_get(request: Request) -> Response:
    """``GET ?ssl_check=1`` (a certificate check) is 200; any other GET is not allowed."""
    if request.query_params.get("ssl_check") == "1":
        return Response(status_code=200)
    return PlainTextResponse("method not allowed", status_code=405, headers={"Allow": "POST"})
