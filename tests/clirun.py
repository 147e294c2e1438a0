"""Run ``redis-mem``: the real console script in a subprocess, or ``main`` in process.

``invoke_cli`` (in process, ~50 ms) is for the command's behaviour: arguments, output,
exit codes, audit rows. ``run_cli`` (a subprocess, ~1-2 s of interpreter start-up and
imports) is kept for what only the process shows: the entry point, start-up imports,
signals, a closed stdout, the last-resort guard as the interpreter exits.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))
_SETTINGS = ("REDIS_", "SLACK_", "DATABASE_")  # prefixes of the bot's environment variables


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
    base = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
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


def invoke_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """``redis-mem ARGS`` in this process: ``bot.cli.main`` under typer's CliRunner.

    The same clean environment as ``run_cli`` (the bot's settings of this process unset,
    a private ``XDG_DATA_HOME``, plus ``env``), set for this call only and restored after:
    settings are read per call, so nothing leaks into the next. Everything but the
    process itself is the real thing (argument checks, typer, the command, the last-resort
    guard, the exit code); what needs the process (its start-up, signals, a closed stdout)
    stays with ``run_cli``. Log records, warnings and thread tracebacks reach stderr as
    they would in the process, rather than pytest's capture (``_stderr_as_a_process``).
    """
    from bot.cli import main  # imported per call: collecting this module stays light

    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_SETTINGS)}
    merged: dict[str, str | None] = {**unset, "XDG_DATA_HOME": private_data_home(), **(env or {})}
    with (
        CliRunner().isolation(env=merged) as (out, err, _),
        _working_directory(cwd),
        _stderr_as_a_process(),
    ):
        try:
            main(list(args))
            code: int = -1  # main() always exits: this is a bug in it
        except SystemExit as done:
            code = _exit_code(done.code)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, _text(out.getvalue()), _text(err.getvalue()))


@contextmanager
def _stderr_as_a_process() -> Iterator[None]:
    """What a fresh interpreter writes to stderr, and pytest would otherwise take.

    In the console script an unconfigured WARNING record goes to stderr (logging's last
    resort), so do Python's default-shown warnings and a worker thread's traceback. Under
    pytest the first two go to its capture and the third becomes a pytest warning, so an
    assertion on stderr ("one line", "no Traceback") would be weaker in process.
    """
    # On the runner's stderr; no formatter, like lastResort: the bare message.
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    hook = threading.excepthook
    root.addHandler(handler)
    threading.excepthook = threading.__excepthook__  # prints to (the runner's) sys.stderr
    try:
        with warnings.catch_warnings():
            _default_warning_filters()
            yield
    finally:
        threading.excepthook = hook
        root.removeHandler(handler)


def _default_warning_filters() -> None:
    """The filters a fresh interpreter starts with (no -W, no PYTHONWARNINGS)."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


@contextmanager
def _working_directory(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


def _exit_code(code: object) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
