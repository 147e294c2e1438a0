"""The hash chain on both backends: append, read back, scrub, and tamper detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from bot.audit.canonical import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    canonical_row,
    row_hash,
)
from bot.audit.store import SqlAuditStore, hashed_fields
from bot.audit.verify import (
    _T,
    VerifyResult,
    _columns,
    _stitch,
    seq_ranges,
    verify_chain,
    walk,
)
from tests.dbfixtures import db_engine, db_url, entry, store  # noqa: F401


def _fill(audit: SqlAuditStore, count: int = 5) -> None:
    for n in range(count):
        audit.record(entry(n))


def _exec(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_append_links_rows_and_reads_back(store: SqlAuditStore) -> None:  # noqa: F811
    first = store.append(entry(1))
    second = store.append(entry(2))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    [newest] = store.list_entries(limit=1)
    assert newest.hash == second.hash
    assert newest.at.tzinfo is not None and newest.at.utcoffset() == timedelta(0)
    assert newest.parameters == {"n": 2, "full": False}
    assert verify_chain(store.engine).ok


def test_secrets_are_scrubbed_before_writing(store: SqlAuditStore) -> None:  # noqa: F811
    params = {
        "Password": "hunter2",
        "auth": {"api_token": "xoxb-1", "Authorization": "Bearer x"},
        "redis_url": "redis://user:s3cret@redis:6379/0",
        "items": ["postgresql://a:pw@db/x", 3],
    }
    stored = store.append(entry(parameters=params, summary="used redis://:topsecret@h:1/0"))
    dumped = repr(store.list_entries(limit=1)[0])
    for secret in ("hunter2", "xoxb-1", "Bearer x", "s3cret", "pw@", "topsecret"):
        assert secret not in dumped
    assert stored.parameters["redis_url"] == "redis://user:***@redis:6379/0"


def test_list_filters(store: SqlAuditStore) -> None:  # noqa: F811
    store.record(entry(1, actor="U1", action="remediation.requested", target="a"))
    store.record(entry(2, actor="U2", action="remediation.approved", target="b"))
    store.record(entry(3, actor="scheduler", source="scheduler", action="check.run"))
    assert [e.seq for e in store.list_entries(actor="U2")] == [2]
    assert [e.seq for e in store.list_entries(action="remediation.")] == [2, 1]
    assert [e.seq for e in store.list_entries(action="check.run")] == [3]
    assert [e.seq for e in store.list_entries(target="a")] == [1]
    assert [e.seq for e in store.list_entries(limit=2)] == [3, 2]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.list_entries(since=future) == []


def test_verify_streams_an_intact_chain(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store, 12)
    result = verify_chain(store.engine)
    assert result.ok and result.checked == 12 and "intact" in result.describe()


def test_empty_chain_is_intact(store: SqlAuditStore) -> None:  # noqa: F811
    assert verify_chain(store.engine).checked == 0


def test_edited_row_is_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(store.engine, "UPDATE audit_events SET summary = 'nothing happened' WHERE seq = 3")
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 3 and "edited" in bad.reason


def test_edited_parameters_text_is_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(
        store.engine, """UPDATE audit_events SET parameters = '{"full":true,"n":1}' WHERE seq = 2"""
    )
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 2


def test_edit_with_recomputed_hash_breaks_the_next_link(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    row = next(e for e in store.list_entries() if e.seq == 3)
    forged = {**row.as_dict(), "summary": "nothing happened"}
    params = canonical_json(row.parameters)
    fields = hashed_fields(seq=3, at=forged["at"], parameters_json=params, values=forged)
    new_hash = row_hash(prev_hash=row.prev_hash, fields=fields)
    _exec(
        store.engine,
        f"UPDATE audit_events SET summary = 'nothing happened', hash = '{new_hash}' WHERE seq = 3",
    )
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 4 and "prev_hash" in bad.reason


def test_deleted_row_is_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(store.engine, "DELETE FROM audit_events WHERE seq = 3")
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 4 and "gap" in bad.reason


def test_deleted_last_row_is_caught_by_the_head(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(store.engine, "DELETE FROM audit_events WHERE seq = 5")
    result = verify_chain(store.engine)
    assert result.bad is not None and result.bad.seq == 5 and "head" in result.bad.reason
    assert "BROKEN" in result.describe()


def test_inserted_row_is_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(
        store.engine,
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3",
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000",
        "INSERT INTO audit_events (seq, at, actor, source, action, parameters, outcome, summary,"
        " prev_hash, hash) SELECT 3, at, 'U666', 'slack', 'remediation.approved', '{}', 'ok',"
        " 'forged', hash, 'abc' FROM audit_events WHERE seq = 2",
        "UPDATE audit_chain_head SET seq = 6",
    )
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 3


def test_row_inserted_before_the_first_is_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store, 3)
    _exec(
        store.engine,
        "INSERT INTO audit_events (seq, at, actor, source, action, parameters, outcome, summary,"
        " prev_hash, hash) SELECT 0, at, 'U666', 'slack', 'x', '{}', 'ok', 'forged', prev_hash,"
        " 'abc' FROM audit_events WHERE seq = 1",
    )
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 0 and "inserted" in bad.reason


def test_reordered_rows_are_named(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store)
    _exec(
        store.engine,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -1",
    )
    bad = verify_chain(store.engine).bad
    assert bad is not None and bad.seq == 2 and bad.id == 3 and "prev_hash" in bad.reason


@pytest.mark.parametrize("clock_tz", [UTC, None])
def test_store_refuses_naive_clock(store: SqlAuditStore, clock_tz: object) -> None:  # noqa: F811
    audit = SqlAuditStore(store.engine, clock=lambda: datetime(2026, 1, 1, tzinfo=clock_tz))  # type: ignore[arg-type]
    if clock_tz is None:
        with pytest.raises(Exception, match="naive"):
            audit.record(entry())
    else:
        assert audit.append(entry()).at == datetime(2026, 1, 1, tzinfo=UTC)


TRICKY = [
    "",
    "plain",
    'quo"te \\ back',
    "tab\tnew\nline\r\x00\x1f\x7f",
    "é ü 日本 🚀",
    "\u2028\u2029",
    None,
]


@pytest.mark.parametrize("value", TRICKY)
def test_hand_written_canonical_form_equals_json_dumps(value: str | None) -> None:
    fields = {name: value if value is not None else None for name in HASHED_FIELDS}
    for required in ("action", "actor", "at", "outcome", "parameters", "source", "summary"):
        fields[required] = value or "x"
    fields["seq"] = 12345678901
    assert canonical_row(**fields) == canonical_json(fields)


def _stitched(engine: Engine, workers: int) -> VerifyResult:
    """What the parallel path concludes, computed in-process over the same ranges."""
    with engine.connect() as conn:
        rows = list(conn.execute(select(*_columns(engine.dialect.name)).order_by(_T.seq)))
    pieces = []
    for lo, hi in seq_ranges(9, workers):
        part = [r for r in rows if r[1] >= lo and (hi is None or r[1] <= hi)]
        pieces.append(walk(part, start_seq=lo))
    return _stitch(pieces)


SEAM_TAMPERS = {
    "intact": [],
    "delete-last-of-range": ["DELETE FROM audit_events WHERE seq = 3"],
    "delete-first-of-range": ["DELETE FROM audit_events WHERE seq = 4"],
    "delete-whole-range": ["DELETE FROM audit_events WHERE seq IN (4, 5, 6)"],
    "edit-first-of-range": ["UPDATE audit_events SET summary = 'x' WHERE seq = 7"],
    "swap-across-seam": [
        "UPDATE audit_events SET seq = -1 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -1",
    ],
    "relink-first-of-range": ["UPDATE audit_events SET prev_hash = hash WHERE seq = 4"],
}


@pytest.mark.parametrize("tamper", SEAM_TAMPERS)
def test_split_walk_agrees_with_one_walk(store: SqlAuditStore, tamper: str) -> None:  # noqa: F811
    _fill(store, 9)
    _exec(store.engine, *SEAM_TAMPERS[tamper])
    one = verify_chain(store.engine)
    split = _stitched(store.engine, workers=3)
    assert (split.bad, split.checked, split.last_seq, split.head_hash) == (
        one.bad,
        one.checked,
        one.last_seq,
        one.head_hash,
    )
    assert (one.bad is None) == (tamper == "intact")


def test_worker_processes_verify(store: SqlAuditStore) -> None:  # noqa: F811
    _fill(store, 9)
    _exec(store.engine, "DELETE FROM audit_events WHERE seq = 5")
    bad = verify_chain(store.engine, workers=2, parallel_min_rows=1).bad
    assert bad is not None and bad.seq == 6 and "gap" in bad.reason


def test_overlong_fields_are_cut_to_fit_not_refused(store: SqlAuditStore) -> None:  # noqa: F811
    stored = store.append(entry(actor="U" * 500, action="a." + "x" * 300, summary="s" * 10_000))
    assert len(stored.actor) == 200 and stored.actor.endswith("…")
    assert len(stored.summary) == 10_000
    assert verify_chain(store.engine).ok
