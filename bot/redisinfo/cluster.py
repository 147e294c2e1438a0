"""Redis Cluster targets: the primaries, discovered from the seeds on every reading.

``CLUSTER SHARDS`` (Redis 7.0 on) or ``CLUSTER NODES`` (before), and ``CLUSTER INFO``'s
``cluster_state``, asked of the seeds in the order the targets file lists them, the
reading's timeout shared among those not yet asked (as the sentinels are: one hung seed
costs its share, never the whole check). Nothing is cached: a failover or a resharding
between two readings shows in the next one (docs/decisions/cluster.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import ResponseError

from bot.config import Target
from bot.errors import ConfigError, RedisUnavailable
from bot.redisinfo.client import DEFAULT_TIMEOUT, client_for, redis_errors
from bot.redisinfo.nodes import ask_in_turn, node_url, reply_map, where
from bot.shards import Shard, Topology

MAX_SHARDS = 500  # Redis Cluster's own advice is at most 1000 nodes; a diagnosis reads each
_DOWN_FLAGS = ("fail", "fail?", "noaddr", "handshake")


def discover(target: Target, *, timeout: float = DEFAULT_TIMEOUT) -> Topology:
    """Ask the seeds in order for ``target``'s shards and state.

    The first seed that answers wins. None does: one-line RedisUnavailable,
    ``no seed of sessions answered: <each one's reason>``. A seed that is not in cluster
    mode is a ConfigError (a standalone server listed as a seed is a mistake in the file).
    """
    if target.mode != "cluster":
        raise ConfigError(f"target {target.name!r} is not a cluster target")
    return ask_in_turn(
        target.seed_urls(),
        lambda url, budget: _ask(url, timeout=budget),
        timeout=timeout,
        none_answered=f"no seed of {target.name} answered",
        fatal=(ConfigError,),
    )


def primaries(target: Target, topology: Topology) -> list[tuple[Shard, str]]:
    """Each shard with the connection URL of its primary (secret: never show it)."""
    return [(shard, node_url(target, shard.primary)) for shard in topology.shards]


def _ask(url: str, *, timeout: float) -> Topology:
    client = client_for(url, timeout=timeout)  # no PING first: one round trip fewer
    try:
        with redis_errors(url, timeout=timeout):
            info = _command(client, "CLUSTER", "INFO")
            shards = _readable(url, lambda: _shards(client, tls=url.startswith("rediss://")))
    except RedisUnavailable as err:
        if "cluster support disabled" in err.message.lower():
            raise ConfigError(f"seed {where(url)} is not in cluster mode") from None
        raise
    finally:
        client.close()
    state = _info_field(info, "cluster_state") or "unknown"
    return Topology(state=state, seed=where(url), shards=shards)


def _readable(url: str, read: Callable[[], tuple[Shard, ...]]) -> tuple[Shard, ...]:
    """``read()``, or one line when the seed's reply is not what Redis sends (a proxy, a
    fork): int() of a slot that is not a number must not end the check in a traceback."""
    try:
        return read()
    except (ValueError, TypeError, IndexError, AttributeError):
        raise RedisUnavailable(
            f"seed {where(url)} sent a CLUSTER SHARDS/NODES reply that cannot be read"
        ) from None


def _shards(client: redis.Redis, *, tls: bool) -> tuple[Shard, ...]:
    try:
        reply = _command(client, "CLUSTER", "SHARDS")
    except ResponseError as err:
        if "unknown" not in str(err).lower():  # a 6.x server has no CLUSTER SHARDS
            raise
        return from_nodes(str(_command(client, "CLUSTER", "NODES")))
    return from_shards(reply, tls=tls)


def _command(client: redis.Redis, *args: str) -> Any:
    run: Callable[..., Any] = client.execute_command
    return run(*args)


def from_shards(reply: Any, *, tls: bool = False) -> tuple[Shard, ...]:
    """``CLUSTER SHARDS`` as shards: RESP2's flat name/value pairs (``reply_map``).

    ``tls``: the seeds are ``rediss://``, so a node's ``tls-port`` is the one to dial (a
    node may list a plaintext ``port`` beside it)."""
    shards = []
    for entry in reply if isinstance(reply, list) else []:
        item = reply_map(entry)
        bounds = [int(x) for x in item.get("slots", [])]
        ranges = tuple(sorted(zip(bounds[::2], bounds[1::2], strict=False)))
        nodes = [reply_map(node) for node in item.get("nodes", [])]
        primary = next((n for n in nodes if str(n.get("role")) == "master"), None)
        if not ranges or primary is None:  # serves nothing (an empty or orphaned node)
            continue
        replicas = tuple(_address(n, tls=tls) for n in nodes if n is not primary)
        healthy = str(primary.get("health", "online")) == "online"
        shards.append(Shard(_address(primary, tls=tls), ranges, replicas, healthy))
    return _ordered(shards)


def from_nodes(text: str) -> tuple[Shard, ...]:
    """``CLUSTER NODES`` as shards: the primaries that serve slots, their replicas."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    replicas: dict[str, list[str]] = {}
    for row in rows:
        if len(row) >= 8 and row[3] != "-":
            replicas.setdefault(row[3], []).append(_node_address(row[1]))
    shards = []
    for row in rows:
        if len(row) < 8 or "master" not in row[2].split(","):
            continue
        ranges = tuple(sorted(_slot_range(field) for field in row[8:] if not field.startswith("[")))
        if not ranges:
            continue
        down = any(flag in _DOWN_FLAGS for flag in row[2].split(",")) or row[7] != "connected"
        address = _node_address(row[1])
        shards.append(Shard(address, ranges, tuple(replicas.get(row[0], ())), not down))
    return _ordered(shards)


def _ordered(shards: Sequence[Shard]) -> tuple[Shard, ...]:
    if len(shards) > MAX_SHARDS:  # every seed would say the same: not worth asking the next
        raise ConfigError(
            f"the cluster has {len(shards)} shards; redis-mem reads at most {MAX_SHARDS}"
        )
    return tuple(sorted(shards, key=lambda s: s.slots[0]))


def _slot_range(field: str) -> tuple[int, int]:
    first, _, last = field.partition("-")
    return int(first), int(last or first)


def _node_address(field: str) -> str:
    """``127.0.0.1:7001@17001,hostname`` -> ``127.0.0.1:7001``."""
    return field.split("@", 1)[0].split(",", 1)[0]


def _address(node: Mapping[str, Any], *, tls: bool) -> str:
    host = str(node.get("ip") or node.get("endpoint") or "?")
    ports = ("tls-port", "port") if tls else ("port", "tls-port")
    return f"{host}:{node.get(ports[0]) or node.get(ports[1]) or '?'}"


def _info_field(info: Any, field: str) -> str | None:
    """A field of ``CLUSTER INFO``'s text (redis-py leaves it unparsed: its parser is keyed
    by the joined name, and the words are sent apart)."""
    for line in str(info).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    return None
