"""Benchmark the audit trail: hash-chained appends, verify speed, export memory.

    .venv/bin/python bench/audit.py [--backend sqlite|postgresql|both] [--rows 1000000]

PostgreSQL: ``REDIS_MEM_BENCH_PG_URL`` (default the local server, database ``test``);
the run uses its own schema and drops it. SQLite: a file in a temp directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.audit.canonical import canonical_row, chain_hash, format_ts  # noqa: E402
from bot.audit.engine import make_engine  # noqa: E402
from bot.audit.entry import AuditEntry  # noqa: E402
from bot.audit.migrate import upgrade  # noqa: E402
from bot.audit.models import HEAD_ID, ChainHead  # noqa: E402
from bot.audit.store import SqlAuditStore  # noqa: E402
from bot.audit.verify import verify_chain  # noqa: E402
from tests.dbfixtures import schema_url  # noqa: E402

PG_URL = os.environ.get(
    "REDIS_MEM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BATCH = 20_000
COLUMNS = ("seq", "at", "actor", "actor_name", "source", "target", "action", "parameters",
           "outcome", "summary", "request_id", "channel", "message_ts",
           "prev_hash", "hash")  # fmt: skip


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, empty database URL for the backend, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    with schema_url(PG_URL, prefix="audit_bench") as url:
        yield url


def _entry(n: int, actor: str) -> AuditEntry:
    return AuditEntry(actor=actor, actor_name="bench", source="cli", action="command.diagnose",
                      outcome="ok", summary=f"diagnosed prod ({n})", target="prod",
                      parameters={"n": n, "full": False}, request_id=f"req-{n}")  # fmt: skip


def appends_per_second(engine: Engine, *, writers: int, per_writer: int) -> float:
    """Appends/s with ``writers`` threads each recording ``per_writer`` entries."""
    store = SqlAuditStore(engine)

    def write(worker: int) -> None:
        for n in range(per_writer):
            store.record(_entry(n, f"W{worker}"))

    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    return writers * per_writer / (time.perf_counter() - started)


def _rows(start_seq: int, prev: str, count: int) -> Iterator[tuple[object, ...]]:
    """Valid chained rows, as SqlAuditStore would write them (hand-rolled for speed)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for seq in range(start_seq, start_seq + count):
        at = base + timedelta(milliseconds=seq)
        fields: dict[str, Any] = {
            "actor": f"U{seq % 97:05d}", "actor_name": "bulk", "source": "slack",
            "target": "prod", "action": "command.diagnose", "outcome": "ok",
            "summary": f"bulk row {seq}", "request_id": f"req-{seq}", "channel": "C1",
            "message_ts": None, "seq": seq, "at": format_ts(at),
            "parameters": f'{{"full":false,"n":{seq}}}',
        }  # fmt: skip
        digest = chain_hash(prev, canonical_row(**fields))
        yield (seq, at, *(fields[c] for c in COLUMNS[2:13]), prev, digest)
        prev = digest


def bulk_load(engine: Engine, count: int) -> float:
    """Append ``count`` valid rows after the current head (executemany / COPY); rows/s."""
    if count <= 0:  # a small --rows: nothing to load (the head must stay where it is)
        return 0.0
    with engine.connect() as conn:
        head = conn.execute(select(ChainHead.seq, ChainHead.hash)).one()
    started, last = time.perf_counter(), (head.seq, head.hash)
    rows = _rows(head.seq + 1, head.hash, count)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        cur = raw.cursor()  # type: ignore[union-attr]
        load = _sqlite_load if engine.dialect.name == "sqlite" else _pg_copy
        last = load(cur, rows)
        conn.execute(
            update(ChainHead).where(ChainHead.id == HEAD_ID).values(seq=last[0], hash=last[1])
        )
    rate = count / (time.perf_counter() - started)
    # Steady state, as a long-lived table would be, so the first verify does not pay
    # for the bulk load's clean-up: PostgreSQL hint bits and statistics; SQLite's WAL
    # folded back into the database file.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM (ANALYZE) audit_events")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return rate


def _sqlite_load(cur: object, rows: Iterator[tuple[object, ...]]) -> tuple[int, str]:
    sql = (
        f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    last: tuple[int, str] = (0, "")
    batch: list[tuple[object, ...]] = []
    for row in rows:
        # SQLAlchemy's SQLite DateTime storage format (naive UTC).
        batch.append((row[0], row[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *row[2:]))  # type: ignore[attr-defined]
        if len(batch) >= BATCH:
            cur.executemany(sql, batch)  # type: ignore[attr-defined]
            last, batch = (batch[-1][0], batch[-1][-1]), []  # type: ignore[assignment]
    if batch:
        cur.executemany(sql, batch)  # type: ignore[attr-defined]
        last = (batch[-1][0], batch[-1][-1])  # type: ignore[assignment]
    return last


def _pg_copy(cur: object, rows: Iterator[tuple[object, ...]]) -> tuple[int, str]:
    last: tuple[int, str] = (0, "")
    with cur.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(row)
            last = (row[0], row[-1])  # type: ignore[assignment]
    return last


EXPORT_RSS = """
import resource, sys
sys.path.insert(0, sys.argv[2])
from bot.audit.engine import make_engine
from bot.audit.export import write_jsonl
from bot.audit.store import SqlAuditStore
with open("/dev/null", "w") as out:
    n = write_jsonl(SqlAuditStore(make_engine(sys.argv[1])).iter_entries(), out)
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def export_peak_rss(url: str) -> tuple[int, float, float]:
    """Rows exported, peak RSS in MiB, seconds: a fresh process streaming JSONL to /dev/null."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", EXPORT_RSS, url, str(REPO)],
                         check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1]) / 1024, time.perf_counter() - started


def run(backend: str, rows: int, appends: int) -> None:
    """Print every figure for one backend."""
    with database(backend) as url:
        engine = make_engine(url, pool_size=10)
        upgrade(engine)
        single = appends_per_second(engine, writers=1, per_writer=appends)
        multi = appends_per_second(engine, writers=8, per_writer=appends // 8)
        print(f"[{backend}] appends/s: 1 writer {single:,.0f}; 8 writers {multi:,.0f}")
        small = min(100_000, rows)
        load1 = bulk_load(engine, small - 2 * appends)
        n1, rss1, t1 = export_peak_rss(url)
        load2 = bulk_load(engine, rows - small)
        n2, rss2, t2 = export_peak_rss(url)
        print(f"[{backend}] bulk load rows/s: {load1:,.0f} / {load2:,.0f}")
        print(f"[{backend}] export peak RSS: {n1:,} rows {rss1:.1f} MiB ({n1 / t1:,.0f} rows/s); "
              f"{n2:,} rows {rss2:.1f} MiB ({n2 / t2:,.0f} rows/s)")  # fmt: skip
        for workers in sorted({1, os.cpu_count() or 1}):
            started = time.perf_counter()
            result = verify_chain(engine, workers=workers)
            elapsed = time.perf_counter() - started
            rate = result.checked / elapsed
            print(f"[{backend}] verify, {workers} process(es): {result.checked:,} rows in "
                  f"{elapsed:.2f}s = {rate:,.0f} rows/s; {result.describe()}")  # fmt: skip
        engine.dispose()


def main() -> None:
    """Parse arguments and run the chosen backends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000, help="appends per phase")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.rows, args.appends)


if __name__ == "__main__":
    main()
