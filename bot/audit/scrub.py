"""Remove secrets from audit parameters before they are written (and hashed)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from bot.config import redact_url

REDACTED = "***"

# Substrings of a key name that mark its value as a secret.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|token|secret|authorization|auth_?header|api_?key|credential|cookie|private_?key",
    re.IGNORECASE,
)
# Any URL in a string (scheme://...): redact_url masks userinfo and query-string secrets.
# (A URL followed by ":" or "," in prose keeps that punctuation.)
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]*[^\s:,;.)]")
_MAX_DEPTH = 8


def scrub_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy with secret-looking keys masked and URL passwords redacted."""
    return {str(key): _scrub_item(str(key), value, 0) for key, value in parameters.items()}


def scrub_text(text: str) -> str:
    """Redact the password of every URL inside ``text`` (and drop unencodable surrogates)."""
    # A lone surrogate cannot be stored as UTF-8 nor hashed: replace it, do not fail the write.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _URL_WITH_PASSWORD.sub(lambda match: redact_url(match.group(0)), text)


def _scrub_item(key: str, value: Any, depth: int) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    return _scrub_value(value, depth + 1)


def _scrub_value(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED  # deeper than any real parameter set: refuse rather than recurse
    if isinstance(value, Mapping):
        return {str(k): _scrub_item(str(k), v, depth) for k, v in value.items()}
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
