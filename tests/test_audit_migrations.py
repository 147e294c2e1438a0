"""Models and migrations agree; upgrade/downgrade/upgrade works; start-up refuses a stale DB."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.alertmanager import tables as _alertmanager_tables  # noqa: F401  (its table too)
from bot.approvals import table as _approvals_table  # noqa: F401  (its table is in Base.metadata)
from bot.audit.engine import make_engine
from bot.audit.migrate import (
    MIGRATIONS_ENV,
    current_revision,
    downgrade,
    head_revision,
    migrations_dir,
    prepare_database,
    upgrade,
)
from bot.audit.models import Base
from bot.audit.revision import HEAD_REVISION
from bot.audit.store import SqlAuditStore
from bot.errors import ConfigError
from bot.health import tables as _health_tables  # noqa: F401  (their tables too)
from tests.dbfixtures import db_url, entry, pg_url  # noqa: F401


def test_models_match_migrations(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_upgrade_downgrade_upgrade(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    upgrade(engine)
    SqlAuditStore(engine).record(entry())
    assert current_revision(engine) == head_revision()
    downgrade(engine, revision="base")
    assert current_revision(engine) is None
    assert not {"audit_events", "audit_chain_head", "approval_requests"} & set(
        inspect(engine).get_table_names()
    )
    upgrade(engine)
    assert SqlAuditStore(engine).append(entry()).seq == 1
    engine.dispose()


def test_prepare_database_migrates_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    prepare_database(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_head_revision_constant_is_alembics_head() -> None:
    # Start-up compares the database with the constant, without reading the folder:
    # a new migration must bump it.
    assert head_revision() == HEAD_REVISION


def test_cheap_revision_reads_as_alembic_does(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)

    def alembics() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    for revision in ("base", "0001", "head"):
        if revision == "head":
            upgrade(engine)
        elif revision == "0001":
            upgrade(engine, revision="0001")
        assert current_revision(engine) == alembics()
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()


def test_prepare_database_migrates_sqlite_that_is_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, revision="0001")
    prepare_database(url)
    assert current_revision(engine) == HEAD_REVISION
    prepare_database(url)  # at head: one SELECT, nothing changes
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()


def test_prepare_database_refuses_stale_postgresql(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"revision none, code needs .*redis-mem db upgrade"):
        prepare_database(pg_url)
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    prepare_database(pg_url)  # at head: no complaint


def test_migrations_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment is the interface here, not our code: setting it is fair game.
    monkeypatch.setenv(MIGRATIONS_ENV, str(migrations_dir()))
    assert migrations_dir().name == "migrations"
    monkeypatch.setenv(MIGRATIONS_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=MIGRATIONS_ENV):
        migrations_dir()
