"""Hostile input for the property-based suites: planted secrets, huge numbers, odd text.

A planted secret always holds ``MARKER``: a test asserts that ``MARKER`` appears in no
answer, error or audit row. The shapes are the ones a user really types by mistake (a
URL with a password, ``password=x``, ``token: x``, ``--password x``) plus what an
attacker adds (``#``, ``@``, ``%40``, ``/``, ``?`` inside the password, quotes around it).

The same shapes come twice: as hypothesis strategies for the test suites, and as
seeded ``random`` generators (``make_case``) for the 100,000 cases of ``bench/fuzz.py``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import strategies as st

import bot
from bot.remediation.catalogue import CATALOGUE
from bot.remediation.model import RemediationLimits
from bot.slack.commands import SUBCOMMANDS as ROUTED

MARKER = "Zq7Wk3pX"  # no word, number or unit of the bot contains it

# What a password may hold around the marker (no whitespace: a word ends there).
_PASSWORD_CHARS = "abcXYZ019#@%/?!$^*()[]-_+.,;:'~&="
SECRET_NAMES = (
    "password", "PASSWORD", "pass", "passwd", "pwd", "token", "secret", "auth", "api_key",
    "api-key", "apikey", "REDIS_PASSWORD", "auth_token", "x-api-key", "client_secret",
    "Authorization", "access_key", "private_key", "credentials",
)  # fmt: skip
SCHEMES = ("redis", "rediss", "http", "https", "unix", "redis+sentinel")
WRAPPERS = ("{}", "'{}'", '"{}"', "({})", "{},", "{}.", "<{}>", "[{}]", "{}:", "{});")


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """A password holding ``MARKER``, maybe with ``#``, ``@``, ``%40``... around it."""
    before = draw(st.text(alphabet=_PASSWORD_CHARS, max_size=6))
    after = draw(st.text(alphabet=_PASSWORD_CHARS, max_size=6))
    return before + draw(st.sampled_from(("", "%40", "#", "@"))) + MARKER + after


@st.composite
def secret_words(draw: st.DrawFn) -> str:
    """One or two words that hold a planted secret, in a shape users type."""
    password = draw(passwords())
    scheme = draw(st.sampled_from(SCHEMES))
    name = draw(st.sampled_from(SECRET_NAMES))
    host = draw(st.sampled_from(("h", "10.0.0.1", "redis.prod.svc", "h:6379", "h:6379/0")))
    user = draw(st.sampled_from(("", "default", "admin")))
    shape = draw(
        st.sampled_from(
            (
                f"{scheme}://{user}:{password}@{host}",
                f"{scheme}://{host}/?{name}={password}",
                f"{scheme}://{host}/?db=0&{name}={password}&ssl=1",
                f"{name}={password}",
                f"{name}:{password}",
                f"{name}: {password}",
                f"{name}= {password}",
                f"--{name} {password}",
                f"--{name}={password}",
                f"{name}={scheme}://{user}:{password}@{host}",
                f"maxmemory={scheme}://{user}:{password}@{host}",
                f"Authorization: Bearer {password}",
            )
        )
    )
    return draw(st.sampled_from(WRAPPERS)).format(shape)


