"""The samples' 5-minute rollup and the two retentions, on SQLite and PostgreSQL.

Samples go in through ``SqlHealthStore.record`` (what a check round writes); the
aggregates are read back with plain selects and held to figures computed here from the
samples themselves.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Settings
from bot.errors import AuditUnavailable, ConfigError
from bot.health.model import Sample
from bot.health.ports import Evaluation
from bot.health.rules import RuleBook
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.health.tables import AGGREGATES, SAMPLES, AggregateRow
from bot.redisinfo.sampler import LiveSampleSource
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.health_support import Clock, at, down, sample
from tests.redisserver import free_port

MB = 1024 * 1024


def put(store: SqlHealthStore, *samples: Sample) -> None:
    """Store samples the way a check round does (one evaluation each)."""
    for one in samples:
        store.record(Evaluation(one.target, one, states={}))


def aggregates(engine: Engine, target: str = "prod") -> list[dict[str, Any]]:
    query = (
        select(AGGREGATES).where(AggregateRow.target == target).order_by(AggregateRow.bucket_start)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def expected(samples: list[Sample]) -> dict[str, Any]:
    """What an aggregate of ``samples`` (one bucket, oldest first) must say."""
    read = [s for s in samples if s.used_memory is not None]
    ratios = [s.usage_ratio for s in read if s.usage_ratio is not None]
    evicted = [s.evicted_keys for s in samples if s.evicted_keys is not None]
    increase = sum(b - a if b >= a else b for a, b in pairwise(evicted))
    return {
        "samples": len(samples),
        "reachable": sum(s.reachable for s in samples),
        "used_min": min(s.used_memory for s in read),  # type: ignore[type-var]
        "used_max": max(s.used_memory for s in read),  # type: ignore[type-var]
        "used_last": read[-1].used_memory,
        "maxmemory_last": read[-1].maxmemory,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_last": ratios[-1],
        "evicted_first": evicted[0],
        "evicted_last": evicted[-1],
        "evicted_increase": increase,
        "dbsize_last": read[-1].dbsize,
    }


# One target over ten minutes: memory moves, maxmemory is raised, the eviction counter
# climbs and then drops to 4 (a restart: 4 evictions since, not -116), one check fails.
USED = [40, 55, 70, 62, 90, 30, 35, 33, 50, 45]
MAXMEMORY = [100, 100, 100, 200, 200, 200, 200, 200, 200, 200]
EVICTED = [0, 10, 10, 120, 4, 4, 9, 9, 9, 30]


def ten_minutes() -> list[Sample]:
    samples = [
        sample(m, used=USED[m] * MB, maxmemory=MAXMEMORY[m] * MB, evicted_keys=EVICTED[m], dbsize=m)
        for m in range(10)
    ]
    samples[7] = down(7)  # unreachable: no readings, still a check of the bucket
    return samples


@pytest.fixture
def store(db_engine: Engine) -> SqlHealthStore:  # noqa: F811
    return SqlHealthStore(db_engine)


def test_rollup_figures_are_what_the_samples_say(store: SqlHealthStore) -> None:
    samples = ten_minutes()
    put(store, *samples)
    assert store.rollup(until=at(10)) == 2
    first, second = aggregates(store.engine)
    assert first["bucket_start"] == at(0) and second["bucket_start"] == at(5)
    assert {k: first[k] for k in expected(samples[:5])} == expected(samples[:5])
    assert {k: second[k] for k in expected(samples[5:])} == expected(samples[5:])
    # Spelled out, the restart-aware increase of the first bucket: 10 + 0 + 110 + 4.
    assert first["evicted_increase"] == 124
    assert second["reachable"] == 4 and second["samples"] == 5
    assert first["ratio_max"] == pytest.approx(0.70) and first["ratio_last"] == 0.45


def test_only_complete_buckets_are_rolled_up_and_twice_is_once(store: SqlHealthStore) -> None:
    put(store, *ten_minutes())
    assert store.rollup(until=at(9) + timedelta(seconds=59)) == 1  # 10:05-10:10 still open
    assert store.rollup(until=at(9) + timedelta(seconds=59)) == 0
    assert store.rollup(until=at(10)) == 1
    assert store.rollup(until=at(10)) == 0
    assert store.rollup(until=at(30)) == 0  # no samples after 10:10: nothing to write
    put(store, sample(31, used=77 * MB, maxmemory=100 * MB))
    assert store.rollup(until=at(35)) == 1
    assert [a["bucket_start"] for a in aggregates(store.engine)] == [at(0), at(5), at(30)]
    assert count(store.engine, AGGREGATES) == 3


def test_each_target_starts_after_its_own_newest_aggregate(store: SqlHealthStore) -> None:
    put(store, *ten_minutes())
    assert store.rollup(until=at(10)) == 2  # prod only, so far
    # cache's first samples fall in buckets older than prod's newest aggregate.
    late = [Sample("cache", at(m), reachable=True, used_memory=m, maxmemory=10) for m in (3, 12)]
    put(store, *late, sample(12))
    assert store.rollup(until=at(15)) == 3  # cache 10:00 and 10:10, prod 10:10
    assert [a["bucket_start"] for a in aggregates(store.engine, "cache")] == [at(0), at(10)]
    assert [a["used_last"] for a in aggregates(store.engine, "cache")] == [3, 12]


def test_racing_rollups_never_double_a_bucket(db_url: str) -> None:  # noqa: F811
    engines = [make_engine(db_url) for _ in range(4)]  # four processes' worth of pools
    upgrade(engines[0])
    writer = SqlHealthStore(engines[0])
    for target in ("a", "b", "c"):
        put(writer, *(Sample(target, at(m), reachable=True, used_memory=m) for m in range(30)))
    barrier = threading.Barrier(len(engines))
    written: list[int] = []

    def run(engine: Engine) -> None:
        barrier.wait()
        written.append(SqlHealthStore(engine).rollup(until=at(30)))

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(engines[0], AGGREGATES) == 18  # 3 targets x 6 buckets, once each
    assert sum(written) == 18
    for engine in engines:
        engine.dispose()


def test_prune_keeps_each_kind_for_its_own_retention(store: SqlHealthStore) -> None:
    put(store, *(sample(m * 60) for m in range(6)))  # hourly, 10:00 to 15:00
    assert store.rollup(until=at(6 * 60)) == 6
    gone = store.prune(before=at(3 * 60), aggregates_before=at(60))
    assert gone == 3 + 1  # samples of 10:00-12:00, the aggregate of 10:00
    with store.engine.connect() as conn:
        kept = list(conn.execute(select(SAMPLES.c.at).order_by(SAMPLES.c.at)).scalars())
    assert kept == [at(180), at(240), at(300)]
    assert aggregates(store.engine)[0]["bucket_start"] == at(60)
    assert store.prune(before=at(3 * 60)) == 0  # without an aggregate cut-off, none go


def service(store: SqlHealthStore, clock: Clock, **retention: timedelta) -> HealthService:
    return HealthService(
        targets={},
        source=LiveSampleSource(timeout=1.0),
        store=store,
        rules=RuleBook.defaults(),
        audit=SqlAuditStore(store.engine),
        interval=60,
        timeout=1.0,
        repeat_interval=timedelta(hours=4),
        clock=clock,
        **retention,
    )


def test_the_service_rolls_up_before_it_prunes(store: SqlHealthStore) -> None:
    clock = Clock()
    put(store, *ten_minutes())
    health = service(store, clock)
    clock.now = at(0) + timedelta(days=3)  # past the 48 h of raw samples
    assert health.prune() == 10  # every raw sample went, but only once it was aggregated
    assert [a["samples"] for a in aggregates(store.engine)] == [5, 5]
    clock.now = at(0) + timedelta(days=31)  # past the 30 days of aggregates
    assert health.prune() == 2
    assert count(store.engine, AGGREGATES) == 0
    health.close()


def test_a_retention_shorter_than_a_bucket_keeps_the_open_bucket(
    store: SqlHealthStore,
) -> None:
    clock = Clock()
    put(store, *ten_minutes()[:8])  # 10:00-10:07; the bucket of 10:05 is still open at 10:08
    health = service(store, clock, retention=timedelta(minutes=1))
    clock.now = at(8)
    assert health.prune() == 5  # 10:00-10:04: aggregated, then deleted
    assert health.rollup() == 0
    clock.now = at(10)
    assert health.rollup() == 1
    assert [a["samples"] for a in aggregates(store.engine)] == [5, 3]
    health.close()


def test_rollup_and_prune_with_the_database_down_are_one_line() -> None:
    engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x")
    down_store = SqlHealthStore(engine)
    with pytest.raises(AuditUnavailable, match="while rolling up health samples") as err:
        down_store.rollup(until=at(10))
    assert "\n" not in err.value.message
    with pytest.raises(AuditUnavailable, match="while pruning old health samples"):
        down_store.prune(before=at(0), aggregates_before=at(0))
    engine.dispose()


def test_settings_keep_raw_samples_48h_and_aggregates_30_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.load()
    assert (settings.sample_retention, settings.aggregate_retention) == (48 * 3600, 30 * 86400)
    monkeypatch.setenv("REDIS_MEM_AGGREGATE_RETENTION", "60d")
    assert Settings.load().aggregate_retention == 60 * 86400
    monkeypatch.setenv("REDIS_MEM_AGGREGATE_RETENTION", "1d")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value) == (
        "invalid configuration: REDIS_MEM_AGGREGATE_RETENTION: "
        "must be at least REDIS_MEM_SAMPLE_RETENTION (2.0d)"
    )
    # Raising only the raw retention names the setting people set, not a field name.
    monkeypatch.delenv("REDIS_MEM_AGGREGATE_RETENTION")
    monkeypatch.setenv("REDIS_MEM_SAMPLE_RETENTION", "40d")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value) == (
        "invalid configuration: REDIS_MEM_AGGREGATE_RETENTION: "
        "must be at least REDIS_MEM_SAMPLE_RETENTION (40.0d)"
    )
    monkeypatch.delenv("REDIS_MEM_SAMPLE_RETENTION")
    monkeypatch.setenv("REDIS_MEM_AGGREGATE_RETENTION", "a month")
    with pytest.raises(ConfigError, match="REDIS_MEM_AGGREGATE_RETENTION: invalid duration"):
        Settings.load()
    with pytest.raises(ValueError, match="at least the raw retention"):
        service(SqlHealthStore(make_engine("sqlite://")), Clock(), aggregate_retention=timedelta(1))
