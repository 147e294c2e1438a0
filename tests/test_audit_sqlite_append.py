"""The CLI's stdlib SQLite writer writes exactly what ``SqlAuditStore`` writes (issue 9).

Two fresh trails at head, the same entries and the same clock, one written by each
writer: the stored rows and chain heads must be equal byte for byte, and a chain that
mixes the writers must verify. Anything the stdlib writer does not take must leave the
database untouched (the caller then takes the SQLAlchemy path).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table

from bot.audit.engine import SQLITE_BUSY_SECONDS, make_engine
from bot.audit.migrate import upgrade
from bot.audit.models import HEAD_ID, AuditEvent
from bot.audit.sqlite_append import HEAD_ID as APPEND_HEAD_ID
from bot.audit.sqlite_append import SHORT_TEXT, plain_sqlite_path, try_append
from bot.audit.sqlite_append import SQLITE_BUSY_SECONDS as APPEND_BUSY_SECONDS
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from bot.errors import AuditUnavailable
from tests.dbfixtures import entry

START = datetime(2026, 12, 1, 3, 4, 5, 0, tzinfo=UTC)  # microsecond 0: still written with .000000
ENTRIES = [
    entry(1),
    entry(2, actor_name=None, target=None, request_id=None, channel=None, message_ts=None),
    entry(3, summary='naïve — ünïcode ✓ "quotes" \\ back', parameters={"z": [1, "ü"], "a": None}),
    entry(4, actor="x" * 500, action="a" * 150, outcome="o" * 40, target="t" * 300),
    entry(5, summary="redis://:hunter2@h:6379 password=hunter2", parameters={"password": "pw"}),
    entry(6, source="cli", actor="cli:root", parameters={}),
]


def ticking(start: datetime = START) -> Callable[[], datetime]:
    """A clock that moves 1.25 ms per call, so each row's time differs."""
    now = [start]

    def clock() -> datetime:
        now[0] += timedelta(microseconds=1250)
        return now[0]

    return clock


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Make fresh SQLite trails at head by name; their URLs."""
    engines = []

    def make(name: str) -> str:
        url = f"sqlite:///{tmp_path / name}"
        engine = make_engine(url)
        upgrade(engine)
        engines.append(engine)
        return url

    yield make
    for engine in engines:
        engine.dispose()


def raw(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored byte of the trail: its events and its chain head, through sqlite3."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        events = conn.execute("SELECT * FROM audit_events ORDER BY id").fetchall()
        head = conn.execute("SELECT * FROM audit_chain_head").fetchall()
    conn.close()
    return events, head


def test_both_writers_store_the_same_bytes(trail: Callable[[str], str]) -> None:
    by_store, by_stdlib = trail("store.db"), trail("stdlib.db")
    engine = make_engine(by_store)
    store = SqlAuditStore(engine, clock=ticking())
    for item in ENTRIES:
        store.record(item)
    engine.dispose()
    clock = ticking()
    for item in ENTRIES:
        assert try_append(by_stdlib, item, clock=clock)
    assert raw(by_stdlib) == raw(by_store)
    events, _ = raw(by_stdlib)
    assert events[0][2] == "2026-12-01 03:04:05.001250" and "hunter2" not in repr(events)


def test_a_chain_mixing_the_writers_verifies(trail: Callable[[str], str]) -> None:
    url = trail("mixed.db")
    engine = make_engine(url)
    store = SqlAuditStore(engine)
    for n, item in enumerate(ENTRIES):
        if n % 2:
            store.record(item)
        else:
            assert try_append(url, item)
    result = verify_chain(engine)
    read_back = store.list_entries(limit=100)
    engine.dispose()
    assert result.ok, result.describe()
    assert [e.seq for e in read_back] == [6, 5, 4, 3, 2, 1]
    assert read_back[3].parameters == {"z": [1, "ü"], "a": None}


def test_constants_match_the_models_and_the_engine() -> None:
    events = cast(Table, AuditEvent.__table__)
    lengths = {name: events.c[name].type.length for name in SHORT_TEXT}  # type: ignore[attr-defined]
    assert lengths == SHORT_TEXT
    assert (APPEND_HEAD_ID, APPEND_BUSY_SECONDS) == (HEAD_ID, SQLITE_BUSY_SECONDS)


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "sqlite:///a%20b.db",
     "postgresql://u@h/db", "sqlite+aiosqlite:///x.db"],
)  # fmt: skip
def test_other_urls_are_left_to_sqlalchemy(url: str) -> None:
    assert plain_sqlite_path(url) is None


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    assert not try_append(url, ENTRIES[0])
    assert list(tmp_path.iterdir()) == []


def test_a_trail_behind_head_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, revision="0001")
    engine.dispose()
    before = raw(url)
    assert not try_append(url, ENTRIES[0])
    assert raw(url) == before


def test_a_refusing_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(AuditUnavailable) as err:
        try_append(f"sqlite:///{path}", ENTRIES[0])
    assert str(err.value) == (
        f"audit database sqlite:///{path} unavailable while recording an audit event:"
        " file is not a database"
    )


def test_a_naive_clock_is_refused(trail: Callable[[str], str]) -> None:
    url = trail("naive.db")
    before = raw(url)
    with pytest.raises(AuditUnavailable, match="naive"):
        try_append(url, ENTRIES[0], clock=lambda: datetime(2026, 1, 1))
    assert raw(url) == before
