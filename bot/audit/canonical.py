"""The canonical form of an audit row and the hash that chains it to the previous one.

The hash covers exactly the bytes described here; changing this module breaks
every existing chain, so treat it as a file format (see docs/decisions/audit-chain.md).

Canonical form of a row: the JSON object of its hashed fields with sorted keys,
no whitespace, non-ASCII kept as UTF-8, ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
(UTC) and ``parameters`` as the string of its own canonical JSON.
``canonical_row`` writes that object by hand (verify must do 100k rows/s and
``json.dumps`` alone costs more than the budget); a test holds it byte-equal to
``canonical_json`` of the same dict.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring  # the C escaper json.dumps itself uses
from typing import Any

# prev_hash of the first row: no real SHA-256 digest is all zeros.
GENESIS_HASH = "0" * 64

# The hashed fields in sorted order (the order canonical_row writes them).
HASHED_FIELDS = ("action", "actor", "actor_name", "at", "channel", "message_ts", "outcome",
                 "parameters", "request_id", "seq", "source", "summary", "target")  # fmt: skip

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, UTF-8 kept, non-JSON values as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_ts(when: datetime) -> str:
    """A timestamp in the one fixed format the hash uses: UTC, microseconds, ``Z``."""
    if when.tzinfo is None:
        # Naive values only come back from SQLite, which we always write in UTC.
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(_TS_FORMAT)


def canonical_row(
    *,
    action: str,
    actor: str,
    actor_name: str | None,
    at: str,
    channel: str | None,
    message_ts: str | None,
    outcome: str,
    parameters: str,
    request_id: str | None,
    seq: int,
    source: str,
    summary: str,
    target: str | None,
) -> str:
    """``canonical_json`` of the row's hashed fields, byte for byte, without json.dumps."""
    esc = encode_basestring  # inlined calls: this runs once per row in verify
    return (
        f'{{"action":{esc(action)},"actor":{esc(actor)},'
        f'"actor_name":{"null" if actor_name is None else esc(actor_name)},'
        f'"at":{esc(at)},"channel":{"null" if channel is None else esc(channel)},'
        f'"message_ts":{"null" if message_ts is None else esc(message_ts)},'
        f'"outcome":{esc(outcome)},"parameters":{esc(parameters)},'
        f'"request_id":{"null" if request_id is None else esc(request_id)},'
        f'"seq":{int(seq)},"source":{esc(source)},"summary":{esc(summary)},'
        f'"target":{"null" if target is None else esc(target)}}}'
    )


def chain_hash(prev_hash: str, canonical: str) -> str:
    """SHA-256 (hex) over the previous hash, a newline and the canonical row (UTF-8)."""
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def row_hash(*, prev_hash: str, fields: dict[str, Any]) -> str:
    """The hash of a row given its hashed fields (``at`` formatted, parameters as text)."""
    return chain_hash(prev_hash, canonical_row(**fields))
