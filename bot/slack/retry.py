"""Bounded retries inside one Slack Web API call, and what a failed call means.

slack_sdk's rate-limit handler sleeps whatever ``Retry-After`` says, and parses it
with ``int()`` inside the client (a malformed header would raise there). Ours retries
only a short, well-formed wait: a longer one fails the call at once, and whoever made
it retries later on its own terms (the alert outbox's backoff, the approval message
redelivery, a result's response_url fallback), so a rate-limited channel never holds
a thread for minutes.

Two budgets: the alert notifier's client (its own thread) waits up to 10 s; the
listeners' client waits up to 3 s, because Bolt runs every listener (and its ack) on a
pool of 5 threads, and a thread asleep in a retry is one the next slash command
cannot be acked on. Retries always run after the ack: the listener acks first.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

MAX_RETRIES = 2  # per handler and call: a few seconds at most, then the outbox retries
MAX_RETRY_AFTER_SECONDS = 10
LISTENER_MAX_RETRY_AFTER_SECONDS = 3  # worst case per call: 2 x (3 s + up to 1 s jitter)

# ``{"ok": false}`` codes (HTTP 200) that mean "Slack is unwell", not "this call is wrong".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a 429 whose ``Retry-After`` is a whole number of at most ``max_wait`` seconds."""

    def __init__(self, *, max_retry_count: int, max_wait: int = MAX_RETRY_AFTER_SECONDS) -> None:
        """``max_wait``: the longest Retry-After waited for inside the call."""
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response)
        return wait is not None and wait <= self.max_wait


def retry_after(response: HttpResponse) -> int | None:
    """The ``Retry-After`` seconds of ``response``; None when absent or not a whole number."""
    return _retry_after_header(response.headers)


def _retry_after_header(headers: Mapping[str, Any]) -> int | None:
    for name, values in headers.items():
        if name.lower() == "retry-after" and values:
            value = str(values[0] if isinstance(values, list | tuple) else values).strip()
            return int(value) if value.isdecimal() and len(value) < 10 else None
    return None


def bounded_retry_handlers(*, max_retries: int, max_wait: int) -> list[RetryHandler]:
    """Rate limits (a Retry-After of at most ``max_wait`` s), 500/503, dropped connections."""
    return [
        BoundedRateLimitRetryHandler(max_retry_count=max_retries, max_wait=max_wait),
        ServerErrorRetryHandler(max_retry_count=max_retries),
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
    ]


def alert_retry_handlers(max_retries: int = MAX_RETRIES) -> list[RetryHandler]:
    """The alert notifier's: each a few times, a Retry-After of up to 10 s."""
    return bounded_retry_handlers(max_retries=max_retries, max_wait=MAX_RETRY_AFTER_SECONDS)


def listener_retry_handlers() -> list[RetryHandler]:
    """The listeners' (Bolt's client): each twice, a Retry-After of up to 3 s."""
    return bounded_retry_handlers(
        max_retries=MAX_RETRIES, max_wait=LISTENER_MAX_RETRY_AFTER_SECONDS
    )


def without_retries(client: WebClient) -> WebClient:
    """The same token and API URL, no retries: for calls whose failure a later one repairs
    (a progress line, a redelivery sweep that has its own backoff)."""
    # A copy keeps the client's class: an ObservedWebClient's copy still reports its
    # failed calls (bot/slack/observed.py).
    quick = copy.copy(client)
    quick.headers = dict(client.headers)
    quick.retry_handlers = []
    return quick


@dataclass(frozen=True)
class CallFailure:
    """What a failed Web API call means for trying again."""

    error: str  # Slack's error code, ``HTTP 503``, or the connection error
    status: int | None  # the HTTP status; None when no answer came
    retry_after: int | None = None  # Slack's Retry-After (429), in seconds

    @classmethod
    def of(cls, err: SlackApiError | OSError) -> CallFailure:
        """Read a SlackApiError (the answer) or an OSError (no answer: refused, timed out)."""
        if not isinstance(err, SlackApiError):
            return cls(error=f"{type(err).__name__}: {err}"[:200], status=None)
        response = err.response
        status = int(response.status_code)
        code = response.get("error") if isinstance(response.data, dict) else None
        error = f"HTTP {status}" if status >= 500 or not code else str(code)
        return cls(error=error, status=status, retry_after=_retry_after_header(response.headers))

    @property
    def transient(self) -> bool:
        """Slack (or the way to it) is unwell: the same call may well work later."""
        if self.status is None or self.status == 429 or self.status >= 500:
            return True
        return self.error in TRANSIENT_ERRORS

    @property
    def retried(self) -> bool:
        """The client's handlers have already retried it (HTTP 429/5xx, no answer)."""
        return self.status is None or self.status == 429 or self.status >= 500
