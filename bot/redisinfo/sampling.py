"""Sampled mode: measure a fixed number of session keys, whatever the keyspace size.

The share of session keys is estimated from ``RANDOMKEY`` draws (uniform over the
keyspace, O(1) each, one pipeline). When sessions are a small share, a bounded
SCAN from a random cursor tops the sample up. See docs/decisions/sampling.md.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis
from redis.exceptions import ResponseError

from bot.redisinfo.client import key_bytes
from bot.redisinfo.snapshot import KeySample, KeyStat

# A keyspace this many times the sample size (or smaller) is scanned whole: exact
# counts for the same bounded cost.
SMALL_KEYSPACE_FACTOR = 10
# A top-up SCAN looks at no more than this many times the sample size keys.
TOPUP_FACTOR = 10
SCAN_COUNT = 1000
# Keys measured per pipeline (three commands each): bounded client and server buffers.
MEASURE_BATCH = 1000


class GlobMatcher:
    """Redis glob matching (``stringmatchlen``) of key names, byte for byte.

    ``fnmatch`` differs from Redis (``[^a]``, backslash escapes, bytes vs characters),
    so the pattern is translated to a bytes regex following Redis's own parser.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        raw = pattern.encode("utf-8", "surrogateescape")
        self._regex = re.compile(_glob_to_regex(raw), re.DOTALL)

    def __call__(self, key: str) -> bool:
        """True when Redis's ``SCAN MATCH pattern`` would return ``key``."""
        return self._regex.fullmatch(key_bytes(key)) is not None


def _glob_to_regex(pat: bytes) -> bytes:
    out: list[bytes] = []
    i, n = 0, len(pat)
    while i < n:
        char = pat[i : i + 1]
        if char == b"*":
            while i + 1 < n and pat[i + 1 : i + 2] == b"*":
                i += 1
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"[":
            regex, i = _glob_class(pat, i + 1)
            out.append(regex)
        elif char == b"\\" and i + 1 < n:
            i += 1
            out.append(_byte(pat[i]))
        else:
            out.append(_byte(pat[i]))
        i += 1
    return b"".join(out)


def _glob_class(pat: bytes, i: int) -> tuple[bytes, int]:
    """Translate a ``[...]`` set starting after the ``[``; returns (regex, index of its end)."""
    n = len(pat)
    negate = i < n and pat[i : i + 1] == b"^"
    i += 1 if negate else 0
    items: list[bytes] = []
    while True:
        if i >= n:  # unclosed: Redis takes the rest of the pattern as the set
            i -= 1
            break
        if pat[i : i + 1] == b"\\" and n - i >= 2:
            i += 1
            items.append(_byte(pat[i]))
        elif pat[i : i + 1] == b"]":
            break
        elif n - i >= 3 and pat[i + 1 : i + 2] == b"-":
            low, high = sorted((pat[i], pat[i + 2]))
            items.append(_byte(low) + b"-" + _byte(high))
            i += 2
        else:
            items.append(_byte(pat[i]))
        i += 1
    if not items:
        return (b"[\\x00-\\xff]" if negate else b"(?!)"), i
    return b"[" + (b"^" if negate else b"") + b"".join(items) + b"]", i


def _byte(value: int) -> bytes:
    return b"\\x%02x" % value


def sample_sessions(
    client: redis.Redis,
    *,
    pattern: str,
    sample_size: int,
    dbsize: int,
    lfu: bool,
    rng: random.Random | None = None,
) -> KeySample:
    """Measure up to ``sample_size`` session keys and estimate how many there are."""
    rng = rng or random.Random()
    match = GlobMatcher(pattern)
    if dbsize <= 0:
        return KeySample("sampled", pattern, (), 0, 0, 0, "randomkey")
    if dbsize <= SMALL_KEYSPACE_FACTOR * sample_size:
        return _sample_whole(client, match=match, sample_size=sample_size, lfu=lfu, rng=rng)
    return _sample_random(
        client, match=match, sample_size=sample_size, dbsize=dbsize, lfu=lfu, rng=rng
    )


def _sample_whole(
    client: redis.Redis, *, match: GlobMatcher, sample_size: int, lfu: bool, rng: random.Random
) -> KeySample:
    """A small keyspace: SCAN it all, count exactly, measure a random subset."""
    seen = set(scan_keys(client, cursor=0, budget=None))
    hits = sorted(key for key in seen if match(key))
    chosen = rng.sample(hits, min(sample_size, len(hits)))
    stats = measure_keys(client, chosen, lfu=lfu)
    count = len(hits)
    return KeySample("sampled", match.pattern, tuple(stats), len(seen), count, count, "scan")


