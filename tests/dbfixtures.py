"""Audit database fixtures: the same tests on SQLite (a temp file) and PostgreSQL.

PostgreSQL: ``REDIS_MEM_TEST_PG_URL`` or the local server (127.0.0.1:5432, trust
auth, database ``test``). Each test gets its own schema (via ``search_path`` in
the URL, so subprocesses and the CLI see it too), dropped afterwards. When the
server is unreachable the PostgreSQL half is skipped with the reason shown by
``-ra``; it is never skipped silently.

Import the fixtures into a test module: ``from tests.dbfixtures import db_url, ...``.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bot.audit.engine import make_engine
from bot.audit.entry import AuditEntry
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore

PG_URL = os.environ.get(
    "REDIS_MEM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REPO_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def pg_unreachable_reason() -> str | None:
    """None when PostgreSQL answers, else why not (shown in the skip reason)."""
    try:
        with psycopg.connect(_libpq_url(PG_URL), connect_timeout=3):
            return None
    except psycopg.Error as err:
        return str(err).strip().splitlines()[0]


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def schema_url(base_url: str = PG_URL, *, prefix: str = "audit_test") -> Iterator[str]:
    """A URL on a new, empty PostgreSQL schema of ``base_url`` (``search_path`` in the URL,
    so subprocesses see it too); the schema is dropped afterwards. Also used by bench/."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_url(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_url(base_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _pg_schema_url() -> Iterator[str]:
    reason = pg_unreachable_reason()
    if reason is not None:
        pytest.skip(
            f"PostgreSQL at {make_url(PG_URL).host}:{make_url(PG_URL).port} unreachable: {reason}"
        )
    with schema_url() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty audit database URL (not migrated), once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL schema URL, for PostgreSQL-only behaviour."""
    yield from _pg_schema_url()


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(db_engine: Engine) -> SqlAuditStore:
    """The audit store over ``db_engine``."""
    return SqlAuditStore(db_engine)


def entry(n: int = 0, **overrides: object) -> AuditEntry:
    """A plausible entry; ``n`` lands in the parameters so rows are distinguishable."""
    fields: dict[str, object] = {
        "actor": "U012AB3CD",
        "actor_name": "alice",
        "source": "slack",
        "action": "command.diagnose",
        "outcome": "ok",
        "summary": f"diagnosed prod ({n})",
        "target": "prod",
        "parameters": {"n": n, "full": False},
        "request_id": f"req-{n}",
        "channel": "C0123",
        "message_ts": "1700000000.000100",
    }
    fields.update(overrides)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def write_many(url: str, count: int, writer: str) -> None:
    """Append ``count`` entries as ``writer`` (run in a subprocess by the concurrency test)."""
    engine = make_engine(url)
    audit = SqlAuditStore(engine)
    for n in range(count):
        audit.record(entry(n, actor=writer, source="cli"))
    engine.dispose()


def writer_command(url: str, count: int, writer: str) -> list[str]:
    """argv of a Python subprocess that runs ``write_many``."""
    code = (
        "import sys; from tests.dbfixtures import write_many; "
        "write_many(sys.argv[1], int(sys.argv[2]), sys.argv[3])"
    )
    return [sys.executable, "-c", code, url, str(count), writer]
