"""``redis-mem audit verify --anchor SEQ:HASH``: the chain against a head kept outside it.

The walk alone proves the chain is consistent, not that it is the original: someone who
can write the database and compute SHA-256 rewrites it whole and the walk still passes.
An anchor (the head a channel report posted) catches that. On SQLite and PostgreSQL,
through the real command in process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.audit.canonical import GENESIS_HASH, canonical_json, canonical_row, chain_hash, format_ts
from bot.audit.store import SqlAuditStore, StoredEntry
from bot.audit.verify import Anchor, parse_anchor
from bot.errors import UsageError
from tests.clirun import CliResult, invoke_cli
from tests.dbfixtures import db_engine, db_url, entry, store  # noqa: F401

ROWS = 5


def _fill(audit: SqlAuditStore, count: int = ROWS) -> list[StoredEntry]:
    for n in range(count):
        audit.record(entry(n))
    return sorted(audit.list_entries(limit=count), key=lambda row: row.seq)


def _verify(url: str, *anchors: str) -> CliResult:
    args = [arg for anchor in anchors for arg in ("--anchor", anchor)]
    return invoke_cli("audit", "verify", *args, env={"DATABASE_URL": url})


def _anchor(row: StoredEntry) -> str:
    return f"{row.seq}:{row.hash}"


def _rewrite_from(engine: Engine, rows: list[StoredEntry], *, seq: int, summary: str) -> None:
    """What a database superuser can do: edit row ``seq``, then recompute every hash and
    prev_hash from it on, and the head, by raw SQL. The chain stays consistent."""
    prev = GENESIS_HASH if seq == 1 else rows[seq - 2].hash
    with engine.begin() as conn:
        for row in rows[seq - 1 :]:
            new_summary = summary if row.seq == seq else row.summary
            canonical = canonical_row(
                action=row.action, actor=row.actor, actor_name=row.actor_name,
                at=format_ts(row.at), channel=row.channel, message_ts=row.message_ts,
                outcome=row.outcome, parameters=canonical_json(dict(row.parameters)),
                request_id=row.request_id, seq=row.seq, source=row.source,
                summary=new_summary, target=row.target,
            )  # fmt: skip
            digest = chain_hash(prev, canonical)
            conn.execute(
                text(
                    "UPDATE audit_events SET summary = :summary, prev_hash = :prev, hash = :hash"
                    " WHERE seq = :seq"
                ),
                {"summary": new_summary, "prev": prev, "hash": digest, "seq": row.seq},
            )
            prev = digest
        conn.execute(
            text("UPDATE audit_chain_head SET seq = :seq, hash = :hash WHERE id = 1"),
            {"seq": rows[-1].seq, "hash": prev},
        )


def test_an_honest_chain_matches_its_anchors(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    rows = _fill(store)
    head = rows[-1]
    result = _verify(db_url, _anchor(head))
    assert result.code == 0, result
    assert f"intact: {ROWS} rows" in result.stdout
    assert f"matches anchor {_anchor(head)}" in result.stdout and result.stderr == ""
    # A channel keeps one anchor per day: every one of them must match.
    result = _verify(db_url, _anchor(rows[1]), _anchor(rows[3]), _anchor(head))
    assert result.code == 0, result
    assert result.stdout.count("matches anchor") == 3
    # The hash as copied in capitals is the same hash.
    assert _verify(db_url, f"{head.seq}:{head.hash.upper()}").code == 0


def test_a_wrong_hash_or_a_missing_row_is_exit_1(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    rows = _fill(store)
    result = _verify(db_url, f"{rows[2].seq}:{rows[1].hash}")
    assert result.code == 1 and result.stdout == ""
    assert result.stderr == (
        f"audit chain does not match the anchor: row seq=3 has hash {rows[2].hash[:16]}…"
        f" (anchor says {rows[1].hash[:16]}…)\n"
    )
    result = _verify(db_url, f"9:{rows[-1].hash}")
    assert result.code == 1
    assert result.stderr == (
        f"audit chain does not match the anchor: no row seq=9 (the chain ends at {ROWS})\n"
    )


def test_a_chain_rewritten_whole_passes_the_walk_but_not_the_anchor(
    db_url: str,  # noqa: F811
    store: SqlAuditStore,  # noqa: F811
) -> None:
    rows = _fill(store)
    old_head, before = rows[-1], rows[1]
    _rewrite_from(store.engine, rows, seq=3, summary="nothing happened")

    plain = _verify(db_url)
    assert plain.code == 0, plain  # the gap docs/decisions/audit-chain.md names
    assert f"intact: {ROWS} rows" in plain.stdout
    new_hash = next(r.hash for r in store.list_entries(limit=ROWS) if r.seq == old_head.seq)
    assert new_hash != old_head.hash

    anchored = _verify(db_url, _anchor(old_head))
    assert anchored.code == 1 and anchored.stdout == ""
    assert anchored.stderr == (
        f"audit chain does not match the anchor: row seq={old_head.seq} has hash"
        f" {new_hash[:16]}… (anchor says {old_head.hash[:16]}…)\n"
    )
    # An anchor older than the rewritten row still matches; with the newer one it fails.
    assert _verify(db_url, _anchor(before)).code == 0
    both = _verify(db_url, _anchor(before), _anchor(old_head))
    assert both.code == 1 and f"row seq={old_head.seq}" in both.stderr


def test_a_broken_chain_is_named_before_any_anchor(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    rows = _fill(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET outcome = 'denied' WHERE seq = 2")
    result = _verify(db_url, _anchor(rows[-1]))
    assert result.code == 1 and "BROKEN at" in result.stderr and "seq=2" in result.stderr
    assert result.stderr.count("\n") == 1


HEX = "ab" * 32
MALFORMED = {
    "no colon": "12",
    "no hash": "12:",
    "no seq": f":{HEX}",
    "seq zero": f"0:{HEX}",
    "negative seq": f"-1:{HEX}",
    "seq not ascii digits": f"٣:{HEX}",
    "absurd seq": f"{'9' * 4000}:{HEX}",
    "19 digits": f"{'9' * 19}:{HEX}",
    "short hash": f"1:{HEX[:63]}",
    "long hash": f"1:{HEX}0",
    "not hex": f"1:{'g' * 64}",
    "a second colon": f"1:{HEX}:2",
    "empty": "",
    "a url": "redis://:s3cret@host:6379",
}


@pytest.mark.parametrize("anchor", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_anchor_is_one_line_exit_2_before_the_database(
    anchor: str, tmp_path: Path
) -> None:
    missing = tmp_path / "never.db"  # opening it would fail too: the anchor must come first
    result = invoke_cli(
        "audit", "verify", "--anchor", anchor, env={"DATABASE_URL": f"sqlite:///{missing}"}
    )
    assert result.code == 2, result
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("redis-mem: error: --anchor"), result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()


def test_one_malformed_anchor_among_good_ones_is_refused(
    db_url: str,  # noqa: F811
    store: SqlAuditStore,  # noqa: F811
) -> None:
    rows = _fill(store)
    result = _verify(db_url, _anchor(rows[-1]), "3:abc")
    assert result.code == 2 and result.stderr.count("\n") == 1


def test_parse_anchor() -> None:
    assert parse_anchor(f" 42:{HEX.upper()} ") == Anchor(42, HEX)
    assert parse_anchor(f"{'9' * 18}:{HEX}").seq == int("9" * 18)
    with pytest.raises(UsageError, match="64 hex digits"):
        parse_anchor("1:abc")
