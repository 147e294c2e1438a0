"""Hostile command lines through ``redis-mem`` (issue 8, items 4 and 7).

In process (``invoke_cli``), but for what needs the console script's own process: the
last-resort guard and a reader closing stdout early.

Each case once exited 1 ("critical, page someone") with a traceback, or printed a piece
of a typed password. Every one must now be exit 2, one ``redis-mem: error:`` line on
stderr naming what was expected, no traceback, and no planted secret anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from tests.clirun import REDIS_MEM, CliResult, clean_env, invoke_cli, run_cli
from tests.conftest import RedisFactory
from tests.dbfixtures import entry
from tests.hostile import MARKER
from tests.redisserver import free_port


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    """Each test its own audit database, so nothing is written to the working tree."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}"}


@pytest.fixture(scope="module")
def closed() -> int:
    """A loopback port nothing listens on: a command that connects fails at once."""
    return free_port()


def assert_refused(result: CliResult, *needles: str) -> str:
    """Exit 2, one error line holding each needle, no traceback, no planted secret."""
    assert result.code == 2, result
    assert "Traceback" not in result.stdout + result.stderr, result
    assert MARKER not in result.stdout + result.stderr, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("redis-mem: error: "), result
    assert "internal error" not in lines[0], result  # a root fix, not the last-resort guard
    for needle in needles:
        assert needle in lines[0], result
    return lines[0]


# --- item 7: tracebacks that exited 1 ---------------------------------------------------
# (More shapes of each, in process and fuzzed: tests/test_fuzz_cli.py.)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("audit", "list", "--since", "0001-01-01T00:00:00+14:00"), "outside the calendar in UTC"),
        (("audit", "export", "--since", "9" * 4_000 + "d"), "--since: value too long"),
        (("audit", "list", "--since", "9" * 200 + "w"), "too far back"),
        (("db", "upgrade", ""), "unknown revision '': expected head, +N or one of 0001"),
    ],
)
def test_audit_arguments_that_raised(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    result = invoke_cli(*args, env={"DATABASE_URL": f"sqlite:///{database}"})
    assert_refused(result, needle)
    assert not database.exists()  # refused before anything was opened or created


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://:{secret}@127.0.0.1:{closed}/0?ssl_cert_reqs=bogus", "needs a rediss:// URL"),
        ("redis://:{secret}@" + "a" * 10_000 + ":6379/0", "characters long"),  # IDNA error
        ("redis://:{secret}@" + "a" * 64 + ".example:6379/0", "not a host name"),
        ("redis://:{secret}@127.0.0.1:0/0", "port must be a number from 1 to 65535"),  # was 6379
    ],
)
def test_diagnose_urls_that_raised_or_misled(
    url: str, needle: str, closed: int, db_env: dict[str, str]
) -> None:
    url = url.format(secret=MARKER, closed=closed)
    assert_refused(invoke_cli("diagnose", "--redis-url", url, "--json", env=db_env), needle)


def test_arguments_that_are_not_utf8(db_env: dict[str, str]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates: SQLite could not bind them."""
    result = invoke_cli("audit", "list", "--actor", os.fsdecode(b"\xff\xfe"), env=db_env)
    assert_refused(result, "argument 4 is not valid UTF-8 text")


def test_a_valid_unix_socket_and_url_options_still_work(
    redis_factory: RedisFactory, tmp_path: Path, db_env: dict[str, str]
) -> None:
    socket = tmp_path / "redis.sock"
    server = redis_factory(
        "--unixsocket", str(socket), "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"
    )
    for url in (f"unix://{socket}?db=0", f"{server.url}?client_name=cli&db=1"):
        result = invoke_cli("diagnose", "--redis-url", url, "--json", env=db_env)
        assert result.code == 0, result
        assert json.loads(result.stdout)["scenarios"] == []


# --- item 4: typed secrets echoed by the CLI ---------------------------------------------


def test_no_piece_of_a_password_cut_by_a_hash(closed: int, db_env: dict[str, str]) -> None:
    """redis-py read "abc" of "abc#..." as the port and said so: "...as 'abc'"."""
    url = f"redis://:abc#{MARKER}@127.0.0.1:{closed}/0"
    line = assert_refused(invoke_cli("diagnose", "--redis-url", url, env=db_env), "percent-encode")
    assert "'abc'" not in line
    trail = invoke_cli("audit", "list", "--json", env=db_env)
    assert trail.code == 0 and "command.diagnose" in trail.stdout and MARKER not in trail.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("capacity", "--users", "1", "--sessions-per-user", "1", "--session-size",
          f"redis://:{MARKER}@h"), "invalid size"),  # came back whole (cli.py:161)
        (("check", "--target", f"redis://:{MARKER}@h:6379"), "unknown target 'redis://:***@h"),
    ],
)  # fmt: skip
def test_typed_urls_are_not_printed(
    args: tuple[str, ...], needle: str, db_env: dict[str, str]
) -> None:
    assert_refused(invoke_cli(*args, env=db_env), needle)
    if args[0] == "capacity":  # (check audits nothing without a trail to read history from)
        trail = invoke_cli("audit", "list", "--json", env=db_env)
        assert trail.code == 0 and "command.capacity" in trail.stdout
        assert MARKER not in trail.stdout


# --- the last-resort guard and a closed stdout --------------------------------------------


@pytest.fixture
def broken_migrations(tmp_path: Path) -> Path:
    """A migrations folder whose env.py raises: an unexpected exception, no patching."""
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(
        f'raise RuntimeError("boom at redis://:{MARKER}@h:6379 password={MARKER}")\n'
    )
    return folder


def test_an_unexpected_exception_is_one_line_exit_2(
    broken_migrations: Path, db_env: dict[str, str]
) -> None:
    env = {**db_env, "REDIS_MEM_MIGRATIONS_DIR": str(broken_migrations)}
    result = run_cli("db", "upgrade", env=env)
    assert result.code == 2 and MARKER not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "redis-mem: error: internal error: RuntimeError: boom at redis://:***@h:6379"
        " password=*** (run with REDIS_MEM_DEBUG=1 for the traceback)"
    ]


def test_debug_shows_the_traceback_scrubbed(
    broken_migrations: Path, db_env: dict[str, str]
) -> None:
    env = {**db_env, "REDIS_MEM_MIGRATIONS_DIR": str(broken_migrations), "REDIS_MEM_DEBUG": "1"}
    result = run_cli("db", "upgrade", env=env)
    assert result.code == 2 and MARKER not in result.stdout + result.stderr
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.splitlines()[-1].startswith("redis-mem: error: internal error: ")


@pytest.mark.parametrize(
    "command", [("audit", "export"), ("audit", "list", "--limit", "100")]
)  # written by the command itself, and by rich (a table)
def test_a_reader_that_stops_early_is_not_critical(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """click and rich turn a broken pipe (``| head``) into exit 1: "page someone"."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    upgrade(engine)
    audit = SqlAuditStore(engine)
    for n in range(20):
        audit.record(entry(n))
    engine.dispose()
    with subprocess.Popen(
        [REDIS_MEM, *command],
        env=clean_env(DATABASE_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        # As `head` does once it has read enough; closed before the command writes (it
        # is still starting up), as a pipe may hold the whole output of a small trail.
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.splitlines() == [
        "redis-mem: error: stdout was closed before the output ended (broken pipe)"
    ]
