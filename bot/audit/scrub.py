"""Remove secrets from what a user typed before it is shown, logged or written (and hashed).

``scrub_text`` is the one function every face applies to text a user typed (acks,
errors, audit parameters and summaries, CLI errors). It redacts alike

- a URL's password (``redis://:pw@h``, ``rediss://user:pw@h``, passwords holding ``#``,
  ``@`` or ``%40``) and its query-string secrets (``?password=x``): ``redact_url``;
- secrets typed as words: ``password=x``, ``token:x``, ``REDIS_PASSWORD=x``,
  ``password: x``, ``--password x``, ``Authorization: Bearer x``.

It runs in time linear in the length of the text, whatever the text: the text is
split on whitespace once, each word is read by patterns that backtrack at most a
keyword's length, and ``redact_url`` (linear too) only ever sees a URL of at most
``MAX_URL_CHARS``; a longer URL is shown as its scheme and its length only.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from bot.config import redact_url
from bot.limits import elided

REDACTED = "***"
# Four times the longest word a slash command accepts (bot.limits.MAX_WORD_CHARS): any
# real URL fits; a longer one is no URL anyone typed on purpose.
MAX_URL_CHARS = 1_024

# A secret's name as typed in free text: a word *ending* in one of these, followed by
# "=" or ":", holds a secret (REDIS_PASSWORD=, auth_token:, x-api-key:). Anchoring on the
# name's end, not a [\w]* run before it, is what keeps the search linear.
_SECRET_NAME = (
    r"(?:pass(?:word|wd|phrase)?|pwd|token|secret|auth(?:orization)?|credentials?|cookie"
    r"|apikey|(?:api|access|private|secret|signing)[_-]?key)"
)
# A parameter key holding a secret's name anywhere masks its value (one declaration of
# what a secret's name is, for keys and for typed words alike).
_SECRET_KEY = re.compile(_SECRET_NAME, re.IGNORECASE)
_INLINE_SECRET = re.compile(_SECRET_NAME + r"[=:]", re.IGNORECASE)
_NAME_AT_END = re.compile(_SECRET_NAME + r"$", re.IGNORECASE)
_LONGEST_NAME = 16  # "authorization", "private_key"... : a flag's name is read from its tail
# "Authorization: Bearer x": the scheme word is followed by the secret itself.
_AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "token"})
_SPACES = re.compile(r"(\s+)")
# C0 controls (but tab and newlines) and DEL: NUL cannot be stored by PostgreSQL, and
# escape sequences would drive a terminal the CLI prints to.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")
_URL_TAIL = ":,;.)"  # prose after a URL ("see redis://h:6379.") is not part of it
_CLOSERS = {"'": "'", '"': '"', "(": ")", "[": "]", "{": "}", "<": ">"}
_MAX_DEPTH = 8


def scrub_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy with secret-looking keys masked and every string scrubbed."""
    return {
        scrub_text(str(key)): _scrub_item(str(key), value, 0) for key, value in parameters.items()
    }


def scrub_text(text: str) -> str:
    """``text`` with URL passwords and ``password=``-style secrets replaced by ``***``.

    Also replaces what cannot be stored or printed safely: lone surrogates and control
    characters become ``?``. Never raises; linear time.
    """
    text = _CONTROL.sub("?", text.encode("utf-8", "replace").decode("utf-8"))
    pieces = _SPACES.split(text)  # words at even indexes, the whitespace between at odd
    pieces[::2] = scrub_words(pieces[::2])
    return "".join(pieces)


def scrub_words(words: Sequence[str]) -> list[str]:
    """``scrub_text`` word by word: the same rules, each output word for its input word.

    For a face that repeats some typed words out of their context (an error quoting
    the word after ``password:``): it can show the scrubbed word, or mask what
    scrubbing removed. (Words are expected without whitespace or control characters.)
    """
    out: list[str] = []
    value_next = False
    for word in words:
        if not word:
            out.append(word)
        elif value_next:  # "password: x", "--token x": this word is the secret
            out.append(REDACTED)
            value_next = word.lower() in _AUTH_SCHEMES
        else:
            scrubbed, value_next = _scrub_word(word)
            out.append(scrubbed)
    return out


