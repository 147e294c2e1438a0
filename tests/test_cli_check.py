"""``redis-mem check`` end to end: real redis-servers, a real audit database, the CLI in process.

The store's usage is moved with real session keys and ``CONFIG SET maxmemory``; history
is seeded by real check rounds (``HealthService.run_round``) on the same DATABASE_URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.audit.engine import make_engine
from bot.audit.migrate import current_revision, upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Settings
from bot.health.rules import RULE_IDS
from bot.health.store import SqlHealthStore
from bot.wiring import health_service
from tests.clirun import CliResult, invoke_cli
from tests.conftest import RedisFactory
from tests.dbfixtures import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)
from tests.health_support import session_store
from tests.redisserver import free_port

TARGET_KEYS = {"target", "reachable", "usage_ratio", "evicted_per_second", "error", "alerts"}
ALERT_KEYS = {"rule", "state", "active_since", "value", "severity"}


def write_rules(path: Path, text: str) -> dict[str, str]:
    """A rules file at ``path``; the environment naming it."""
    path.write_text(text)
    return {"REDIS_MEM_RULES_FILE": str(path)}


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("redis-mem: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def audit_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = invoke_cli("audit", "list", "--json", env=env)
    assert listed.code == 0, listed
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return rows


# Fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    """An audit database at head (SQLite under tmp_path)."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}"}
    assert invoke_cli("db", "upgrade", env=env).code == 0
    return env


def check_json(env: dict[str, str], *args: str) -> tuple[CliResult, dict[str, Any]]:
    result = invoke_cli("check", "--json", *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)


