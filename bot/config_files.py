"""Configuration files read safely: a regular file, at most 1 MB, UTF-8, then YAML.

Every file the bot is configured by (the targets file, the alert rules file) is read
here, so each failure is one ConfigError line naming the file and what is wrong.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024


def read_yaml(path: Path, *, what: str) -> Any:
    """The YAML document in ``path``; one ConfigError line naming ``what`` file it is.

    Every configuration file is read here, through ``read_config_text``.
    """
    text = read_config_text(path, what=what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {err}".splitlines()[0]) from None
    # PyYAML's constructors raise ValueError for an impossible date (2001-99-99) or an
    # integer of over 4,300 digits, and its composer recurses once per nesting level.
    # Neither message is shown: int()'s would echo the value, which may be a secret.
    except ValueError:
        raise ConfigError(
            f"{what} {path} is not valid YAML: a value cannot be converted "
            "(an impossible date or time, or a number too long)"
        ) from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is not valid YAML: nested too deeply") from None


def read_config_text(path: Path, *, what: str) -> str:
    """The UTF-8 text of the regular file ``path`` of at most MAX_CONFIG_BYTES, else ConfigError.

    /dev/zero would fill memory, a FIFO would block start-up for ever, and a file that
    grows (or a /proc file, whose size says 0) would defeat a size check made before
    the read: so a regular file only, checked before opening (opening a device may
    have effects) and again on the open descriptor (the path may be swapped in
    between), opened non-blocking, and never more than the cap read.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{what} {path} is not a regular file")
            data = _read_at_most(fd, MAX_CONFIG_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_CONFIG_BYTES // 1024} KB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd``: fewer only at end of file."""
    data = bytearray()
    while len(data) < limit:
        chunk = os.read(fd, min(_READ_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)
