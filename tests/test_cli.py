"""The ``redis-mem`` command end to end: real redis-server, real audit trail, exit codes.

In process (``invoke_cli``); the runbook's example also runs as the console script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.clirun import CliResult, invoke_cli, run_cli
from tests.conftest import RedisFactory


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    """Each test its own audit database, so nothing is written to the working tree."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}"}


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("redis-mem: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_capacity_runbook_example_json(db_env: dict[str, str]) -> None:
    """As the runbook types it: the console script, in its own process."""
    result = run_cli(
        "capacity",
        "--users",
        "10000",
        "--sessions-per-user",
        "3",
        "--session-size",
        "2KB",
        "--json",
        env=db_env,
    )
    assert result.code == 0, result
    plan = json.loads(result.stdout)
    assert plan["sessions"] == 30_000
    assert plan["session_size"] == 2048
    assert plan["required_bytes"] == 73_728_000  # 10,000 x 3 x 2048 x 1.2, as the runbook counts


def test_capacity_table_for_humans(db_env: dict[str, str]) -> None:
    result = invoke_cli(
        "capacity",
        "--users",
        "10000",
        "--sessions-per-user",
        "3",
        "--session-size",
        "2KB",
        env=db_env,
    )
    assert result.code == 0, result
    assert "70.3 MB" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--users", "10", "--sessions-per-user", "3", "--session-size", "abc"], "abc"),
        (["--users", "10", "--sessions-per-user", "3", "--session-size", "-2KB"], "-2KB"),
        (["--users", "0", "--sessions-per-user", "3", "--session-size", "2KB"], "users"),
        (["--users", "ten", "--sessions-per-user", "3", "--session-size", "2KB"], "--users"),
        (["--users", "10", "--session-size", "2KB"], "sessions-per-user"),
        (["--users", "9" * 400, "--sessions-per-user", "3", "--session-size", "2KB"], "users"),
        (["--users", "1", "--sessions-per-user", "3", "--session-size", "9" * 400], "at most 1TB"),
    ],
)
def test_capacity_garbage_is_one_line_exit_2(
    args: list[str], needle: str, db_env: dict[str, str]
) -> None:
    assert_one_line_error(invoke_cli("capacity", *args, env=db_env), needle)


def test_unknown_command_is_exit_2(db_env: dict[str, str]) -> None:
    assert_one_line_error(invoke_cli("diagnoze", env=db_env), "diagnoze")


def test_diagnose_unreachable_redis(db_env: dict[str, str]) -> None:
    from tests.redisserver import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line_error(invoke_cli("diagnose", "--redis-url", url, env=db_env), "127.0.0.1")


def test_diagnose_wrong_password_never_shows_it(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory(password="right-horse")
    url = f"redis://:wrong-battery@127.0.0.1:{server.port}/0"
    result = invoke_cli("diagnose", "--redis-url", url, env=db_env)
    assert_one_line_error(result)
    assert "wrong-battery" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "url",
    [
        "http://x",
        "redis://:pw-never-shown@[::1",
        "redis://:pw-never-shown@h:99999/0",
        "redis://127.0.0.1:1/0?password=pw-never-shown",
        "redis://:ab#pw-never-shown@127.0.0.1:1/0",
    ],
)
def test_diagnose_malformed_url_is_one_line_without_the_password(
    url: str, db_env: dict[str, str]
) -> None:
    result = invoke_cli("diagnose", "--redis-url", url, env=db_env)
    assert_one_line_error(result, "redis")
    assert "pw-never-shown" not in result.stderr + result.stdout
    trail = invoke_cli("audit", "list", "--json", env=db_env)
    assert trail.code == 0 and json.loads(trail.stdout)  # the failure is audited...
    assert "pw-never-shown" not in trail.stdout  # ...without the password


def test_diagnose_unknown_target(tmp_path: Path, db_env: dict[str, str]) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - name: prod\n    redis_url: redis://127.0.0.1:1/0\n")
    env = {**db_env, "REDIS_MEM_TARGETS_FILE": str(targets)}
    assert_one_line_error(invoke_cli("diagnose", "--target", "staging", env=env), "staging", "prod")


