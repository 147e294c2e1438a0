"""``scrub_text`` and ``scrub_parameters``: no typed secret survives, in linear time.

Linear time is asserted by counting work, never by the clock: the patterns that read
whole words have a bounded match width (so a search costs length x width), the Python
lines the scrubber runs grow in proportion to its input (counted with ``sys.settrace``),
and ``redact_url`` (whose query-string pattern is quadratic) never sees a long URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot import limits
from bot.audit import scrub
from bot.audit.scrub import MAX_URL_CHARS, scrub_parameters, scrub_text
from tests.hostile import MARKER, lines_run, long_runs, odd_text, secret_words


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("redis://:s3cret@h:6379", "redis://:***@h:6379"),
        ("rediss://user:pw@h", "rediss://user:***@h"),
        ("redis://:ab#c@h", "redis://:***@h"),  # '#' would end urlsplit's netloc
        ("redis://:p@ss@h:1", "redis://:***@h:1"),  # up to the last '@'
        ("redis://:p%40ss@h", "redis://:***@h"),
        ("redis://h:6379/0?password=x", "redis://h:6379/0?password=***"),
        ("invalid size 'redis://:s3cret@h:6379': use", "invalid size 'redis://:***@h:6379': use"),
        ("maxmemory=redis://:s3cret@h:6379", "maxmemory=redis://:***@h:6379"),
        ("password=x pass=x pwd=x", "password=*** pass=*** pwd=***"),
        ("token=x secret=x auth=x api_key=x", "token=*** secret=*** auth=*** api_key=***"),
        ("token:x REDIS_PASSWORD=x x-api-key:x", "token:*** REDIS_PASSWORD=*** x-api-key:***"),
        ("got 'token=abc' there", "got 'token=***' there"),
        ("password: hunter2 next", "password: *** next"),
        ("--password hunter2 --redis-token t next", "--password *** --redis-token *** next"),
        ("count=--password hunter2 next", "count=--password *** next"),
        ("Authorization: Bearer xyz next", "Authorization: *** *** next"),
        ("redis://:pw", "redis://:***"),  # cut before its '@' (or split by a space)
        ("a\x00b\x1b[2J \ud800", "a?b?[2J ?"),  # NUL, a terminal escape, a lone surrogate
    ],
)
def test_what_users_type_is_redacted(typed: str, shown: str) -> None:
    assert scrub_text(typed) == shown


@pytest.mark.parametrize(
    "kept",
    [
        "see redis://h:6379.",
        "redis://10.0.0.1:6379/0",
        "http://[::1]:80/",
        "fix raise-maxmemory prod maxmemory=2gb",
        "capacity users=10,000 sessions=3 size=1.5MB",
        "policy: allkeys-lru, author=bob",
        "WRONGPASS invalid username-password pair",
    ],
)
def test_what_holds_no_secret_is_kept(kept: str) -> None:
    assert scrub_text(kept) == kept


def test_parameters_mask_secret_keys_and_scrub_keys_and_values() -> None:
    scrubbed = scrub_parameters(
        {
            "redis_password": "x",
            "params": {"maxmemory": "redis://:s3cret@h", "redis://:k3y@h": "1"},
            "text": "fix a b token=abc",
            "nested": [{"api_key": "x"}, ("a\x00", float("nan"))],
        }
    )
    assert scrubbed == {
        "redis_password": "***",
        "params": {"maxmemory": "redis://:***@h", "redis://:***@h": "1"},
        "text": "fix a b token=***",
        "nested": [{"api_key": "***"}, ["a?", "nan"]],
    }
    json.dumps(scrubbed, allow_nan=False)


@pytest.mark.parametrize(
    "key", ["access_key", "signing-key", "secret_key", "pwd", "passphrase", "credentials"]
)
def test_a_key_is_a_secret_by_the_same_names_as_a_typed_word(key: str) -> None:
    # bench/fuzz.py found "fix shorten-session-ttl prod access_key=c=%40<secret>,": the
    # word was scrubbed as typed, but its parameter stored as typed (another list of names).
    assert scrub_text(f"{key}=s3cret") == f"{key}=***"
    assert scrub_parameters({"params": {key: "c=%40s3cret,"}}) == {"params": {key: "***"}}


def plain_words() -> st.SearchStrategy[str]:
    return st.text(alphabet="abcXYZ019-_=:/.,'()", min_size=1, max_size=12)


@given(words=st.lists(st.one_of(plain_words(), secret_words()), min_size=1, max_size=8))
@example(words=["diagnose", "redis://:Zq7Wk3pX@10.0.0.1:6379"])
@example(words=["fix", "raise-maxmemory", "prod", "maxmemory=redis://:Zq7Wk3pX@h:6379"])
@example(words=["<--password", "Zq7Wk3pX>"])  # a flag behind a bracket
@example(words=["redis://h/?db=0&token=a&Zq7Wk3pX"])  # '&' ends redact_url's query value
@example(words=["(password:abZq7Wk3pX))"])
@example(words=["redis://h:6379/?password=#@Zq7Wk3pX"])  # redact_url: "#@" ends the userinfo
def test_a_planted_secret_never_survives(words: list[str]) -> None:
    text = " ".join(words)
    assert MARKER not in scrub_text(text)
    assert MARKER not in json.dumps(scrub_parameters({"text": text, "params": {"v": text}}))


@given(text=st.one_of(odd_text(), st.text()))
@example(text="\ud800")
@example(text="password:")
@example(text="redis://‹2,004 characters›")
def test_scrubbing_never_fails_is_storable_and_idempotent(text: str) -> None:
    once = scrub_text(text)
    once.encode("utf-8")  # no lone surrogate left: storable and hashable
    assert "\x00" not in once and "\x1b" not in once
    assert scrub_text(once) == once


@given(first=st.text(alphabet="abcxyz019", min_size=1), second=st.text(max_size=40))
def test_scrubbing_is_word_by_word(first: str, second: str) -> None:
    """Work is the sum of each word's: a plain word changes nothing around it."""
    assert scrub_text(f"{first} {second}") == f"{first} {scrub_text(second)}"


