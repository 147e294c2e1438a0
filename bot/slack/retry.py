"""Bounded retries inside one Slack Web API call (the alert notifier's client).

slack_sdk's rate-limit handler sleeps whatever ``Retry-After`` says, and parses it
with ``int()`` inside the client (a malformed header would raise there). Ours retries
only a short, well-formed wait: a longer one fails the call at once, and the
dispatcher's own backoff (capped at a check interval) tries again later, so one
rate-limited channel never holds the outbox for minutes.
"""

from __future__ import annotations

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
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            value = str(values[0]).strip()
            return int(value) if value.isdecimal() else None
    return None


def alert_retry_handlers(max_retries: int = MAX_RETRIES) -> list[RetryHandler]:
    """Rate limits (short Retry-After), 500/503 and dropped connections, each a few times."""
    return [
        BoundedRateLimitRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
    ]
