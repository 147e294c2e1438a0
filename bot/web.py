"""The HTTP face: Slack requests at ``POST /slack/events``, health and metrics beside them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

ReadyCheck = Callable[[], bool]
Endpoint = Callable[[Request], Awaitable[Response]]


def create_web_app(
    *,
    registry: CollectorRegistry,
    bolt_app: App | None = None,
    ready: ReadyCheck | None = None,
) -> Starlette:
    """The ASGI app; without ``bolt_app`` (Socket Mode) only health and metrics are served."""
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz_endpoint(ready), methods=["GET"]),
        Route("/metrics", metrics_endpoint(registry), methods=["GET"]),
    ]
    if bolt_app is not None:
        routes.append(Route("/slack/events", slack_endpoint(bolt_app), methods=["POST"]))
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


def slack_endpoint(bolt_app: App) -> Endpoint:
    """Hand the request to the sync Bolt App in a worker thread.

    Bolt's own Starlette adapter calls ``App.dispatch`` on the event loop, which
    would block every other request while Bolt waits for a listener's ack.
    """

    async def slack_events(request: Request) -> Response:
        body = await request.body()
        bolt_request = to_bolt_request(request, body)
        bolt_response = await run_in_threadpool(bolt_app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    return slack_events
