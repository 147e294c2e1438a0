"""``redis-mem report`` in process: the JSON figures against what the test stored, the
table, the chart file, and bad input (one line, exit 2).

Real parts: the audit database migrated by ``redis-mem db upgrade`` (SQLite and
PostgreSQL), samples, alerts and fix rows written by the stores themselves, and a real
redis-server as the target the live diagnosis reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import Engine, insert

from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.clock import utc_now
from bot.health.model import Sample
from bot.health.ports import Evaluation
from bot.health.store import SqlHealthStore
from bot.health.tables import ALERTS
from tests.clirun import CliResult, invoke_cli
from tests.conftest import RedisFactory
from tests.dbfixtures import db_url, entry  # noqa: F401

MIB = 1024**2
MAXMEMORY = 100 * MIB
STEP = timedelta(minutes=5)
USED = [40 * MIB + n * MIB for n in range(12)]  # +1 MiB every 5 minutes: 12 MiB an hour
# The evictions counter: +5, +5, a restart (10 -> 3 counts 3), +5 = 18 keys evicted.
EVICTED = [0, 0, 5, 10, 10, 3, 3, 3, 8, 8, 8, 8]
DBSIZE = [1000 + 10 * n for n in range(12)]
SESSIONS, WITHOUT_TTL = 30, 10


@dataclass
class Setup:
    """The database URL, the command's environment and what was stored, and when."""

    url: str
    env: dict[str, str]
    engine: Engine
    first: datetime  # the oldest sample

    def run(self, *args: str) -> CliResult:
        """``redis-mem ARGS`` on this setup's database and target."""
        return invoke_cli(*args, env=self.env)

    def head_seq(self) -> int:
        """The audit trail's newest seq (0 when empty)."""
        rows = SqlAuditStore(self.engine).list_entries(limit=1)
        return rows[0].seq if rows else 0


@pytest.fixture
def setup(db_url: str, redis_factory: RedisFactory) -> Iterator[Setup]:  # noqa: F811
    server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    client = redis.Redis.from_url(server.url)
    for n in range(SESSIONS):  # a third of the sessions without a TTL
        client.set(f"session:{n}", "x" * 200, ex=None if n < WITHOUT_TTL else 3600)
    client.close()
    env = {"DATABASE_URL": db_url, "REDIS_URL": server.url}
    upgraded = invoke_cli("db", "upgrade", env=env)
    assert upgraded.code == 0, upgraded
    engine = make_engine(db_url)
    first = utc_now() - timedelta(hours=1)
    yield Setup(db_url, env, engine, first)
    engine.dispose()


def _store_history(setup: Setup) -> None:
    """Twelve checks over the last hour, two alerts and one executed fix of ``default``."""
    health = SqlHealthStore(setup.engine)
    for n, used in enumerate(USED):
        sample = Sample(target="default", at=setup.first + n * STEP, reachable=True,
                        used_memory=used, maxmemory=MAXMEMORY, evicted_keys=EVICTED[n],
                        dbsize=DBSIZE[n])  # fmt: skip
        health.record(Evaluation("default", sample, states={}))
    with setup.engine.begin() as conn:
        resolved = setup.first + timedelta(minutes=10)
        conn.execute(insert(ALERTS), [
            _alert("a1", "memory-warning", "warning", resolved, resolved + timedelta(minutes=20)),
            _alert("a2", "memory-critical", "critical", utc_now() - timedelta(minutes=5), None),
        ])  # fmt: skip
    audit = SqlAuditStore(setup.engine)
    for action, actor in (
        ("remediation.requested", "U0ALICE"),
        ("remediation.approved", "U0BOB"),
        ("remediation.executed", "U0BOB"),
    ):
        fields = {"actor": actor, "target": "default", "request_id": "r-1"}
        params = {"action_id": "set-ttl"}
        audit.record(
            entry(0, action=action, summary=f"{action} set-ttl", parameters=params, **fields)
        )


def _alert(
    alert_id: str, rule: str, severity: str, fired: datetime, resolved: datetime | None
) -> dict[str, object]:
    return {"id": alert_id, "target": "default", "rule_group": rule, "rule": rule,
            "severity": severity, "status": "firing" if resolved is None else "resolved",
            "value": 0.9, "detail": "", "active_at": fired, "fired_at": fired,
            "last_notified_at": fired, "resolved_at": resolved,
            "open_key": f"default/{rule}" if resolved is None else None}  # fmt: skip


def _json(result: CliResult) -> dict[str, object]:
    assert result.code == 0, result
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


