"""The report publisher against the fake Slack over HTTP: message, then the chart's upload."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

import httpx
import pytest
from PIL import Image
from prometheus_client import CollectorRegistry
from slack_sdk import WebClient

from bot.audit.entry import AuditEntry
from bot.config import Settings, Target
from bot.errors import RedisMemError
from bot.reports.model import AlertSpan, AuditHead, FixRecord, Report, Series
from bot.reports.service import ReportService
from bot.slack.blocks.report import NO_CHART
from bot.slack.metrics import BotMetrics
from bot.slack.report_post import SlackReportPublisher
from bot.slack.retry import listener_retry_handlers
from bot.web import create_web_app
from bot.wiring import diagnosis_service
from tests.asgiserver import ThreadedServer
from tests.fakeslack import FakeSlack
from tests.redisserver import free_port
from tests.report_support import HEAD, UNTIL, make_report, make_series
from tests.slack_app_support import bolt_app
from tests.slackcheck import all_text, rebuilt
from tests.slacksign import signed_headers

CHANNEL = "C0REPORTS"
UPLOAD_SEQUENCE = ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


def tiny_png(width: int = 3, height: int = 2) -> bytes:
    """A valid PNG of ``width`` x ``height`` grey pixels, written by hand (no chart needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Drawn:
    """A render_png that hands back fixed bytes and remembers what it was asked to draw."""

    def __init__(self, png: bytes | None) -> None:
        self.png = png
        self.reports: list[Report] = []

    def __call__(self, report: Report) -> bytes | None:
        self.reports.append(report)
        return self.png


def client_for(fake: FakeSlack) -> WebClient:
    """The listeners' client: the bot's own retry handlers, nothing of the test's."""
    return WebClient(
        token="xoxb-test", base_url=fake.api_url, retry_handlers=listener_retry_handlers()
    )


def api_methods(fake: FakeSlack) -> list[str]:
    return [call.method for call in fake.calls]


def test_the_message_then_the_chart_uploaded_in_its_thread(fake_slack: FakeSlack) -> None:
    png = tiny_png()
    draw = Drawn(png)
    report = make_report(3)
    ts = SlackReportPublisher(client_for(fake_slack), render_png=draw).publish(
        report, channel=CHANNEL
    )
    assert api_methods(fake_slack) == ["chat.postMessage", *UPLOAD_SEQUENCE]
    posted = fake_slack.calls_to("chat.postMessage")[0]
    assert posted.params["channel"] == CHANNEL
    assert ts is not None and "store-000" in all_text(posted.params["blocks"])
    assert draw.reports == [report]
    asked = fake_slack.calls_to("files.getUploadURLExternal")[0].params
    assert asked["filename"] == "redis-mem-report-2026-12-01.png"
    assert int(asked["length"]) == len(png)
    completed = fake_slack.calls_to("files.completeUploadExternal")[0].params
    assert completed["channel_id"] == CHANNEL
    assert completed["thread_ts"] == ts
    (file,) = completed["files"]
    assert file["title"] == "Redis memory, % of maxmemory — last 24h"
    assert fake_slack.uploads[file["id"]] == png
    with Image.open(io.BytesIO(fake_slack.uploads[file["id"]])) as image:
        assert image.format == "PNG" and image.size == (3, 2)


def test_no_samples_no_upload_and_the_message_says_so(fake_slack: FakeSlack) -> None:
    draw = Drawn(tiny_png())
    report = make_report(2, points=0)
    SlackReportPublisher(client_for(fake_slack), render_png=draw).publish(report, channel=CHANNEL)
    assert api_methods(fake_slack) == ["chat.postMessage"]
    assert draw.reports == []
    assert NO_CHART in all_text(fake_slack.calls_to("chat.postMessage")[0].params["blocks"])


@pytest.mark.parametrize("where", ["upload", "files.completeUploadExternal"])
def test_a_failed_upload_keeps_the_message_and_replies_one_line(
    fake_slack: FakeSlack, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    if where == "upload":
        fake_slack.fail_http("upload", status=403)  # the upload URL refuses the bytes
    else:
        fake_slack.fail(where, "missing_scope")
    publisher = SlackReportPublisher(client_for(fake_slack), render_png=Drawn(tiny_png()))
    with caplog.at_level(logging.WARNING, logger="bot.slack.report_post"):
        ts = publisher.publish(make_report(1), channel=CHANNEL)
    assert ts is not None
    messages = fake_slack.calls_to("chat.postMessage")
    assert len(messages) == 2
    reply = messages[1].params
    assert reply["thread_ts"] == ts
    assert reply["text"].startswith("⚠ the chart could not be uploaded (")
    assert "\n" not in reply["text"]
    if where == "files.completeUploadExternal":
        assert "files:write" in reply["text"]
    if where == "upload":
        assert fake_slack.uploads == {}
    assert [r.getMessage() for r in caplog.records if "could not be uploaded" in r.getMessage()]


def test_a_chart_that_cannot_be_drawn_is_one_reply(fake_slack: FakeSlack) -> None:
    def broken(report: Report) -> bytes | None:
        raise RuntimeError("matplotlib exploded")

    publisher = SlackReportPublisher(client_for(fake_slack), render_png=broken)
    ts = publisher.publish(make_report(1), channel=CHANNEL)
    replies = fake_slack.calls_to("chat.postMessage")[1:]
    assert [r.params["text"] for r in replies] == [
        "⚠ the chart could not be drawn (see the bot's log)"
    ]
    assert replies[0].params["thread_ts"] == ts
    assert fake_slack.calls_to("files.getUploadURLExternal") == []


def test_a_refused_message_is_one_line_and_nothing_is_uploaded(fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", "not_in_channel")
    draw = Drawn(tiny_png())
    publisher = SlackReportPublisher(client_for(fake_slack), render_png=draw)
    with pytest.raises(RedisMemError) as raised:
        publisher.publish(make_report(1), channel=CHANNEL)
    assert str(raised.value) == (
        f"could not post the report in {CHANNEL}: invite the bot to this channel"
    )
    assert draw.reports == []
    assert fake_slack.calls_to("files.getUploadURLExternal") == []


def test_a_rate_limited_upload_url_is_retried_by_the_clients_handlers(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.fail_http("files.getUploadURLExternal", status=429, retry_after=0)
    SlackReportPublisher(client_for(fake_slack), render_png=Drawn(tiny_png())).publish(
        make_report(1), channel=CHANNEL
    )
    assert [c.status for c in fake_slack.calls_to("files.getUploadURLExternal")] == [429, 200]
    assert len(fake_slack.uploads) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # no "could not upload" reply


def test_the_real_chart_is_uploaded_and_decodes(fake_slack: FakeSlack) -> None:
    from bot.reports.chart import CHART_HEIGHT_PX, CHART_WIDTH_PX

    SlackReportPublisher(client_for(fake_slack)).publish(make_report(3, points=48), channel=CHANNEL)
    (png,) = fake_slack.uploads.values()
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
        assert image.format == "PNG"
        assert image.size == (CHART_WIDTH_PX, CHART_HEIGHT_PX)


# /redis-mem report, through the served Bolt app ------------------------------------------

SECRET = "test-signing-secret"


class StoredHistory:
    """The ReportSource port over fixed series (the SQL source has its own tests)."""

    def __init__(self, *series: Series) -> None:
        self.by_target = {s.target: s for s in series}

    def series(
        self, *, targets: Collection[str], since: datetime, until: datetime
    ) -> dict[str, Series]:
        kept = {
            name: replace(s, points=tuple(p for p in s.points if since <= p.at <= until))
            for name, s in self.by_target.items()
            if name in targets
        }
        return {name: s for name, s in kept.items() if s.points}

    def alerts(self, *, since: datetime, until: datetime) -> list[AlertSpan]:
        return []

    def fixes(self, *, since: datetime, until: datetime) -> list[FixRecord]:
        return []

    def audit_head(self) -> AuditHead | None:
        return HEAD


@dataclass
class Served:
    """The bot served over HTTP, answering Slack's slash commands."""

    url: str
    fake: FakeSlack
    http: httpx.Client

    def command(self, text: str) -> str:
        """POST a signed ``/redis-mem <text>``; the ephemeral ack's text."""
        payload = {
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": "C0OPS",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/redis-mem",
            "text": text,
            "response_url": self.fake.response_url(),
            "trigger_id": "1337.42.abcdef",
        }
        body = urlencode(payload)
        headers = signed_headers(secret=SECRET, body=body)
        response = self.http.post(f"{self.url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["response_type"] == "ephemeral"
        return str(response.json()["text"])


@pytest.fixture
def serve(fake_slack: FakeSlack) -> Iterator[Callable[..., Served]]:
    """Start the web app (Bolt inside) with a report service over ``StoredHistory``."""
    servers: list[ThreadedServer] = []
    services: list[ReportService] = []
    http = httpx.Client(timeout=10)

    def start(*, reports: bool = True, channels: dict[str, str] | None = None) -> Served:
        settings = Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=fake_slack.api_url,
        )
        # Nothing listens there: ``report`` reads the stored history, no live diagnosis.
        targets = {
            name: Target(
                name=name,
                redis_url=f"redis://127.0.0.1:{free_port()}/0",
                channel=(channels or {}).get(name),
            )
            for name in ("prod", "cache")
        }
        history = StoredHistory(
            make_series("prod", ratio=0.9, points=48), make_series("cache", ratio=0.3, points=48)
        )
        service = ReportService(
            targets=targets, source=history, live=None, clock=lambda: UNTIL, timezone="UTC"
        )
        services.append(service)
        registry = CollectorRegistry()
        bolt = bolt_app(
            settings,
            diagnosis=diagnosis_service(settings, targets),
            audit=ListSink(),
            metrics=BotMetrics.create(registry),
            reports=service if reports else None,
        )
        web = create_web_app(registry=registry, bolt_app=bolt, ready=lambda: True)
        servers.append(ThreadedServer.start(web))
        return Served(url=servers[-1].url, fake=fake_slack, http=http)

    yield start
    for server in servers:
        server.stop()
    for service in services:
        service.close()
    http.close()


class ListSink:
    """The AuditSink port, in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def test_report_posts_the_message_and_its_chart_in_the_askers_channel(
    serve: Callable[..., Served],
) -> None:
    bot = serve()
    assert bot.command("report") == "Building the 24h report…"
    upload = bot.fake.wait_for("files.completeUploadExternal")[0].params
    [posted] = bot.fake.calls_to("chat.postMessage")
    assert posted.params["channel"] == "C0OPS"
    blocks = posted.params["blocks"]
    assert rebuilt(blocks) == blocks
    text = all_text(blocks)
    assert text.index("*prod*") < text.index("*cache*")  # worst first
    assert HEAD.anchor in text
    assert upload["channel_id"] == "C0OPS" and upload["thread_ts"]
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == [
        "chat.postMessage",
        *UPLOAD_SEQUENCE,
    ]
    (png,) = bot.fake.uploads.values()
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"


def test_report_in_a_channel_with_its_own_targets_covers_only_them(
    serve: Callable[..., Served],
) -> None:
    bot = serve(channels={"prod": "C0OTHER", "cache": "C0OPS"})  # asked in C0OPS
    bot.command("report")
    bot.fake.wait_for("files.completeUploadExternal")
    [posted] = bot.fake.calls_to("chat.postMessage")
    text = all_text(posted.params["blocks"])
    assert "*cache*" in text and "*prod*" not in text


@pytest.mark.parametrize("words", ["prod 30m", "30m prod"])
def test_report_takes_a_target_and_a_window_in_either_order(
    serve: Callable[..., Served], words: str
) -> None:
    bot = serve()
    assert bot.command(f"report {words}") == "Building the 30m report of *prod*…"
    bot.fake.wait_for("files.completeUploadExternal")  # done: the fake may stop
    [posted] = bot.fake.calls_to("chat.postMessage")
    header = posted.params["blocks"][0]["text"]["text"]
    assert header == "📊 Redis memory report — last 30m · prod"


@pytest.mark.parametrize(
    ("words", "answer"),
    [
        ("0h", '⚠ report: the window must be from 1m to 30d (got "0h")'),
        ("99999d", '⚠ report: the window must be from 1m to 30d (got "99999d")'),
        ("nosuch", "⚠ unknown target 'nosuch' (known: cache, prod)"),
        ("prod 1h 2h", "⚠ report: expected at most a target and a window"),
        ("1h 2h", '⚠ report: two windows given (got "2h"'),
        ("prod cache", '⚠ report: two targets given (got "cache"'),
    ],
)
def test_bad_report_words_are_one_line_and_nothing_is_posted(
    serve: Callable[..., Served], words: str, answer: str
) -> None:
    bot = serve()
    text = bot.command(f"report {words}")
    assert text.startswith(answer) and "\n" not in text
    assert bot.fake.calls_to("chat.postMessage") == []
    assert bot.fake.calls_to("files.getUploadURLExternal") == []


def test_report_without_a_report_service_is_one_line(serve: Callable[..., Served]) -> None:
    bot = serve(reports=False)
    bot.command("report")
    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["text"] == "⚠ report: reports are not configured in this process"
    assert bot.fake.calls_to("chat.postMessage") == []


def test_report_is_in_the_help(serve: Callable[..., Served]) -> None:
    bot = serve()
    assert "report [target] [Nm|Nh|Nd]" in bot.command("help")


def test_a_channel_the_bot_is_not_in_is_one_line_to_the_asker(
    serve: Callable[..., Served],
) -> None:
    bot = serve()
    bot.fake.fail("chat.postMessage", "not_in_channel")
    bot.command("report prod")
    [reply] = bot.fake.wait_for("response_url/cmd")
    assert reply.params["text"] == (
        "⚠ report: could not post the report in C0OPS: invite the bot to this channel"
    )
    assert reply.params["response_type"] == "ephemeral"
    assert bot.fake.calls_to("files.getUploadURLExternal") == []
