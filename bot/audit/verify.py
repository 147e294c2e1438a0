"""Walk the hash chain (streaming, constant memory) and name the first bad row."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, Text, func, literal, select, type_coerce

from bot.audit.canonical import GENESIS_HASH, canonical_row, chain_hash
from bot.audit.failures import DB_ERRORS, unavailable
from bot.audit.models import EVENTS, HEAD_ID, ChainHead

VERIFY_BATCH = 5000
# Below this many rows, starting worker processes costs more than it saves.
PARALLEL_MIN_ROWS = 200_000

_T = EVENTS.c


@dataclass(frozen=True)
class BadRow:
    """The first row that breaks the chain and why."""

    id: int | None
    seq: int | None
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a walk over the chain."""

    checked: int
    last_seq: int
    head_hash: str
    bad: BadRow | None = None

    @property
    def ok(self) -> bool:
        """True when every row and the head agree."""
        return self.bad is None

    def describe(self) -> str:
        """One line for humans."""
        if self.bad is None:
            return f"audit chain intact: {self.checked} rows, head {self.head_hash[:16]}"
        where = f"row id={self.bad.id} seq={self.bad.seq}" if self.bad.id is not None else "chain"
        return f"audit chain BROKEN at {where}: {self.bad.reason} (checked {self.checked} rows)"


def verify_chain(
    engine: Engine, *, workers: int = 1, parallel_min_rows: int = PARALLEL_MIN_ROWS
) -> VerifyResult:
    """Check seq contiguity, prev_hash links, each row's hash, and the head row.

    ``workers`` > 1 splits the seq range over that many processes (each with its
    own connection) and stitches the pieces: the chain is only sequential at the
    seams, which the merge checks. Raises AuditUnavailable when the database
    cannot be read.
    """
    try:
        head = _read_head(engine)
        last = head[0] if head else 0
        if workers <= 1 or last < parallel_min_rows:
            pieces = [_verify_range(engine, lo=1, hi=None)]
        else:
            pieces = _parallel(engine, last=last, workers=workers)
    except _db_errors(engine) as err:
        raise unavailable(engine, err, doing="verifying the audit trail") from None
    return _check_head(_stitch(pieces), head)


def _read_head(engine: Engine) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == HEAD_ID)
        ).one_or_none()
    return None if row is None else (row.seq, row.hash)


def _verify_range(engine: Engine, *, lo: int, hi: int | None) -> Piece:
    query = select(*_columns(engine.dialect.name)).order_by(_T.seq)
    if lo > 1:  # the first range is open below: a forged seq 0 or -1 must be seen
        query = query.where(_T.seq >= lo)
    if hi is not None:
        query = query.where(_T.seq <= hi)
    # Only integers and constant strings are inlined (no user input reaches this SQL).
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        # The DBAPI cursor, not a SQLAlchemy Result: Row objects cost ~20% of verify's
        # time. On PostgreSQL a named (server-side) cursor keeps memory constant.
        driver: Any = conn.connection.driver_connection
        if engine.dialect.name == "postgresql":
            cursor = driver.cursor(name=f"audit_verify_{lo}")
            cursor.itersize = VERIFY_BATCH
        else:
            cursor = driver.cursor()
        try:
            cursor.execute(sql)
            return walk(cursor, start_seq=lo)
        finally:
            cursor.close()


def _db_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    # The raw cursor raises the driver's own exceptions, not SQLAlchemy's.
    driver_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
    return (*DB_ERRORS, driver_error)


def _verify_range_by_url(url: str, lo: int, hi: int | None) -> Piece:
    """Worker process entry: its own engine, one seq range."""
    from bot.audit.engine import make_engine

    engine = make_engine(url)
    try:
        return _verify_range(engine, lo=lo, hi=hi)
    finally:
        engine.dispose()


def seq_ranges(last: int, workers: int) -> list[tuple[int, int | None]]:
    """Split seq 1..``last`` into at most ``workers`` ranges (lo, hi); the last is open
    (hi None) so rows appended after the head (forged) are still checked."""
    size = -(-last // workers)
    los = list(range(1, last + 1, size))
    return [(lo, lo + size - 1 if n < len(los) - 1 else None) for n, lo in enumerate(los)]


def _parallel(engine: Engine, *, last: int, workers: int) -> list[Piece]:
    ranges = seq_ranges(last, workers)
    url = engine.url.render_as_string(hide_password=False)
    # spawn, not fork: the parent may hold threads and pooled connections.
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            futures = [pool.submit(_verify_range_by_url, url, lo, hi) for lo, hi in ranges]
            return [future.result() for future in futures]
    except BrokenProcessPool:
        # Workers could not start (e.g. a __main__ that cannot be re-imported): one walk.
        return [_verify_range(engine, lo=1, hi=None)]


def _columns(dialect: str) -> tuple[ColumnElement[Any], ...]:
    # Values come back exactly as hashed: the timestamp formatted by the database
    # (no Python datetime per row) and parameters as the raw stored text.
    return (
        _T.id, _T.seq, _T.prev_hash, _T.hash, _canonical_at(dialect), _T.action, _T.actor,
        _T.actor_name, _T.channel, _T.message_ts, _T.outcome,
        type_coerce(_T.parameters, Text), _T.request_id, _T.source, _T.summary, _T.target,
    )  # fmt: skip


def _canonical_at(dialect: str) -> ColumnElement[str]:
    if dialect == "postgresql":
        utc = func.timezone("UTC", _T.at)
        return func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=String)
    # SQLite holds SQLAlchemy's naive-UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return func.replace(type_coerce(_T.at, Text), " ", "T", type_=String) + literal("Z")


