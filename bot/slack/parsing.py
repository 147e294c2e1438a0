"""Pure parsing of ``/redis-mem`` arguments (no Slack imports: any face can reuse it).

Every malformed argument raises ``UsageError`` with one line that names the
subcommand, what was expected, and what was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.audit.scrub import scrub_words
from bot.errors import UsageError
from bot.limits import check_command, check_digits, echo, is_digits
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
    """``"diagnose prod"`` -> name ``diagnose``, args ``("prod",)``; empty text is ``help``.

    UsageError (one line) for a text or word too long (``bot.limits``), before any split.
    """
    check_command(text)
    words = text.split()
    if not words:
        return CommandLine(name="help", args=())
    return CommandLine(name=words[0].lower(), args=tuple(words[1:]))


def parse_target(name: str, args: tuple[str, ...]) -> str | None:
    """The optional single target argument of ``diagnose``/``keys``."""
    if len(args) > 1:
        raise UsageError(f"{name}: expected at most one target (got extra '{_echo(args, 1)}')")
    return args[0] if args else None


def parse_no_args(name: str, args: tuple[str, ...]) -> None:
    """Subcommands that take nothing (``status``) reject stray words."""
    if args:
        raise UsageError(f"{name}: takes no arguments (got '{_echo(args, 0)}')")


def parse_count(name: str, args: tuple[str, ...], *, default: int, maximum: int) -> int:
    """The optional single ``N`` of ``audit [N]``: a whole number from 1 to ``maximum``."""
    if len(args) > 1:
        raise UsageError(f"{name}: expected at most one number (got '{_echo(args, 0)}')")
    if not args:
        return default
    word = args[0]
    # Digits counted before int(): a 5,000-digit N is out of range, not a ValueError.
    if not is_digits(word) or len(word) > len(str(maximum)) or not 1 <= int(word) <= maximum:
        raise UsageError(
            f'{name}: N must be a whole number from 1 to {maximum} (got "{echo(word)}")'
        )
    return int(word)


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
            raise UsageError(f"capacity: unexpected '{echo(word)}' (usage: {CAPACITY_USAGE})")
        if canonical in values:
            raise UsageError(f"capacity: {canonical}= given twice")
        values[canonical] = value
    return values


def _positive_int(key: str, text: str) -> int:
    cleaned = text.replace(",", "").replace("_", "")
    bad = UsageError(f'capacity: {key} must be a whole number of at least 1 (got "{echo(text)}")')
    if not is_digits(cleaned):
        raise bad
    check_digits(cleaned, name=f"capacity: {key}")  # before int(): 5,000 digits is a ValueError
    if int(cleaned) < 1:
        raise bad
    return int(cleaned)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except UsageError:
        raise UsageError(
            f'capacity: size must look like 2KB, 1.5MB or 2048 (got "{echo(text)}")'
        ) from None


def _echo(words: tuple[str, ...], start: int, most: int = 3) -> str:
    """A few stray words from ``start``, scrubbed in their context, each as ``echo`` shows it.

    In context: the word after ``password:`` or ``--token`` is a secret although it
    looks like any word, and the error quotes it without its label.
    """
    scrubbed = scrub_words(words)[start : start + most]
    shown = " ".join(echo(word) for word in scrubbed)
    return shown + " …" if len(words) > start + most else shown