def _scrub_word(word: str) -> tuple[str, bool]:
    """The scrubbed word, and whether the next word is a secret's value."""
    if ":" not in word and "=" not in word and "-" not in word:
        return word, False  # most words: nothing any pattern below could match
    match = _INLINE_SECRET.search(word)
    if match is None:
        return _redact_url_in(word), _is_secret_flag(word)
    if match.end() == len(word):  # "password:" alone: the value is the next word
        return _redact_url_in(word), True
    head = word[: match.end()]
    # An "@" after the cut: a URL's userinfo may run past it ("?password=#@x" is a
    # password to redact_url), so nothing after that URL's scheme is shown.
    head = _scheme_only(head) if "@" in word[match.end() :] else _redact_url_in(head)
    head = head.removesuffix(REDACTED) + REDACTED  # redact_url may have masked "?password=" already
    closer = _CLOSERS.get(word[0])
    keep = closer if closer is not None and word.endswith(closer) else ""
    return head + keep, False


def _is_secret_flag(word: str) -> bool:
    """``--password``, ``(--redis-token``, ``args=--token``: a flag whose value is the next word."""
    after = word[max(word.rfind("="), word.rfind(":")) + 1 :]  # the whole word if neither
    flag = after.lstrip("'\"([{<")
    return flag.startswith("-") and _NAME_AT_END.search(flag[-_LONGEST_NAME:]) is not None


def _redact_url_in(word: str) -> str:
    """The word with the URL it holds (from its scheme to the word's end) redacted."""
    start = _url_start(word)
    if start is None:
        return word
    end = len(word.rstrip(_URL_TAIL))  # stops at the "/" of "://" at the latest
    url = word[start:end]
    if len(url) > MAX_URL_CHARS:
        scheme = url[: url.index("://") + 3]
        return word[:start] + scheme + elided(len(url) - len(scheme)) + word[end:]
    return word[:start] + _redact_dangling(redact_url(url)) + word[end:]


def _scheme_only(word: str) -> str:
    """The word up to the ``scheme://`` of its URL, without what follows (no URL: as is)."""
    start = _url_start(word)
    return word if start is None else word[: word.index("://", start) + 3]


def _url_start(word: str) -> int | None:
    """Where the first ``scheme://`` of ``word`` starts (a scheme begins with a letter)."""
    at = word.find("://")
    while at != -1:
        start = at
        # Walks back over scheme characters only, which hold no "/": each part of the
        # word is walked at most once, so this stays linear.
        while start > 0 and word[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < at and word[start] not in string.ascii_letters:
            start += 1
        if start < at:
            return start
        at = word.find("://", at + 3)
    return None


def _redact_dangling(url: str) -> str:
    """Mask ``scheme://user:password`` left without its ``@`` (cut short, or split by a space).

    ``host:port`` is kept: a run of digits ending the URL or followed by ``/``, ``?``...
    """
    scheme_end = url.index("://") + 3
    rest = url[scheme_end:]
    if "@" in rest or rest.startswith("["):  # redact_url's case, or an IPv6 host
        return url
    host, sep, after = rest.partition(":")
    if not sep or any(char in host for char in "/?#"):
        return url
    digits = len(after) - len(after.lstrip(string.digits))
    if digits and (digits == len(after) or not after[digits].isalnum()):
        return url
    return f"{url[:scheme_end]}{host}:{REDACTED}"


def _scrub_item(key: str, value: Any, depth: int) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    return _scrub_value(value, depth + 1)


def _scrub_value(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED  # deeper than any real parameter set: refuse rather than recurse
    if isinstance(value, Mapping):
        return {scrub_text(str(k)): _scrub_item(str(k), v, depth) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(item, depth + 1) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # NaN/inf are not JSON; keep them readable instead of failing the write.
        return value if math.isfinite(value) else str(value)
    return scrub_text(str(value))
