"""``/readyz`` means "an audit row could be written now", over real HTTP (uvicorn).

PostgreSQL with the bot's INSERT revoked answers 503, and 200 again once granted; a SQLite
file made read-only answers 503; a database that accepts connections but never answers
still gets a prompt 503, probed by one connection at a time; answers are cached, and a
probe leaves nothing behind (no row, no sequence value).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, text

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.readiness import WriteProbe
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from bot.web import create_web_app
from bot.wiring import database_ready
from tests.asgiserver import ThreadedServer
from tests.dbfixtures import entry, pg_url  # noqa: F401 (fixture)
from tests.faults_support import BotRole, bot_role  # noqa: F401 (fixture)
from tests.slackcheck import wait_until


class Ready:
    """``/readyz`` of the real web app over ``engine``'s readiness check (the wiring's, or
    the same probe with a short cache, so that a test sees each change sooner)."""

    def __init__(self, engine: Engine, *, cache_for: float | None = None) -> None:
        check = (
            database_ready(engine) if cache_for is None else WriteProbe(engine, cache_for=cache_for)
        )
        web = create_web_app(registry=CollectorRegistry(), ready=check)
        self.server = ThreadedServer.start(web)
        # Far above the probe's own bound, far below the database's connect timeout (5 s).
        self.http = httpx.Client(timeout=4)

    def status(self) -> int:
        return self.http.get(f"{self.server.url}/readyz").status_code

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    SqlAuditStore(engine).record(entry(1))
    yield engine
    engine.dispose()


def test_postgres_with_insert_revoked_is_not_ready_until_granted_again(
    bot_role: BotRole,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(bot_role.url)
    ready = Ready(engine, cache_for=0.1)
    try:
        assert ready.status() == 200
        bot_role.revoke_insert()
        wait_until(lambda: ready.status() == 503)
        bot_role.grant_insert()
        wait_until(lambda: ready.status() == 200)
    finally:
        ready.close()
        engine.dispose()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.audit.readiness"]
    assert lines == [
        "not ready: the audit database cannot take an audit row: "
        "permission denied for table audit_events",
        "ready again: the audit database takes audit rows",
    ]


def test_a_probe_keeps_nothing(bot_role: BotRole) -> None:  # noqa: F811
    engine = make_engine(bot_role.url)
    admin = make_engine(bot_role.admin_url)
    SqlAuditStore(engine).record(entry(1))
    sequence = "SELECT last_value FROM audit_events_id_seq"
    with admin.connect() as conn:
        before = conn.execute(text(sequence)).scalar_one()
    for _ in range(3):
        assert WriteProbe(engine, cache_for=0)()
    with admin.connect() as conn:
        assert conn.execute(text(sequence)).scalar_one() == before
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1
    assert verify_chain(admin).ok
    engine.dispose()
    admin.dispose()


def _chattr(flag: str, *paths: Path) -> bool:
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_read_only_sqlite_file_is_not_ready(sqlite_engine: Engine, tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    ready = Ready(sqlite_engine, cache_for=0.1)
    try:
        assert ready.status() == 200
        # Immutable refuses writes even to root (a read-only mount does the same);
        # not root: the permission bits do.
        immutable = _chattr("+i", database)
        if not immutable:
            database.chmod(0o444)
        try:
            wait_until(lambda: ready.status() == 503)
        finally:
            if immutable:
                _chattr("-i", database)
            database.chmod(0o644)
        wait_until(lambda: ready.status() == 200)
    finally:
        ready.close()


class SilentServer:
    """A TCP server that accepts connections and never answers: a hung database."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_hung_database_gets_a_prompt_503_from_one_probe_at_a_time() -> None:
    hung = SilentServer()
    engine = make_engine(f"postgresql://bot@127.0.0.1:{hung.port}/audit")
    ready = Ready(engine)
    try:
        answers = [ready.status() for _ in range(5)]  # each well within the client's 4 s
        assert answers == [503] * 5
        wait_until(lambda: len(hung.accepted) >= 1)
        # Uncached, each call waits on the probe still hanging instead of starting another.
        uncached = WriteProbe(engine, cache_for=0, timeout=0.1)
        assert [uncached() for _ in range(3)] == [False] * 3
        wait_until(lambda: len(hung.accepted) >= 2)
        assert len(hung.accepted) == 2  # one connection per probe, not one per call
    finally:
        ready.close()
        hung.close()
        engine.dispose()


def test_answers_are_cached_so_probes_cannot_hammer_the_database(sqlite_engine: Engine) -> None:
    probes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO audit_events"):
            probes.append(statement)

    event.listen(sqlite_engine, "before_cursor_execute", count)
    now = [0.0]
    probe = WriteProbe(sqlite_engine, cache_for=2.0, clock=lambda: now[0])
    assert all(probe() for _ in range(10))
    assert len(probes) == 1
    now[0] += 2.5
    assert probe()
    assert len(probes) == 2
