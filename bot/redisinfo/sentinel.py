"""Sentinel targets: the current primary, asked of the sentinels on every check, diagnosis and fix.

Nothing is cached between two readings: a failover between two checks only changes the
primary the next one reports (docs/decisions/sentinel.md). The sentinels are asked in
the order the targets file lists them, the check's timeout shared among those not yet
asked, so one hung sentinel costs a share of it, never the whole check. A sentinel
that names a primary it holds for down (``s_down``, ``o_down``) is passed over: the
next may already know the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from bot.clock import utc_now
from bot.config import Target
from bot.errors import ConfigError, RedisMemError, RedisUnavailable
from bot.redisinfo.client import DEFAULT_TIMEOUT, client_for, connect, redis_errors
from bot.redisinfo.nodes import ask_in_turn, node_url, reply_map, where
from bot.redisinfo.pacing import DEFAULT_BUDGET
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.snapshot import ProgressFn, Snapshot
from bot.replication import ReplicaLag, SentinelReading

MAX_REPLICAS = 16  # replicas whose offset a diagnosis reads (each one connection)
_DOWN_FLAGS = ("s_down", "o_down", "disconnected")


@dataclass(frozen=True)
class Discovery:
    """What one sentinel said: the primary, and (when asked) the replicas' states."""

    primary: str  # host:port
    sentinel: str  # host:port of the sentinel that answered
    replicas: tuple[Mapping[str, str], ...] = ()


def target_url(target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The URL to connect to ``target``'s data with: its own, or its current primary's.

    Secret (a password may be in it): never show it. Raises ConfigError (a password
    variable unset) or RedisUnavailable (no sentinel answered).
    """
    if target.mode != "sentinel":
        return target.connection_url()
    return primary_url(target, timeout=timeout)


def primary_url(target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The connection URL of the primary the sentinels name now (``target_url``'s rules)."""
    return node_url(target, discover(target, timeout=timeout).primary)


def discover(target: Target, *, timeout: float, replicas: bool = False) -> Discovery:
    """Ask the sentinels in order for ``target``'s primary (and its replicas).

    The first sentinel that answers with a primary it holds for up wins. None does:
    one-line RedisUnavailable, ``no sentinel of prod answered: <each one's reason>``.
    """
    if target.mode != "sentinel" or target.master_name is None:
        raise ConfigError(f"target {target.name!r} is not a sentinel target")
    master = target.master_name
    return ask_in_turn(
        target.sentinel_urls(),
        lambda url, budget: _ask(url, master, timeout=budget, replicas=replicas),
        timeout=timeout,
        none_answered=f"no sentinel of {target.name} answered",
    )


def _ask(url: str, master: str, *, timeout: float, replicas: bool) -> Discovery:
    client = client_for(url, timeout=timeout)  # no PING first: one round trip fewer
    try:
        with redis_errors(url, timeout=timeout):
            state = _pairs(_sentinel_command(client, "MASTER", master))
            listed = _sentinel_command(client, "REPLICAS", master) if replicas else []
    finally:
        client.close()
    primary = _address(state)
    flags = state.get("flags", "").split(",")
    down = [flag for flag in flags if flag in _DOWN_FLAGS]
    if down:
        raise RedisUnavailable(f"names {primary} but holds it for down ({','.join(down)})")
    if "master" not in flags:
        raise RedisUnavailable(f"names {primary}, which is not a primary ({','.join(flags)})")
    return Discovery(primary, where(url), tuple(_pairs(item) for item in listed[:MAX_REPLICAS]))


def _address(state: Mapping[str, str]) -> str:
    """host:port of a node as a sentinel lists it (a primary, a replica)."""
    return f"{state.get('ip', '?')}:{state.get('port', '?')}"


def _sentinel_command(client: redis.Redis, *args: str) -> Any:
    # Sent as SENTINEL plus arguments, never "SENTINEL MASTER": redis-py's parsers for the
    # joined names differ between its versions (a dict, a bool); _pairs reads either.
    run: Callable[..., Any] = client.execute_command
    return run("SENTINEL", *args)


def _pairs(reply: Any) -> dict[str, str]:
    """A sentinel state reply as a dict of strings (``reply_map`` reads either shape)."""
    return {key: str(value) for key, value in reply_map(reply).items()}


# --- the diagnosis' reading -----------------------------------------------------------------


class SentinelProbe:
    """``RedisProbe`` of a ``mode: sentinel`` target: the current primary's snapshot, with
    the primary named and each replica's lag (``Snapshot.sentinel``)."""

    def __init__(
        self,
        *,
        target: Target,
        scan_budget: float = DEFAULT_BUDGET,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = target.name
        self._target = target
        self._scan_budget = scan_budget
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"SentinelProbe(name={self.name!r})"

    def snapshot(
        self,
        *,
        pattern: str,
        sample_size: int,
        full: bool = False,
        progress: ProgressFn | None = None,
    ) -> Snapshot:
        """Ask the sentinels, snapshot the primary they name, then read the replicas' lag."""
        found = discover(self._target, timeout=self._timeout, replicas=True)
        url = node_url(self._target, found.primary)
        probe = LiveRedisProbe(
            name=self.name,
            url=url,
            scan_budget=self._scan_budget,
            timeout=self._timeout,
            clock=self._clock,
        )
        snapshot = probe.snapshot(
            pattern=pattern, sample_size=sample_size, full=full, progress=progress
        )
        reading = SentinelReading(
            master_name=self._target.master_name or "",
            primary=found.primary,
            sentinel=found.sentinel,
            replicas=self._lags(url, found.replicas),
        )
        return replace(snapshot, sentinel=reading)

    def _lags(self, primary: str, states: tuple[Mapping[str, str], ...]) -> tuple[ReplicaLag, ...]:
        # The replicas first, the primary's offset last: its offset only grows, so a lag
        # read this way is never negative (at worst it counts the writes in between).
        offsets = [self._replica_offset(state) for state in states]
        try:
            head = _offset(primary, "master_repl_offset", self._timeout)
        except RedisMemError as err:
            head, offsets = None, [(None, f"primary unreadable: {err.message}")] * len(states)
        return tuple(
            _lag(state, offset, head, error)
            for state, (offset, error) in zip(states, offsets, strict=True)
        )

    def _replica_offset(self, state: Mapping[str, str]) -> tuple[int | None, str | None]:
        address = _address(state)
        try:
            url = node_url(self._target, address)
            return _offset(url, "slave_repl_offset", self._timeout), None
        except RedisMemError as err:
            return None, err.message


def _offset(url: str, field: str, timeout: float) -> int | None:
    client: redis.Redis = connect(url, timeout=timeout)
    try:
        with redis_errors(url, timeout=timeout):
            value = client.info("replication").get(field)
    finally:
        client.close()
    return None if value is None else int(value)


def _lag(
    state: Mapping[str, str], offset: int | None, head: int | None, error: str | None
) -> ReplicaLag:
    address = _address(state)
    down = [flag for flag in state.get("flags", "").split(",") if flag in _DOWN_FLAGS]
    link = ",".join(down) if down else ("up" if state.get("master-link-status") == "ok" else "down")
    if offset is None or head is None:
        return ReplicaLag(address, link, None, error or "no replication offset")
    return ReplicaLag(address, link, max(head - offset, 0))
