"""Configuration files are read bounded: never a device, a FIFO, a directory or more than 1 MB.

Every bad file is one ConfigError line, from the loaders and from the real
``redis-mem`` console script (exit 2, one line on stderr), and nothing blocks or
fills memory: ``/dev/zero`` used to be read until the OOM killer ended the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.config_files import MAX_CONFIG_BYTES
from bot.errors import ConfigError
from bot.health.rulesfile import load_rules
from bot.targets_file import load_targets
from tests.clirun import run_cli

TARGETS = "targets: [{name: prod, redis_url: 'redis://127.0.0.1:1/0'}]\n"


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "targets.fifo"
    os.mkfifo(path)  # nobody ever writes: opening it for reading would block for ever
    return path


def directory(tmp_path: Path) -> Path:
    return tmp_path


def too_large(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yml"
    path.write_text(TARGETS + "#" * MAX_CONFIG_BYTES)
    return path


def missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such-file.yml"


def dev_zero(tmp_path: Path) -> Path:
    return Path("/dev/zero")


def impossible_date(tmp_path: Path) -> Path:  # PyYAML raised ValueError: a traceback, exit 1
    path = tmp_path / "date.yml"
    path.write_text("targets: [{name: prod, redis_url: 2001-99-99}]\n")
    return path


def long_number(tmp_path: Path) -> Path:  # int() refuses 4,300 digits: ValueError too
    path = tmp_path / "number.yml"
    path.write_text("targets: [{name: prod, redis_url: " + "7" * 5000 + "}]\n")
    return path


def deeply_nested(tmp_path: Path) -> Path:  # the composer recursed: RecursionError
    path = tmp_path / "nested.yml"
    path.write_text("targets: " + "[" * 2_000 + "\n")
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dev-zero": (dev_zero, "is not a regular file"),
    "fifo": (fifo, "is not a regular file"),
    "directory": (directory, "is not a regular file"),
    "too-large": (too_large, "is larger than 1024 KB"),
    "missing": (missing, "cannot read {what} {path}: No such file or directory"),
    "impossible-date": (impossible_date, "is not valid YAML: a value cannot be converted"),
    "long-number": (long_number, "is not valid YAML: a value cannot be converted"),
    "deeply-nested": (deeply_nested, "is not valid YAML: nested too deeply"),
}


def one_line(err: ConfigError, expected: str, *, what: str, path: Path) -> None:
    message = err.message
    assert expected.format(what=what, path=path) in message, message
    assert "\n" not in message and str(path) in message


def _load_targets(path: Path) -> object:
    return load_targets(Settings(REDIS_MEM_TARGETS_FILE=path))


LOADERS = {"targets file": _load_targets, "rules file": load_rules}
CASES = [("targets file", case) for case in BAD_FILES] + [
    ("rules file", case) for case in ("dev-zero", "fifo", "too-large", "deeply-nested")
]


@pytest.mark.timeout(20)  # a FIFO that blocks fails here instead of hanging the suite
@pytest.mark.parametrize(("what", "case"), CASES)
def test_a_bad_config_file_is_one_line_from_its_loader(
    tmp_path: Path, what: str, case: str
) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        LOADERS[what](path)
    one_line(caught.value, expected, what=what, path=path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["dev-zero", "fifo", "too-large", "impossible-date"])
def test_a_bad_targets_file_is_one_line_and_exit_2_from_diagnose(tmp_path: Path, case: str) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)

    result = run_cli("diagnose", env={"REDIS_MEM_TARGETS_FILE": str(path)})

    assert result.code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("redis-mem: error: ")
    assert expected.format(what="targets file", path=path) in line, line
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.timeout(60)
def test_a_file_that_says_it_is_empty_is_still_read_no_further_than_the_cap(
    tmp_path: Path,
) -> None:
    # /proc/self/environ is a regular file whose size says 0; here it holds 1.2 MB (the
    # console script's own environment). A size check before the read lets it all in;
    # reading at most the cap is what refuses it.
    padding = {f"REDIS_MEM_TEST_PAD_{i}": "x" * 100_000 for i in range(12)}
    result = run_cli("diagnose", env={"REDIS_MEM_TARGETS_FILE": "/proc/self/environ", **padding})

    assert result.code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert line == "redis-mem: error: targets file /proc/self/environ is larger than 1024 KB"


def test_a_good_targets_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "targets.yml"
    path.write_text(TARGETS)
    assert list(load_targets(Settings(REDIS_MEM_TARGETS_FILE=path))) == ["prod"]
