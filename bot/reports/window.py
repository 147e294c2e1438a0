"""The window a report covers: ``30m``, ``24h``, ``7d`` (one number, one unit)."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.errors import UsageError
from bot.limits import echo
from bot.reports.model import MAX_WINDOW, MIN_WINDOW

WINDOW_USAGE = "Nm, Nh or Nd (e.g. 30m, 24h, 7d)"
_WINDOW = re.compile(r"([0-9]{1,6})([mhd])")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def looks_like_window(word: str) -> bool:
    """``word`` is spelled like a window (a number and m/h/d), whatever its size."""
    return re.fullmatch(r"[0-9]+[mhdMHD]", word.strip()) is not None


def parse_window(text: str, *, name: str = "report") -> timedelta:
    """``30m`` -> 30 minutes; UsageError (one line, naming ``name``) for anything else or a
    window outside 1m..30d (the aggregates' retention: older history is gone)."""
    raw = text.strip().lower()
    match = _WINDOW.fullmatch(raw)
    if match is None:
        raise UsageError(f'{name}: the window must be {WINDOW_USAGE} (got "{echo(text)}")')
    window = int(match.group(1)) * _UNIT[match.group(2)]
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise UsageError(
            f'{name}: the window must be from 1m to {MAX_WINDOW.days}d (got "{echo(text)}")'
        )
    return window


def window_text(window: timedelta) -> str:
    """The window as it is typed: ``24h`` (the default's spelling), ``7d``, ``90m``; whole
    days from 2 days on."""
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"
