"""The guard in front of Bolt: no request to ``/slack/events`` can crash it or flood the log.

The Starlette app is built as ``redis-mem serve`` builds it (the real Bolt App from
``build_app``, which checks its token against the fake Slack Web API) and served by a
real uvicorn; requests go over HTTP. Every bad request gets 400/401/413, a short plain
text answer, one log line and a count; a valid signed request still works; and a real
``redis-mem serve`` refuses 1,000 bad requests with a few lines of log.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from slack_bolt import App, BoltRequest, BoltResponse

from bot.audit.entry import AuditEntry
from bot.config import Settings, Target
from bot.slack.metrics import BotMetrics
from bot.web import create_web_app
from bot.webguard import MAX_BODY_BYTES, REFUSAL_LOG_INTERVAL, Reason
from bot.wiring import diagnosis_service
from tests.asgiserver import ThreadedServer
from tests.clirun import clean_env
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.redisserver import free_port
from tests.serveproc import ServeProcess
from tests.slack_app_support import bolt_app
from tests.slackcheck import wait_until
from tests.slacksign import button_click_payload, signature

SECRET = "guard-test-secret"
Body = bytes | str
Headers = list[tuple[bytes, bytes]]


class ListSink:
    """A fake of the AuditSink port: keeps entries in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class FakeClock:
    """The monotonic clock the refusal log is paced by, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def next_window(self) -> None:
        """Move past the throttle interval: the next refusal of any reason is logged."""
        self.now += REFUSAL_LOG_INTERVAL + 1


def now() -> str:
    return str(int(time.time()))


def header(name: str, value: str | bytes) -> tuple[bytes, bytes]:
    """One header; bytes values go as they are (a latin-1 byte is not ASCII)."""
    return name.encode(), value if isinstance(value, bytes) else value.encode()


def signed(body: Body, *, secret: str = SECRET, timestamp: str | None = None) -> Headers:
    """Slack's two headers for ``body`` (text of invalid UTF-8 signed as the guard reads it)."""
    ts = timestamp or now()
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    return [
        header("X-Slack-Request-Timestamp", ts),
        header("X-Slack-Signature", signature(secret=secret, timestamp=ts, body=text)),
    ]


def forged(timestamp: str | bytes | None = None, sig: str | bytes = "v0=00") -> Headers:
    return [
        header("X-Slack-Request-Timestamp", timestamp or now()),
        header("X-Slack-Signature", sig),
    ]


FORM = [header("Content-Type", "application/x-www-form-urlencoded")]
JSON = [header("Content-Type", "application/json")]


@dataclass
class Guarded:
    """The served app, its clock and registry, and what the bot recorded."""

    url: str
    clock: FakeClock
    registry: CollectorRegistry
    audit: ListSink
    fake: FakeSlack
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def post(self, body: Body | Iterator[bytes], headers: Headers) -> httpx.Response:
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def refused(self, reason: Reason) -> float:
        value = self.registry.get_sample_value(
            "redis_mem_slack_requests_refused_total", {"reason": reason.value}
        )
        return value or 0.0


@pytest.fixture(scope="module")
def slack_api() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@contextmanager
def serving(slack_api: FakeSlack) -> Iterator[Guarded]:
    """The bot's web app as ``serve`` builds it, under uvicorn, with a fresh clock and registry."""
    settings = Settings(
        slack_bot_token="xoxb-test", slack_signing_secret=SECRET, slack_api_url=slack_api.api_url
    )
    registry, clock, sink = CollectorRegistry(), FakeClock(), ListSink()
    targets = {"prod": Target(name="prod", redis_url="redis://127.0.0.1:1/0")}  # never used
    bolt = bolt_app(
        settings,
        diagnosis=diagnosis_service(settings, targets),
        audit=sink,
        metrics=BotMetrics.create(registry),
    )
    web = create_web_app(registry=registry, bolt_app=bolt, ready=lambda: True, clock=clock)
    server = ThreadedServer.start(web)
    try:
        yield Guarded(url=server.url, clock=clock, registry=registry, audit=sink, fake=slack_api)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def guarded(slack_api: FakeSlack) -> Iterator[Guarded]:
    """One served app for the module (tests that count log lines exactly use their own)."""
    with serving(slack_api) as app:
        yield app


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the server's threads (uvicorn's own logger does not propagate)."""
    caplog.set_level(logging.INFO)
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    yield caplog
    uvicorn_logger.removeHandler(caplog.handler)


def server_records(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the server logged (not the test's own HTTP client)."""
    return [r for r in log.records if not r.name.startswith(("httpx", "httpcore"))]


