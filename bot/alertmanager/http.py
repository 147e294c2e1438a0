"""``POST /alertmanager``: Alertmanager's webhook, bearer-token protected, answered fast.

In this order, each refusal one plain-text line, counted, and logged at most once per
reason per minute (never the token sent):
1. ``Authorization: Bearer <REDIS_MEM_WEBHOOK_TOKEN>``, compared in constant time (401);
2. the body, read up to 1 MiB and no further (400 "body over 1 MB": Alertmanager does
   not retry a 4xx, and a bigger notification would never get smaller);
3. UTF-8 JSON, version "4", the payload's shape (400).
Then the service records the group and audits its alerts (503 when the audit database
cannot: Alertmanager retries 5xx) and the answer is 200; the diagnosis and the Slack
message happen on the worker, well inside Alertmanager's 10 s webhook timeout.

Without a token the route is not mounted: ``POST /alertmanager`` is 404, the endpoint off.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.alertmanager.model import PayloadError, WebhookPayload, parse_payload
from bot.errors import AuditUnavailable
from bot.webguard import MAX_BODY_BYTES, REFUSAL_LOG_INTERVAL, LogThrottle, Refused, read_body

PATH = "/alertmanager"
OUTCOMES = ("accepted", "unauthorized", "too_large", "bad_payload", "unavailable")

logger = logging.getLogger(__name__)


class Intake(Protocol):
    """What the endpoint hands a valid payload to (``AlertmanagerService``)."""

    def receive(self, payload: WebhookPayload) -> int:
        """Record and audit it; raises AuditUnavailable."""
        ...


@dataclass(frozen=True)
class Webhook:
    """The endpoint's configuration: the token and where payloads go."""

    token: str
    intake: Intake

    def __repr__(self) -> str:  # the token never reaches a log through a repr
        return "Webhook(token=***)"


class WebhookLog:
    """Counts every request by outcome; logs each refusal reason at most once per interval."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REFUSAL_LOG_INTERVAL,
    ) -> None:
        self._counter = Counter(
            "redis_mem_alertmanager_requests",
            "Requests to POST /alertmanager, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self._counter.labels(outcome=outcome)
        self._throttle = LogThrottle(clock=clock, interval=interval)

    def accepted(self) -> None:
        """One payload accepted."""
        self._counter.labels(outcome="accepted").inc()

    def refused(self, outcome: str, line: str, *, client: str) -> None:
        """Count one refusal; log it unless one of ``outcome`` was logged within the interval."""
        self._counter.labels(outcome=outcome).inc()
        more = self._throttle.admit(outcome)
        if more is not None:
            logger.warning("refused Alertmanager request from %s: %s%s", client, line, more)


def alertmanager_route(webhook: Webhook, *, log: WebhookLog) -> Route:
    """The ``POST /alertmanager`` route."""
    return Route(PATH, alertmanager_endpoint(webhook, log), methods=["POST"])


def alertmanager_endpoint(
    webhook: Webhook, log: WebhookLog
) -> Callable[[Request], Awaitable[Response]]:
    """Check the token, read and validate the body, hand it to the intake (see module doc)."""
    expected = webhook.token.encode("utf-8")

    async def alertmanager(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"

        def refuse(status: int, outcome: str, line: str) -> Response:
            log.refused(outcome, line, client=client)
            return PlainTextResponse(line, status_code=status)

        if not authorized(request, expected):
            return refuse(401, "unauthorized", "missing or wrong bearer token")
        try:
            body = await read_body(request, limit=MAX_BODY_BYTES)
            payload = parse_payload(body)
        except Refused:
            return refuse(400, "too_large", f"body over {MAX_BODY_BYTES // (1024 * 1024)} MB")
        except PayloadError as err:
            return refuse(400, "bad_payload", str(err))
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            await run_in_threadpool(webhook.intake.receive, payload)
        except AuditUnavailable as err:
            logger.error("Alertmanager notification not recorded: %s", err.message)
            log.refused("unavailable", "audit database unavailable", client=client)
            return PlainTextResponse("audit database unavailable, retry", status_code=503)
        log.accepted()
        return PlainTextResponse("ok")

    return alertmanager


def authorized(request: Request, expected: bytes) -> bool:
    """Exactly one ``Authorization: Bearer <token>`` header whose token is ``expected``.

    Compared with ``hmac.compare_digest`` on bytes (it raises on non-ASCII text): the
    time taken says nothing about how much of the token was right.
    """
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        return False
    scheme, _, given = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Headers arrive as latin-1 text: back to the bytes that were sent.
    sent = given.strip().encode("latin-1", errors="replace")
    return hmac.compare_digest(sent, expected)
