"""The report's storage on SQLite and PostgreSQL: points, alerts, fixes, the head, the slots.

History goes in through the real writers (``SqlHealthStore.record`` and ``rollup``,
``SqlAuditStore.record`` with the rows the approval flow writes) and is read back
through ``SqlReportSource``; the slot ledger is raced from threads.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from bot.audit.engine import make_engine
from bot.audit.entry import AuditEntry
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.diagnosis.model import Severity
from bot.errors import AuditUnavailable
from bot.health.alerts import AlertChange
from bot.health.model import Alert, AlertStatus
from bot.health.ports import Evaluation
from bot.health.store import SqlHealthStore
from bot.health.tables import REPORT_SLOTS, SAMPLES
from bot.reports.model import AuditHead, Point, Resolution
from bot.reports.store import SqlReportSource, SqlSlotLedger
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.health_support import T0, Clock, at, down, sample
from tests.redisserver import free_port

MB = 1024 * 1024
RAW = timedelta(hours=48)


def source(engine: Engine, clock: Clock) -> SqlReportSource:
    return SqlReportSource(engine, raw_retention=RAW, clock=clock)


def bulk_samples(engine: Engine, target: str, start: datetime, minutes: int) -> None:
    """One reachable sample a minute from ``start``: used = the minute, in MB, of 1000 MB."""
    rows = [
        {"target": target, "at": start + timedelta(minutes=m), "reachable": True,
         "used_memory": m * MB, "maxmemory": 1000 * MB, "evicted_keys": m // 10, "dbsize": m}
        for m in range(minutes)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(SAMPLES), rows)


# Points ------------------------------------------------------------------------------------


def test_a_window_within_the_raw_retention_reads_the_raw_samples(db_engine: Engine) -> None:  # noqa: F811
    health = SqlHealthStore(db_engine)
    samples = [
        sample(0, used=30 * MB, maxmemory=100 * MB, evicted_keys=7, dbsize=4),
        down(1),
        sample(2, used=5 * MB, maxmemory=0, evicted_keys=9, dbsize=5),  # no limit: no ratio
        replace(sample(3), target="other"),
        sample(9),  # after the window
    ]
    for one in samples:
        health.record(Evaluation(one.target, one, states={}))
    clock = Clock(start=at(10))
    got = source(db_engine, clock).series(targets=["prod", "gone"], since=at(0), until=at(5))
    assert list(got) == ["prod"]  # "other" was not asked for, "gone" has no points
    series = got["prod"]
    assert series.resolution is Resolution.RAW
    assert series.points == (
        Point(at(0), 1, 1, 30 * MB, 30 * MB, 30 * MB, 100 * MB, 0.3, 0.3, 0.3, 7, 7, 0, 4),
        Point(at(1), samples=1, reachable=0),
        Point(at(2), 1, 1, 5 * MB, 5 * MB, 5 * MB, 0, None, None, None, 9, 9, 0, 5),
    )
    assert source(db_engine, clock).series(targets=[], since=at(0), until=at(5)) == {}


def test_a_longer_window_reads_aggregates_then_the_raw_tail(db_engine: Engine) -> None:  # noqa: F811
    now = T0 + timedelta(days=3)
    start = now - timedelta(hours=72)
    bulk_samples(db_engine, "prod", start, 72 * 60 + 1)  # a sample a minute, up to now
    health = SqlHealthStore(db_engine)
    # The rollup is behind: its newest bucket is 09:45-09:50, the raw samples go on to 10:00.
    health.rollup(until=now - timedelta(minutes=7))
    health.prune(before=now - RAW)
    bulk_samples(db_engine, "fresh", now - timedelta(minutes=3), 4)  # no aggregate yet
    reports = source(db_engine, Clock(start=now))

    got = reports.series(targets=["prod", "fresh"], since=start, until=now)
    prod = got["prod"]
    assert prod.resolution is Resolution.FIVE_MINUTES
    buckets = [p for p in prod.points if p.samples == 5]
    tail = prod.points[len(buckets) :]
    assert len(buckets) == 72 * 12 - 2  # every bucket up to the one starting at 10:50
    assert buckets[0].at == start and buckets[-1].at == now - timedelta(minutes=15)
    assert [p.at for p in tail] == [now - timedelta(minutes=m) for m in range(10, -1, -1)]
    assert all(p.samples == 1 for p in tail)
    first = buckets[0]  # minutes 0-4 of the 72 hours: used 0..4 MB, evictions 0 (m // 10)
    assert (first.used_min, first.used_max, first.used) == (0, 4 * MB, 4 * MB)
    assert (first.ratio_min, first.ratio_max) == (0.0, 4 / 1000)
    two = buckets[2]  # minutes 10-14: the counter reads 1 throughout
    assert (two.evicted_first, two.evicted_last, two.evicted_increase) == (1, 1, 0)
    assert [p.at for p in got["fresh"].points] == [now - timedelta(minutes=m) for m in (3, 2, 1, 0)]
    assert got["fresh"].resolution is Resolution.FIVE_MINUTES

    recent = reports.series(targets=["prod"], since=now - timedelta(hours=1), until=now)
    assert recent["prod"].resolution is Resolution.RAW
    assert len(recent["prod"].points) == 61


# Alerts, fixes, the head -----------------------------------------------------------------


def alert(
    alert_id: str, fired: float, resolved: float | None, rule: str = "memory-warning"
) -> Alert:
    return Alert(
        id=alert_id,
        target="prod",
        group=alert_id,  # one open alert per target and group: each its own
        rule=rule,
        severity=Severity.CRITICAL if rule == "memory-critical" else Severity.WARNING,
        status=AlertStatus.FIRING if resolved is None else AlertStatus.RESOLVED,
        value=0.9,
        active_at=at(fired - 2),
        fired_at=at(fired),
        last_notified_at=at(fired),
        resolved_at=None if resolved is None else at(resolved),
    )


def fired_minutes(one: Alert) -> float:
    return (one.fired_at - T0).total_seconds() / 60


def test_alerts_are_the_ones_overlapping_the_window(db_engine: Engine) -> None:  # noqa: F811
    health = SqlHealthStore(db_engine)
    alerts = [
        alert("a" * 32, 0, 50),  # resolved before the window
        alert("b" * 32, 50, 70),  # resolved inside it
        alert("c" * 32, 90, None, rule="memory-critical"),  # still firing
        alert("d" * 32, 130, None, rule="memory-critical"),  # fired after it
        alert("e" * 32, 110, 200),  # spans its end
    ]
    for one in alerts:
        changes = [AlertChange(replace(one, status=AlertStatus.FIRING, resolved_at=None), new=True)]
        health.record(Evaluation("prod", sample(fired_minutes(one)), {}, changes=changes))
        if one.resolved_at is not None:
            health.record(Evaluation("prod", sample(1), {}, changes=[AlertChange(one)]))
    got = source(db_engine, Clock()).alerts(since=at(60), until=at(120))
    assert [(a.id[0], a.rule, a.severity, a.resolved_at) for a in got] == [
        ("b", "memory-warning", Severity.WARNING, at(70)),
        ("c", "memory-critical", Severity.CRITICAL, None),
        ("e", "memory-warning", Severity.WARNING, at(200)),
    ]
    assert got[0].fired_at == at(50) and got[0].target == "prod"


def fix_row(action: str, request_id: str | None, actor: str, **fields: Any) -> AuditEntry:
    """A row as bot/approvals/events.py's request_event writes it."""
    return AuditEntry(
        actor=actor,
        actor_name=None,
        source="scheduler" if actor == "scheduler" else "slack",
        action=action,
        outcome=fields.pop("outcome", "ok"),
        summary=fields.pop("summary", f"{action} of {request_id}"),
        target=fields.pop("target", "prod"),
        parameters={"action_id": "expire-sessions", "params": {}, "request_id": request_id},
        request_id=request_id,
        channel="C0FIX",
        **fields,
    )


