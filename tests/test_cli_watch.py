"""``redis-mem watch`` end to end: the real CLI following a real store across 80% and 90%.

The test reads the watch's lines as they come and moves the store (``CONFIG SET
maxmemory``) when the line it waits for arrives: no sleeping through ``for``s.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.config import Target
from bot.health.model import Alert, AlertEvent, EventKind, RuleStatus
from bot.health.ports import Delivered
from bot.health.rules import RuleBook
from bot.health.store import SqlHealthStore
from bot.wiring import foreground_checks
from tests.clirun import REDIS_MEM, clean_env, invoke_cli
from tests.conftest import RedisFactory
from tests.health_support import session_store, set_ratio
from tests.redisserver import free_port
from tests.test_cli_check import assert_one_line_error, audit_rows, seed_rounds

SHORT_RULES = """\
rules:
  memory-warning: {for: 1s}
  memory-critical: {for: 1s}
  eviction-rate: {enabled: false}
  connections-exhausted: {enabled: false}
  memory-forecast: {enabled: false}
"""
LINE_TIMEOUT = 30.0  # seconds a single expected line may take (a round is 1 s)


class Watch:
    """A ``redis-mem watch`` subprocess whose stdout lines are read as they arrive."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [REDIS_MEM, "watch", *args],
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_line(self) -> str:
        line = self._queue.get(timeout=LINE_TIMEOUT)
        assert line is not None, f"watch ended early: {self.lines} {self.finish()}"
        self.lines.append(line)
        return line

    def wait_for(self, *words: str) -> str:
        """The next line holding every one of ``words`` (lines before it are kept too)."""
        while True:
            line = self.next_line()
            if all(word in line for word in words):
                return line

    def finish(self) -> tuple[int, str]:
        """Wait for the exit; the code and stderr. The rest of stdout lands in ``lines``."""
        _, stderr = self.proc.communicate(timeout=60)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return self.proc.returncode, stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Collect:
    """A Notifier that keeps the events it is given."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        self.events.append(event)
        return Delivered()


@pytest.fixture
def watch_env(tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHORT_RULES)
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "REDIS_MEM_RULES_FILE": str(rules),
        "REDIS_MEM_CHECK_INTERVAL": "1",
    }


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        watch.kill()


def events(lines: list[str]) -> list[tuple[str, str]]:
    """(rule, KIND) of each event line (after the header)."""
    return [(line.split("  ")[2], line.split("  ")[3]) for line in lines[1:]]


def test_watch_rounds_prints_each_transition_as_one_line(
    redis_factory: RedisFactory, watch_env: dict[str, str]
) -> None:
    server = session_store(redis_factory, ratio=0.95)
    result = invoke_cli("watch", "--rounds", "2", env={**watch_env, "REDIS_URL": server.url})
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    header, *lines = result.stdout.strip().splitlines()
    assert header.startswith(f"watching default ({server.url}) every 1s")
    assert "memory-warning for 1s, memory-critical for 1s, store-down for 1m" in header
    assert events([header, *lines]) == [
        ("memory-warning", "PENDING"),
        ("memory-critical", "PENDING"),
        ("memory-critical", "FIRING"),  # both fire at once: the alert shows the worse one
    ]
    stamp, target, *_ = lines[2].split("  ")
    assert target == "default" and stamp.endswith("Z") and len(stamp) == len("2026-12-01 10:42:00Z")
    assert "% of " in lines[2] and "(threshold 90%)" in lines[2]
    # The real trail has the command; the alert's life stayed in the watch's private database.
    rows = audit_rows(watch_env)
    assert [(r["action"], r["outcome"]) for r in rows] == [("command.watch", "ok")]
    assert rows[0]["parameters"] == {"target": None, "rounds": 2}


def test_watch_follows_a_store_across_80_and_90_percent_and_back(
    redis_factory: RedisFactory, watch_env: dict[str, str], watches: list[Watch]
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    watch = Watch("--rounds", "12", env={**watch_env, "REDIS_URL": server.url})
    watches.append(watch)
    watch.wait_for("watching default")
    set_ratio(server, 0.85)
    watch.wait_for("memory-warning", "FIRING")
    set_ratio(server, 0.95)
    watch.wait_for("memory-critical", "ESCALATED")
    set_ratio(server, 0.5)
    watch.wait_for("RESOLVED")
    code, stderr = watch.finish()  # --rounds ends it
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert events(watch.lines) == [
        ("memory-warning", "PENDING"),
        ("memory-warning", "FIRING"),
        ("memory-critical", "PENDING"),
        ("memory-critical", "ESCALATED"),
        ("memory-critical", "RESOLVED"),
    ]
    escalated = next(line for line in watch.lines if "ESCALATED" in line)
    assert "was warning (memory-warning)" in escalated
    assert "firing for" in watch.lines[-1] and "now " in watch.lines[-1]


def test_ctrl_c_stops_watch_cleanly_with_exit_0(
    redis_factory: RedisFactory, watch_env: dict[str, str], watches: list[Watch]
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    watch = Watch(env={**watch_env, "REDIS_URL": server.url})
    watches.append(watch)
    watch.wait_for("watching default", "Ctrl-C stops")
    watch.proc.send_signal(signal.SIGINT)
    code, stderr = watch.finish()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    assert len(watch.lines) == 1  # the header; a healthy store has no events


def test_watch_configuration_errors_are_one_line_exit_2(
    redis_factory: RedisFactory, watch_env: dict[str, str], tmp_path: Path
) -> None:
    server = session_store(redis_factory, ratio=0.5)
    env = {**watch_env, "REDIS_URL": server.url}
    assert_one_line_error(invoke_cli("watch", "--target", "prod", env=env), "unknown target 'prod'")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  memory-critical: {keep_firing_for: soon}\n")
    result = invoke_cli("watch", "--rounds", "1", env={**env, "REDIS_MEM_RULES_FILE": str(bad)})
    assert_one_line_error(result, "memory-critical.keep_firing_for")


def test_watch_an_unreachable_target_goes_pending_without_a_traceback(
    watch_env: dict[str, str],
) -> None:
    url = f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0"
    result = invoke_cli("watch", "--rounds", "1", env={**watch_env, "REDIS_URL": url})
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    header, line = result.stdout.strip().splitlines()
    assert "redis://:***@127.0.0.1" in header
    assert events([header, line]) == [("store-down", "PENDING")]
    assert "hunter2-pw" not in result.stdout + result.stderr


def test_watch_neither_uses_nor_writes_the_serve_database(
    redis_factory: RedisFactory, watch_env: dict[str, str]
) -> None:
    """A serve database with memory-critical pending for 10 minutes: watch neither uses it
    (with its 1 s for, that timer would fire at once) nor writes to it; and two watches
    one after the other each start their life cycle afresh."""
    server = session_store(redis_factory, ratio=0.95)
    env = {**watch_env, "REDIS_URL": server.url}
    engine = make_engine(watch_env["DATABASE_URL"])
    upgrade(engine)
    now = datetime.now(UTC)
    seed_rounds(
        engine, redis_url=server.url, at=[now - timedelta(minutes=11), now - timedelta(minutes=10)]
    )
    store = SqlHealthStore(engine)
    seeded = (store.rule_states(), store.recent_samples(since=now - timedelta(hours=1)))
    assert seeded[0]["default"]["memory-critical"].status is RuleStatus.PENDING
    for _ in range(2):
        result = invoke_cli("watch", "--rounds", "1", env=env)
        assert result.code == 0, result
        assert [kind for _, kind in events(result.stdout.strip().splitlines())] == [
            "PENDING",
            "PENDING",
        ]
    assert (store.rule_states(), store.recent_samples(since=now - timedelta(hours=1))) == seeded
    engine.dispose()
    assert [r["action"] for r in audit_rows(watch_env)] == ["command.watch"] * 2


def test_concurrent_checks_of_many_targets_share_the_private_database(
    redis_factory: RedisFactory,
) -> None:
    """The round's workers and the dispatcher take turns on the one in-memory connection."""
    servers = [session_store(redis_factory, ratio=0.95) for _ in range(4)]
    targets = {f"t{i}": Target(name=f"t{i}", redis_url=s.url) for i, s in enumerate(servers)}
    targets["down"] = Target(name="down", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    notifier = Collect()
    checks = foreground_checks(
        targets=targets,
        rules=RuleBook.defaults(),
        notifier=notifier,
        interval=60,
        timeout=2,
        repeat_interval=timedelta(hours=4),
    )
    try:
        start = checks.service.round_time()
        for minute in range(7):  # past memory-critical's 5m and store-down's 1m
            result = checks.run_round(start + timedelta(minutes=minute))
            assert len(result.checks) == 5 and not result.late
            assert [c.error for c in result.checks] == [None] * 5
    finally:
        checks.close()
    fired = {(e.target, e.rule) for e in notifier.events if e.kind is EventKind.FIRED}
    assert fired == {(f"t{i}", "memory-critical") for i in range(4)} | {("down", "store-down")}


def test_ctrl_c_in_the_middle_of_a_round_against_a_hung_store_is_quiet(
    redis_factory: RedisFactory, watch_env: dict[str, str], watches: list[Watch]
) -> None:
    """The round's worker is still waiting for a SIGSTOPped Redis when Ctrl-C closes it."""
    server = redis_factory()
    env = {**watch_env, "REDIS_URL": server.url, "REDIS_MEM_CHECK_TIMEOUT": "30"}
    with server.paused():
        watch = Watch(env=env)
        watches.append(watch)
        watch.wait_for("watching default", "Ctrl-C stops")
        time.sleep(1)  # the first round's worker is now blocked reading from the hung store
        watch.proc.send_signal(signal.SIGINT)
        code, stderr = watch.finish()
    assert code == 0, stderr
    assert stderr.strip() == ""  # no "health check failed" traceback from the worker
