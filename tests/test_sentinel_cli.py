"""``redis-mem diagnose`` and ``check`` of a sentinel target from a targets file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clirun import invoke_cli
from tests.sentinel_support import MASTER, SentinelSetup, sentinel_setup  # noqa: F401


def targets_file(tmp_path: Path, setup: SentinelSetup) -> dict[str, str]:
    urls = ", ".join(s.url for s in setup.sentinels)
    path = tmp_path / "targets.yaml"
    path.write_text(
        f"targets:\n  - name: prod\n    mode: sentinel\n    master_name: {MASTER}\n"
        f"    sentinels: [{urls}]\n"
    )
    return {"REDIS_MEM_TARGETS_FILE": str(path), "REDIS_MEM_CHECK_TIMEOUT": "2"}


def test_the_cli_names_the_primary_and_reads_it_after_a_failover(
    sentinel_setup: SentinelSetup,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = targets_file(tmp_path, sentinel_setup)
    primary = f"127.0.0.1:{sentinel_setup.primary.port}"
    table = invoke_cli("diagnose", "--target", "prod", env=env)
    assert table.code == 0, table.stderr  # ok: a small store
    assert f"primary {primary} (via sentinel)" in table.stdout

    new = sentinel_setup.failover()

    doc = json.loads(invoke_cli("diagnose", "--target", "prod", "--json", env=env).stdout)
    assert (doc["target"], doc["sentinel"]["primary"]) == ("prod", new)
    check = invoke_cli("check", env=env)
    assert "prod" in check.stdout and "yes" in check.stdout, check.stderr


def test_the_cli_says_in_one_line_that_no_sentinel_answered(
    sentinel_setup: SentinelSetup,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = targets_file(tmp_path, sentinel_setup)
    sentinel_setup.stop_sentinels()
    result = invoke_cli("diagnose", "--target", "prod", env=env)
    assert result.code != 0 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "no sentinel of prod answered: 127.0.0.1:" in line and "connection refused" in line
