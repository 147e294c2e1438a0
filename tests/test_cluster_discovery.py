"""Cluster targets: the targets file's ``mode: cluster`` and discovery against a real cluster."""

from __future__ import annotations

import socketserver
import threading
import time

import pytest
import redis
from pydantic import ValidationError

from bot.config import Target, first_error
from bot.errors import ConfigError, RedisUnavailable
from bot.redisinfo.cluster import discover, from_nodes, from_shards, primaries
from bot.shards import SLOTS, Shard, Topology, parent, subject
from tests.conftest import ClusterFactory, RedisFactory


def cluster_target(seeds: list[str], **extra: object) -> Target:
    return Target.model_validate({"name": "sessions", "mode": "cluster", "seeds": seeds, **extra})


def test_discovery_names_each_primary_and_its_slots(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory()
    topology = discover(cluster_target(cluster.seed_urls[1:2]), timeout=2)
    assert topology.state == "ok" and topology.problem is None
    assert [s.primary for s in topology.shards] == [n.address for n in cluster.nodes]
    assert [s.name for s in topology.shards] == ["0-5460", "5461-10922", "10923-16383"]
    assert topology.slots_assigned == SLOTS
    # CLUSTER NODES (the reading before Redis 7.0) says the same as CLUSTER SHARDS.
    client = redis.Redis.from_url(cluster.seed_urls[0], decode_responses=True)
    assert from_nodes(client.execute_command("CLUSTER", "NODES")) == topology.shards
    client.close()


def test_a_dead_seed_costs_its_share_and_the_next_answers(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(password="s3cret")
    dead = "redis://:s3cret@127.0.0.1:1/0"
    target = cluster_target([dead, cluster.seed_urls[2]])
    topology = discover(target, timeout=2)
    assert topology.seed == cluster.nodes[2].address
    urls = [url for _, url in primaries(target, topology)]
    assert urls == cluster.seed_urls  # the seed's credentials lent to every primary


def test_a_stopped_primary_is_a_problem_named_by_its_shard(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory()
    target = cluster_target(cluster.seed_urls[:1])
    cluster.nodes[1].stop()
    problem = None
    deadline = time.monotonic() + 30  # gossip needs the node timeout (2 s) to agree
    while problem is None and time.monotonic() < deadline:
        problem = discover(target, timeout=2).problem
        time.sleep(0.1)
    assert problem == f"shard 5461-10922 ({cluster.nodes[1].address}) is down"


def test_no_seed_answering_is_one_line() -> None:
    target = cluster_target(["redis://127.0.0.1:1/0", "redis://:pw@127.0.0.1:2/0"])
    with pytest.raises(RedisUnavailable) as err:
        discover(target, timeout=1)
    message = err.value.message
    assert message.startswith("no seed of sessions answered: 127.0.0.1:1 ")
    assert "\n" not in message and "pw" not in message


def test_a_standalone_seed_is_a_config_error(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    with pytest.raises(ConfigError, match="is not in cluster mode"):
        discover(cluster_target([server.url]), timeout=2)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"mode": "cluster"}, "mode cluster needs 1-16 seed URLs"),
        ({"seeds": ["redis://h:6379"]}, "only a target with mode: cluster has seeds"),
        ({"mode": "cluster", "seeds": ["http://h"]}, "seed URL 1 must start with redis://"),
        ({"mode": "cluster", "seeds": ["redis://h:6379/3"]}, "must use database 0"),
        ({"mode": "cluster", "seeds": ["redis://h:6379?db=²"]}, "must use database 0"),
        ({"mode": "cluster", "seeds": ["redis://h", "redis://h:1/%31"]}, "seed URL 2 must use"),
        (
            {"mode": "cluster", "seeds": ["redis://h"], "sentinel_password_env": "PW"},
            "only a target with mode: sentinel has sentinel_password_env",
        ),
        (
            {"mode": "cluster", "seeds": ["redis://h"], "redis_url": "redis://h:6379"},
            "has seeds, not a redis_url",
        ),
    ],
)
def test_bad_cluster_entries_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Target.model_validate({"name": "sessions", **entry})


def test_a_seeds_database_is_read_as_redis_py_reads_it() -> None:
    # Percent-decoded as redis-py does (/%30 is database 0), and the error names the field.
    seeds = ("redis://h:6379/%30", "redis://h:6379/?db=0")
    assert Target.model_validate({"name": "s", "mode": "cluster", "seeds": seeds}).seeds == seeds
    with pytest.raises(ValidationError) as err:
        Target.model_validate({"name": "s", "mode": "cluster", "seeds": ["redis://h/2"]})
    assert first_error(err.value).startswith("seeds: seed URL 1 must use database 0")


def test_shards_replies_in_either_shape_and_subject_names() -> None:
    node = ["id", "x", "port", 7001, "ip", "10.0.0.1", "role", "master", "health", "online"]
    replica = ["id", "y", "port", 7004, "ip", "10.0.0.4", "role", "replica", "health", "online"]
    reply = [["slots", [100, 200, 0, 50], "nodes", [node, replica]], ["slots", [], "nodes", []]]
    (shard,) = from_shards(reply)
    tls_node = [*node, "tls-port", 7101]
    assert from_shards([["slots", [0, 50], "nodes", [tls_node]]], tls=True)[0].primary == (
        "10.0.0.1:7101"
    )  # rediss:// seeds dial the TLS port, not the plaintext one beside it
    assert shard == Shard("10.0.0.1:7001", ((0, 50), (100, 200)), ("10.0.0.4:7004",), True)
    assert shard.name == "0-50+1" and shard.slot_count == 152
    unserved = f"{SLOTS - 152} of {SLOTS} slots are served by no shard"
    assert Topology("ok", "s", (shard,)).problem == unserved
    assert parent(subject("sessions", shard.name)) == "sessions" and parent("prod") == "prod"


class OddSeed:
    """A TCP server speaking just enough RESP to be asked for a cluster: its CLUSTER
    SHARDS reply has slots that are not numbers (a proxy or a fork answering oddly)."""

    SHARDS = b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n$5\r\nnodes\r\n*0\r\n"

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"redis://127.0.0.1:{self.server.server_address[1]}/0"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        shards = self.SHARDS

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while line := self.rfile.readline():
                    words = [self._bulk() for _ in range(int(line[1:]))]
                    if words[:2] == [b"CLUSTER", b"INFO"]:
                        self.wfile.write(b"$18\r\ncluster_state:ok\r\n\r\n")
                    elif words[:2] == [b"CLUSTER", b"SHARDS"]:
                        self.wfile.write(shards)
                    else:  # CLIENT SETINFO and the like
                        self.wfile.write(b"+OK\r\n")

            def _bulk(self) -> bytes:
                size = int(self.rfile.readline()[1:])
                return self.rfile.read(size + 2)[:size].upper()

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_seed_answering_an_unreadable_shard_list_is_one_line() -> None:
    seed = OddSeed()
    try:
        with pytest.raises(RedisUnavailable) as err:
            discover(cluster_target([seed.url]), timeout=2)
    finally:
        seed.close()
    assert "sent a CLUSTER SHARDS/NODES reply that cannot be read" in err.value.message
    assert "\n" not in err.value.message