# Numbers as typed and as attacked: Python's int() refuses more than 4,300 digits.
HUGE_NUMBERS = ("9" * 4_301, "1" * 5_000, "1" * 19, "1" * 18, "1," * 2_000 + "1", "1_" * 3_000)
ODD_NUMBERS = (
    "1e999", "1e3", "nan", "NaN", "inf", "-inf", "Infinity", "-0", "+5", "0x10", "1.5e3",
    "٣", "١٠", "３", "²", "ⅷ", "1.", ".5", "..5", "1..5", "-1", "1 000", "0" * 30 + "1",
    "\x00", "1\x00", "\ud800", "5\udfff", "5ſ", "5K", "1ki", "1.5Gi", "1kb\n", "\u202e5",
)  # fmt: skip
UNITS = ("", "s", "m", "h", "d", "w", "ms", "ſ", "K", "b", "kb", "MB", "Gi", "Ti", "TB", "x")


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """A number of any length, sign, separator, unit or script."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        odd: str = draw(st.sampled_from(HUGE_NUMBERS + ODD_NUMBERS))
        return odd
    if kind == 1:  # lengths around every bound: 18 digits, 4,300 digits
        digits = draw(st.integers(1, 5_000))
        digit: str = draw(st.sampled_from("123456789"))
        return digit * digits + draw(st.sampled_from(UNITS))
    if kind == 2:
        value = draw(st.integers(-(10**25), 10**25))
        return f"{value}{draw(st.sampled_from(UNITS))}"
    number = draw(st.floats(allow_nan=True, allow_infinity=True))
    return f"{number!r}{draw(st.sampled_from(UNITS))}"


_ODD_CHARS = st.sampled_from(("\x00", "\ud800", "\udfff", "\u202e", "\x1b[2J", "\u3000", "\t"))


def any_text(max_size: int = 300) -> st.SearchStrategy[str]:
    """Any text but the bare marker: a marker in an answer then comes from a planted secret.

    (Hypothesis feeds the literals of the code under test to ``st.text``: without the
    filter it types ``MARKER`` alone, which no scrubber can tell from a word.)
    """
    return st.text(max_size=max_size).filter(lambda text: MARKER not in text)


def odd_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Any text: every unicode category, lone surrogates, NUL, controls."""
    pieces = st.lists(st.one_of(any_text(8), _ODD_CHARS), max_size=max_size // 8)
    return pieces.map("".join).filter(lambda text: MARKER not in text)


def values() -> st.SearchStrategy[str]:
    """What may arrive as one parameter value (a slash word or a modal field)."""
    return st.one_of(numbers(), secret_words(), odd_text(), any_text())


def long_runs() -> st.SearchStrategy[str]:
    """Long runs of one piece (the shapes that made the old scrubbing pattern quadratic)."""
    piece = st.sampled_from(("A", "a ", "a:", "pass", "://", "password: ", "--", "1", "@"))
    return st.tuples(piece, st.integers(1_000, 50_000)).map(lambda p: p[0] * (p[1] // len(p[0])))


BOT_FILES = (str(Path(bot.__file__).parent),)


def lines_run(function: Callable[..., object], *args: object, files: Iterable[str]) -> int:
    """How many lines of the files under ``files`` run for ``function(*args)``.

    A deterministic measure of work (``sys.settrace``), for asserting linear or
    constant cost without a clock. Exceptions of ``function`` are swallowed.
    """
    prefixes = tuple(files)
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "line"
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(prefixes) else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        function(*args)
    except Exception:  # the work done before raising counts all the same
        pass
    finally:
        sys.settrace(previous)
    return count


# --- random cases, for bench/fuzz.py (100,000 of them: no hypothesis there) ---------

# Declared once, in the code: the subcommands, the actions and their parameters.
SUBCOMMANDS = tuple(sub.name for sub in ROUTED)
ACTIONS = tuple(CATALOGUE)
PARAMS = (
    *sorted({s.name for a in CATALOGUE.values() for s in a.specs(RemediationLimits())}),
    *("users", "sessions", "size", "session-size"),  # capacity's
)
TARGETS = ("prod", "down", "PROD", "nope", "")


def number(rng: random.Random) -> str:
    """A number as typed or as attacked."""
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(HUGE_NUMBERS + ODD_NUMBERS).replace("\ud800", "").replace("\udfff", "")
    if pick < 0.6:
        return rng.choice("123456789") * rng.choice((1, 5, 18, 19, 40, 300, 4_301, 6_000))
    return f"{rng.randint(-(10**20), 10**20)}{rng.choice(UNITS)}"


def planted(rng: random.Random) -> str:
    """A secret holding MARKER, in a shape a user types by mistake."""
    password = "".join(rng.choice("abc019#@%/?!-_.&=") for _ in range(rng.randint(0, 5)))
    password += rng.choice(("", "%40", "#", "@")) + MARKER
    scheme, name = rng.choice(SCHEMES), rng.choice(SECRET_NAMES)
    host = rng.choice(("h", "10.0.0.1:6379", "redis.prod.svc:6379/0"))
    shape = rng.choice(
        (
            f"{scheme}://:{password}@{host}",
            f"{scheme}://admin:{password}@{host}",
            f"{scheme}://{host}/?{name}={password}",
            f"{name}={password}",
            f"{name}:{password}",
            f"{name}: {password}",
            f"--{name} {password}",
            f"maxmemory={scheme}://:{password}@{host}",
            f"size={scheme}://:{password}@{host}",
            f"Authorization: Bearer {password}",
        )
    )
    return rng.choice(WRAPPERS).format(shape)


def junk(rng: random.Random) -> str:
    """Random characters from every plane (no surrogates: they cannot be sent as UTF-8)."""
    ranges = ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF))
    chars = []
    for _ in range(rng.randint(1, 30)):
        low, high = rng.choice(ranges)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def word(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.25:
        return number(rng)
    if pick < 0.4:
        return f"{rng.choice(PARAMS)}={number(rng)}"
    if pick < 0.55:
        return planted(rng)
    if pick < 0.7:
        return rng.choice(TARGETS)
    if pick < 0.85:
        return junk(rng)
    return rng.choice(
        ("=", "a=1", "a=1", "size=2KB", "users=10", "sessions=3", "policy=noeviction")
    )


def long_text(rng: random.Random) -> str:
    piece = rng.choice(("A", "a ", "a:", "pass", "://", "password: ", "redis://h/?pass", "9"))
    return rng.choice(
        ("diagnose prod ", "capacity users=", "fix raise-maxmemory prod maxmemory=")
    ) + (piece * (rng.choice((2_000, 40_000, 100_000)) // len(piece)))


VALID_COMMANDS = (
    "help",
    "status",
    "diagnose prod",
    "diagnose down",
    "keys prod",
    "capacity users=10000 sessions=3 size=2KB",
    "pending",
    "alerts",
    "audit 5",
    "fix raise-maxmemory prod maxmemory=2gb",
    "fix expire-keys-without-ttl prod ttl_seconds=12h",
)


def valid(rng: random.Random) -> str:
    """A command that really runs (diagnoses prod, fails on down, plans capacity...)."""
    return rng.choice(VALID_COMMANDS)


def make_case(seed: int, index: int) -> str:
    """The text of case ``index`` (reproducible: the same seed gives the same cases)."""
    rng = random.Random(f"{seed}:{index}")
    pick = rng.random()
    if pick < 0.05:
        return valid(rng)
    if pick < 0.08:
        return long_text(rng)
    if pick < 0.13:
        return junk(rng)
    name = rng.choice((*SUBCOMMANDS, "DIAGNOSE", "frobnicate", planted(rng), junk(rng)))
    words = [word(rng) for _ in range(rng.randint(0, 4))]
    if name == "fix" and rng.random() < 0.7:
        words.insert(0, rng.choice(ACTIONS))
    return " ".join([name, *words])
