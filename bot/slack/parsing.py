"""Pure parsing of ``/redis-mem`` arguments (no Slack imports: any face can reuse it).

Every malformed argument raises ``UsageError`` with one line that names the
subcommand, what was expected, and what was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UsageError
from bot.units import parse_size

CAPACITY_USAGE = "capacity users=N sessions=N size=SIZE"
# Accepted spellings of each capacity option (the CLI's long names work too).
_CAPACITY_KEYS = {
    "users": "users",
    "sessions": "sessions",
    "sessions-per-user": "sessions",
    "sessions_per_user": "sessions",
    "size": "size",
    "session-size": "size",
    "session_size": "size",
}


@dataclass(frozen=True)
class CommandLine:
    """The subcommand word (lower-cased) and the words after it."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class CapacityArgs:
    """The capacity formula's inputs, validated."""

    users: int
    sessions_per_user: int
    session_size: int
    size_text: str


def split_command(text: str) -> CommandLine:
    """``"diagnose prod"`` -> name ``diagnose``, args ``("prod",)``; empty text is ``help``."""
    words = text.split()
    if not words:
        return CommandLine(name="help", args=())
    return CommandLine(name=words[0].lower(), args=tuple(words[1:]))


def parse_target(name: str, args: tuple[str, ...]) -> str | None:
    """The optional single target argument of ``diagnose``/``keys``."""
    if len(args) > 1:
        extra = " ".join(args[1:])
        raise UsageError(f"{name}: expected at most one target (got extra {extra!r})")
    return args[0] if args else None


def parse_no_args(name: str, args: tuple[str, ...]) -> None:
    """Subcommands that take nothing (``status``) reject stray words."""
    if args:
        raise UsageError(f"{name}: takes no arguments (got {' '.join(args)!r})")


def parse_count(name: str, args: tuple[str, ...], *, default: int, maximum: int) -> int:
    """The optional single ``N`` of ``audit [N]``: a whole number from 1 to ``maximum``."""
    if len(args) > 1:
        raise UsageError(f"{name}: expected at most one number (got {' '.join(args)!r})")
    if not args:
        return default
    if not args[0].isdecimal() or not 1 <= int(args[0]) <= maximum:
        raise UsageError(f'{name}: N must be a whole number from 1 to {maximum} (got "{args[0]}")')
    return int(args[0])


def parse_capacity(args: tuple[str, ...]) -> CapacityArgs:
    """``users=N sessions=N size=SIZE`` in any order, each exactly once."""
    values = _key_values(args)
    missing = [key for key in ("users", "sessions", "size") if key not in values]
    if missing:
        raise UsageError(
            f"capacity: missing {', '.join(k + '=' for k in missing)} (usage: {CAPACITY_USAGE})"
        )
    return CapacityArgs(
        users=_positive_int("users", values["users"]),
        sessions_per_user=_positive_int("sessions", values["sessions"]),
        session_size=_size(values["size"]),
        size_text=values["size"],
    )


def _key_values(args: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for word in args:
        key, sep, value = word.partition("=")
        canonical = _CAPACITY_KEYS.get(key.lower())
        if not sep or canonical is None:
            raise UsageError(f"capacity: unexpected {word!r} (usage: {CAPACITY_USAGE})")
        if canonical in values:
            raise UsageError(f"capacity: {canonical}= given twice")
        values[canonical] = value
    return values


def _positive_int(key: str, text: str) -> int:
    cleaned = text.replace(",", "").replace("_", "")
    if not cleaned.isdecimal() or int(cleaned) < 1:
        raise UsageError(f'capacity: {key} must be a whole number of at least 1 (got "{text}")')
    return int(cleaned)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except UsageError:
        raise UsageError(
            f'capacity: size must look like 2KB, 1.5MB or 2048 (got "{text}")'
        ) from None
