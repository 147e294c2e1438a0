"""Walk the hash chain (streaming, constant memory) and name the first bad row; then
check the chain against anchors (``SEQ:HASH`` copies of its head kept outside the database).
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, Text, func, literal, select, type_coerce

from bot.audit.canonical import GENESIS_HASH, canonical_row, chain_hash
from bot.audit.failures import DB_ERRORS, read_rows, unavailable
from bot.audit.models import EVENTS, HEAD_ID, ChainHead
from bot.errors import UsageError
from bot.limits import MAX_NUMBER_DIGITS, echo, is_digits

VERIFY_BATCH = 5000
# Below this many rows, starting worker processes costs more than it saves.
PARALLEL_MIN_ROWS = 200_000
# Anchors looked up per query: far below SQLite's bound-parameter limit (999 before 3.32).
ANCHOR_BATCH = 500
ANCHOR_USAGE = 'SEQ:HASH (as in a report\'s "audit head: 42:9f86d0…", the full 64-digit hash)'
_HEX64 = re.compile(r"[0-9a-f]{64}")

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


# Anchors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A copy of a row's hash kept outside the database (the report posts the head's)."""

    seq: int
    hash: str

    @property
    def text(self) -> str:
        """``SEQ:HASH``, as typed."""
        return f"{self.seq}:{self.hash}"


def parse_anchor(text: str) -> Anchor:
    """``42:<64 hex digits>`` -> Anchor; UsageError (one line) for anything else.

    Checked before the database is opened: a typo is not a broken chain. The hash is
    taken in either case (a copy may have been upper-cased) and kept lower-case, as stored.
    """
    seq_text, colon, hash_text = text.strip().partition(":")
    if not colon:
        raise UsageError(f'--anchor "{echo(text)}": expected {ANCHOR_USAGE}')
    if not is_digits(seq_text):
        raise UsageError(f'--anchor: SEQ must be a row number (got "{echo(seq_text)}")')
    if len(seq_text) > MAX_NUMBER_DIGITS:  # before int(): no real chain is that long
        raise UsageError(
            f"--anchor: SEQ has too many digits: {len(seq_text):,} (at most {MAX_NUMBER_DIGITS})"
        )
    seq = int(seq_text)
    if seq < 1:
        raise UsageError("--anchor: SEQ must be 1 or more (the chain's rows count from 1)")
    digest = hash_text.lower()
    if _HEX64.fullmatch(digest) is None:
        not_hex = ", not all hex digits" if set(digest) - set("0123456789abcdef") else ""
        raise UsageError(
            f"--anchor {seq}:HASH: HASH must be 64 hex digits"
            f" (got {len(hash_text):,} characters{not_hex})"
        )
    return Anchor(seq, digest)


@dataclass(frozen=True)
class AnchorCheck:
    """How the chain compares with the anchors: the ones that failed, and why."""

    anchors: tuple[Anchor, ...]
    last_seq: int
    # (anchor, the hash stored at its seq, or None when there is no such row), oldest first
    mismatches: tuple[tuple[Anchor, str | None], ...] = ()

    @property
    def ok(self) -> bool:
        """Every anchor's row is there with the anchor's hash."""
        return not self.mismatches

    def describe(self) -> str:
        """One line per matching anchor, or one line naming the oldest mismatch."""
        if self.ok:
            return "\n".join(f"matches anchor {anchor.text}" for anchor in self.anchors)
        anchor, stored = self.mismatches[0]
        if stored is None:
            what = f"no row seq={anchor.seq} (the chain ends at {self.last_seq})"
        else:
            what = f"row seq={anchor.seq} has hash {stored[:16]}… (anchor says {anchor.hash[:16]}…)"
        more = len(self.mismatches) - 1
        tail = f" (and {more} more of {len(self.anchors)} anchors)" if more else ""
        return f"audit chain does not match the anchor: {what}{tail}"


def check_anchors(engine: Engine, anchors: Sequence[Anchor], *, last_seq: int) -> AnchorCheck:
    """Compare each anchor with the stored hash of the row at its seq.

    Run after an intact ``verify_chain``: the chain then ends at ``last_seq``, so a
    seq past it has no row. Catches what the walk cannot: a chain rewritten whole
    (every hash recomputed, the head too) no longer holds the hashes the channel kept.
    Raises AuditUnavailable when the database cannot be read.
    """
    wanted = sorted({anchor.seq for anchor in anchors if anchor.seq <= last_seq})
    stored: dict[int, str] = {}
    for start in range(0, len(wanted), ANCHOR_BATCH):
        query = select(_T.seq, _T.hash).where(_T.seq.in_(wanted[start : start + ANCHOR_BATCH]))
        rows = read_rows(engine, query, doing="checking the audit anchors")
        stored.update((row.seq, row.hash) for row in rows)
    ordered = sorted(anchors, key=lambda anchor: anchor.seq)
    mismatches = tuple(
        (anchor, stored.get(anchor.seq))
        for anchor in ordered
        if stored.get(anchor.seq) != anchor.hash
    )
    return AnchorCheck(tuple(anchors), last_seq, mismatches)