def by_rule(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {alert["rule"]: alert for alert in target["alerts"]}


# The contract -------------------------------------------------------------------------------


def test_check_json_has_exactly_the_contract_keys_and_a_healthy_store_exits_0(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    result, doc = check_json({**db_env, "REDIS_URL": server.url})
    assert result.code == 0, result
    assert result.stderr == ""
    assert set(doc) == {"checked_at", "targets"}
    assert doc["checked_at"].endswith("Z")
    assert datetime.fromisoformat(doc["checked_at"].replace("Z", "+00:00")).tzinfo is not None
    [target] = doc["targets"]
    assert set(target) == TARGET_KEYS
    assert (target["target"], target["reachable"], target["error"]) == ("default", True, None)
    assert 0.45 < target["usage_ratio"] < 0.6
    assert target["evicted_per_second"] is None  # one reading: no rate yet
    assert [a["rule"] for a in target["alerts"]] == list(RULE_IDS)
    for alert in target["alerts"]:
        assert set(alert) == ALERT_KEYS
        assert (alert["state"], alert["active_since"]) == ("inactive", None)
    assert by_rule(target)["memory-critical"]["severity"] == "critical"
    assert by_rule(target)["memory-warning"]["value"] == target["usage_ratio"]
    [row] = audit_rows(db_env)
    assert (row["action"], row["outcome"]) == ("command.check", "ok")


def test_check_exits_1_above_90_percent_before_the_for_has_passed(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = session_store(redis_factory, ratio=0.95)
    result, doc = check_json({**db_env, "REDIS_URL": server.url})
    assert result.code == 1, result
    rules = by_rule(doc["targets"][0])
    # memory-critical's 5m have not passed: pending, yet its condition holds now.
    assert rules["memory-critical"]["state"] == "pending"
    assert rules["memory-warning"]["state"] == "pending"
    assert rules["memory-critical"]["active_since"] == doc["checked_at"]
    assert rules["memory-critical"]["value"] > 0.9
    [row] = audit_rows(db_env)
    assert (row["action"], row["outcome"]) == ("command.check", "critical")


def test_a_target_that_is_down_is_store_down_with_a_one_line_error(
    redis_factory: RedisFactory, db_env: dict[str, str], tmp_path: Path
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    targets = tmp_path / "targets.yaml"
    down = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    targets.write_text(
        f"targets:\n  - {{name: up, redis_url: '{server.url}'}}\n"
        f"  - {{name: down, redis_url: '{down}'}}\n"
    )
    env = {**db_env, "REDIS_MEM_TARGETS_FILE": str(targets)}
    result, doc = check_json(env)
    assert result.code == 1, result  # store-down is critical and holds now
    up, gone = doc["targets"]
    assert (up["target"], up["reachable"], up["error"]) == ("up", True, None)
    assert (gone["target"], gone["reachable"], gone["usage_ratio"]) == ("down", False, None)
    assert gone["error"] and "\n" not in gone["error"]
    assert by_rule(gone)["store-down"]["state"] == "pending"  # its for is 1m
    assert by_rule(up)["store-down"]["state"] == "inactive"
    table = invoke_cli("check", env=env)
    assert table.code == 1 and "Traceback" not in table.stderr
    assert "down" in table.stdout and "NO" in table.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr + table.stdout + table.stderr


def test_check_prints_a_table_for_humans(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = session_store(redis_factory, ratio=0.85)
    result = invoke_cli("check", env={**db_env, "REDIS_URL": server.url})
    assert result.code == 0, result  # memory-warning is a warning: no page
    assert "Health check at" in result.stdout
    for needle in ("default", "memory-warning", "pending", "% of", "MB"):
        assert needle in result.stdout
    assert "threshold 80%" in result.stdout  # the rule's detail line


# Configuration errors -------------------------------------------------------------------------


def test_unknown_target_is_one_line_exit_2(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    result = invoke_cli("check", "--target", "nope", env={**db_env, "REDIS_URL": server.url})
    assert_one_line_error(result, "unknown target 'nope'", "default")


def test_a_bad_rules_file_is_one_line_exit_2_naming_rule_and_field(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    # Every kind of mistake is covered in process (tests/test_health_rules.py); here, that
    # the command turns one into exit 2 and one line.
    rules = "rules:\n  memory-warning: {for: banana}\n"
    env = {**db_env, **write_rules(tmp_path / "rules.yaml", rules)}
    result = invoke_cli("check", "--json", env=env)
    assert_one_line_error(result, "rules file", "memory-warning.for", "banana")


# History ------------------------------------------------------------------------------------


@pytest.fixture
def migrated(db_url: str) -> Iterator[Engine]:  # noqa: F811  (the imported fixture)
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def seed_rounds(engine: Engine, *, redis_url: str, at: list[datetime]) -> None:
    """Real check rounds at ``at`` on this database, as ``redis-mem serve`` runs them."""
    settings = Settings(redis_url=redis_url, database_url=str(engine.url))
    service = health_service(settings, engine=engine, audit=SqlAuditStore(engine))
    try:
        for now in at:
            assert service.run_round(now).checks[0].error is None
    finally:
        service.close()


def url_env(engine: Engine, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
    }


def test_check_reads_the_stored_for_timers_and_samples(
    redis_factory: RedisFactory, migrated: Engine
) -> None:
    server = session_store(redis_factory, ratio=0.85)
    now = datetime.now(UTC).replace(microsecond=0)
    started = now - timedelta(minutes=2)
    seed_rounds(migrated, redis_url=server.url, at=[started, now - timedelta(minutes=1)])
    result, doc = check_json(url_env(migrated, server.url))
    assert result.code == 0, result
    assert result.stderr == ""
    [target] = doc["targets"]
    rules = by_rule(target)
    assert rules["memory-warning"]["state"] == "pending"  # 10m have not passed since
    assert rules["memory-warning"]["active_since"] == started.isoformat().replace("+00:00", "Z")
    assert rules["memory-critical"]["state"] == "inactive"
    assert target["evicted_per_second"] == 0.0  # two stored readings within 5m: a rate


def test_check_applies_a_stored_for_that_has_passed_and_stores_nothing(
    redis_factory: RedisFactory, migrated: Engine
) -> None:
    server = session_store(redis_factory, ratio=0.85)
    now = datetime.now(UTC).replace(microsecond=0)
    seed_rounds(migrated, redis_url=server.url, at=[now - timedelta(minutes=11)])
    store = SqlHealthStore(migrated)
    before = (store.rule_states(), store.recent_samples(since=now - timedelta(hours=2)))
    result, doc = check_json(url_env(migrated, server.url))
    assert result.code == 0, result  # memory-warning fires, but it is a warning
    assert by_rule(doc["targets"][0])["memory-warning"]["state"] == "firing"
    after = (store.rule_states(), store.recent_samples(since=now - timedelta(hours=2)))
    assert after == before
    assert store.open_alerts() == []


# Read-only --------------------------------------------------------------------------------


def test_check_never_creates_a_missing_database(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    missing = tmp_path / "no-such.db"
    result, doc = check_json({"DATABASE_URL": f"sqlite:///{missing}", "REDIS_URL": server.url})
    assert result.code == 0, result
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("redis-mem: warning: ") and "does not exist" in warning
    assert doc["targets"][0]["reachable"] is True
    assert not missing.exists()


def test_check_neither_migrates_a_database_behind_nor_needs_a_reachable_one(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    behind = {"DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"}
    assert invoke_cli("db", "upgrade", "0002", env=behind).code == 0
    down = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}
    for env in (behind, down):
        result, doc = check_json({**env, "REDIS_URL": server.url})
        assert result.code == 0, result
        [warning] = result.stderr.strip().splitlines()
        assert warning.startswith("redis-mem: warning: no stored history used")
        assert doc["targets"][0]["alerts"][0]["state"] == "inactive"
    engine = make_engine(behind["DATABASE_URL"])
    try:
        assert current_revision(engine) == "0002"
    finally:
        engine.dispose()