def _sample_random(
    client: redis.Redis,
    *,
    match: GlobMatcher,
    sample_size: int,
    dbsize: int,
    lfu: bool,
    rng: random.Random,
) -> KeySample:
    try:
        draws = random_keys(client, sample_size)
    except ResponseError:  # RANDOMKEY renamed or denied by an ACL: the SCAN alone samples
        draws = []
    probed, matched = len(draws), sum(1 for key in draws if match(key))
    distinct = dict.fromkeys(key for key in draws if match(key))
    method = "randomkey"
    if len(distinct) < sample_size // 2:
        # Few sessions among the draws: look at a random stretch of the keyspace
        # (hash order is unrelated to key contents, so it is a fair sample too).
        method = "randomkey+scan" if draws else "scan"
        cursor = rng.getrandbits(48)
        for key in scan_keys(client, cursor=cursor, budget=TOPUP_FACTOR * sample_size):
            probed += 1
            if match(key):
                matched += 1
                distinct[key] = None
                if len(distinct) >= sample_size:
                    break
    estimate = round(dbsize * matched / probed) if probed else 0
    chosen = list(distinct)[:sample_size]
    stats = measure_keys(client, chosen, lfu=lfu)
    return KeySample("sampled", match.pattern, tuple(stats), probed, matched, estimate, method)


def random_keys(client: redis.Redis, count: int) -> list[str]:
    """``count`` RANDOMKEY draws in one pipeline (None, for an emptied db, dropped)."""
    replies = _checked(pipelined(client, [("RANDOMKEY",)] * count))
    return [key for key in replies if key is not None]


def scan_keys(client: redis.Redis, *, cursor: int, budget: int | None) -> Iterator[str]:
    """Keys from SCAN starting at ``cursor`` until it wraps to 0 or ``budget`` keys were seen.

    With a budget, a scan that wraps goes on from 0 (a random start is mid-table).
    The number of SCAN calls is bounded too: a sparse table may return few keys per call.
    """
    seen = 0
    calls_left = None if budget is None else 2 * (budget // SCAN_COUNT + 1)
    while True:
        cursor, keys = client.scan(cursor=cursor, count=SCAN_COUNT)
        yield from cast(list[str], keys)  # decode_responses=True: str
        seen += len(keys)
        if calls_left is not None:
            calls_left -= 1
        if budget is None and int(cursor) == 0:
            return
        if budget is not None and (seen >= budget or not calls_left):
            return


def measure_keys(client: redis.Redis, keys: Sequence[str], *, lfu: bool) -> list[KeyStat]:
    """TTL, MEMORY USAGE and OBJECT IDLETIME (or FREQ under LFU) per key, pipelined.

    None of these commands touches the key, so measuring does not reset idle times.
    Keys that vanished meanwhile (TTL -2, no MEMORY USAGE) are dropped.
    """
    sub = "FREQ" if lfu else "IDLETIME"
    stats: list[KeyStat] = []
    for chunk in _chunks(keys, MEASURE_BATCH):
        commands: list[tuple[str | bytes, ...]] = []
        for key in chunk:
            raw = key_bytes(key)
            commands += (("TTL", raw), ("MEMORY", "USAGE", raw), ("OBJECT", sub, raw))
        replies = pipelined(client, commands)
        for index, key in enumerate(chunk):
            ttl, size, age = replies[3 * index : 3 * index + 3]
            stat = key_stat(key, ttl=ttl, size=size, age=age, lfu=lfu)
            if stat is not None:
                stats.append(stat)
    return stats


def pipelined(client: redis.Redis, commands: Sequence[tuple[str | bytes, ...]]) -> list[Any]:
    """Send ``commands`` in one write on one connection and read every reply.

    Error replies are returned in place, not raised. Done by hand because redis-py's
    Pipeline costs several times more per command, which shows on a full scan.
    """
    conn: Any = client.connection_pool.get_connection()  # redis-py: untyped
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        return [_read_reply(conn) for _ in commands]
    except BaseException:
        conn.disconnect()  # replies may still be pending: never reuse it out of step
        raise
    finally:
        client.connection_pool.release(conn)


def _read_reply(conn: Any) -> Any:
    """One reply; an error reply is returned (the stream stays in step), not raised."""
    try:
        return conn.read_response()
    except ResponseError as err:
        return err


def key_stat(key: str, *, ttl: Any, size: Any, age: Any, lfu: bool) -> KeyStat | None:
    """One KeyStat from raw replies; None when the key vanished.

    An error on TTL or MEMORY USAGE (ACL, renamed command) is raised; an error on
    OBJECT (policy changed mid-read) only loses the idle time.
    """
    _checked((ttl, size))
    if ttl == -2 or size is None:
        return None
    value = age if isinstance(age, int) and age >= 0 else None
    if lfu:
        return KeyStat(key=key, ttl=int(ttl), bytes=int(size), freq=value)
    return KeyStat(key=key, ttl=int(ttl), bytes=int(size), idle_seconds=value)


def _checked(replies: Sequence[Any]) -> Sequence[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
