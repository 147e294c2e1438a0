"""Typed action parameters: raw strings (Slack modal, ``key=value``) in, one-line errors out.

Sizes follow ``bot.units.parse_size`` (1 KB = 1024 B, ``1.5Gi`` accepted);
durations accept ``90``, ``90s``, ``15m``, ``12h``, ``30d``. Kubernetes memory
quantities (``768Mi``, ``1.5Gi``, ``1G`` = 10^9) are read by ``parse_quantity``
because the API server writes them that way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from bot.errors import UsageError
from bot.limits import MAX_WORD_CHARS, check_digits, check_value, echo, is_digits
from bot.remediation.model import Params, ParamValue
from bot.units import format_bytes, format_duration, parse_size

ParamKind = Literal["int", "size", "seconds", "bool", "choice"]
MIB = 1024**2

# re.ASCII: "\d" would take '٣', and IGNORECASE would let 'ſ' (long s) pass for "s".
# Both are matched against stripped text (see bot.units._SIZE: no "\s*" at the ends).
_DURATION = re.compile(r"(\d+)\s*([smhd]?)", re.IGNORECASE | re.ASCII)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)", re.ASCII)
_QUANTITY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what it is, how to show it, and the values it accepts."""

    name: str
    kind: ParamKind
    label: str
    help: str = ""
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> ParamValue:
        """The typed value of ``raw``, range-checked; UsageError (one line) otherwise.

        Any string is safe here (a slash-command word, a modal field): its length is
        checked before anything reads it, and the error repeats at most ``echo(raw)``.
        """
        text = str(raw)
        check_value(text, name=self.name)
        text = text.strip()
        if not text:
            raise UsageError(f"{self.name} needs a value")
        return self.check(self._convert(text))

    def check(self, value: ParamValue) -> ParamValue:
        """``value`` if it is in range / one of the choices, else UsageError."""
        if self.kind == "choice":
            if value not in self.choices:
                raise UsageError(
                    f"{self.name} must be one of {', '.join(self.choices)} (got {_shown(value)})"
                )
            return value
        if self.kind == "bool" or isinstance(value, bool) or not isinstance(value, int):
            return value
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        if not low <= value <= high:
            raise UsageError(f"{self.name} {self._range()} (got {value})")
        return value

    def show(self, value: ParamValue) -> str:
        """Human form: ``1024mb`` / ``12.0h`` / ``true``."""
        if self.kind == "size" and isinstance(value, int) and not isinstance(value, bool):
            return format_bytes(value)
        if self.kind == "seconds" and isinstance(value, int) and not isinstance(value, bool):
            return f"{value}s ({format_duration(value)})"
        if isinstance(value, bool):
            return "true" if value else "false"
        return f"{value:,}" if isinstance(value, int) else str(value)

    def _convert(self, text: str) -> ParamValue:
        if self.kind == "size":
            return parse_size(text)
        if self.kind == "seconds":
            return parse_seconds(text, name=self.name)
        if self.kind == "bool":
            return _parse_bool(text, name=self.name)
        if self.kind == "choice":
            return text.lower()
        return _parse_int(text, name=self.name)

    def _range(self) -> str:
        if self.min is not None and self.max is not None:
            return f"must be between {self.min} and {self.max}"
        if self.min is not None:
            return f"must be at least {self.min}"
        return f"must be at most {self.max}"


def parse_seconds(text: str, *, name: str = "duration") -> int:
    """``86400``, ``90s``, ``15m``, ``12h`` or ``30d`` as whole seconds."""
    check_value(text, name=name)
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise UsageError(
            f"{name} must be a duration like 86400, 90s, 15m, 12h or 30d (got '{echo(text)}')"
        )
    check_digits(match.group(1), name=name)
    return int(match.group(1)) * _SECONDS[match.group(2).lower()]


def _parse_int(text: str, *, name: str) -> int:
    """A whole number, ``1,000`` and ``1_000`` spellings and a sign allowed (ASCII digits)."""
    cleaned = text.replace(",", "").replace("_", "")
    digits = cleaned[1:] if cleaned[:1] in ("+", "-") else cleaned
    if not is_digits(digits):
        raise UsageError(f"{name} must be a whole number (got '{echo(text)}')")
    check_digits(digits, name=name)
    return int(cleaned)


def _parse_bool(text: str, *, name: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false (got '{echo(text)}')")


def _shown(value: ParamValue) -> str:
    return echo(value) if isinstance(value, str) else str(value)


def parse_params(specs: tuple[ParamSpec, ...], raw: Mapping[str, str], *, action_id: str) -> Params:
    """Parse the given ``raw`` values (names must be known); missing names are left out."""
    by_name = {spec.name: spec for spec in specs}
    parsed: Params = {}
    for name, text in raw.items():
        spec = by_name.get(name.strip().lower().replace("-", "_"))
        if spec is None:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"unknown parameter '{echo(name)}' for {action_id} (known: {known})")
        parsed[spec.name] = spec.parse(text)
    return parsed


def parse_quantity(text: str) -> int | None:
    """A Kubernetes memory quantity in bytes (``768Mi``, ``1.5Gi``, ``1G``); None if unreadable."""
    text = (text or "").strip()
    match = _QUANTITY.fullmatch(text) if len(text) <= MAX_WORD_CHARS else None
    if not match or match.group(2) not in _QUANTITY_UNITS:
        return None
    try:
        value = Decimal(match.group(1)) * _QUANTITY_UNITS[match.group(2)]
    except InvalidOperation:
        return None
    return math.ceil(value)


def format_quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity: ``1536Mi`` when whole MiB, else plain bytes."""
    return f"{n // MIB}Mi" if n % MIB == 0 else str(n)


def round_up_mib(n: float) -> int:
    """``n`` bytes rounded up to whole MiB (redis.conf ``<n>mb``, Kubernetes ``<n>Mi``)."""
    return math.ceil(n / MIB) * MIB
