"""``redis-mem serve`` end to end: the channel report at its slot, once, and on demand.

The real console script runs with a 1 s check interval against a real redis-server
whose memory the test moves; its schedule is the current minute (the slot is due as
soon as the bot starts: a slot missed by less than an hour is caught up once), so the
scheduled path runs without waiting for 09:00. The fake Slack over HTTP receives the
message, then the chart's upload sequence in its thread. A restart inside the same
slot posts nothing. ``redis-mem report --json`` then reads the same database.
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import yaml
from PIL import Image

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.health.model import Sample
from bot.health.ports import Evaluation
from bot.health.store import SqlHealthStore
from tests.clirun import invoke_cli
from tests.conftest import RedisFactory
from tests.fakeslack import Call, FakeSlack
from tests.health_support import session_store, set_ratio
from tests.redisserver import RedisServer
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import wait_until
from tests.test_slack_http import slash_payload

SECRET = "serve-report-secret"
REPORTS = "C0REPORT"
UPLOAD = ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


def this_minute(zone: str = "Europe/Paris") -> str:
    """A cron expression whose slot is the current minute in ``zone`` (due at once)."""
    now = datetime.now(ZoneInfo(zone))
    return f"{now.minute} {now.hour} * * *"


@pytest.fixture
def prod(redis_factory: RedisFactory) -> RedisServer:
    return session_store(redis_factory, ratio=0.5, ttl=None)


@pytest.fixture
def env(fake_slack: FakeSlack, tmp_path: Path, prod: RedisServer) -> dict[str, str]:
    targets = tmp_path / "targets.yml"
    entry = {"name": "prod", "redis_url": prod.url, "channel": REPORTS}
    targets.write_text(yaml.safe_dump({"targets": [entry]}))
    return bot_env(
        fake_slack,
        tmp_path,
        secret=SECRET,
        REDIS_MEM_TARGETS_FILE=str(targets),
        REDIS_MEM_CHECK_INTERVAL="1",
        REDIS_MEM_CHECK_TIMEOUT="1",
        REDIS_MEM_REPORT_SCHEDULE=this_minute(),
        REDIS_MEM_TIMEZONE="Europe/Paris",
        REDIS_MEM_LOG_LEVEL="DEBUG",  # "posted already" is a debug line
    )


def history(url: str, *, hours: int = 6) -> None:
    """Migrate the database and store ``hours`` of growing samples before serve starts."""
    engine = make_engine(url)
    upgrade(engine)
    store = SqlHealthStore(engine)
    now = datetime.now(UTC)
    for minute in range(hours * 60, 0, -5):
        at = now - timedelta(minutes=minute)
        used = (20 + (hours * 60 - minute) // 30) * 1024**2
        sample = Sample(
            "prod", at, reachable=True, used_memory=used, maxmemory=64 * 1024**2, dbsize=3000
        )
        store.record(Evaluation("prod", sample, {}, (), ()))
    engine.dispose()


class Bot(ServeProcess):
    def stop(self) -> str:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            assert self.proc.returncode == 0, self.output()
        return self.output()


@pytest.fixture
def bots(fake_slack: FakeSlack, env: dict[str, str], tmp_path: Path) -> Iterator[list[Bot]]:
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.stop()


def start(bots: list[Bot], fake: FakeSlack, env: dict[str, str], log: Path) -> Bot:
    bot = Bot(fake=fake, env=env, log=log)
    bots.append(bot)
    return bot.start()  # type: ignore[return-value]


def reports_in(fake: FakeSlack, channel: str) -> list[Call]:
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.params.get("channel") == channel and not c.params.get("thread_ts")
    ]


def chart_of(fake: FakeSlack, ts: str) -> Image.Image:
    """The PNG uploaded in the thread of the message ``ts``, after the upload sequence."""
    [done] = [
        c for c in fake.calls_to("files.completeUploadExternal") if c.params.get("thread_ts") == ts
    ]
    files = done.params["files"]
    file_id = (json.loads(files) if isinstance(files, str) else files)[0]["id"]
    return Image.open(io.BytesIO(fake.uploads[file_id]))


def test_the_scheduled_report_is_posted_once_at_its_slot_with_its_chart(
    fake_slack: FakeSlack, env: dict[str, str], tmp_path: Path, bots: list[Bot]
) -> None:
    history(env["DATABASE_URL"])
    first = start(bots, fake_slack, env, tmp_path / "first.log")
    wait_until(lambda: len(reports_in(fake_slack, REPORTS)) == 1, timeout=30)
    [post] = reports_in(fake_slack, REPORTS)
    assert "prod" in json.dumps(post.params["blocks"])
    wait_until(lambda: len(fake_slack.calls_to("files.completeUploadExternal")) == 1, timeout=30)
    methods = [c.method for c in fake_slack.calls if c.method in UPLOAD]
    assert methods == UPLOAD  # get the URL, upload the bytes, complete into the thread
    [done] = fake_slack.calls_to("files.completeUploadExternal")
    assert done.params["channel_id"] == REPORTS
    ts = str(done.params["thread_ts"])
    with chart_of(fake_slack, ts) as image:
        assert image.format == "PNG" and image.size == (1200, 600)
    assert "channel report for C0REPORT" in first.stop()

    # A restart inside the same slot: the ledger says it was posted; nothing more is.
    second = start(bots, fake_slack, env, tmp_path / "second.log")
    wait_until(lambda: "posted already" in second.output(), timeout=30)
    assert len(reports_in(fake_slack, REPORTS)) == 1
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 1


def test_report_on_demand_and_its_figures_are_what_the_store_did(
    fake_slack: FakeSlack,
    env: dict[str, str],
    tmp_path: Path,
    bots: list[Bot],
    prod: RedisServer,
) -> None:
    env = {**env, "REDIS_MEM_REPORT_SCHEDULE": "off"}
    bot = start(bots, fake_slack, env, tmp_path / "serve.log")
    engine = make_engine(env["DATABASE_URL"])

    def samples() -> int:
        stored = SqlHealthStore(engine).recent_samples(since=datetime(2000, 1, 1, tzinfo=UTC))
        return len(stored.get("prod", []))

    def rounds(count: int) -> None:
        seen = samples()
        wait_until(lambda: samples() >= seen + count, timeout=20)

    rounds(2)  # at 50%
    set_ratio(prod, 0.85)
    rounds(3)
    set_ratio(prod, 0.6)
    rounds(3)
    body = urlencode(slash_payload("report prod 30m", response_url=fake_slack.response_url()))
    assert bot.post_signed(body).status_code == 200
    wait_until(lambda: len(reports_in(fake_slack, "C0OPS")) == 1, timeout=30)
    wait_until(lambda: len(fake_slack.calls_to("files.completeUploadExternal")) == 1, timeout=30)
    [done] = fake_slack.calls_to("files.completeUploadExternal")
    assert done.params["channel_id"] == "C0OPS"

    # Bad words: one line in the ack, nothing posted.
    for text in ("report 0h", "report 99999d", "report nope"):
        answer = bot.post_signed(
            urlencode(slash_payload(text, response_url=fake_slack.response_url()))
        )
        assert answer.status_code == 200 and "\n" not in answer.json()["text"]
        assert answer.json()["text"].startswith("⚠ ")
    assert len(reports_in(fake_slack, "C0OPS")) == 1

    # The same figures, read from the same database by the CLI.
    result = invoke_cli("report", "--target", "prod", "--since", "30m", "--json", env=env)
    assert result.code == 0, result.stderr
    [figures] = json.loads(result.stdout)["targets"]
    assert figures["memory"]["peak_ratio"] == pytest.approx(0.85, abs=0.02)
    assert figures["memory"]["min_ratio"] == pytest.approx(0.5, abs=0.02)
    assert figures["samples"] >= 8
    engine.dispose()
