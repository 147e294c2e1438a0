"""Parse ``--since`` values: ISO 8601 or a relative age like ``30m``, ``1h``, ``2d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.errors import UsageError

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> datetime:
    """An aware UTC datetime; naive ISO values are taken as UTC. Raises UsageError."""
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2).lower()]
        try:
            return datetime.now(UTC) - timedelta(**{unit: amount})
        except OverflowError:  # timedelta over 999999999 days, or a date before year 1
            raise UsageError(f"--since {text.strip()!r}: too far back") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected an ISO date/time (2026-01-31T12:00Z) "
            "or an age like 30m, 1h, 2d"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