def test_diagnose_bad_targets_file(tmp_path: Path, db_env: dict[str, str]) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets: [ {name: prod, redis_url: ")
    env = {**db_env, "REDIS_MEM_TARGETS_FILE": str(targets)}
    assert_one_line_error(invoke_cli("diagnose", env=env), "targets file")


def test_diagnose_password_from_env_var(
    tmp_path: Path, redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory(password="s3cret-pass")
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n  - name: prod\n"
        f"    redis_url: redis://127.0.0.1:{server.port}/0\n    password_env: PROD_REDIS_PASSWORD\n"
    )
    env = {**db_env, "REDIS_MEM_TARGETS_FILE": str(targets), "PROD_REDIS_PASSWORD": "s3cret-pass"}
    result = invoke_cli("diagnose", "--target", "prod", "--json", env=env)
    assert result.code == 0, result
    assert json.loads(result.stdout)["target"] == "prod"
    assert "s3cret-pass" not in result.stdout + result.stderr
    missing = invoke_cli("diagnose", env={**db_env, "REDIS_MEM_TARGETS_FILE": str(targets)})
    assert_one_line_error(missing, "PROD_REDIS_PASSWORD")


def test_diagnose_json_contract_and_ttl_leak(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    client = redis.Redis.from_url(server.url)
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        if i % 2:
            pipe.set(f"session:{i}", b"x" * 1500)  # the leak: SET without EXPIRE
        else:
            pipe.set(f"session:{i}", b"x" * 1500, ex=86400)
    pipe.execute()
    result = invoke_cli("diagnose", "--redis-url", server.url, "--json", env=db_env)
    assert result.code == 0, result
    data = json.loads(result.stdout)
    for key in (
        "target",
        "checked_at",
        "used_memory",
        "maxmemory",
        "usage_ratio",
        "severity",
        "evicted_keys",
        "mem_fragmentation_ratio",
        "dbsize",
        "maxmemory_policy",
        "session_keys",
        "ttl",
        "sizes",
        "scenarios",
    ):
        assert key in data, key
    assert set(data["ttl"]) >= {"sampled", "without_ttl", "without_ttl_ratio", "histogram"}
    assert set(data["sizes"]) >= {"sampled", "mean_bytes", "p95_bytes", "max_bytes", "top_keys"}
    assert data["maxmemory"] == 64 * 1024**2
    assert data["dbsize"] == 2000
    assert 0.3 < data["ttl"]["without_ttl_ratio"] < 0.7
    leak = [s for s in data["scenarios"] if s["id"] == "ttl-leak"]
    assert leak and "expire-keys-without-ttl" in leak[0]["recommended_actions"]
    assert leak[0]["evidence"]


def test_diagnose_table_for_humans(redis_factory: RedisFactory, db_env: dict[str, str]) -> None:
    server = redis_factory("--maxmemory", "64mb")
    redis.Redis.from_url(server.url).set("session:a", "x")
    result = invoke_cli("diagnose", "--redis-url", server.url, env=db_env)
    assert result.code == 0, result
    assert "Runbook diagnosis" in result.stdout
    assert "{" not in result.stdout.splitlines()[0]  # a table, not a dump


def test_diagnose_critical_exits_1_and_maxmemory_0_is_not_a_crash(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    unlimited = redis_factory()
    result = invoke_cli("diagnose", "--redis-url", unlimited.url, "--json", env=db_env)
    assert result.code == 0, result
    data = json.loads(result.stdout)
    assert data["maxmemory"] == 0 and data["usage_ratio"] is None

    full = redis_factory("--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru")
    client = redis.Redis.from_url(full.url)
    pipe = client.pipeline(transaction=False)
    for i in range(8000):
        pipe.set(f"session:{i}", b"y" * 1024, ex=3600)
    pipe.execute()
    result = invoke_cli("diagnose", "--redis-url", full.url, "--json", env=db_env)
    assert result.code == 1, result
    data = json.loads(result.stdout)
    assert data["severity"] == "critical"
    assert data["evicted_keys"] > 0


def test_diagnose_with_config_disabled(redis_factory: RedisFactory, db_env: dict[str, str]) -> None:
    server = redis_factory(
        "--maxmemory",
        "64mb",
        "--maxmemory-policy",
        "volatile-lru",
        "--rename-command",
        "CONFIG",
        "",
    )
    result = invoke_cli("diagnose", "--redis-url", server.url, "--json", env=db_env)
    assert result.code == 0, result
    assert json.loads(result.stdout)["maxmemory_policy"] == "volatile-lru"


def test_diagnose_empty_and_non_session_keyspaces(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    empty = invoke_cli("diagnose", "--redis-url", server.url, "--json", env=db_env)
    assert empty.code == 0, empty
    assert json.loads(empty.stdout)["session_keys"] == 0
    client = redis.Redis.from_url(server.url)
    client.mset({f"cache:{i}": "v" for i in range(500)})
    other = invoke_cli("diagnose", "--redis-url", server.url, "--json", env=db_env)
    assert other.code == 0, other
    data = json.loads(other.stdout)
    assert data["session_keys"] == 0 and data["dbsize"] == 500
    assert data["scenarios"] == []


def test_every_cli_command_leaves_an_audit_row(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    assert invoke_cli("diagnose", "--redis-url", server.url, "--json", env=db_env).code == 0
    assert (
        invoke_cli(
            "capacity",
            "--users",
            "1",
            "--sessions-per-user",
            "1",
            "--session-size",
            "1KB",
            env=db_env,
        ).code
        == 0
    )
    assert (
        invoke_cli(
            "capacity",
            "--users",
            "1",
            "--sessions-per-user",
            "1",
            "--session-size",
            "zz",
            env=db_env,
        ).code
        == 2
    )
    assert invoke_cli("diagnoze", env=db_env).code == 2

    listed = invoke_cli("audit", "list", "--json", env=db_env)
    assert listed.code == 0, listed
    rows = json.loads(listed.stdout)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("command.rejected", "rejected"),
        ("command.capacity", "rejected"),
        ("command.capacity", "ok"),
        ("command.diagnose", "ok"),
    ]
    assert all(r["actor"].startswith("cli:") and r["source"] == "cli" for r in rows)
    assert rows[3]["target"] == "default" and rows[3]["parameters"]["full"] is False
    assert invoke_cli("audit", "verify", env=db_env).code == 0


def test_read_only_commands_answer_when_the_audit_database_is_down(
    redis_factory: RedisFactory,
) -> None:
    from tests.redisserver import free_port

    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}
    result = invoke_cli("diagnose", "--redis-url", server.url, "--json", env=env)
    assert result.code == 0, result
    assert json.loads(result.stdout)["severity"] == "ok"
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("redis-mem: warning: audit trail unavailable: ")


def test_a_mistyped_secret_on_the_command_line_is_neither_echoed_nor_audited(
    db_env: dict[str, str],
) -> None:
    result = invoke_cli(
        "redis://:hunter2-super-secret-password-xyz@10.0.0.1:6379/0", "diagnose", env=db_env
    )
    assert_one_line_error(result, "No such command")
    listed = invoke_cli("audit", "list", "--json", env=db_env)
    [row] = json.loads(listed.stdout)
    assert (row["action"], row["parameters"]) == ("command.rejected", {"command": "unknown"})
    assert "hunter2" not in result.stderr + listed.stdout


def test_key_names_are_printed_not_read_as_terminal_markup(
    redis_factory: RedisFactory, db_env: dict[str, str]
) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(40):  # large sessions: the evidence names the largest keys
            pipe.set(f"session:[/bold][red]{i}", b"z" * 40_000, ex=3600)
        pipe.execute()
    result = invoke_cli("diagnose", "--redis-url", server.url, env=db_env)
    assert result.code == 0, result
    assert "large-sessions" in result.stdout
    assert "session:[/bold][red]" in result.stdout
