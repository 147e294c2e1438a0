"""A cluster target diagnosed shard by shard and as a whole, against a real 3-primary cluster."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from bot.config import Target, Thresholds
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Severity
from bot.errors import RedisUnavailable
from bot.redisinfo.cluster_probe import ClusterProbe
from bot.redisproc_cluster import RedisClusterProcs
from tests.clirun import invoke_cli
from tests.conftest import ClusterFactory

HOT_KEYS = 4000
VALUE = "x" * 4000  # 4,000 of these: ~17 MB on one shard, far past the skew's 8 MB floor


def cluster_target(cluster: RedisClusterProcs) -> Target:
    return Target.model_validate(
        {"name": "sessions", "mode": "cluster", "seeds": cluster.seed_urls[:1]}
    )


def owner(cluster: RedisClusterProcs, key: str) -> int:
    """The index of the node whose slots hold ``key`` (asked of Redis: CLUSTER KEYSLOT)."""
    client = redis.Redis.from_url(cluster.seed_urls[0])
    slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
    client.close()
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    return next(i for i, (low, high) in enumerate(ranges) if low <= slot <= high)


def fill_hot_shard(cluster: RedisClusterProcs) -> int:
    """``session:{hot}:N`` without TTL on one shard, a few TTL'd sessions on every shard;
    returns the hot node's index."""
    hot = owner(cluster, "session:{hot}:0")
    node = redis.Redis.from_url(cluster.seed_urls[hot])
    pipe = node.pipeline(transaction=False)
    for n in range(HOT_KEYS):
        pipe.set(f"session:{{hot}}:{n}", VALUE)
    pipe.execute()
    node.close()
    spread = redis.RedisCluster.from_url(cluster.seed_urls[0])
    for n in range(300):
        spread.set(f"session:user{n}", "y" * 100, ex=3600)
    spread.close()
    return hot


def info_used_memory(cluster: RedisClusterProcs) -> int:
    total = 0
    for url in cluster.seed_urls:
        client = redis.Redis.from_url(url)
        total += int(client.info("memory")["used_memory"])
        client.close()
    return total


