"""The approval-gated fixes on a real 3-primary Redis Cluster, through the real wiring.

Keys are written through ``redis.RedisCluster`` with the hash tags ``{b}``, ``{c}`` and
``{a}``, which land on the first, second and third primary (checked, not assumed), and
every outcome is read back from each node on its own. The fix goes through
``RemediationService.request`` and ``approve`` (what the Slack buttons call) built by
``bot.wiring.remediation_service``, whose adapters discover the primaries per fix.

The diagnosis is the wiring's (``bot.wiring.diagnosis_service``): for a cluster target it
is a ``ClusterProbe`` reading every primary, so the preconditions and the evict count's
bound see the whole cluster's keys; the fixes act on every primary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.approvals.model import Actor, ApprovalRequest, RequestState
from bot.approvals.service import RemediationService
from bot.audit.store import SqlAuditStore
from bot.config import Settings, Target
from bot.errors import RedisUnavailable, UsageError
from bot.kube.cluster import KubeCluster
from bot.redisinfo.cluster import discover, primaries
from bot.redisinfo.ops_cluster import ClusterRedisOps
from bot.redisproc_cluster import RedisClusterProcs
from bot.slack.blocks.approval import result_blocks
from bot.wiring import diagnosis_service, private_health_engine, remediation_service
from tests.conftest import ClusterFactory
from tests.fakekube import REDIS_CONF, FakeKube, running_fake_kube
from tests.remediation_support import age_keys

REQUESTER = Actor("U0REQUEST", "rita")
APPROVER = Actor("U0APPROVE", "alice")
TAGS = ("b", "c", "a")  # the slots of {b}, {c}, {a} are on primaries 0, 1, 2
# A paused primary must not make the cluster refuse the others' keys meanwhile.
PARTIAL_COVERAGE = ("--cluster-require-full-coverage", "no")


class Rig:
    """A cluster, the fake Kubernetes API, and the service the real wiring builds."""

    def __init__(self, cluster: RedisClusterProcs, kube: tuple[FakeKube, KubeCluster]) -> None:
        self.cluster = cluster
        self.fake, kube_cluster = kube
        self.fake.add_configmap("redis-session-config", {"redis.conf": REDIS_CONF})
        self.target = Target.model_validate(
            {"name": "sessions", "mode": "cluster", "seeds": cluster.seed_urls[:1]}
        )
        self.engine = private_health_engine()
        self.audit = SqlAuditStore(self.engine)
        self.service: RemediationService | None = None
        self.kube = kube_cluster

    def build(self, **env: Any) -> RemediationService:
        """The service of ``bot.wiring`` with these settings (REDIS_MEM_* names)."""
        settings = Settings(REDIS_MEM_CHECK_TIMEOUT=1, REDIS_MEM_APPROVERS="U0APPROVE", **env)
        targets = {"sessions": self.target}
        diagnosis = diagnosis_service(settings, targets, cluster=self.kube)
        self.service = remediation_service(
            settings, engine=self.engine, audit=self.audit, diagnosis=diagnosis, cluster=self.kube
        )
        return self.service

    def fix(self, action_id: str, **params: str) -> ApprovalRequest:
        """Request, then approve as another person: the Slack buttons' path."""
        service = self.service or self.build()
        request = service.request(
            actor=REQUESTER,
            action_id=action_id,
            target_name="sessions",
            raw_params=params,
            channel=None,
        )
        return service.approve(request_id=request.id, approver=APPROVER)

    def summaries(self, request_id: str) -> dict[str, str]:
        """The audit rows' summaries of one request, by action."""
        rows = self.audit.list_entries(limit=100)
        return {r.action: r.summary for r in rows if r.request_id == request_id}

    def node(self, index: int) -> redis.Redis:
        """A plain client of one primary (it answers for its own keys only)."""
        return redis.Redis.from_url(self.cluster.nodes[index].url, decode_responses=True)

    def addresses(self) -> list[str]:
        return [n.address for n in self.cluster.nodes]


@pytest.fixture
def kube() -> Iterator[tuple[FakeKube, KubeCluster]]:
    with running_fake_kube() as setup:
        yield setup.fake, setup.cluster


def start(cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster], *args: str) -> Rig:
    rig = Rig(cluster_factory(*args), kube)
    return rig


def write_sessions(rig: Rig, counts: dict[str, int], *, ttl: int | None = None) -> None:
    """``session:{tag}:i`` through a cluster client; then check each tag's primary."""
    client = redis.RedisCluster.from_url(rig.cluster.seed_urls[0], decode_responses=True)
    try:
        for tag, count in counts.items():
            for i in range(count):
                client.set(f"session:{{{tag}}}:{i}", "x" * 200, ex=ttl)
    finally:
        client.close()
    for index, tag in enumerate(TAGS):
        with rig.node(index) as node:
            keys = list(node.scan_iter("session:*", count=1000))
            assert all(k.startswith(f"session:{{{tag}}}:") for k in keys), (index, keys[:3])


