"""Fail closed: no audit database, no record and no change; errors are one line, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.audit.engine import make_engine
from bot.audit.guard import audited, audited_change
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.errors import AuditUnavailable, ConfigError
from bot.redisproc import free_port
from tests.dbfixtures import db_engine, db_url, entry, store  # noqa: F401


def _closed_port_url() -> str:
    return f"postgresql://auditor:hunter2@127.0.0.1:{free_port()}/audit"


def _unreachable_engines(tmp_path: Path) -> list[Engine]:
    return [
        make_engine(_closed_port_url()),
        make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'audit.db'}"),
    ]


def test_record_fails_closed_with_one_line_and_no_password(tmp_path: Path) -> None:
    for engine in _unreachable_engines(tmp_path):
        with pytest.raises(AuditUnavailable) as caught:
            SqlAuditStore(engine).record(entry())
        message = str(caught.value)
        assert "\n" not in message and "hunter2" not in message
        assert "unavailable" in message


def test_read_only_database_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    writable = make_engine(f"sqlite:///{path}")
    upgrade(writable)
    writable.dispose()
    # SQLite's read-only open mode: refused writes even for root (chmod would not be).
    engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(AuditUnavailable, match="readonly"):
        SqlAuditStore(engine).record(entry())
    engine.dispose()


def test_change_does_not_run_without_audit(tmp_path: Path) -> None:
    ran: list[str] = []
    for engine in _unreachable_engines(tmp_path):
        with pytest.raises(AuditUnavailable):
            audited_change(
                SqlAuditStore(engine),
                entry(action="remediation.requested"),
                lambda: ran.append("changed"),
            )
        with pytest.raises(AuditUnavailable), audited(SqlAuditStore(engine), entry()):
            ran.append("changed in block")
    assert ran == []


def test_change_on_an_unmigrated_database_does_not_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    ran: list[int] = []
    with pytest.raises(AuditUnavailable):
        audited_change(SqlAuditStore(engine), entry(), lambda: ran.append(1))
    assert ran == []


def test_audited_change_records_before_and_after(store: SqlAuditStore) -> None:  # noqa: F811
    result = audited_change(store, entry(action="remediation.approved"), lambda: 42)
    assert result == 42
    actions = [e.action for e in reversed(store.list_entries())]
    assert actions == ["remediation.approved", "remediation.executed"]


def test_audited_change_records_failure_and_reraises(store: SqlAuditStore) -> None:  # noqa: F811
    def boom() -> None:
        raise RuntimeError("pod not found\nsecond line")

    with pytest.raises(RuntimeError):
        audited_change(store, entry(action="remediation.approved"), boom)
    latest = store.list_entries(limit=1)[0]
    assert latest.action == "remediation.failed" and latest.outcome == "error"
    assert "pod not found" in latest.summary and "second line" not in latest.summary


def test_bad_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        make_engine("mysql://x@y/z")
    with pytest.raises(ConfigError, match="not a valid"):
        make_engine("not a url")


@pytest.mark.parametrize("url", ["postgresql://u:secret@h:notaport/db", "sqlite://x:y/db"])
def test_non_numeric_port_is_a_one_line_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_engine(url)
    assert str(err.value) == "DATABASE_URL is not a valid database URL"


@pytest.mark.parametrize(
    "url", ["postgresql+asyncpg://u@h/db", "sqlite+pysqlcipher:///x.db", "postgresql+pg8000://h/d"]
)
def test_drivers_we_do_not_ship_are_named_in_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: unsupported database driver") as err:
        make_engine(url)
    assert "sqlite, sqlite+pysqlite, postgresql, postgresql+psycopg" in str(err.value)


@pytest.mark.parametrize(
    ("url", "driver"),
    [("sqlite:///x.db", "sqlite"), ("sqlite+pysqlite:///x.db", "sqlite+pysqlite"),
     ("postgresql://h/d", "postgresql+psycopg"), ("postgres://h/d", "postgresql+psycopg"),
     ("postgresql+psycopg://h/d", "postgresql+psycopg")],
)  # fmt: skip
def test_shipped_drivers_are_accepted(url: str, driver: str) -> None:
    engine = make_engine(url)
    assert engine.url.drivername == driver
    engine.dispose()