def test_fixes_read_back_with_who_asked_and_who_approved(db_engine: Engine) -> None:  # noqa: F811
    clock = Clock()
    audit = SqlAuditStore(db_engine, clock=clock)
    timeline: list[tuple[float, AuditEntry]] = [
        (1, fix_row("remediation.requested", "r1", "UREQ1")),
        (2, fix_row("remediation.approved", "r1", "UAPP1")),
        (3, fix_row("remediation.executed", "r1", "UAPP1", summary="expire-sessions: 12 keys")),
        (4, fix_row("remediation.verified", "r1", "UAPP1")),  # not an end
        (5, fix_row("remediation.requested", "r2", "UREQ2")),
        (6, fix_row("remediation.approved", "r2", "UAPP2")),
        (7, fix_row("remediation.cancelled", "r2", "UAPP2", outcome="cancelled")),
        (8, fix_row("remediation.approved", "r3", "UAPP3")),  # its request row is gone
        (9, fix_row("remediation.failed", "r3", "UAPP3", outcome="error")),
        (10, fix_row("remediation.requested", "r4", "UREQ4")),
        (11, fix_row("remediation.approved", "r4", "UAPP4")),
        (12, fix_row("remediation.interrupted", "r4", "scheduler", outcome="interrupted")),
        (13, fix_row("command.diagnose", None, "UREQ1")),
        (30, fix_row("remediation.executed", "r5", "UAPP5")),  # after the window
    ]
    for minute, row in timeline:
        clock.now = at(minute)
        audit.record(row)
    got = source(db_engine, clock).fixes(since=at(2), until=at(20))
    assert [(f.request_id, f.outcome, f.requester, f.approver) for f in got] == [
        ("r1", "ok", "UREQ1", "UAPP1"),
        ("r2", "cancelled", "UREQ2", "UAPP2"),
        ("r3", "error", None, "UAPP3"),
        ("r4", "interrupted", "UREQ4", "UAPP4"),  # the approver, not the sweep that ended it
    ]
    first = got[0]
    assert (first.at, first.target, first.action, first.summary) == (
        at(3),
        "prod",
        "expire-sessions",
        "expire-sessions: 12 keys",
    )
    assert source(db_engine, clock).fixes(since=at(40), until=at(50)) == []