# --- linear time, by counting ------------------------------------------------------

SCRUBBER = (scrub.__file__, limits.__file__)


def _linear_by_shape(pattern: re.Pattern[str]) -> bool:
    """A bounded match width W (a search is at most N x W steps), or one class repeated.

    A greedy run of a single character class (``\\s+``) is the one unbounded shape
    allowed: it cannot backtrack, so it is linear too.
    """
    parsed = re._parser.parse(pattern.pattern, pattern.flags)  # type: ignore[attr-defined]
    if parsed.getwidth()[1] <= 32:
        return True
    items = list(parsed.data)
    if len(items) == 1 and str(items[0][0]) == "SUBPATTERN":  # one group around it
        items = list(items[0][1][3])
    if len(items) != 1 or str(items[0][0]) != "MAX_REPEAT":
        return False
    repeated = list(items[0][1][2])
    return len(repeated) == 1 and str(repeated[0][0]) == "IN"


@pytest.mark.parametrize("module", [scrub, limits], ids=["scrub", "limits"])
def test_every_pattern_the_scrubber_runs_is_linear_by_shape(module: object) -> None:
    """The old URL pattern (letters, then ``://``, then a run) fails this: quadratic."""
    patterns = [v for v in vars(module).values() if isinstance(v, re.Pattern)]
    assert patterns
    for pattern in patterns:
        assert _linear_by_shape(pattern), pattern.pattern
    old = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]*[^\s:,;.)]")
    assert not _linear_by_shape(old)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "A" * n,
        lambda n: "a " * (n // 2),
        lambda n: "a:" * (n // 2),
        lambda n: "x" * n + "://",
        lambda n: ("a" * 50 + "!") * (n // 51) + "://:pw@h",
        lambda n: "://" * (n // 3),
        lambda n: "password: " * (n // 10),
        lambda n: "--token " * (n // 8),
        lambda n: ("redis://h/?" + "pass" * 60 + " ") * (n // 252),
    ],
)
def test_scrubbing_work_grows_linearly(make: Callable[[int], str]) -> None:
    small, large = (lines_run(scrub_text, make(n), files=SCRUBBER) for n in (4_000, 8_000))
    assert large <= 2 * small + 50, (small, large)


def test_a_long_url_is_never_handed_to_redact_url() -> None:
    """redact_url's query pattern is quadratic: past MAX_URL_CHARS only the length is kept."""
    url = "redis://h/?" + "pass" * 10_000
    assert scrub_text(f"x {url} y") == f"x redis://‹{len(url) - 8:,} characters› y"
    short = "redis://h/?" + "pass" * ((MAX_URL_CHARS - 11) // 4)
    assert scrub_text(short) == short  # the longest URL still read keeps its text


@given(text=long_runs())
def test_long_runs_are_scrubbed_without_losing_text(text: str) -> None:
    """The runs that made the old pattern quadratic (40,000 letters: 5.3 s) are kept as typed."""
    out = scrub_text(text)
    assert len(out) <= len(text)
    assert scrub_text(out) == out