def test_a_hash_tag_filled_shard_is_named_first_and_skewed(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory()
    hot = fill_hot_shard(cluster)
    hot_address = cluster.nodes[hot].address
    snapshot = ClusterProbe(target=cluster_target(cluster), timeout=5).snapshot(
        pattern="session:*", sample_size=500
    )
    measured = info_used_memory(cluster)
    # The whole is the sum of the primaries' INFO used_memory (our own reads drift it a little).
    assert abs(snapshot.memory.used_memory - measured) < 1024**2
    assert snapshot.dbsize == HOT_KEYS + 300

    result = diagnose(snapshot, Thresholds())
    first = result.shards[0]
    assert first.shard.primary == hot_address and len(result.shards) == 3
    # The no-TTL scenario is on that shard only; the whole names the shard it was seen on.
    assert first.scenario_ids.count("ttl-leak") == 1
    assert all("ttl-leak" not in s.scenario_ids for s in result.shards[1:])
    leak = next(s for s in result.scenarios if s.id == "ttl-leak")
    assert leak.evidence[-1] == f"on shard {first.label}"
    [skew] = [f for f in result.findings if f.id == "shard-skew"]
    assert skew.message.startswith(f"shard {first.name} ({hot_address}) holds ")
    assert "x the shards' mean used_memory" in skew.message
    assert "hash tag {hot}" in skew.message and "hot slot or hash-tag abuse" in skew.message
    assert result.severity is Severity.WARNING

    targets = tmp_path / "targets.yaml"
    targets.write_text(
        f"targets:\n  - name: sessions\n    mode: cluster\n    seeds: [{cluster.seed_urls[1]}]\n"
    )
    env = {"REDIS_MEM_TARGETS_FILE": str(targets), "REDIS_MEM_CHECK_TIMEOUT": "5"}
    done = invoke_cli("diagnose", "--target", "sessions", "--json", env=env)
    doc = json.loads(done.stdout)
    assert doc["cluster"]["state"] == "ok" and doc["cluster"]["problem"] is None
    shards = doc["cluster"]["shards"]
    assert shards[0]["primary"] == hot_address
    assert shards[0]["scenarios"].count("ttl-leak") == 1 and shards[0]["error"] is None
    assert sum(s["slots"] for s in shards) == 16384
    assert doc["used_memory"] == sum(s["used_memory"] for s in shards)
    assert "shard-skew" in [f["id"] for f in doc["findings"]]
    table = invoke_cli("diagnose", "--target", "sessions", env=env)
    assert "Shards (worst first)" in table.stdout and hot_address in table.stdout


def test_a_stopped_primary_is_a_shard_error_and_the_others_are_diagnosed(
    cluster_factory: ClusterFactory,
) -> None:
    # Without full coverage the other shards keep serving once gossip marks the failed one
    # (with it, they refuse key reads: the next test), so this holds before and after.
    cluster = cluster_factory("--cluster-require-full-coverage", "no")
    spread = redis.RedisCluster.from_url(cluster.seed_urls[0])
    for n in range(90):
        spread.set(f"session:u{n}", "v", ex=600)
    spread.close()
    cluster.nodes[2].stop()
    result = diagnose(
        ClusterProbe(target=cluster_target(cluster), timeout=2).snapshot(
            pattern="session:*", sample_size=100
        ),
        Thresholds(),
    )
    down = result.shards[0]
    assert down.shard.primary == cluster.nodes[2].address and down.diagnosis is None
    assert down.error is not None and "\n" not in down.error
    assert [s.diagnosis is not None for s in result.shards[1:]] == [True, True]
    assert result.severity is Severity.CRITICAL
    [finding] = [f for f in result.findings if f.id == "shard-down"]
    assert finding.message.startswith(f"shard 10923-16383 ({cluster.nodes[2].address}) unreadable")
    # The whole is the two shards that answered.
    assert result.dbsize == sum(s.diagnosis.dbsize for s in result.shards[1:] if s.diagnosis)


def test_a_failed_shard_under_full_coverage_is_named_as_the_cause(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory()  # cluster-require-full-coverage yes: Redis's default
    spread = redis.RedisCluster.from_url(cluster.seed_urls[0])
    for n in range(90):  # keys on every shard: sampling them is what a down cluster refuses
        spread.set(f"session:u{n}", "v", ex=600)
    spread.close()
    cluster.nodes[2].stop()
    probe = ClusterProbe(target=cluster_target(cluster), timeout=2)
    deadline = time.monotonic() + 30  # until gossip marks the shard failed (node timeout 2 s)
    message = ""
    # Until the seed's own view says so too: a node may refuse (CLUSTERDOWN, "The cluster
    # is down") a moment before the seed's CLUSTER INFO reports the failed shard.
    while "the cluster sessions is down" not in message and time.monotonic() < deadline:
        try:
            probe.snapshot(pattern="session:*", sample_size=100)
        except RedisUnavailable as err:
            message = err.message
        time.sleep(0.2)
    # The other primaries refuse key reads (CLUSTERDOWN): the one line leads with the cause.
    down = f"shard 10923-16383 ({cluster.nodes[2].address}) is down"
    assert message.startswith(f"the cluster sessions is down ({down}): no primary could be read")
    assert "\n" not in message


def test_a_full_scan_counts_every_key_of_every_shard(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory()
    spread = redis.RedisCluster.from_url(cluster.seed_urls[0])
    pipe = spread.pipeline()
    for n in range(2500):
        pipe.set(f"session:{n}", "s", ex=600)
    for n in range(400):
        pipe.set(f"other:{n}", "o")
    pipe.execute()
    spread.close()
    reports: list[tuple[int, int]] = []
    threads: set[str] = set()

    def progress(scanned: int, total: int) -> None:
        reports.append((scanned, total))
        threads.add(threading.current_thread().name)

    snapshot = ClusterProbe(target=cluster_target(cluster), timeout=5).snapshot(
        pattern="session:*", sample_size=10, full=True, progress=progress
    )
    assert snapshot.sample.mode == "full"
    assert len(snapshot.sample.keys) == snapshot.sample.session_keys_estimate == 2500
    assert len({k.key for k in snapshot.sample.keys}) == 2500
    assert snapshot.dbsize == 2900
    assert snapshot.cluster is not None
    per_shard = [r.snapshot.sample.matched for r in snapshot.cluster.shards if r.snapshot]
    assert len(per_shard) == 3 and all(n > 0 for n in per_shard) and sum(per_shard) == 2500
    assert reports[-1] == (2900, 2900)  # every shard's last report, added up
    # One thread (the caller's) drives every shard's scan: bot.redisinfo.multiscan.
    assert threads == {threading.current_thread().name}


def test_no_seed_answering_is_the_discoverys_one_line() -> None:
    target = Target.model_validate(
        {"name": "sessions", "mode": "cluster", "seeds": ["redis://:pw@127.0.0.1:1/0"]}
    )
    with pytest.raises(RedisUnavailable) as err:
        ClusterProbe(target=target, timeout=1).snapshot(pattern="session:*", sample_size=10)
    message = err.value.message
    assert message.startswith("no seed of sessions answered: 127.0.0.1:1 ")
    assert "\n" not in message and "pw" not in message
