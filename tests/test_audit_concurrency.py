"""Concurrent appends (threads and processes) leave one valid chain with no lost rows."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from bot.audit.models import AuditEvent
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from tests.dbfixtures import REPO_ROOT, db_engine, db_url, entry, store, writer_command  # noqa: F401

THREADS, PER_THREAD = 8, 50
PROCESSES, PER_PROCESS = 2, 60


def _actors(audit: SqlAuditStore) -> dict[str, set[int]]:
    seen: dict[str, set[int]] = {}
    for row in audit.iter_entries():
        seen.setdefault(row.actor, set()).add(int(row.parameters["n"]))
    return seen


def test_threads_append_without_forks_or_losses(store: SqlAuditStore) -> None:  # noqa: F811
    def write(worker: int) -> None:
        for n in range(PER_THREAD):
            store.record(entry(n, actor=f"T{worker}"))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(write, range(THREADS)))
    result = verify_chain(store.engine)
    assert result.ok, result.describe()
    assert result.checked == THREADS * PER_THREAD
    assert _actors(store) == {f"T{w}": set(range(PER_THREAD)) for w in range(THREADS)}


def test_two_processes_and_a_thread_append_concurrently(
    db_url: str,  # noqa: F811
    store: SqlAuditStore,  # noqa: F811
) -> None:
    procs = [
        subprocess.Popen(writer_command(db_url, PER_PROCESS, f"P{i}"), cwd=REPO_ROOT)
        for i in range(PROCESSES)
    ]
    for n in range(PER_PROCESS):  # this process writes too, while they run
        store.record(entry(n, actor="main"))
    assert [p.wait(timeout=60) for p in procs] == [0] * PROCESSES
    result = verify_chain(store.engine)
    assert result.ok, result.describe()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == (
            (PROCESSES + 1) * PER_PROCESS
        )
    expected = {f"P{i}": set(range(PER_PROCESS)) for i in range(PROCESSES)}
    expected["main"] = set(range(PER_PROCESS))
    assert _actors(store) == expected
