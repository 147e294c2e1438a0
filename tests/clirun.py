"""Run the real ``redis-mem`` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))


@dataclass(frozen=True)
class CliResult:
    """Exit code and the two streams."""

    code: int
    stdout: str
    stderr: str


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any of the bot's settings, plus ``env``."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "DATABASE_"))
    }
    return {**base, **env}


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """Run ``redis-mem ARGS`` with a clean, explicit environment (plus ``env``)."""
    proc = subprocess.run(
        [REDIS_MEM, *args],
        env=clean_env(**(env or {})),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