def test_the_audit_head_is_the_chains_newest_row(db_engine: Engine) -> None:  # noqa: F811
    reports = source(db_engine, Clock())
    assert reports.audit_head() is None  # an empty trail
    audit = SqlAuditStore(db_engine)
    for n in range(3):
        audit.record(fix_row("command.diagnose", None, f"U{n}"))
    newest = audit.list_entries(limit=1)[0]
    assert reports.audit_head() == AuditHead(seq=3, hash=newest.hash)
    assert newest.seq == 3


# The slot ledger ---------------------------------------------------------------------------


def slots(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(REPORT_SLOTS).order_by(REPORT_SLOTS.c.channel, REPORT_SLOTS.c.slot)
        return [dict(row._mapping) for row in conn.execute(query)]


def test_a_slot_is_claimed_once_and_remembers_its_post(db_engine: Engine) -> None:  # noqa: F811
    ledger = SqlSlotLedger(db_engine, clock=Clock(start=at(2)))
    assert ledger.claim(channel="C1", slot=at(0), at=at(0.5)) is True
    assert ledger.claim(channel="C1", slot=at(0), at=at(1)) is False  # a restart at 10:01
    assert ledger.claim(channel="C2", slot=at(0), at=at(1)) is True
    assert ledger.claim(channel="C1", slot=at(60 * 24), at=at(60 * 24)) is True
    ledger.posted(channel="C1", slot=at(0), ts="1700000000.000100", error=None)
    ledger.posted(channel="C2", slot=at(0), ts=None, error="not_in_channel " + "x" * 2000)
    rows = slots(db_engine)
    assert [(r["channel"], r["slot"]) for r in rows] == [
        ("C1", at(0)),
        ("C1", at(60 * 24)),
        ("C2", at(0)),
    ]
    assert (rows[0]["claimed_at"], rows[0]["posted_at"], rows[0]["message_ts"]) == (
        at(0.5),
        at(2),
        "1700000000.000100",
    )
    assert rows[1]["posted_at"] is None
    assert rows[2]["error"].startswith("not_in_channel") and len(rows[2]["error"]) == 1000


def test_racing_claims_have_one_winner(db_url: str) -> None:  # noqa: F811
    engines = [make_engine(db_url) for _ in range(6)]  # as many processes
    upgrade(engines[0])
    barrier = threading.Barrier(len(engines))
    won: list[bool] = []

    def claim(engine: Engine) -> None:
        barrier.wait()
        won.append(SqlSlotLedger(engine).claim(channel="C1", slot=at(0), at=at(0)))

    threads = [threading.Thread(target=claim, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 5 + [True]
    assert len(slots(engines[0])) == 1
    for engine in engines:
        engine.dispose()


def test_a_database_down_is_one_line_for_every_read_and_write() -> None:
    engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x")
    reports = SqlReportSource(engine, raw_retention=RAW, clock=Clock())
    ledger = SqlSlotLedger(engine)
    calls = [
        lambda: reports.series(targets=["prod"], since=at(0), until=at(5)),
        lambda: reports.series(targets=["prod"], since=at(-7 * 24 * 60), until=at(0)),
        lambda: reports.alerts(since=at(0), until=at(5)),
        lambda: reports.fixes(since=at(0), until=at(5)),
        reports.audit_head,
        lambda: ledger.claim(channel="C1", slot=at(0), at=at(0)),
        lambda: ledger.posted(channel="C1", slot=at(0), ts=None, error=None),
    ]
    for call in calls:
        with pytest.raises(AuditUnavailable) as err:
            call()
        assert "\n" not in err.value.message and "unavailable while" in err.value.message
    engine.dispose()
