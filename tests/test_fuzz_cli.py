"""Hypothesis over the arguments of every ``redis-mem`` command, in process (issue 8).

Each run goes through ``bot.cli.main`` (the argument checks, typer, the command, the
last-resort guard) inside typer's CliRunner isolation (``tests.clirun.invoke_cli``),
against a real redis-server for the commands that connect and a SQLite audit trail at
head. Whatever the arguments: exit 0 or 2 (never 1: nothing fuzzed here is critical),
on 2 exactly one ``redis-mem: error:`` line that is not an ``internal error``, never a
traceback, never a planted secret (``tests.hostile.MARKER``), never a terminal control character.
The ``@example`` cases are the ones that found bugs (tracebacks, exit 1, echoed secrets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.errors import ConfigError
from bot.redisinfo.client import client_for
from tests.clirun import CliResult, invoke_cli
from tests.conftest import RedisFactory
from tests.hostile import MARKER, any_text, numbers, odd_text, passwords, secret_words, values
from tests.redisserver import free_port

# The "ci" profile's budget spread over the ten suites below (~25 runs each, ~30 ms a run);
# HYPOTHESIS_PROFILE=fuzz runs a hundred times more.
FUZZ = settings(
    max_examples=max(20, settings.default.max_examples // 8),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLOSED = free_port()  # nothing listens there: a command that connects fails at once
HUGE = "9" * 4_301  # one digit more than int() converts
# Commands that run forever, or options that write files.
DANGEROUS = frozenset({"serve", "demo", "watch", "-o", "--output", "--png"})


Run = CliResult  # exit code and the two streams of one ``redis-mem`` run


class Cli:
    """``redis-mem ARGS`` in this process (``invoke_cli``), in ``workdir``, with ``env``."""

    def __init__(self, env: dict[str, str], workdir: Path, *, port: int) -> None:
        self.env = env
        self.workdir = workdir
        self.port = port  # the real redis-server's

    def __call__(self, *args: str) -> Run:
        return invoke_cli(*args, env=self.env, cwd=self.workdir)


@pytest.fixture
def cli(redis_factory: RedisFactory, tmp_path: Path) -> Iterator[Cli]:
    """The CLI over a healthy real redis-server (the default target) and a fresh trail."""
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    workdir = tmp_path / "cwd"  # `audit export -o NAME` writes here, nowhere else
    workdir.mkdir()
    env = {"DATABASE_URL": database, "REDIS_URL": server.url, "REDIS_MEM_CHECK_INTERVAL": "1"}
    yield Cli(env, workdir, port=server.port)


def assert_clean(run: Run, *, codes: Sequence[int] = (0, 2)) -> None:
    """The properties every run keeps, whatever its arguments."""
    both = run.stdout + run.stderr
    assert run.code in codes, run
    assert "Traceback" not in both, run
    assert MARKER not in both, run
    assert not any(char in run.stderr for char in "\x00\x07\x1b"), run
    if run.code == 2:
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("redis-mem: error: "), run
        assert "internal error" not in lines[0], run  # each bad input has its own message
    else:
        assert run.stderr == "" or run.stderr.startswith("redis-mem: warning: "), run


def args() -> st.SearchStrategy[str]:
    """One argument value: hostile numbers, planted secrets, odd text, huge text."""
    return st.one_of(values(), secret_words(), st.sampled_from(("", " ", "-", "--", HUGE)))


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


def option(name: str, value: str | None) -> list[str]:
    return [] if value is None else [name, value]


# --- audit and db ----------------------------------------------------------------------


@FUZZ
@given(
    since=maybe(args()),
    actor=maybe(args()),
    action=maybe(args()),
    target=maybe(args()),
    limit=maybe(args() | st.integers(-5, 20_000).map(str)),
    as_json=st.booleans(),
)
@example("0001-01-01T00:00:00+14:00", None, None, None, None, False)  # OverflowError, exit 1
@example("9999-12-31T23:59:59-14:00", None, None, None, None, True)
@example(HUGE + "d", None, None, None, None, False)  # int() ValueError, exit 1
@example("9" * 200 + "d", None, None, None, None, False)
@example("", None, None, None, None, False)  # was: no filter at all
@example("0ſ", None, None, None, None, False)  # KeyError: 'ſ' matched [smhdw] ignoring case
@example(None, "\udcff", "a\udcff", "\ud800", None, False)  # SQLite UnicodeEncodeError, exit 1
@example(None, "a\x00b", None, None, None, True)
@example(f"token={MARKER}", None, None, None, None, False)
def test_audit_list(
    cli: Cli,
    since: str | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    limit: str | None,
    as_json: bool,
) -> None:
    argv = ["audit", "list", *option("--since", since), *option("--actor", actor)]
    argv += [*option("--action", action), *option("--target", target), *option("--limit", limit)]
    assert_clean(cli(*argv, *(["--json"] if as_json else [])))


def file_names() -> st.SearchStrategy[str]:
    """A name inside the working directory (no "/"): long, odd, but never a secret."""
    name = st.text(st.characters(exclude_characters="/"), max_size=300)
    return name.filter(lambda text: MARKER not in text)


@FUZZ
@given(fmt=maybe(args() | st.sampled_from(("jsonl", "csv"))), since=maybe(args()),
       output=maybe(file_names()))  # fmt: skip
@example(None, "0001-01-01T00:00:00+14:00", None)
@example(None, HUGE + "w", None)
@example(f"redis://:{MARKER}@h", None, None)
@example("csv", None, "")  # was: wrote to "."
@example("jsonl", None, "\x00")  # ValueError: embedded null byte
@example("jsonl", None, "x" * 300)  # ENAMETOOLONG
def test_audit_export(cli: Cli, fmt: str | None, since: str | None, output: str | None) -> None:
    argv = ["audit", "export", *option("--format", fmt), *option("--since", since)]
    assert_clean(cli(*argv, *option("-o", output)))


def test_export_errors_name_the_file_as_typed(cli: Cli) -> None:
    """Path("redis://:pw@h/x") reads "redis:/:pw@h/x": no longer a URL to the scrubber."""
    run = cli("audit", "export", "-o", f"redis://:{MARKER}@h/out.jsonl")
    assert_clean(run)
    assert run.code == 2 and "cannot write redis://:***@h/out.jsonl" in run.stderr


@FUZZ
@given(workers=args() | st.integers(-5, 100).map(str))
@example("0")
@example(HUGE)
def test_audit_verify(cli: Cli, workers: str) -> None:
    assert_clean(cli("audit", "verify", "--workers", workers))


@FUZZ
@given(revision=args() | st.sampled_from(("head", "0001", "0004", "+1", "base", "head-1")))
@example("")  # alembic AssertionError, exit 1
@example("head+5")  # AssertionError
@example("heads+1")
@example("@")
@example("0001-01-01")
@example("+" + "9" * 4_000)  # ValueError converting the steps
@example(f"redis://u:{MARKER}@h")
def test_db_upgrade(cli: Cli, revision: str) -> None:
    run = cli("db", "upgrade", revision)
    assert_clean(run)
    assert cli("db", "current").stdout.endswith("(up to date)\n")  # nothing went back or away


# --- capacity ----------------------------------------------------------------------------


def counts() -> st.SearchStrategy[str]:
    return args() | st.integers(-(10**6), 10**25).map(str)


@FUZZ
@given(users=counts(), sessions=counts(), size=args() | st.sampled_from(("2KB", "1.5MB", "1Ti")),
       as_json=st.booleans())  # fmt: skip
@example("1", "1", f"redis://:{MARKER}@h", False)  # printed whole (cli.py:161)
@example("1", "1", f"redis://:abc#{MARKER}@h", True)
@example(HUGE, "1", "1", False)
@example("1", "1", "9" * 400, False)
def test_capacity(cli: Cli, users: str, sessions: str, size: str, as_json: bool) -> None:
    argv = ["capacity", "--users", users, "--sessions-per-user", sessions, "--session-size", size]
    assert_clean(cli(*argv, *(["--json"] if as_json else [])))


# --- diagnose, check, watch --------------------------------------------------------------

# Mostly well-formed parts, so that most URLs get past the first check they could fail.
_HOSTS = ("127.0.0.1",) * 6 + ("localhost", "[::1]", "", "a" * 64 + ".x", "é" * 70, "a..b",
          " ", "%00", "x\udcff", "[zz]", "[::1", "x" * 3_000)  # fmt: skip
_PATHS = ("", "/", "/0", "/0", "/1", "/15", "/abc", "/-1", "/" + "9" * 30, "/0/")
_OPTIONS = ("db", "password", "username", "client_name", "socket_timeout", "retry_on_error",
            "protocol", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname", "a")  # fmt: skip
_WORD = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12).filter(
    lambda text: MARKER not in text
)
SERVER_PORT = "SERVER-PORT"  # replaced by the real redis-server's port when run


@st.composite
def redis_urls(draw: st.DrawFn) -> str:
    """A Redis URL with any odd part; it reaches no server but ours or a closed port.

    (No empty or random port: redis-py would default to 6379, whatever listens there;
    no TLS to our plain server: its TLS hello would wait for the whole timeout.)
    """
    scheme = draw(st.sampled_from(("redis://",) * 4 + ("rediss://", "unix://", "REDIS://")))
    password = draw(st.none() | passwords())
    user = draw(st.sampled_from(("", "", "default")))
    userinfo = "" if password is None and not user else f"{user}:{password or ''}@"
    ports = [str(CLOSED), "0", "99999", "-1", "abc", "٣", "9" * 30]
    ports += [SERVER_PORT] * 6 if scheme == "redis://" else []
    netloc = f"{userinfo}{draw(st.sampled_from(_HOSTS))}:{draw(st.sampled_from(ports))}"
    path = draw(st.sampled_from(_PATHS) | odd_text(12))
    # A planted password only where it is one: "db=<secret>" is not a secret's shape.
    secret = st.tuples(st.sampled_from(("password", "Password")), passwords())
    pairs = secret | st.tuples(st.sampled_from(_OPTIONS) | _WORD, _WORD | numbers())
    query = "&".join(f"{name}={value}" for name, value in draw(st.lists(pairs, max_size=3)))
    tail = draw(st.sampled_from(("",) * 6 + ("#", "#frag", "#@x")))
    return f"{scheme}{netloc}{path}" + (f"?{query}" if query else "") + tail


@st.composite
def diagnose_lines(draw: st.DrawFn) -> list[str]:
    """``diagnose`` with any URL (not ``args()``: their hosts, such as 10.0.0.1, would be
    dialled for the whole timeout), a target name now and then, and any flags."""
    url = draw(maybe(redis_urls() | any_text(40)))
    target = draw(args()) if draw(st.integers(0, 4)) == 0 else None
    argv = ["diagnose", *option("--redis-url", url), *option("--target", target)]
    return argv + draw(st.sampled_from(([], ["--full"], ["--json"], ["--full", "--json"])))


_BUG_URLS = (
    f"redis://:p@127.0.0.1:{CLOSED}/0?ssl_cert_reqs=bogus",  # TypeError at PING, exit 1
    f"rediss://:p@127.0.0.1:{CLOSED}/0?ssl_cert_reqs=bogus",
    f"redis://:{MARKER}@{'a' * 10_000}:6379/0",  # UnicodeError from the IDNA codec, exit 1
    f"redis://{'a' * 64}.example:{CLOSED}",
    f"redis://{'é' * 100}:{CLOSED}",
    f"redis://x\udcff:{CLOSED}",
    f"redis://127.0.0.1:{CLOSED}?a=b",  # TypeError at PING
    f"redis://127.0.0.1:{CLOSED}?" + "a=b&" * 500,
    f"redis://127.0.0.1:{CLOSED}?socket_timeout=inf",  # would override our timeouts
    f"redis://127.0.0.1:{CLOSED}?retry_on_error=x",  # TypeError inside redis-py's retry
    f"redis://:abc#{MARKER}@127.0.0.1:{CLOSED}/0",  # "...as 'abc'": a piece of the password
    f"redis://:{MARKER}/tail@127.0.0.1:{CLOSED}/0",
    "redis://127.0.0.1:0/0",  # silently diagnosed the Redis on 6379
    "unix://",
    "unix:///nonexistent.sock?db=abc",
    f"redis://:[{MARKER}@[::1]:{CLOSED}",  # urlsplit's ValueError quoted the password
)


def _bug_examples(test: Any) -> Any:
    for url in _BUG_URLS:
        test = example(argv=["diagnose", "--redis-url", url, "--json"])(test)
    return test


@FUZZ
@given(argv=diagnose_lines())
@_bug_examples
@example(argv=["diagnose", "--redis-url", f"redis://127.0.0.1:{SERVER_PORT}/0?db=1&client_name=a"])
@example(argv=["diagnose", "--target", f"redis://:{MARKER}@h", "--full"])
def test_diagnose(cli: Cli, argv: list[str]) -> None:
    argv = [arg.replace(SERVER_PORT, str(cli.port)) for arg in argv]
    assert_clean(cli(*argv))


@FUZZ
@given(target=args(), as_json=st.booleans())
@example(f"redis://:{MARKER}@h:6379", False)  # echoed whole
@example("\x1b]0;owned\x07\x1b[2Jprod", False)  # drove the terminal
@example("default", True)
def test_check(cli: Cli, target: str, as_json: bool) -> None:
    assert_clean(cli("check", "--target", target, *(["--json"] if as_json else [])))


@FUZZ
@given(target=args(), rounds=maybe(counts()))
@example(f"password={MARKER}", "1")
@example("nope", HUGE)
def test_watch(cli: Cli, target: str, rounds: str | None) -> None:
    assume(target != "default")  # a real watch runs until its rounds are done
    assert_clean(cli("watch", "--target", target, *option("--rounds", rounds)))


# --- any command line ----------------------------------------------------------------------

_WORDS = ("audit", "list", "verify", "export", "db", "upgrade", "current", "capacity",
          "diagnose", "check", "report", "--json", "--help", "--since", "--limit", "--target",
          "--users", "--format", "--full", "--anchor", "24h", "--")  # fmt: skip


@FUZZ
@given(argv=st.lists(st.sampled_from(_WORDS) | args(), max_size=6))
@example([os.fsdecode(b"di\xe9gnose")])  # bytes that were not UTF-8
@example(["db", "upgrade", ""])
@example([f"redis://:{MARKER}@h"])
@example(["--" + "x" * 5_000])
@example(["check", "--target", "a\x00"])
def test_any_command_line(cli: Cli, argv: list[str]) -> None:
    assume(not DANGEROUS.intersection(argv))
    assume("--redis-url" not in argv)  # test_diagnose's: any other host would be dialled
    assert_clean(cli(*argv))


# --- the URL check agrees with redis-py ------------------------------------------------------


@FUZZ
@given(url=redis_urls() | args())
@example(f"redis://:[{MARKER}@[::1]:{CLOSED}")  # urlsplit: "'...@[::1' does not appear to be"
@example(f"unix://127.0.0.1:{CLOSED}/")  # a host redis-py ignores, and the path "/"
def test_a_url_check_url_accepts_is_one_redis_py_can_use(url: str) -> None:
    """What ``client_for`` lets through, redis-py builds a connection for (without connecting)
    and the resolver can encode; what it refuses is one line without the password."""
    try:
        client = client_for(url, timeout=0.1)
    except ConfigError as err:
        assert MARKER not in err.message and "\n" not in err.message
        return
    connection = client.connection_pool.make_connection()  # TypeError on unknown options
    host = getattr(connection, "host", None) or ""  # a unix socket's is None
    host.encode("idna")  # UnicodeError for a label over 63 characters
    assert getattr(connection, "port", 1) != 0
    client.close()
