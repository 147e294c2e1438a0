"""Byte sizes as the runbook writes them (1 KB = 1024 bytes) and as humans read them."""

from __future__ import annotations

import re

from bot.errors import UsageError
from bot.limits import MAX_NUMBER_DIGITS, check_value, echo

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
# ASCII digits only (re.ASCII): "\d" would also take '٣' or '３' (see bot.limits.is_digits).
# Matched against the stripped text: "\s*" at both ends of an optional unit backtracks
# quadratically on "1" + spaces + "!" (8,000 spaces: 0.23 s, x4 per doubling).
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)", re.ASCII)


def parse_size(text: str) -> int:
    """Parse ``2KB``, ``1.5MB``, ``2048``, ``512mb`` or ``1.5Gi`` into bytes (1 KB = 1024 B).

    Raises UsageError with a one-line message for anything else, including
    zero or negative sizes and non-ASCII digits. Any length is safe: the pattern is
    anchored and linear, and float() (unlike int()) reads a 5,000-digit number as inf.
    """
    text = str(text)
    match = _SIZE.fullmatch(text.strip())
    unit = match.group(2).upper() if match else ""
    if unit.endswith("I"):  # Kubernetes style: Ki, Mi, Gi
        unit += "B"
    if not match or unit not in _UNITS:
        raise UsageError(
            f"invalid size '{echo(text)}':"
            " use a number with an optional unit, e.g. 2KB, 1.5MB, 2048"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise UsageError(f"invalid size '{echo(text)}': must be at least 1 byte")
    if value > MAX_SIZE:  # also catches inf from a 400-digit number
        raise UsageError(f"invalid size '{echo(text)}': must be at most 1TB")
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


# Prometheus-style durations: one or more <number><unit> parts, largest unit first
# ("30s", "10m", "4h", "1h30m", "14d"); a bare number is seconds (``for: 0``).
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_SECONDS = 366 * 86400  # no for, repeat interval or retention is longer than a year


def parse_duration(text: str | int) -> float:
    """Seconds in ``30s``, ``10m``, ``4h``, ``1h30m``, ``14d`` or bare seconds; else UsageError.

    The grammar is Prometheus's (``for:``, ``keep_firing_for:``): units ms, s, m, h,
    d, w, each at most once, largest first. A bare whole number (YAML's ``for: 30``) is
    seconds. Anything else (a list, a float, a bool) is refused without being printed.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise UsageError(f"invalid duration (a {type(text).__name__}): use e.g. 30s, 10m or 4h")
    if isinstance(text, int):
        if not -(10**12) < text < 10**12:  # float() or str() of a 5,000-digit number fails
            return _within_range(float("inf"), shown="a huge number")
        return _within_range(float(text), shown=str(text))
    check_value(text, name="duration")
    raw = text.strip()
    shown = echo(raw)
    if raw.isascii() and raw.isdecimal():
        raw += "s"
    parts = _DURATION_PART.findall(raw)
    units = [unit for _, unit in parts]
    well_formed = (
        bool(parts)
        and "".join(n + u for n, u in parts) == raw
        and units == sorted(units, key=lambda u: -_DURATION_SECONDS[u])
        and len(set(units)) == len(units)
    )
    if not well_formed:
        raise UsageError(f"invalid duration '{shown}': use e.g. 30s, 10m, 4h, 1h30m or 14d")
    if any(len(number) > MAX_NUMBER_DIGITS for number, _ in parts):  # never int() 4,000 digits
        return _within_range(float("inf"), shown=shown)
    return _within_range(sum(int(n) * _DURATION_SECONDS[u] for n, u in parts), shown=shown)


def _within_range(seconds: float, *, shown: str) -> float:
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        days = MAX_DURATION_SECONDS // 86400
        raise UsageError(f"invalid duration '{shown}': must be between 0s and {days}d")
    return float(seconds)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def prometheus_duration(seconds: float) -> str:
    """A duration in Prometheus's spelling (``1h30m``, ``45s``, ``0s``), whole ms at most."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
