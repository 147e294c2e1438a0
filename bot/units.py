"""Byte sizes as the runbook writes them (1 KB = 1024 bytes) and as humans read them."""

from __future__ import annotations

import re

from bot.errors import UsageError

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
    "TIB": 1024**4,
}
MAX_SIZE = 1024**4  # 1 TB: no Redis session, pod or maxmemory is bigger
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """Parse ``2KB``, ``1.5MB``, ``2048``, ``512mb`` or ``1.5Gi`` into bytes (1 KB = 1024 B).

    Raises UsageError with a one-line message for anything else, including
    zero or negative sizes.
    """
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if unit.endswith("I"):  # Kubernetes style: Ki, Mi, Gi
        unit += "B"
    if not match or unit not in _UNITS:
        raise UsageError(
            f"invalid size {text!r}: use a number with an optional unit, e.g. 2KB, 1.5MB, 2048"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise UsageError(f"invalid size {text!r}: must be at least 1 byte")
    if value > MAX_SIZE:  # also catches inf from a 400-digit number
        raise UsageError(f"invalid size {str(text)[:40]!r}: must be at most 1TB")
    return round(value)


def format_bytes(n: float | None) -> str:
    """Human form of a byte count: ``1.5 MB``, ``812 B`` (binary units, as Redis prints)."""
    if n is None:
        return "n/a"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}"


def redis_size(n: int) -> str:
    """Size as a redis.conf directive wants it: ``1024mb`` when whole megabytes, else bytes."""
    if n % (1024**2) == 0:
        return f"{n // 1024**2}mb"
    return str(n)


def format_duration(seconds: float | None) -> str:
    """Short human duration: ``45s``, ``12m``, ``3.5h``, ``2.0d``."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