def test_json_figures_are_what_was_stored(setup: Setup) -> None:
    _store_history(setup)
    head_before = setup.head_seq()
    doc = _json(setup.run("report", "--json", "--since", "2h"))
    assert set(doc) >= {"generated_at", "since", "audit_head", "targets"}
    (target,) = doc["targets"]  # type: ignore[misc]
    assert target["target"] == "default" and target["samples"] == len(USED)
    memory = target["memory"]
    assert memory["now_ratio"] == pytest.approx(USED[-1] / MAXMEMORY)
    assert memory["peak_ratio"] == pytest.approx(max(USED) / MAXMEMORY)
    assert memory["min_ratio"] == pytest.approx(min(USED) / MAXMEMORY)
    assert memory["trend_bytes_per_hour"] == pytest.approx(12 * MIB, rel=1e-6)
    hours = (0.9 * MAXMEMORY - USED[-1]) / (12 * MIB)  # 3.25 h from the newest sample
    assert target["forecast"]["hours_left"] == pytest.approx(hours, rel=1e-6)
    newest = setup.first + (len(USED) - 1) * STEP
    at = datetime.fromisoformat(target["forecast"]["ratio_90_at"])
    assert abs(at - (newest + timedelta(hours=hours))) < timedelta(seconds=1)
    assert target["evicted_keys"] == 18
    assert target["keys"] == {"now": DBSIZE[-1], "change": DBSIZE[-1] - DBSIZE[0]}
    alerts = target["alerts"]
    assert alerts["fired"] == {"memory-critical": 1, "memory-warning": 1}
    assert alerts["firing_seconds"] >= 20 * 60 + 5 * 60  # the open one runs on to "now"
    assert [a["id"] for a in alerts["open"]] == ["a2"]
    (fix,) = target["fixes"]
    assert fix["action"] == "set-ttl" and fix["outcome"] == "ok" and fix["target"] == "default"
    assert (fix["requester"], fix["approver"]) == ("U0ALICE", "U0BOB")
    live = target["live"]
    assert live["error"] is None and live["sampled"] == SESSIONS
    assert live["without_ttl"] == WITHOUT_TTL
    # The head printed is the trail's before this command's own audit row.
    head = doc["audit_head"]
    assert head["seq"] == head_before
    assert setup.head_seq() == head_before + 1
    assert setup.run("audit", "verify", "--anchor", f"{head['seq']}:{head['hash']}").code == 0


def test_the_table_names_the_target_and_ends_with_the_audit_head(setup: Setup) -> None:
    _store_history(setup)
    result = setup.run("report", "--since", "2h")
    assert result.code == 0, result
    row = next(line for line in result.stdout.splitlines() if line.startswith(" default"))
    assert "51%/51%/40%" in row and "+12.0" in row and f"{WITHOUT_TTL} (33%)" in row
    assert "default: fix set-ttl ok" in result.stdout
    last = result.stdout.splitlines()[-1]
    assert last.startswith("audit head: ") and len(last.split(":")[-1]) == 64


def test_times_are_in_the_configured_zone(setup: Setup) -> None:
    _store_history(setup)
    zone = "Asia/Kolkata"  # UTC+05:30: no hour of it reads like UTC's
    setup.env["REDIS_MEM_TIMEZONE"] = zone
    doc = _json(setup.run("report", "--json", "--since", "2h"))
    assert doc["timezone"] == zone
    reaches = datetime.fromisoformat(doc["targets"][0]["forecast"]["ratio_90_at"])  # type: ignore[index]
    table = setup.run("report", "--since", "2h")
    assert f"{reaches.astimezone(ZoneInfo(zone)):%m-%d %H:%M}" in table.stdout
    assert zone in table.stdout.splitlines()[0]


def test_the_window_leaves_out_older_samples(setup: Setup) -> None:
    _store_history(setup)
    doc = _json(setup.run("report", "--json", "--since", "30m"))
    (target,) = doc["targets"]  # type: ignore[misc]
    assert 5 <= target["samples"] <= 7  # 5-minute steps; the edge moves with the clock


def test_png_is_written(setup: Setup, tmp_path: Path) -> None:
    _store_history(setup)
    path = tmp_path / "chart.png"
    result = setup.run("report", "--png", str(path))
    assert result.code == 0, result
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"chart written to {path}" in result.stdout
    # Beside --json the note goes to stderr: stdout stays one JSON document.
    result = setup.run("report", "--json", "--png", str(path))
    assert json.loads(result.stdout)["targets"] and "chart written" in result.stderr


def test_no_samples_no_chart(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    result = setup.run("report", "--png", str(path))
    assert result.code == 0, result
    assert "no samples in this window: no chart written\n" in result.stdout
    assert not path.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "0h"],
        ["--since", "99999d"],
        ["--since", "yesterday"],
        ["--target", "nope"],
        ["--png", "/nonexistent/dir/x.png"],
        ["--png", ""],
        ["--since", "9" * 4_000],  # below the argv bound: the window's own check answers
        ["--target", "redis://:s3cret@host:6379"],
        ["--png", "/nonexistent/redis://:s3cret@host/x.png"],
    ],
    ids=[
        "0h",
        "99999d",
        "word",
        "unknown-target",
        "missing-dir",
        "empty-png",
        "huge-window",
        "url-target",
        "url-png",
    ],
)
def test_bad_input_is_one_line_exit_2(setup: Setup, args: list[str], tmp_path: Path) -> None:
    before = setup.head_seq()
    result = setup.run("report", *args)
    assert result.code == 2, result
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("redis-mem: error: ") and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr and len(result.stderr) < 400
    rows = SqlAuditStore(setup.engine).list_entries(limit=5)
    if args[0] == "--target":  # refused once the trail was open: audited as such
        assert rows[0].action == "command.report" and rows[0].outcome == "rejected"
    else:  # refused before anything was opened
        assert setup.head_seq() == before
    assert not Path("/nonexistent/dir/x.png").exists()


def test_a_missing_database_is_one_line_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = invoke_cli("report", env={"DATABASE_URL": f"sqlite:///{missing}"})
    assert result.code == 2 and result.stderr.count("\n") == 1, result
    assert "does not exist" in result.stderr and not missing.exists()