@dataclass(frozen=True)
class Piece:
    """What one walk over a seq range found: its first row, its end, the first bad row."""

    first: tuple[int, int, str] | None  # id, seq, prev_hash of the first row
    checked: int
    last_seq: int
    last_hash: str
    bad: BadRow | None


def walk(rows: Iterable[Any], *, start_seq: int = 1) -> Piece:
    """Verify rows shaped as ``_columns`` selects them, oldest first, from ``start_seq``.

    The first row's prev_hash is taken on trust here; ``_stitch`` checks it.
    """
    first: tuple[int, int, str] | None = None
    expected_prev, expected_seq, checked = "", start_seq, 0
    for row in rows:
        if first is None:
            first, expected_prev = (row[0], row[1], row[2]), row[2]
        bad = _check_row(row, expected_seq=expected_seq, expected_prev=expected_prev)
        if bad is not None:
            return Piece(first, checked, expected_seq - 1, expected_prev, bad)
        expected_prev, expected_seq, checked = row[3], expected_seq + 1, checked + 1
    return Piece(first, checked, expected_seq - 1, expected_prev, None)


def _stitch(pieces: list[Piece]) -> VerifyResult:
    """Join consecutive pieces, checking each seam as a sequential walk would."""
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    for piece in pieces:
        if piece.first is None:
            continue  # an empty range: the next row, if any, shows the gap
        row_id, seq, prev_hash = piece.first
        seam = None
        if seq != expected_seq:
            seam = BadRow(
                row_id,
                seq,
                f"sequence gap: expected seq {expected_seq} ({_gap(seq, expected_seq)})",
            )
        elif prev_hash != expected_prev:
            seam = BadRow(row_id, seq, "prev_hash does not match the previous row's hash")
        if seam is not None:
            return VerifyResult(checked, expected_seq - 1, expected_prev, seam)
        checked += piece.checked
        if piece.bad is not None:
            return VerifyResult(checked, piece.last_seq, piece.last_hash, piece.bad)
        expected_seq, expected_prev = piece.last_seq + 1, piece.last_hash
    return VerifyResult(checked, expected_seq - 1, expected_prev)


def _gap(seq: int, expected: int) -> str:
    return "row missing before it" if seq > expected else "row inserted or reordered"


def _check_row(row: Any, *, expected_seq: int, expected_prev: str) -> BadRow | None:
    row_id, seq, prev_hash, stored_hash = row[0], row[1], row[2], row[3]
    if seq != expected_seq:
        reason = f"sequence gap: expected seq {expected_seq} ({_gap(seq, expected_seq)})"
        return BadRow(row_id, seq, reason)
    if prev_hash != expected_prev:
        return BadRow(row_id, seq, "prev_hash does not match the previous row's hash")
    canonical = canonical_row(
        at=row[4], action=row[5], actor=row[6], actor_name=row[7], channel=row[8],
        message_ts=row[9], outcome=row[10], parameters=row[11], request_id=row[12], seq=seq,
        source=row[13], summary=row[14], target=row[15],
    )  # fmt: skip
    if chain_hash(prev_hash, canonical) != stored_hash:
        return BadRow(row_id, seq, "content does not match its hash (row edited)")
    return None


def _check_head(result: VerifyResult, head: tuple[int, str] | None) -> VerifyResult:
    if result.bad is not None:
        return result
    if head is None:
        bad = BadRow(None, None, "chain head row is missing")
        return VerifyResult(result.checked, result.last_seq, result.head_hash, bad)
    head_seq, head_hash = head
    if (head_seq, head_hash) != (result.last_seq, result.head_hash):
        reason = (
            f"chain ends at seq {result.last_seq} but the head records seq {head_seq} "
            "(rows deleted from the end, or the head was altered)"
        )
        bad = BadRow(None, head_seq, reason)
        return VerifyResult(result.checked, result.last_seq, result.head_hash, bad)
    return result
