"""Scheduled channel reports: one per channel per slot, across ticks, restarts and replicas.

Real parts: the report service over SQLite/PostgreSQL with stored samples, the real slot
ledger, the real Slack publisher over HTTP to the fake Slack, the cron schedule; the
clock is injected (a restart at 09:00:30 is a new ScheduledReports on the same database).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Target
from bot.health.model import Sample
from bot.health.ports import Evaluation
from bot.health.store import SqlHealthStore
from bot.reports.schedule import ScheduledReports
from bot.reports.service import ReportService
from bot.reports.store import SqlReportSource, SqlSlotLedger
from bot.runtime.cron import CronSlots
from bot.slack.report_post import SlackReportPublisher
from tests.dbfixtures import db_engine, db_url  # noqa: F401  (fixtures)
from tests.fakeslack import FakeSlack
from tests.health_support import Clock

NINE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TARGETS = {
    "prod-a": Target(name="prod-a", redis_url="redis://127.0.0.1:1/0", channel="C0PAYMENTS"),
    "prod-b": Target(name="prod-b", redis_url="redis://127.0.0.1:1/0", channel="C0PAYMENTS"),
    "stage": Target(name="stage", redis_url="redis://127.0.0.1:1/0"),  # REDIS_MEM_CHANNEL
}


@pytest.fixture
def engine(db_engine: Engine) -> Engine:  # noqa: F811
    upgrade(db_engine)
    store = SqlHealthStore(db_engine)
    for minutes in range(0, 24 * 60, 30):  # a day of samples, every half hour
        at = NINE - timedelta(days=1) + timedelta(minutes=minutes)
        for name, base in (("prod-a", 40), ("prod-b", 60), ("stage", 20)):
            used = (base + minutes // 60) * 1024**2
            sample = Sample(
                name, at, reachable=True, used_memory=used, maxmemory=128 * 1024**2, dbsize=1000
            )
            store.record(Evaluation(name, sample, {}, (), ()))
    return db_engine


class Rig:
    """What one process would build: its own service, ledger, publisher and schedule."""

    def __init__(self, engine: Engine, fake: FakeSlack, clock: Clock) -> None:
        self.service = ReportService(
            targets=TARGETS,
            source=SqlReportSource(engine, raw_retention=timedelta(hours=48), clock=clock),
            live=None,
            timezone="Europe/Paris",
            default_channel="C0OPS",
            clock=clock,
        )
        self.jobs = ScheduledReports(
            service=self.service,
            ledger=SqlSlotLedger(engine),
            publisher=SlackReportPublisher(WebClient(token="xoxb-t", base_url=fake.api_url)),
            slots=CronSlots.parse("0 10 * * *", "Europe/Paris"),  # 09:00 UTC in winter
            audit=SqlAuditStore(engine),
            clock=clock,
        )


@pytest.fixture
def clock() -> Clock:
    return Clock(start=NINE + timedelta(seconds=5))


@pytest.fixture
def rigs(engine: Engine, fake_slack: FakeSlack, clock: Clock) -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.service.close()


def channel_posts(fake: FakeSlack) -> list[str]:
    return sorted(
        str(c.params["channel"])
        for c in fake.calls_to("chat.postMessage")
        if not c.params.get("thread_ts")
    )


def test_each_channel_gets_its_report_once_per_slot(
    engine: Engine, fake_slack: FakeSlack, clock: Clock, rigs: list[Rig]
) -> None:
    rig = Rig(engine, fake_slack, clock)
    rigs.append(rig)
    clock.now = NINE - timedelta(seconds=1)
    assert rig.jobs.run_due() == []  # 09:59:59 in Paris: nothing due
    clock.now = NINE + timedelta(seconds=5)
    posted = rig.jobs.run_due()
    assert sorted(p.channel for p in posted) == ["C0OPS", "C0PAYMENTS"]
    assert all(p.ts is not None and p.error is None for p in posted)
    assert channel_posts(fake_slack) == ["C0OPS", "C0PAYMENTS"]
    # The chart went into each report's thread.
    completed = fake_slack.wait_for("files.completeUploadExternal", count=2)
    assert {c.params.get("thread_ts") for c in completed} == {p.ts for p in posted}
    # The next ticks of the same slot, and a restart at 09:00:30, post nothing.
    clock.now = NINE + timedelta(seconds=35)
    assert rig.jobs.run_due() == []
    restarted = Rig(engine, fake_slack, clock)
    rigs.append(restarted)
    assert restarted.jobs.run_due() == []
    assert channel_posts(fake_slack) == ["C0OPS", "C0PAYMENTS"]
    # The next day's slot posts again; each post is audited with its slot.
    clock.now = NINE + timedelta(days=1, seconds=5)
    assert len(restarted.jobs.run_due()) == 2
    audited = [
        e for e in SqlAuditStore(engine).list_entries(limit=10) if e.action == "report.posted"
    ]
    assert len(audited) == 4 and {e.outcome for e in audited} == {"ok"}


def test_the_payments_report_covers_its_own_targets_worst_first(
    engine: Engine, fake_slack: FakeSlack, clock: Clock, rigs: list[Rig]
) -> None:
    clock.now = NINE
    rig = Rig(engine, fake_slack, clock)
    rigs.append(rig)
    report = rig.service.build(window=timedelta(hours=24), channel="C0PAYMENTS")
    assert [t.target for t in report.targets] == ["prod-b", "prod-a"]
    assert all(t.samples == 48 for t in report.targets)
    assert report.timezone == "Europe/Paris"


def test_a_restart_after_a_missed_slot_catches_up_once(
    engine: Engine, fake_slack: FakeSlack, clock: Clock, rigs: list[Rig]
) -> None:
    clock.now = NINE + timedelta(minutes=40)  # the bot was down at 09:00
    rig = Rig(engine, fake_slack, clock)
    rigs.append(rig)
    assert len(rig.jobs.run_due()) == 2
    clock.now = NINE + timedelta(hours=3)  # too late for a catch-up of a missed slot
    assert Rig(engine, fake_slack, clock).jobs.run_due() == []


def test_two_replicas_ticking_at_once_post_each_report_once(
    engine: Engine, fake_slack: FakeSlack, clock: Clock, rigs: list[Rig]
) -> None:
    replicas = [Rig(engine, fake_slack, clock) for _ in range(4)]
    rigs.extend(replicas)
    barrier = threading.Barrier(len(replicas))

    def tick(rig: Rig) -> None:
        barrier.wait()
        rig.jobs.run_due()

    threads = [threading.Thread(target=tick, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert channel_posts(fake_slack) == ["C0OPS", "C0PAYMENTS"]


def test_a_report_slack_refuses_is_remembered_and_audited_as_an_error(
    engine: Engine, fake_slack: FakeSlack, clock: Clock, rigs: list[Rig]
) -> None:
    fake_slack.fail("chat.postMessage", error="channel_not_found", times=5)
    rig = Rig(engine, fake_slack, clock)
    rigs.append(rig)
    posted = rig.jobs.run_due()
    assert len(posted) == 2 and all(p.ts is None and p.error for p in posted)
    assert all("\n" not in (p.error or "") for p in posted)
    audited = [
        e for e in SqlAuditStore(engine).list_entries(limit=10) if e.action == "report.posted"
    ]
    assert {e.outcome for e in audited} == {"error"}
    assert rig.jobs.run_due() == []  # at most once: the slot is taken
