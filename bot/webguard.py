"""The guard in front of Bolt on ``POST /slack/events``: only signed, readable requests pass.

Bolt parses the body before it checks the signature, so anyone on the internet could
make it raise (``payload=x``, ``{``, invalid UTF-8, a timestamp ``abc``): HTTP 500 and
a traceback per request. The guard runs first, in this order, and refuses with one
short plain-text answer, one (throttled) log line and a count:

1. the body, read up to ``MAX_BODY_BYTES`` and no further (413);
2. Slack's ``ssl_check``, answered 200 here as Bolt's SslCheck does, unsigned;
3. the signature and its timestamp, by slack_sdk's ``SignatureVerifier`` (401);
4. only then the body's shape as Bolt reads it: UTF-8, a JSON object (400).

A request that passes reaches Bolt already parsed into a ``BoltRequest``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, Counter
from slack_bolt import BoltRequest
from slack_bolt.adapter.starlette.handler import to_bolt_request
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.datastructures import Headers
from starlette.requests import Request

# Slack sends form-encoded slash commands (a few hundred bytes), and block_actions and
# view_submission payloads that echo the message or modal clicked: tens of KB. The
# worst our own can be is a click on a 50-block message at Slack's 3,000 characters per
# block, ~150 KB of JSON, ~450 KB once form-encoded (punctuation tripled). 1 MiB holds
# twice that, and is all an unsigned request can make us buffer.
MAX_BODY_BYTES = 1024 * 1024
# Slack's replay window (slack_sdk's SignatureVerifier uses the same five minutes).
SIGNATURE_WINDOW_SECONDS = 5 * 60
# One line per reason per minute: a flood of refusals writes a few lines a minute,
# while a wrong SLACK_SIGNING_SECRET (every real request refused) still shows at once.
REFUSAL_LOG_INTERVAL = 60.0
# Digits only, as Slack sends a timestamp (and h11 a Content-Length): int() would also
# take " 1_700 " or Arabic digits, and raises on 4,300 digits.
_DIGITS = re.compile(r"[0-9]{1,20}")

logger = logging.getLogger(__name__)


class Reason(StrEnum):
    """Why a request was refused: the metric's label, with its status and answer."""

    TOO_LARGE = "too_large"
    UNSIGNED = "unsigned"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    NOT_UTF8 = "not_utf8"
    MALFORMED = "malformed_body"

    @property
    def status(self) -> int:
        """The HTTP status of the refusal."""
        return _STATUS[self]

    @property
    def text(self) -> str:
        """The plain-text answer (and the log's wording)."""
        return _TEXT[self]


_STATUS = {
    Reason.TOO_LARGE: 413,
    Reason.UNSIGNED: 401,
    Reason.BAD_TIMESTAMP: 401,
    Reason.STALE: 401,
    Reason.BAD_SIGNATURE: 401,
    Reason.NOT_UTF8: 400,
    Reason.MALFORMED: 400,
}
_TEXT = {
    Reason.TOO_LARGE: f"request body larger than {MAX_BODY_BYTES // 1024} KB",
    Reason.UNSIGNED: "missing Slack signature or timestamp header",
    Reason.BAD_TIMESTAMP: "invalid Slack request timestamp",
    Reason.STALE: "Slack request timestamp outside the 5-minute window",
    Reason.BAD_SIGNATURE: "invalid Slack signature",
    Reason.NOT_UTF8: "request body is not UTF-8",
    Reason.MALFORMED: "request body is not a Slack payload (JSON object)",
}


