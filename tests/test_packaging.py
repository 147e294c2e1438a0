"""What can be checked of the Docker image without a Docker engine: its entrypoint and files."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.clirun import run_cli

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_instructions() -> dict[str, list[str]]:
    """Instruction -> its argument lines, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Z]+)\s+(.*)$", line.strip())
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


def test_image_runs_redis_mem_serve() -> None:
    steps = dockerfile_instructions()
    assert json.loads(steps["ENTRYPOINT"][-1]) == ["redis-mem"]
    assert json.loads(steps["CMD"][-1]) == ["serve"]
    assert any(arg.startswith("python:3.11") for arg in steps["FROM"])
    assert any("pip install ." in arg for arg in steps["RUN"])
    assert steps["USER"] and steps["USER"][-1] != "root"


def test_image_ships_the_migrations_where_it_says() -> None:
    steps = dockerfile_instructions()
    env = " ".join(steps["ENV"])
    configured = re.search(r"REDIS_MEM_MIGRATIONS_DIR=(\S+)", env)
    assert configured, "the image must tell the package where the migrations are"
    assert configured.group(1) == "/app/migrations"
    assert "WORKDIR" in steps and steps["WORKDIR"][0] == "/app"
    assert "migrations ./migrations" in steps["COPY"]


def test_entrypoint_migrates_from_any_directory(tmp_path: Path) -> None:
    # As in the image: cwd is a data directory, the migrations come from the env variable.
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "REDIS_MEM_MIGRATIONS_DIR": str(ROOT / "migrations"),
    }
    result = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert result.code == 0, result
    assert "audit database at revision" in result.stdout


def test_serve_without_slack_credentials_is_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}, cwd=tmp_path)
    assert result.code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert "SLACK_BOT_TOKEN" in line and "Traceback" not in result.stderr
