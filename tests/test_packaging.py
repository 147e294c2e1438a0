"""What can be checked of the Docker image without a Docker engine: its entrypoint, files,
user and writable paths (matching deploy/'s manifests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.clirun import run_cli
from tests.kustomize_render import only, render

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


def _env_of(steps: dict[str, list[str]]) -> dict[str, str]:
    return dict(re.findall(r"([A-Z_]+)=(\S+)", " ".join(steps["ENV"])))


def test_image_user_is_the_manifests_non_root_user() -> None:
    steps = dockerfile_instructions()
    assert steps["USER"][-1] == "10001:10001"
    setup = " ".join(steps["RUN"])
    assert "groupadd --gid 10001" in setup and "useradd --uid 10001 --gid 10001" in setup
    docs = render("single")
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    user, group = steps["USER"][-1].split(":")
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user),
        int(group),
    )


def test_matplotlib_config_is_on_the_writable_tmp_in_image_and_manifests() -> None:
    configured = _env_of(dockerfile_instructions())["MPLCONFIGDIR"]
    assert configured == "/tmp/matplotlib"
    for overlay in ("single", "ha"):
        [container] = only(render(overlay), "Deployment")["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MPLCONFIGDIR"] == configured, overlay


def test_matplotlib_needs_only_its_config_dir_writable(tmp_path: Path) -> None:
    # As in the pod: no home directory, a read-only root; MPLCONFIGDIR not created yet.
    config_dir = tmp_path / "tmp" / "matplotlib"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "no-such-home"),
        "MPLCONFIGDIR": str(config_dir),
    }
    draw = (
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, io;"
        "fig = plt.figure(); fig.gca().plot([1, 2]); fig.savefig(io.BytesIO(), format='png')"
    )
    result = subprocess.run(
        [sys.executable, "-c", draw], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "writable" not in result.stderr, result.stderr  # matplotlib's fallback warning
    assert config_dir.is_dir() and not (tmp_path / "no-such-home").exists()