class Refused(Exception):
    """The guard refuses the request for ``reason``."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.text)
        self.reason = reason


class LogThrottle:
    """At most one log line per key per ``interval`` seconds, and how many were held back.

    Shared by every face that refuses requests (Slack's, Alertmanager's): a flood of bad
    requests costs a few lines, and the next line of a key says how many it stands for.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, interval: float = REFUSAL_LOG_INTERVAL
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> str | None:
        """None when ``key`` was logged within the interval (this one is counted); else the
        suffix for the line: "" or "; N more not logged since the last such line"."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._unlogged[key] = self._unlogged.get(key, 0) + 1
                return None
            self._last[key] = now
            unlogged = self._unlogged.pop(key, 0)
        return f"; {unlogged} more not logged since the last such line" if unlogged else ""


class RefusalLog:
    """Counts every refusal; logs at most one line per reason per ``interval`` seconds.

    The next line of a reason says how many were not logged since the previous one.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REFUSAL_LOG_INTERVAL,
        log: logging.Logger = logger,
    ) -> None:
        self._counter = Counter(
            "redis_mem_slack_requests_refused",
            "Requests to /slack/events refused before Bolt, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in Reason:  # every series exists from the start, at 0
            self._counter.labels(reason=reason.value)
        self._throttle = LogThrottle(clock=clock, interval=interval)
        self._log = log

    def refused(self, reason: Reason, *, client: str) -> None:
        """Count one refusal of ``reason`` from ``client``; log it unless throttled."""
        self._counter.labels(reason=reason.value).inc()
        more = self._throttle.admit(reason.value)
        if more is None:
            return
        self._log.warning(
            "refused Slack request from %s with %d: %s%s", client, reason.status, reason.text, more
        )


class _WallClock(Clock):
    """slack_sdk's Clock over a clock passed in."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackRequestGuard:
    """Reads, verifies and parses one request for Bolt, or refuses it (see module doc)."""

    def __init__(
        self,
        *,
        signing_secret: str,
        refusals: RefusalLog,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_WallClock(wall_clock))
        self._wall_clock = wall_clock
        self._refusals = refusals

    async def admit(self, request: Request) -> BoltRequest | None:
        """The parsed request for Bolt; None for an ssl_check (answer 200, empty).

        Raises Refused, already counted and logged.
        """
        try:
            body = await read_body(request, limit=MAX_BODY_BYTES)
            if is_ssl_check(body, request.headers):
                return None
            text = body.decode("utf-8", errors="replace")
            self.verify(text, request.headers)
            return bolt_request(body, request)
        except Refused as refusal:
            client = request.client.host if request.client else "unknown"
            self._refusals.refused(refusal.reason, client=client)
            raise

    def verify(self, body: str, headers: Headers) -> None:
        """Raise Refused unless ``body`` carries a valid, current Slack signature.

        ``body`` is the raw body decoded with replacement: SignatureVerifier decodes bytes
        strictly and would raise on invalid UTF-8. Slack signs UTF-8, so a real request
        is unchanged, and an invalid one is refused later as not UTF-8 whatever its
        signature.
        """
        timestamps = headers.getlist("x-slack-request-timestamp")
        signatures = headers.getlist("x-slack-signature")
        # Exactly one of each: Bolt reads the last of repeated headers, we the only one.
        if len(timestamps) != 1 or len(signatures) != 1:
            raise Refused(Reason.UNSIGNED)
        [timestamp], [signature] = timestamps, signatures
        if not _DIGITS.fullmatch(timestamp):
            raise Refused(Reason.BAD_TIMESTAMP)
        if not signature.isascii():  # hmac.compare_digest raises on non-ASCII text
            raise Refused(Reason.BAD_SIGNATURE)
        if self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return
        if abs(self._wall_clock() - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
            raise Refused(Reason.STALE)
        raise Refused(Reason.BAD_SIGNATURE)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The body, never more than ``limit`` bytes read; Refused(TOO_LARGE) beyond.

    A declared Content-Length over the limit is refused before any byte is read.
    """
    declared = request.headers.get("content-length", "")
    if _DIGITS.fullmatch(declared) and int(declared) > limit:
        raise Refused(Reason.TOO_LARGE)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(Reason.TOO_LARGE)
    return bytes(body)


def content_type(headers: Headers) -> str | None:
    """The media type as Bolt reads it: the last Content-Type header, before any ``;``."""
    values = headers.getlist("content-type")
    return values[-1].split(";")[0] if values and values[-1] else None


def is_ssl_check(body: bytes, headers: Headers) -> bool:
    """Slack's ``ssl_check=1`` form post, which Bolt answers 200 before any signature check.

    Only a form body is read here, with ``parse_qsl``, which never raises: nothing of
    an unsigned request reaches a JSON parser.
    """
    if b"ssl_check" not in body or content_type(headers) == "application/json":
        return False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if text.startswith("{"):
        return False
    return dict(parse_qsl(text, keep_blank_values=True)).get("ssl_check") == "1"


def bolt_request(body: bytes, request: Request) -> BoltRequest:
    """The BoltRequest of a signed ``body``; Refused (NOT_UTF8, MALFORMED) if Bolt can't read it.

    Mirrors Bolt's ``parse_body``: JSON when the type says so or the body starts with
    ``{``; else a form, whose ``payload`` field (when present) is JSON. Bolt wants a
    JSON object either way, then reads fields from it (``team``, ``user``, ...) assuming
    Slack's shapes: a signed body Slack would never send fails that, and is refused too.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(Reason.NOT_UTF8) from None
    if content_type(request.headers) == "application/json" or text.startswith("{"):
        _require_json_object(text)
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            _require_json_object(payload)
    try:
        return to_bolt_request(request, body)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
        raise Refused(Reason.MALFORMED) from None


def _require_json_object(text: str) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: bad JSON, or an int of 4,300 digits
        raise Refused(Reason.MALFORMED) from None
    if not isinstance(value, dict):
        raise Refused(Reason.MALFORMED)
