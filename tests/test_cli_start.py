"""The CLI's start-up (issue 9): what each command loads, and where its audit trail lives.

Real processes throughout: what a command imports is only visible in a fresh
interpreter, and where it writes only with the environment a user has (no
``DATABASE_URL``; ``XDG_DATA_HOME`` stands in for the home directory). Start-up time
itself is measured by ``bench/cli_start.py``, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clirun import clean_env, run_cli
from tests.conftest import RedisFactory
from tests.test_packaging import dockerfile_instructions

# Run a command in process, then name the heavy packages it loaded (on stderr's last line).
PROBE = """
import json, sys
heavy = set(json.loads(sys.argv.pop(1)))
from bot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
tops = {name.partition(".")[0] for name in sys.modules}
sys.stderr.write("\\n" + json.dumps(sorted(tops & heavy)))
"""
HEAVY = ("alembic", "kubernetes", "slack_sdk", "slack_bolt", "sqlalchemy", "redis", "rich")


def loaded(args: list[str], tmp_path: Path) -> set[str]:
    """The HEAVY packages ``redis-mem ARGS`` imports, run in a fresh interpreter."""
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), *args],
        env=clean_env(DATABASE_URL=database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc
    return set(json.loads(proc.stderr.splitlines()[-1]))


def test_help_loads_neither_settings_nor_clients(tmp_path: Path) -> None:
    assert loaded(["--help"], tmp_path) == set()


def test_diagnose_loads_only_redis(redis_factory: RedisFactory, tmp_path: Path) -> None:
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    # The first run creates the trail (SQLAlchemy and Alembic migrate it); the second
    # finds it at head and appends its row with the stdlib (bot.audit.sqlite_append).
    first = loaded(["diagnose", "--json", "--redis-url", server.url], tmp_path)
    assert first == {"alembic", "redis", "sqlalchemy"}
    modules = loaded(["diagnose", "--json", "--redis-url", server.url], tmp_path)
    assert modules == {"redis"}  # no Kubernetes target: no client either


def test_capacity_loads_no_redis(tmp_path: Path) -> None:
    args = ["capacity", "--users", "1000", "--sessions-per-user", "2", "--session-size", "2KB"]
    loaded([*args, "--json"], tmp_path)
    assert loaded([*args, "--json"], tmp_path) == set()


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no DATABASE_URL, the data directory under ``tmp_path``."""
    return {"XDG_DATA_HOME": str(tmp_path / "data-home")}


def test_default_audit_trail_is_in_the_user_data_directory(
    tmp_path: Path, home: dict[str, str]
) -> None:
    cwd = tmp_path / "anywhere"
    cwd.mkdir()
    args = ["capacity", "--users", "1", "--sessions-per-user", "1", "--session-size", "1KB"]
    result = run_cli(*args, env=home, cwd=cwd)
    assert result.code == 0, result
    assert list(cwd.iterdir()) == []  # nothing left where it was run
    database = Path(home["XDG_DATA_HOME"]) / "redis-mem" / "audit.db"
    assert database.is_file()
    assert database.parent.stat().st_mode & 0o077 == 0  # the user's own

    listed = run_cli("audit", "list", "--json", env=home, cwd=cwd)
    assert [row["action"] for row in json.loads(listed.stdout)] == ["command.capacity"]
    current = run_cli("db", "current", env=home, cwd=cwd)
    assert current.code == 0, current
    assert current.stdout.splitlines()[0] == f"audit database {database}"
    assert list(cwd.iterdir()) == []


def test_help_says_where_the_trail_is_and_creates_nothing(
    tmp_path: Path, home: dict[str, str]
) -> None:
    result = run_cli("--help", env=home, cwd=tmp_path)
    assert result.code == 0, result
    where = str(Path(home["XDG_DATA_HOME"]) / "redis-mem" / "audit.db")
    assert where in [line.strip() for line in result.stdout.splitlines()]  # whole, to copy
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_default_trail(tmp_path: Path, home: dict[str, str]) -> None:
    result = run_cli("db", "upgrade", env=home, cwd=tmp_path)
    assert result.code == 0, result
    assert (tmp_path / "data-home" / "redis-mem" / "audit.db").is_file()


def test_read_only_commands_do_not_create_the_default_trail(
    tmp_path: Path, home: dict[str, str]
) -> None:
    database = Path(home["XDG_DATA_HOME"]) / "redis-mem" / "audit.db"
    for args in (("audit", "list"), ("db", "current")):
        result = run_cli(*args, env=home, cwd=tmp_path)
        assert result.code == 2, result
        assert result.stderr == f"redis-mem: error: audit database {database} does not exist\n"
    assert list(tmp_path.iterdir()) == []


def test_the_image_keeps_its_trail_on_its_volume() -> None:
    # A container's uid has no home: the image names the file on its /data volume.
    env = " ".join(dockerfile_instructions()["ENV"])
    assert "DATABASE_URL=sqlite:////data/redis-mem.db" in env.split()