def chunks_beyond_the_cap() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
    for _ in range(MAX_BODY_BYTES // 65536 + 2):
        yield b"y" * 65536


DEEP = "payload=" + "[" * 100_000
LONG_INT = '{"a": ' + "1" * 5000 + "}"
# name: (body, headers) -> the refusal. The first five are the issue's own.
Make = Callable[[], tuple[Body | Iterator[bytes], Headers]]
BAD: dict[str, tuple[Make, Reason]] = {
    "payload-x": (lambda: ("payload=x", FORM + forged()), Reason.BAD_SIGNATURE),
    "open-brace": (lambda: ("{", forged()), Reason.BAD_SIGNATURE),
    "invalid-utf8": (lambda: (b"\xff\xfe\xfd", FORM + forged()), Reason.BAD_SIGNATURE),
    "timestamp-abc": (lambda: ("payload=x", forged("abc")), Reason.BAD_TIMESTAMP),
    "no-headers": (lambda: ("payload=x", FORM), Reason.UNSIGNED),
    "empty": (lambda: (b"", []), Reason.UNSIGNED),
    "only-timestamp": (lambda: ("{", forged()[:1]), Reason.UNSIGNED),
    "only-signature": (lambda: ("{", forged()[1:]), Reason.UNSIGNED),
    "two-signatures": (
        lambda: ("text=x", [*signed("text=x"), header("X-Slack-Signature", "v0=00")]),
        Reason.UNSIGNED,
    ),
    "timestamp-5000-digits": (lambda: ("text=x", forged("9" * 5000)), Reason.BAD_TIMESTAMP),
    "timestamp-latin1-digit": (lambda: ("text=x", forged(b"\xb2")), Reason.BAD_TIMESTAMP),
    "timestamp-negative": (lambda: ("text=x", forged("-1")), Reason.BAD_TIMESTAMP),
    "signature-not-ascii": (lambda: ("text=x", forged(sig=b"v0=\xe9")), Reason.BAD_SIGNATURE),
    "wrong-secret": (lambda: ("text=x", signed("text=x", secret="nope")), Reason.BAD_SIGNATURE),
    "stale": (
        lambda: ("text=x", signed("text=x", timestamp=str(int(time.time()) - 360))),
        Reason.STALE,
    ),
    "future": (
        lambda: ("text=x", signed("text=x", timestamp=str(int(time.time()) + 360))),
        Reason.STALE,
    ),
    "declared-too-large": (lambda: (b"x" * (MAX_BODY_BYTES + 1), forged()), Reason.TOO_LARGE),
    "chunked-too-large": (lambda: (chunks_beyond_the_cap(), forged()), Reason.TOO_LARGE),
    "signed-too-large": (
        lambda: ("x" * (MAX_BODY_BYTES + 1), signed("x" * (MAX_BODY_BYTES + 1))),
        Reason.TOO_LARGE,
    ),
    "signed-payload-x": (lambda: ("payload=x", FORM + signed("payload=x")), Reason.MALFORMED),
    "signed-open-brace": (lambda: ("{", signed("{")), Reason.MALFORMED),
    "signed-payload-array": (
        lambda: ("payload=[1,2]", FORM + signed("payload=[1,2]")),
        Reason.MALFORMED,
    ),
    "signed-json-array": (lambda: ("[1]", JSON + signed("[1]")), Reason.MALFORMED),
    "signed-json-string": (lambda: ('"x"', JSON + signed('"x"')), Reason.MALFORMED),
    "signed-team-not-an-object": (lambda: ('{"team": 5}', signed('{"team": 5}')), Reason.MALFORMED),
    "signed-deep-nesting": (lambda: (DEEP, FORM + signed(DEEP)), Reason.MALFORMED),
    "signed-long-int": (lambda: (LONG_INT, JSON + signed(LONG_INT)), Reason.MALFORMED),
    "signed-invalid-utf8": (
        lambda: (b"payload=\xff", FORM + signed(b"payload=\xff")),
        Reason.NOT_UTF8,
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_is_refused_with_one_line_and_a_count(
    guarded: Guarded, log: pytest.LogCaptureFixture, case: str
) -> None:
    make, reason = BAD[case]
    guarded.clock.next_window()
    before = guarded.refused(reason)
    slack_calls = len(guarded.fake.calls)
    body, headers = make()

    response = guarded.post(body, headers)

    assert (response.status_code, response.text) == (reason.status, reason.text)
    assert response.headers["content-type"].startswith("text/plain")
    [line] = server_records(log)
    assert line.name == "bot.webguard" and line.levelno == logging.WARNING
    # (other tests on this server may have left refusals of this reason not logged yet)
    assert line.getMessage().startswith(
        f"refused Slack request from 127.0.0.1 with {reason.status}: {reason.text}"
    )
    assert line.exc_info is None and "Traceback" not in log.text
    assert guarded.refused(reason) == before + 1
    assert guarded.audit.entries == [] and len(guarded.fake.calls) == slack_calls


# Header values h11 lets through (visible ASCII and latin-1), and anything as a body.
HEADER_VALUES = st.text(st.characters(codec="latin-1", exclude_characters="\x7f"), max_size=40)
NO_CONTROLS = HEADER_VALUES.filter(lambda v: all(c >= "!" for c in v)).map(str.encode)
BODIES = st.binary(max_size=400) | st.text(max_size=400).map(str.encode)
CONTENT_TYPES = st.sampled_from([None, "application/json", "application/x-www-form-urlencoded"])


@given(body=BODIES, timestamp=NO_CONTROLS, sig=NO_CONTROLS, content_type=CONTENT_TYPES)
def test_no_unsigned_request_gets_past_the_guard(
    guarded: Guarded, body: bytes, timestamp: bytes, sig: bytes, content_type: str | None
) -> None:
    headers = forged(timestamp or None, sig or b"v0=00")
    if content_type:
        headers.append(header("Content-Type", content_type))

    response = guarded.post(body, headers)

    assert response.status_code == 401, response.text
    assert guarded.audit.entries == []


@given(body=BODIES, content_type=CONTENT_TYPES)
def test_a_signed_body_of_anything_is_answered_without_a_500(
    guarded: Guarded, body: bytes, content_type: str | None
) -> None:
    headers = signed(body) + ([header("Content-Type", content_type)] if content_type else [])

    response = guarded.post(body, headers)

    # 200: an ssl_check; 404: a well-formed request Bolt has no listener for.
    assert response.status_code in (200, 400, 404), response.text


def test_refusals_are_logged_once_per_reason_per_interval_with_the_rest_counted(
    slack_api: FakeSlack, log: pytest.LogCaptureFixture
) -> None:
    with serving(slack_api) as guarded:
        refusals_are_throttled(guarded, log)


def refusals_are_throttled(guarded: Guarded, log: pytest.LogCaptureFixture) -> None:
    """50 of one reason in a window: one line; the next window's first line counts the 49."""
    for _ in range(50):
        assert guarded.post("payload=x", forged()).status_code == 401
    assert guarded.post("payload=x", []).status_code == 401  # another reason: its own line
    guarded.clock.next_window()
    assert guarded.post("{", forged()).status_code == 401

    lines = [r.getMessage() for r in server_records(log)]
    assert lines == [
        "refused Slack request from 127.0.0.1 with 401: invalid Slack signature",
        "refused Slack request from 127.0.0.1 with 401: missing Slack signature or timestamp "
        "header",
        "refused Slack request from 127.0.0.1 with 401: invalid Slack signature; "
        "49 more not logged since the last such line",
    ]
    assert guarded.refused(Reason.BAD_SIGNATURE) == 51
    metrics = guarded.http.get(f"{guarded.url}/metrics").text
    assert 'redis_mem_slack_requests_refused_total{reason="bad_signature"} 51.0' in metrics
    assert 'redis_mem_slack_requests_refused_total{reason="too_large"} 0.0' in metrics


def test_a_signed_slash_command_still_works(
    guarded: Guarded, log: pytest.LogCaptureFixture
) -> None:
    body = urlencode(
        {
            "team_id": "T0FAKE",
            "channel_id": "C0OPS",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/redis-mem",
            "text": "help",
            "response_url": guarded.fake.response_url(),
            "trigger_id": "1337.42.abcdef",
        }
    )
    response = guarded.post(body, FORM + signed(body))

    assert response.status_code == 200, response.text
    assert "capacity users=N sessions=N size=SIZE" in json.dumps(response.json()["blocks"])
    wait_until(lambda: [e.action for e in guarded.audit.entries] == ["command.help"])
    guarded.audit.entries.clear()
    assert not [r for r in server_records(log) if r.levelno >= logging.WARNING]


def test_a_click_on_a_message_as_large_as_slack_allows_passes(guarded: Guarded) -> None:
    # A block_actions payload echoes the message: 50 sections of 3,000 characters,
    # form-encoded, is the largest a click on one of our messages can be.
    payload = button_click_payload(
        action_id="redis_mem.request.expire-keys-without-ttl",
        value="prod",
        response_url=guarded.fake.response_url("button"),
    )
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "*x* `y`, " * 333}}
    payload["message"] = {"type": "message", "ts": "1.2", "blocks": [section] * 50}
    body = urlencode({"payload": json.dumps(payload)})
    assert 300_000 < len(body) < MAX_BODY_BYTES
    ephemerals = len(guarded.fake.calls_to("chat.postEphemeral"))

    response = guarded.post(body, FORM + signed(body))

    assert response.status_code == 200, response.text
    [*_, reply] = guarded.fake.wait_for("chat.postEphemeral", count=ephemerals + 1)
    # The click reached its listener: the form's diagnosis finds prod down, and says so.
    assert reply.params["text"].startswith("⚠ expire-keys-without-ttl: "), reply.params["text"]


def test_url_verification_and_ssl_check_keep_working(
    guarded: Guarded, log: pytest.LogCaptureFixture
) -> None:
    challenge = json.dumps({"type": "url_verification", "token": "t", "challenge": "c-42"})
    response = guarded.post(challenge, JSON + signed(challenge))
    assert (response.status_code, response.json()) == (200, {"challenge": "c-42"})
    # Slack's certificate check: answered before any signature check, as Bolt does.
    response = guarded.post("ssl_check=1&token=legacy", FORM)
    assert (response.status_code, response.text) == (200, "")
    response = guarded.http.get(f"{guarded.url}/slack/events", params={"ssl_check": "1"})
    assert (response.status_code, response.text) == (200, "")
    assert guarded.http.get(f"{guarded.url}/slack/events").status_code == 405
    assert server_records(log) == [] and guarded.audit.entries == []


class ExplodingBolt(App):
    """A Bolt App whose dispatch fails: what the endpoint does with a bug it did not foresee."""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        raise RuntimeError("a bug, deep in a listener")


def test_an_unexpected_error_is_a_500_without_a_traceback_in_the_answer(
    log: pytest.LogCaptureFixture,
) -> None:
    bolt = ExplodingBolt(token="xoxb-x", signing_secret=SECRET, token_verification_enabled=False)
    server = ThreadedServer.start(create_web_app(registry=CollectorRegistry(), bolt_app=bolt))
    try:
        response = httpx.post(
            f"{server.url}/slack/events", content="text=x", headers=signed("text=x"), timeout=10
        )
    finally:
        server.stop()

    assert (response.status_code, response.text) == (500, "internal error")
    [record] = server_records(log)
    assert (record.name, record.getMessage()) == ("bot.web", "Slack request failed in Bolt")
    assert record.exc_info is not None  # the one truly unexpected case keeps its traceback


FLOOD: list[tuple[Body, Callable[[], Headers]]] = [
    ("payload=x", lambda: forged()),
    ("{", lambda: forged()),
    (b"\xff\xfe", lambda: forged()),
    ("payload=x", lambda: forged("abc")),
    ("payload=x", lambda: []),
]


def test_serve_refuses_a_thousand_bad_requests_with_a_few_lines_of_log(
    slack_api: FakeSlack, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-flood",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_api.api_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}",
        REDIS_URL=redis_factory().url,
        PORT=str(port),
    )
    bot = ServeProcess(fake=slack_api, env=env, log=tmp_path / "serve.log").start()
    try:
        started = bot.log.stat().st_size
        statuses = {
            bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers()).status_code
            for i in range(1000)
            for body, headers in [FLOOD[i % len(FLOOD)]]
        }
        metrics = bot.http.get(f"{bot.url}/metrics").text
    finally:
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGTERM)
        bot.proc.wait(timeout=20)
    proc = bot.proc

    assert statuses == {401}
    assert proc.returncode == 0
    log = bot.output()
    flood_log = log.encode()[started:].decode(errors="replace")
    assert "Traceback" not in log
    refusal_lines = [line for line in flood_log.splitlines() if "refused Slack request" in line]
    assert 3 <= len(refusal_lines) <= 6, flood_log  # one per reason (twice if a minute passed)
    assert len(flood_log) < 4096, flood_log
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("redis_mem_slack_requests_refused_total{")
    )
    assert total == 1000
