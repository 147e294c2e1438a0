"""Builders shared by the cluster health tests: a cluster target, one shard filled."""

from __future__ import annotations

import redis

from bot.config import Target
from bot.redisinfo.cluster import discover, primaries
from bot.redisproc_cluster import RedisClusterProcs
from bot.shards import Shard

SMALL = ("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
HOT = "session:{hot}:"  # one hash tag: every key on one shard


def cluster_target(cluster: RedisClusterProcs | None, *seeds: str) -> Target:
    """``sessions``, mode cluster, seeded with ``seeds`` or every node of ``cluster``."""
    urls = list(seeds) or (cluster.seed_urls if cluster is not None else [])
    return Target.model_validate(
        {"name": "sessions", "mode": "cluster", "seeds": urls, "channel": "C0ALERTS"}
    )


def owner(target: Target, key: str) -> tuple[Shard, str]:
    """The shard serving ``key`` and its primary's URL."""
    topology = discover(target, timeout=2)
    client = redis.Redis.from_url(target.seed_urls()[0])
    slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
    client.close()
    return next(
        (shard, url)
        for shard, url in primaries(target, topology)
        if any(first <= slot <= last for first, last in shard.slots)
    )


def fill(url: str, ratio: float, *, prefix: str = HOT) -> None:
    """Write ``session:{hot}:N`` keys (or ``prefix``'s, whose hash tag that primary
    serves) on the primary at ``url`` until used/max > ``ratio``."""
    client = redis.Redis.from_url(url)
    n = 0
    while True:
        memory = client.info("memory")
        if memory["used_memory"] > ratio * memory["maxmemory"]:
            break
        with client.pipeline(transaction=False) as pipe:
            for _ in range(50):
                pipe.set(f"{prefix}{n}", b"s" * 900)
                n += 1
            pipe.execute()
    client.close()
