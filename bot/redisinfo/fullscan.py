"""Full mode: every session key via SCAN MATCH, measured inside Redis, paced by Redis.

Per SCAN batch one short Lua script does the SCAN and reads TTL, MEMORY USAGE and
OBJECT IDLETIME/FREQ of each matching key, returning a flat array: about three
times faster than pipelining the same commands from Python (see
docs/decisions/sampling.md). The script also returns the Redis time it took, which
the pacer (``bot.redisinfo.pacing``) charges against the scan's budget and sizes the
next batch by. Where scripting is disabled (renamed EVAL/EVALSHA, ACL without
@scripting) it falls back to SCAN + a pipeline per batch.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import redis
from redis.exceptions import (
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ResponseError,
)

from bot.redisinfo.ops_scripts import Script
from bot.redisinfo.pacing import DEFAULT_BUDGET, Pacer, RatePacer, ScanPacer, redis_busy
from bot.redisinfo.pacing import TokenBucket as TokenBucket  # the key actions import it here
from bot.redisinfo.sampling import measure_keys
from bot.redisinfo.snapshot import KeySample, KeyStat, ProgressFn

# One SCAN batch; KEYS stays empty (non-cluster). ARGV: cursor, pattern, count, lfu.
# TTL, MEMORY USAGE and OBJECT do not touch keys, so idle times are not reset.
# Plain (no shebang) on purpose: it runs on Redis 5-7 and, being read-only, is not
# refused when Redis is at maxmemory -- the very moment the bot is needed.
# Reply: {cursor, microseconds the script ran, JSON [key, ttl, bytes, idle, ...]}.
# TIME is read live inside a script (it is not frozen like the keys' clock) and, with
# no write after it, allowed on every version. The keys come as one JSON string (the
# cjson library every Redis since 2.6 bundles) because redis-py parses RESP in Python
# at ~1 us an element, four elements a key: json.loads in C is several times faster,
# for ~10% more Redis time (measured in bench/keyspace.py). cjson escapes quotes,
# backslashes and control bytes and passes other bytes through, so a binary key name
# read back with surrogateescape is the same bytes.
BATCH_SCRIPT = Script("""
local t0 = redis.call('TIME')
local scan = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local sub = 'IDLETIME'
if ARGV[4] == '1' then sub = 'FREQ' end
local out = {}
local n = 0
for _, key in ipairs(scan[2]) do
  local ttl = redis.call('TTL', key)
  if ttl ~= -2 then
    local age = redis.pcall('OBJECT', sub, key)
    if type(age) ~= 'number' then age = -1 end
    out[n + 1] = key
    out[n + 2] = ttl
    out[n + 3] = redis.call('MEMORY', 'USAGE', key) or 0
    out[n + 4] = age
    n = n + 4
  end
