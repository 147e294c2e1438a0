"""A week of stored samples: the 7-day report reads the 5-minute aggregates, same figures.

A week of checks (one a minute) for a store growing at a known rate, with evictions and
one Redis restart, is written through the real health store, rolled up and pruned as
``serve``'s jobs do; the 7-day report (aggregates) and the 24-hour one (raw samples) are
then compared with what was written, on SQLite and PostgreSQL, through the service and
through ``redis-mem report --json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, insert

from bot.audit.migrate import upgrade
from bot.config import Target
from bot.health.store import SqlHealthStore
from bot.health.tables import SAMPLES
from bot.reports.model import Outlook, Resolution
from bot.reports.service import ReportService
from bot.reports.store import SqlReportSource
from tests.clirun import invoke_cli
from tests.dbfixtures import db_engine, db_url  # noqa: F401  (fixtures)
from tests.redisserver import free_port

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
START = NOW - timedelta(days=7)
MB = 1024**2
LIMIT = 1024 * MB
RATE = 2 * MB  # per hour
RESTART = START + timedelta(days=3, hours=5)


@dataclass(frozen=True)
class Week:
    """What the test wrote: the truths the report must find."""

    peak: int
    low: int
    evicted: int
    evicted_last_day: int


def used_at(at: datetime) -> int:
    """40% of 1 GB, growing 2 MB an hour; a dip to 30% for the hour after the restart."""
    used = int(0.4 * LIMIT + RATE * (at - START) / timedelta(hours=1))
    return int(0.3 * LIMIT) if RESTART <= at < RESTART + timedelta(hours=1) else used


def write_week(engine: Engine) -> Week:
    counter, evicted, evicted_last_day, rows = 0, 0, 0, []
    peak, low = 0, LIMIT
    for minute in range(7 * 24 * 60):
        at = START + timedelta(minutes=minute)
        if at == RESTART:
            counter = 0  # Redis restarted: the counter starts again
        if minute % 60 == 30:  # 7 keys evicted every hour, on the half hour
            counter += 7
            evicted += 7 if minute else 0
            evicted_last_day += 7 if at > NOW - timedelta(hours=24) else 0
        used = used_at(at)
        peak, low = max(peak, used), min(low, used)
        rows.append(
            {"target": "prod", "at": at, "reachable": True, "used_memory": used,
             "maxmemory": LIMIT, "evicted_keys": counter, "expired_keys": 0,
             "dbsize": 1000 + minute // 60, "connected_clients": 1, "maxclients": 100,
             "rejected_connections": 0, "fragmentation_ratio": 1.0, "error": None}
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(SAMPLES), rows)
    store = SqlHealthStore(engine)
    store.rollup(until=NOW)
    store.prune(before=NOW - timedelta(hours=48), aggregates_before=NOW - timedelta(days=30))
    return Week(peak=peak, low=low, evicted=evicted, evicted_last_day=evicted_last_day)


@pytest.fixture
def week(db_engine: Engine) -> tuple[Engine, Week]:  # noqa: F811
    upgrade(db_engine)
    return db_engine, write_week(db_engine)


def service(engine: Engine) -> ReportService:
    return ReportService(
        targets={"prod": Target(name="prod")},
        source=SqlReportSource(engine, raw_retention=timedelta(hours=48), clock=lambda: NOW),
        live=None,
        clock=lambda: NOW,
    )


def test_the_7_day_report_reads_aggregates_and_finds_what_was_written(
    week: tuple[Engine, Week],
) -> None:
    engine, truth = week
    reports = service(engine)
    [seven] = reports.build(window=timedelta(days=7)).targets
    assert seven.resolution is Resolution.FIVE_MINUTES
    assert len(seven.series.points) == 7 * 24 * 12  # every bucket, none doubled
    assert seven.samples == 7 * 24 * 60
    assert seven.memory.peak_bytes == truth.peak
    assert seven.memory.min_bytes == truth.low  # the hour after the restart
    # The first bucket's own reading is the baseline; the restart is not a negative rate.
    assert seven.evicted_keys == truth.evicted
    assert seven.memory.trend_bytes_per_hour == pytest.approx(RATE, rel=0.05)
    assert seven.forecast.outlook is Outlook.REACHES
    hours = (0.9 * LIMIT - seven.memory.now_bytes) / RATE  # type: ignore[operator]
    assert seven.forecast.hours_left == pytest.approx(hours, rel=0.05)
    assert seven.keys.change == 7 * 24 - 1

    [day] = reports.build(window=timedelta(hours=24)).targets
    assert day.resolution is Resolution.RAW
    assert day.samples == 24 * 60
    assert day.evicted_keys == truth.evicted_last_day
    assert day.memory.trend_bytes_per_hour == pytest.approx(RATE, rel=0.01)
    reports.close()


def test_redis_mem_report_json_for_a_week(week: tuple[Engine, Week], tmp_path: Path) -> None:
    engine, truth = week
    targets = tmp_path / "targets.yml"
    closed = f"redis://127.0.0.1:{free_port()}/0"  # the live diagnosis fails: one line
    targets.write_text(yaml.safe_dump({"targets": [{"name": "prod", "redis_url": closed}]}))
    env = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REDIS_MEM_TARGETS_FILE": str(targets),
    }
    result = invoke_cli("report", "--since", "7d", "--json", env=env)
    assert result.code == 0, result.stderr
    [prod] = json.loads(result.stdout)["targets"]
    # The CLI's clock is the real one, and the week written ends at NOW: the window holds
    # the newest buckets, and the peak (the newest reading) is among them.
    assert prod["target"] == "prod" and prod["samples"] > 0
    assert prod["memory"]["peak_ratio"] == pytest.approx(truth.peak / LIMIT)
    assert prod["memory"]["trend_bytes_per_hour"] == pytest.approx(RATE, rel=0.05)
    assert prod["live"]["error"]
