"""Run the real ``redis-mem`` console script in a subprocess, as a user would."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))


@dataclass(frozen=True)
class CliResult:
    """Exit code and the two streams."""

    code: int
    stdout: str
    stderr: str


@functools.cache
def private_data_home() -> str:
    """An ``XDG_DATA_HOME`` of this test process's own, removed at exit.

    A command run without ``DATABASE_URL`` writes its audit trail to the user's data
    directory: never the real one of whoever runs the tests.
    """
    path = tempfile.mkdtemp(prefix="redis-mem-xdg-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any of the bot's settings, plus ``env``.

    ``XDG_DATA_HOME`` is a private temp directory unless ``env`` names one.
    """
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "DATABASE_"))
    }
    return {**base, "XDG_DATA_HOME": private_data_home(), **env}


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
