"""Parse ``--since`` values: ISO 8601 or a relative age like ``30m``, ``1h``, ``2d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.errors import UsageError
from bot.limits import MAX_NUMBER_DIGITS, check_value, echo

# ASCII only: "\d" would also take '١٢' or '１２' (int() accepts them silently), and a
# Unicode IGNORECASE matches 'ſ' (long s) as "s", which is no key of _UNITS.
_RELATIVE = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$", re.IGNORECASE | re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> datetime:
    """An aware UTC datetime; naive ISO values are taken as UTC. Raises UsageError."""
    check_value(text, name="--since")  # bounded before any regex, int() or date parsing
    match = _RELATIVE.match(text)
    if match:
        return _age(text, match.group(1), _UNITS[match.group(2).lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since '{echo(text)}': expected an ISO date/time (2026-01-31T12:00Z) "
            "or an age like 30m, 1h, 2d"
        ) from None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        raise UsageError(
            f"--since '{echo(text)}': outside the calendar in UTC (years 1 to 9999)"
        ) from None


def _age(text: str, digits: str, unit: str) -> datetime:
    """``now - digits units``; UsageError when that is before year 1."""
    too_far = UsageError(f"--since '{echo(text)}': too far back")
    if len(digits) > MAX_NUMBER_DIGITS:  # never int() thousands of digits (ValueError)
        raise too_far
    try:
        return datetime.now(UTC) - timedelta(**{unit: int(digits)})
    except OverflowError:  # timedelta over 999999999 days, or a date before year 1
        raise too_far from None