def with_ttl(rig: Rig, index: int) -> int:
    """How many session keys of primary ``index`` have a TTL."""
    with rig.node(index) as node:
        return sum(1 for k in node.scan_iter("session:*", count=1000) if node.ttl(k) > 0)


def test_expire_gives_every_key_of_every_primary_a_ttl_and_names_them(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    write_sessions(rig, {"b": 20, "c": 30, "a": 40})
    client = redis.RedisCluster.from_url(rig.cluster.seed_urls[0], decode_responses=True)
    client.set("session:{c}:kept", "x", ex=500)  # has a TTL: NX leaves it exactly
    client.close()
    done = rig.fix("expire-keys-without-ttl", ttl_seconds="12h")
    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.result is not None and done.result["keys_changed"] == 90
    assert [with_ttl(rig, i) for i in range(3)] == [20, 31, 40]
    with rig.node(1) as node:
        assert 0 < node.ttl("session:{c}:kept") <= 500
        assert node.ttl("session:{c}:0") > 3600
    a, b, c = rig.addresses()
    per_node = f"on 3 of 3 primaries ({a} 20, {b} 30, {c} 40)"
    [step] = done.result["steps"]
    assert step["detail"].endswith(per_node), step["detail"]
    nodes = done.result["bulk"]["nodes"]
    assert [(n["address"], n["changed"], n["applied"]) for n in nodes] == [
        (a, 20, True),
        (b, 30, True),
        (c, 40, True),
    ]
    assert per_node in rig.summaries(done.id)["remediation.executed"]


def test_the_key_cap_holds_for_the_whole_cluster_not_per_primary(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    write_sessions(rig, {"b": 20, "c": 20, "a": 20})
    rig.build(REDIS_MEM_MAX_KEYS=25)
    done = rig.fix("expire-keys-without-ttl", ttl_seconds="12h")
    assert done.result is not None and done.result["keys_changed"] == 25
    counts = [with_ttl(rig, i) for i in range(3)]
    assert sum(counts) == 25 and counts == [20, 5, 0]
    assert done.state is RequestState.FAILED  # stopped at the cap: run it again for the rest
    a, b, c = rig.addresses()
    state = done.result["state"]
    assert "stopped at the cap of 25 keys: run it again for the rest" in state
    assert f"on 2 of 3 primaries ({a} 20, {b} 5); {c} NOT changed: not run: the cap" in state


def test_evict_unlinks_the_idlest_sessions_across_the_cluster(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    write_sessions(rig, {"b": 20, "c": 10, "a": 20}, ttl=86400)
    idle = {"b": 1000, "c": 5000, "a": 100}  # {c} idlest, then {b}, then {a}
    for index, tag in enumerate(TAGS):
        with rig.node(index) as node:
            count = 20 if tag != "c" else 10
            keys = [f"session:{{{tag}}}:{i}" for i in range(count)]
            for i, key in enumerate(keys):
                age_keys(node, [key], idle=idle[tag] + i)  # a larger i: idler
    done = rig.fix("evict-idle-sessions", count="15")
    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.result is not None and done.result["keys_changed"] == 15
    with rig.node(0) as b, rig.node(1) as c, rig.node(2) as a:
        assert not list(c.scan_iter("session:*"))  # all 10 of the idlest shard
        left_b = sorted(b.scan_iter("session:*"), key=lambda k: int(k.rsplit(":", 1)[1]))
        assert left_b == [f"session:{{b}}:{i}" for i in range(15)]  # its 5 idlest went
        assert len(list(a.scan_iter("session:*"))) == 20  # the least idle shard untouched
    n0, n1, n2 = rig.addresses()
    assert f"on 3 of 3 primaries ({n0} 5, {n1} 10, {n2} 0)" in done.result["state"]


def test_set_eviction_policy_changes_every_primary_and_names_them(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    done = rig.fix("set-eviction-policy", policy="allkeys-lfu")
    assert done.state is RequestState.SUCCEEDED, done.error
    for index in range(3):
        with rig.node(index) as node:
            assert node.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
    a, b, c = rig.addresses()
    line = f"live maxmemory-policy set to allkeys-lfu on 3 of 3 primaries ({a}, {b}, {c})"
    assert done.result is not None and done.result["state"].startswith(line)
    assert line in rig.summaries(done.id)["remediation.executed"]
    conf = rig.fake.get("configmaps", "redis-session-config")
    assert conf is not None and "maxmemory-policy allkeys-lfu" in conf["data"]["redis.conf"]


def test_a_paused_primary_is_a_one_line_partial_result_and_the_configmap_stays(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube, *PARTIAL_COVERAGE)
    rig.build()
    a, b, c = rig.addresses()
    with rig.cluster.nodes[2].paused():  # bounded: each call to it times out after 1 s
        done = rig.fix("set-eviction-policy", policy="allkeys-lfu")
    assert done.state is RequestState.FAILED
    assert done.result is not None
    state = done.result["state"]
    assert "\n" not in state
    assert state.startswith(
        f"live maxmemory-policy PARTLY changed (set to allkeys-lfu on 2 of 3 primaries "
        f"({a}, {b}); {c} NOT changed: unreachable: "
    ), state
    assert "ConfigMap NOT changed (not attempted)" in state
    assert "the primaries that took the change keep it (not rolled back)" in state
    assert state in rig.summaries(done.id)["remediation.failed"]
    slack = json.dumps([block.to_dict() for block in result_blocks(done)])
    assert (
        f"❌ live maxmemory-policy: set to allkeys-lfu on 2 of 3 primaries ({a}, {b}); {c}"
        in (json.loads(slack)[0]["text"]["text"])
    )
    policies = []
    for index in range(3):
        with rig.node(index) as node:
            policies.append(node.config_get("maxmemory-policy")["maxmemory-policy"])
    assert policies == ["allkeys-lfu", "allkeys-lfu", "noeviction"]
    conf = rig.fake.get("configmaps", "redis-session-config")
    assert conf is not None and "maxmemory-policy allkeys-lru" in conf["data"]["redis.conf"]
    # The preview said so before anyone approved: the disagreement is visible.
    changes = done.preview["changes"]
    assert changes[0]["before"] == f"noeviction on {a}, {b}; unreachable on {c}"


def test_a_paused_primary_leaves_a_key_action_exact_on_the_others(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube, *PARTIAL_COVERAGE)
    write_sessions(rig, {"b": 20, "c": 20, "a": 20})
    rig.build()
    with rig.cluster.nodes[1].paused():
        done = rig.fix("expire-keys-without-ttl", ttl_seconds="12h")
    assert done.state is RequestState.FAILED
    assert done.result is not None and done.result["keys_changed"] == 40
    assert [with_ttl(rig, i) for i in range(3)] == [20, 0, 20]
    a, b, c = rig.addresses()
    state = done.result["state"]
    assert f"on 2 of 3 primaries ({a} 20, {c} 20); {b} NOT changed: unreachable: " in state
    assert f"stopped early (error: {b} unreachable: " in state


def test_progress_and_the_stop_flag_carry_across_primaries(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    write_sessions(rig, {"b": 30, "c": 30, "a": 30})
    ops = ClusterRedisOps.discover(rig.target, timeout=2)
    seen: list[tuple[int, int]] = []
    result = ops.expire_without_ttl(
        pattern="session:*",
        seconds=600,
        max_keys=1000,
        rate=None,
        progress=lambda s, c: seen.append((s, c)),
    )
    assert (result.changed, result.stopped) == (90, None)
    assert seen == sorted(seen) and seen[-1] == (result.scanned, 90)
    assert [n.changed for n in result.nodes] == [30, 30, 30]
    # A stop asked after the first primary's first batch: the later ones never start.
    for index in range(3):
        with rig.node(index) as node:
            for key in node.scan_iter("session:*"):
                node.persist(key)
    calls: list[int] = []
    stopped = ops.expire_without_ttl(
        pattern="session:*",
        seconds=600,
        max_keys=1000,
        rate=None,
        progress=lambda s, c: calls.append(c),
        should_stop=lambda: bool(calls),
    )
    assert stopped.stopped == "stopped"
    assert [n.reason for n in stopped.nodes][1:] == ["not run: cancelled"] * 2
    assert stopped.changed == sum(with_ttl(rig, i) for i in range(3)) > 0


def test_config_get_shows_which_primary_has_which_value(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    ops = ClusterRedisOps.discover(rig.target, timeout=2)
    assert ops.config_get("maxmemory-policy") == "noeviction"
    with rig.node(1) as node:
        node.config_set("maxmemory-policy", "allkeys-lru")
    a, b, c = rig.addresses()
    assert ops.config_get("maxmemory-policy") == f"noeviction on {a}, {c}; allkeys-lru on {b}"
    nodes = primaries(rig.target, discover(rig.target, timeout=2))
    for server in rig.cluster.nodes:
        server.stop()
    with pytest.raises(RedisUnavailable) as err:
        ClusterRedisOps(nodes=nodes, timeout=1).config_set("maxmemory-policy", "allkeys-lru")
    assert str(err.value).startswith("no primary of the cluster could be reached for CONFIG SET")
    assert "\n" not in str(err.value) and str(err.value).count("unreachable: ") == 3


def test_restart_and_raise_maxmemory_are_refused_on_a_cluster_in_one_line(
    cluster_factory: ClusterFactory, kube: tuple[FakeKube, KubeCluster]
) -> None:
    rig = start(cluster_factory, kube)
    write_sessions(rig, {"b": 5, "c": 5, "a": 5})
    service = rig.build()
    for action_id in ("restart-redis", "raise-maxmemory"):
        with pytest.raises(UsageError) as err:
            service.request(
                actor=REQUESTER,
                action_id=action_id,
                target_name="sessions",
                raw_params={},
                channel=None,
            )
        assert f"{action_id} is not run on a cluster target: " in str(err.value)
        assert "\n" not in str(err.value)
    assert rig.fake.get("configmaps", "redis-session-config") is not None
    assert [with_ttl(rig, i) for i in range(3)] == [0, 0, 0]