end
local json = '[]'
if n > 0 then json = cjson.encode(out) end
local t1 = redis.call('TIME')
return {scan[1], (t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2]), json}
""")
# What the script's own TIME misses: the call's dispatch and the reply's encoding
# (INFO commandstats measured 4-6% above the script's figure here).
SCRIPT_OVERHEAD = 1.1
# The fallback's batch: a pipeline is not atomic (Redis serves other clients between
# its reads of 16 KB), so its size does not hold anyone up; its round trip is charged.
FALLBACK_BATCH = 250


class ScriptingUnavailable(Exception):
    """EVAL/EVALSHA are renamed away, denied by an ACL, or refused: use the fallback."""


def scan_sessions(
    client: redis.Redis,
    *,
    pattern: str,
    dbsize: int,
    lfu: bool,
    budget: float = DEFAULT_BUDGET,
    progress: ProgressFn | None = None,
    use_scripting: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    pacer: Pacer | None = None,
) -> KeySample:
    """Measure every key matching ``pattern``, using at most ``budget`` of Redis's time.

    ``progress(scanned, total)`` is called after each batch; ``scanned`` counts the
    keys SCAN looked at (about COUNT per call) and is at most ``total`` (the DBSIZE
    read before the scan, which may be 0). ``use_scripting=False`` forces the
    pipeline fallback (benchmarks); ``clock``/``sleep`` pace it, unless a ``pacer``
    is given (tests, benchmarks: it keeps its PaceStats).
    """
    pacer = pacer or ScanPacer(budget, clock=clock, sleep=sleep)
    scan = SessionScan(client, pattern=pattern, lfu=lfu, pacer=pacer, clock=clock)
    batches = scan.lua_batches() if use_scripting else scan.pipeline_batches()
    found: dict[str, KeyStat] = {}
    for stats in batches:
        found.update((stat.key, stat) for stat in stats)  # SCAN may repeat a key
        report_progress(progress, scan.scanned, dbsize)
    report_progress(progress, dbsize, dbsize, done=True)
    return full_sample(found, pattern=pattern, dbsize=dbsize, method=scan.method)


def report_progress(
    progress: ProgressFn | None, scanned: int, dbsize: int, *, done: bool = False
) -> None:
    """After a batch, ``progress(scanned, dbsize)`` while below the DBSIZE read before the
    scan (SCAN's COUNTs overshoot it); ``done``: SCAN has looked at every key."""
    if progress is None:
        return
    if done:
        progress(dbsize, dbsize)
    elif scanned < dbsize:
        progress(scanned, dbsize)


def full_sample(found: dict[str, KeyStat], *, pattern: str, dbsize: int, method: str) -> KeySample:
    """A full scan's keys (``found``, by name) as its KeySample: every key measured."""
    keys = tuple(found.values())
    return KeySample("full", pattern, keys, max(dbsize, len(keys)), len(keys), len(keys), method)


def scan_batches(
    client: redis.Redis,
    *,
    pattern: str,
    lfu: bool,
    rate: int | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[KeyStat]]:
    """The measured keys matching ``pattern``, one SCAN batch at a time (streaming).

    The same Lua-per-batch scan as ``scan_sessions`` (pipeline fallback included),
    for the key actions, which keep only some keys and are held to ``rate`` keys a
    second (None: no limit). A key may appear twice (SCAN may repeat one).
    """
    pacer = RatePacer(rate, clock=clock, sleep=sleep)
    return SessionScan(client, pattern=pattern, lfu=lfu, pacer=pacer, clock=clock).lua_batches()


class SessionScan:
    """The SCAN batches of one full scan, measured by Lua or by pipelines."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        pattern: str,
        lfu: bool,
        pacer: Pacer,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.clock = clock  # times the fallback's round trips
        self.pattern = pattern
        self.lfu = lfu
        self.pacer = pacer
        self.scanned = 0  # keys SCAN was asked to look at so far (the COUNTs sent)
        self.method = "scan+pipeline"  # becomes scan+lua while the script does the work

    def lua_batches(self) -> Iterator[list[KeyStat]]:
        """Batches measured by the script, one call kept in flight; else the fallback.

        Redis runs the script for batch n+1 while Python unpacks batch n: the reply's
        first element (the cursor) is all the next call needs. The pacer's pause and
        PING come between reading one reply and sending the next call, when nothing
        of ours is queued in Redis.
        """
        conn: Any = self.client.connection_pool.get_connection()  # redis-py: untyped
        scan = ScriptedScan(conn, pattern=self.pattern, lfu=self.lfu, pacer=self.pacer)
        try:
            self.pacer.wait(ping=scan.ping)
            scan.send()
            while True:
                try:
                    reply = scan.receive()
                except (BusyLoadingError, ResponseError) as err:
                    refusal = scan.refusal(err)
                    if refusal is Refusal.FALLBACK:  # refused (at first, or e.g. at maxmemory)
                        self.method = "scan+pipeline"
                        yield from self.pipeline_batches(cursor=scan.cursor)
                        return
                    if refusal is Refusal.FATAL or (
                        refusal is Refusal.RETRY and not self.pacer.retry(err)
                    ):
                        raise
                    scan.send(load=refusal is Refusal.RELOAD)
                    continue
                self.method = "scan+lua"
                self.scanned += scan.count
                more = scan.take(reply)
                if more:
                    self.pacer.wait(ping=scan.ping)
                    scan.send()
                yield unpack_reply(reply, lfu=self.lfu)
                if not more:
                    return
        finally:
            if scan.in_flight:  # abandoned with a reply pending: the connection is out of step
                conn.disconnect()
            self.client.connection_pool.release(conn)

    def pipeline_batches(self, *, cursor: int = 0) -> Iterator[list[KeyStat]]:
        """Batches measured by SCAN + a pipeline of per-key commands (the fallback)."""
        while True:
            self.pacer.wait(ping=self.client.ping)
            started = self.clock()
            try:
                next_cursor, keys = self.client.scan(
                    cursor=cursor, match=self.pattern, count=FALLBACK_BATCH
                )
                stats = measure_keys(self.client, cast(list[str], keys), lfu=self.lfu)
            except (BusyLoadingError, ResponseError) as err:
                if not self.pacer.retry(err):
                    raise
                continue
            self.pacer.charge(self.clock() - started)  # the round trip: at least Redis's time
            self.scanned += FALLBACK_BATCH
            yield stats
            cursor = int(next_cursor)
            if cursor == 0:
                return


class Refusal(enum.Enum):
    """What an error reply to a script call means for the scan."""

    RELOAD = "the script was flushed: send it again by its text (EVAL loads it)"
    RETRY = "LOADING/BUSY: the same batch again after the pacer's pause"
    FALLBACK = "scripting is refused here: go on from this cursor with pipelines"
    FATAL = "anything else: the scan fails with it"


class ScriptedScan:
    """One node's scripted scan as steps on a held connection, one call in flight.

    The steps are run by a driver: ``SessionScan.lua_batches`` (one node, blocking) or
    ``bot.redisinfo.multiscan`` (every shard of a cluster from one thread). The driver
    asks the pacer when to send; this keeps the cursor, the call in flight and its COUNT.
    """

    def __init__(self, conn: Any, *, pattern: str, lfu: bool, pacer: Pacer) -> None:
        self.conn = conn  # a redis-py Connection (untyped), held for the whole scan
        self.pattern = pattern
        self.lfu = lfu
        self.pacer = pacer
        self.cursor = 0  # of the call in flight, or of the next one
        self.count = 0  # COUNT of the call in flight, or of the last one
        self.in_flight = False

    def send(self, *, load: bool = False) -> None:
        """Send the batch at ``cursor`` (EVALSHA; EVAL with the text when ``load``)."""
        self.count = self.pacer.count
        script = ("EVAL", BATCH_SCRIPT.text) if load else ("EVALSHA", BATCH_SCRIPT.sha)
        args = (self.cursor, self.pattern, self.count, "1" if self.lfu else "0")
        self.conn.send_command(*script, 0, *args)
        self.in_flight = True

    def receive(self) -> list[Any]:
        """The reply to the call in flight (blocking); an error reply raises, in step."""
        try:
            reply = self.conn.read_response()
        except (BusyLoadingError, ResponseError):
            self.in_flight = False  # an error reply: the connection is still in step
            raise
        self.in_flight = False
        return cast(list[Any], reply)

    def take(self, reply: list[Any]) -> bool:
        """Charge a reply's Redis time to the pacer and move on; False at the last batch."""
        self.pacer.record(self.count, int(reply[1]) * SCRIPT_OVERHEAD / 1e6)
        self.cursor = int(reply[0])
        return self.cursor != 0

    def ping(self) -> None:
        """PING on the held connection, with nothing in flight (the pacer's probe)."""
        self.conn.send_command("PING")
        self.conn.read_response()

    @staticmethod
    def refusal(err: BusyLoadingError | ResponseError) -> Refusal:
        """What the error reply ``err`` to a batch means."""
        if isinstance(err, NoScriptError):
            return Refusal.RELOAD
        if isinstance(err, ResponseError) and scripting_refused(err):
            return Refusal.FALLBACK
        return Refusal.RETRY if redis_busy(err) else Refusal.FATAL


def unpack_reply(reply: list[Any], *, lfu: bool) -> list[KeyStat]:
    """The script's reply ``[cursor, usec, '[key, ttl, bytes, idle, ...]']`` as KeyStats.

    A hot loop (a million keys): no helpers per key. The script ran atomically and
    already dropped keys that vanished; an unavailable idle/freq is -1. The JSON
    arrives decoded with surrogateescape (``connect()``), so binary keys survive.
    """
    flat = iter(json.loads(reply[2]))
    if lfu:
        return [
            KeyStat(key, ttl, size, None, age if age >= 0 else None)
            for key, ttl, size, age in zip(flat, flat, flat, flat, strict=True)
        ]
    return [
        KeyStat(key, ttl, size, age if age >= 0 else None, None)
        for key, ttl, size, age in zip(flat, flat, flat, flat, strict=True)
    ]


def eval_script(
    call: Callable[..., Any], script: Script, keys: Sequence[Any], *args: Any
) -> list[Any]:
    """Run ``script`` through ``call`` (a client's ``execute_command``, a held connection's
    ``call``): EVALSHA, loading it on NOSCRIPT; ScriptingUnavailable when refused here."""
    try:
        try:
            reply = call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            reply = call("EVAL", script.text, len(keys), *keys, *args)
    except ResponseError as err:
        if scripting_refused(err):
            raise ScriptingUnavailable(str(err)) from err
        raise
    return cast(list[Any], reply)


def scripting_refused(err: ResponseError) -> bool:
    """True when ``err`` says scripts may not run here (renamed, ACL, OOM): fall back."""
    # Redis 7.0-7.2 let a plain read-only script run at maxmemory; other versions may
    # not, and the pipeline fallback is read-only commands that always run.
    if isinstance(err, NoPermissionError | OutOfMemoryError):
        return True
    text = str(err).lower()
    return any(
        sign in text
        for sign in ("unknown command", "noperm", "no permissions", "can't run this command")
    )
