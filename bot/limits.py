"""How much a user may type, checked before anything parses, scrubs or echoes it.

Each bound is declared once here and used by every face and parser. They are far
above anything an SRE types, so only a mistake or an attack meets them, and they
keep the cost of every later step (split, regex, int(), scrubbing) small and linear.
"""

from __future__ import annotations

import re

from bot.errors import UsageError

# The longest real command is a fix with two parameters, ~120 characters
# ("fix limit-concurrent-sessions payments-eu-west-1 max_sessions=5 ..."): 1,000 is 8x that.
MAX_COMMAND_CHARS = 1_000
# The longest real word is a target name (a DNS label, at most 63 characters) or a
# key=value such as "maxmemory=1536mb"; 256 leaves room for a mistyped URL to be redacted.
MAX_WORD_CHARS = 256
# The largest real number is a byte size (1 TB has 13 digits) or seconds (a year has 8);
# 18 digits still fit the signed 64-bit integers Redis takes, and stay far below the
# 4,300 digits at which Python's int() refuses to convert (ValueError).
MAX_NUMBER_DIGITS = 18
# A name glob (``status prod-*``): a target name is at most 63 characters; twice that
# leaves room for classes ("[a-c]") and keeps fnmatch's regex small.
MAX_GLOB_CHARS = 128
# How much of a bad value an error message repeats.
ECHO_CHARS = 40

# An error repeats a bad value up to the first character that can start a URL's
# credentials or a key=value secret: sizes, durations, counts and choices never hold one.
_ECHO_STOP = frozenset(":/@=?#&%")
_WORD = re.compile(r"\S+")


def check_command(text: str, *, what: str = "command") -> None:
    """UsageError (one line) when ``text`` or one of its words is longer than allowed."""
    if len(text) > MAX_COMMAND_CHARS:
        raise UsageError(
            f"{what} too long: {len(text):,} characters (at most {MAX_COMMAND_CHARS:,})"
        )
    for position, word in enumerate(text.split(), start=1):
        if len(word) > MAX_WORD_CHARS:  # not repeated: it may be the value of "password:"
            raise UsageError(
                f"word {position} too long: {len(word):,} characters (at most {MAX_WORD_CHARS:,})"
            )


def check_value(text: str, *, name: str) -> None:
    """UsageError when one parameter value is longer than a word may be."""
    if len(text) > MAX_WORD_CHARS:
        raise UsageError(
            f"{name}: value too long: {len(text):,} characters (at most {MAX_WORD_CHARS:,})"
        )


def is_digits(text: str) -> bool:
    """ASCII digits only, at least one.

    ``str.isdecimal()`` and ``int()`` also take Arabic-Indic, Devanagari or fullwidth
    digits ('٣', '３'). We refuse them: the audit trail and the approval message would
    show a number the approver may misread, and nobody types them on purpose.
    """
    return text.isascii() and text.isdecimal()


def check_digits(digits: str, *, name: str) -> None:
    """UsageError when a number has more digits than any real value (before ``int()``)."""
    if len(digits) > MAX_NUMBER_DIGITS:
        raise UsageError(
            f"{name} has too many digits: {len(digits):,} (at most {MAX_NUMBER_DIGITS})"
        )


def echo(text: str) -> str:
    """What an error message may repeat of a bad value: short, printable, no credentials.

    At most ``ECHO_CHARS`` characters of its first word (a secret may follow a space:
    ``--password x``), cut after the first ``:/@=?#&%`` (what starts a URL password or
    a ``key=value`` secret); unprintable characters shown as ``?``.
    """
    text = text.strip()
    head = text[:ECHO_CHARS]
    for index, char in enumerate(head):
        if char in _ECHO_STOP or char.isspace():  # a space: "--password x", "token: x"
            head = head[: index + (not char.isspace())]
            break
    shown = "".join(char if char.isprintable() else "?" for char in head)
    return shown if len(head) == len(text) else shown + "…"


def elided(length: int) -> str:
    """What stands for a word too long to be shown: its length only."""
    return f"‹{length:,} characters›"


def preview(text: str) -> str:
    """``text`` cut to at most ``MAX_COMMAND_CHARS`` at a word boundary, long words elided.

    For the audit trail and the answers: whole words only (a cut never splits a URL in
    the middle of its password), and a 100,000-letter word costs its length only.
    """
    kept: list[str] = []
    size = 0
    for match in _WORD.finditer(text):  # lazily: stops at the budget, however long the text
        length = match.end() - match.start()
        shown = match.group() if length <= MAX_WORD_CHARS else elided(length)
        if size + len(shown) + 1 > MAX_COMMAND_CHARS:
            kept.append("…")
            break
        kept.append(shown)
        size += len(shown) + 1
    return " ".join(kept)
