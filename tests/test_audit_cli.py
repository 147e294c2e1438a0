"""``redis-mem audit ...`` / ``db ...`` through Typer's runner: output and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from bot.audit.engine import make_engine
from bot.audit.migrate import current_revision, head_revision, upgrade
from bot.audit.store import SqlAuditStore
from bot.cli_audit import audit_app, cli_actor, db_app
from bot.redisproc import free_port
from tests.dbfixtures import db_engine, db_url, entry, store  # noqa: F401

runner = CliRunner()


def _run(app: object, url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"DATABASE_URL": url})  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_db_upgrade_then_current(db_url: str) -> None:  # noqa: F811
    code, out, _ = _run(db_app, db_url, "upgrade")
    assert code == 0 and f"revision {head_revision()}" in out
    code, out, _ = _run(db_app, db_url, "current")
    assert code == 0 and "up to date" in out


def test_list_table_and_json(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    store.record(entry(1, action="remediation.requested"))
    store.record(entry(2, actor=cli_actor(), source="cli", action="command.capacity",
                       summary="[/bold] not markup"))  # fmt: skip
    code, out, _ = _run(audit_app, db_url, "list")
    assert code == 0 and "remediation.requested" in out and "command.capacity" in out
    assert "[/bold] not markup" in out
    code, out, _ = _run(
        audit_app, db_url, "list", "--json", "--action", "command.", "--since", "1h"
    )
    rows = json.loads(out)
    assert code == 0 and [r["seq"] for r in rows] == [2]
    assert rows[0]["actor"].startswith("cli:") and rows[0]["at"].endswith("Z")


def test_verify_exit_codes(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    for n in range(3):
        store.record(entry(n))
    code, out, _ = _run(audit_app, db_url, "verify")
    assert code == 0 and "intact: 3 rows" in out
    _tamper(store.engine)
    code, _, err = _run(audit_app, db_url, "verify")
    assert code == 1 and "seq=2" in err and "BROKEN" in err


def _tamper(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET outcome = 'denied' WHERE seq = 2")


def test_export_jsonl_and_csv(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    for n in range(4):
        store.record(entry(n))
    code, out, _ = _run(audit_app, db_url, "export", "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["seq"] for row in lines] == [1, 2, 3, 4]
    code, out, _ = _run(audit_app, db_url, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4 and json.loads(rows[0]["parameters"])["n"] == 0


def test_bad_input_is_one_line_and_exit_2(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    for args in (["list", "--since", "yesterday"], ["export", "--format", "xml"]):
        code, _, err = _run(audit_app, db_url, *args)
        assert code == 2 and err.count("\n") == 1 and err.startswith("redis-mem: error:")


def test_unreachable_database_is_exit_2_without_password() -> None:
    url = f"postgresql://auditor:hunter2@127.0.0.1:{free_port()}/audit"
    for app, args in ((audit_app, ["list"]), (audit_app, ["verify"]), (db_app, ["upgrade"])):
        code, _, err = _run(app, url, *args)
        assert code == 2 and "unavailable" in err and "hunter2" not in err
        assert err.count("\n") == 1


def test_read_only_commands_never_create_a_missing_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "mistyped" / "adit.db"
    path.parent.mkdir()
    for app, args in ((audit_app, ["verify"]), (audit_app, ["list"]), (audit_app, ["export"]),
                      (db_app, ["current"])):  # fmt: skip
        code, out, err = _run(app, f"sqlite:///{path}", *args)
        assert code == 2 and out == "" and "intact" not in err
        assert err == f"redis-mem: error: audit database {path} does not exist\n"
    assert list(path.parent.iterdir()) == []


def test_read_only_commands_do_not_migrate(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    upgrade(engine, revision="0001")
    for args in (["verify"], ["list"], ["export"]):
        code, _, err = _run(audit_app, db_url, *args)
        assert code == 2 and err.count("\n") == 1
        assert f"audit database is at revision 0001, code needs {head_revision()}" in err
    assert current_revision(engine) == "0001"
    engine.dispose()
    code, _, _ = _run(db_app, db_url, "upgrade")
    assert code == 0
    code, out, _ = _run(audit_app, db_url, "verify")
    assert code == 0 and "intact" in out


def test_unknown_revision_is_one_line_usage_error(db_url: str) -> None:  # noqa: F811
    for revision in ("nonsense", "-1"):
        code, out, err = _run(db_app, db_url, "upgrade", "--", revision)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith("redis-mem: error: cannot migrate the audit database: ")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_export_to_a_full_disk_is_one_line_exit_2(db_url: str, store: SqlAuditStore) -> None:  # noqa: F811
    store.record(entry(1))
    code, _, err = _run(audit_app, db_url, "export", "-o", "/dev/full")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("redis-mem: error: cannot write /dev/full: No space left")
