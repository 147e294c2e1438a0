"""The Kubernetes adapter, through the real ``kubernetes`` client, against the fake API server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.errors import KubernetesError, UsageError
from bot.redisconf import set_directive
from tests.fakekube import NAMESPACE, REDIS_CONF, FakeKubeSetup, running_fake_kube

NS = NAMESPACE


@pytest.fixture
def kube() -> Iterator[FakeKubeSetup]:
    with running_fake_kube() as setup:
        yield setup


def _containers(setup: FakeKubeSetup, deployment: str) -> list[dict[str, object]]:
    obj = setup.fake.get("deployments", deployment)
    assert obj is not None
    containers: list[dict[str, object]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


# ConfigMaps ------------------------------------------------------------------------


def test_reads_a_configmap_key_and_its_resource_version(kube: FakeKubeSetup) -> None:
    data, version = kube.cluster.read_configmap(namespace=NS, name="redis-session-config")
    assert data == {"redis.conf": REDIS_CONF}
    stored = kube.fake.get("configmaps", "redis-session-config")
    assert stored is not None and version == stored["metadata"]["resourceVersion"]
    assert data["redis.conf"] == REDIS_CONF


def test_one_directive_changes_and_every_other_line_stays(kube: FakeKubeSetup) -> None:
    cluster, fake = kube.cluster, kube.fake
    data, version = cluster.read_configmap(namespace=NS, name="redis-session-config")
    new_text = set_directive(data["redis.conf"], "maxmemory", "1024mb")
    new_version = cluster.patch_configmap_key(
        namespace=NS,
        name="redis-session-config",
        key="redis.conf",
        value=new_text,
        expected_resource_version=version,
    )
    stored = fake.get("configmaps", "redis-session-config")
    assert stored is not None
    assert stored["data"]["redis.conf"] == REDIS_CONF.replace(
        "maxmemory 512mb\n", "maxmemory 1024mb\n"
    )
    assert stored["metadata"]["resourceVersion"] == new_version != version
    patch = fake.calls("PATCH")[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {
        "data": {"redis.conf": new_text},
        "metadata": {"resourceVersion": version},
    }


def test_patching_one_app_key_keeps_the_other_keys(kube: FakeKubeSetup) -> None:
    kube.cluster.patch_configmap_key(
        namespace=NS, name="langgraph-agent-config", key="session_ttl_seconds", value="43200"
    )
    stored = kube.fake.get("configmaps", "langgraph-agent-config")
    assert stored is not None
    assert stored["data"] == {
        "session_ttl_seconds": "43200",
        "session_max_concurrent": "5",
        "session_sliding_window": "false",
    }
    assert "metadata" not in kube.fake.calls("PATCH")[-1].body


def test_a_concurrent_edit_makes_the_patch_fail_with_409(kube: FakeKubeSetup) -> None:
    cluster, fake = kube.cluster, kube.fake
    _, version = cluster.read_configmap(namespace=NS, name="redis-session-config")
    # Someone else edits the ConfigMap between our read and our patch.
    cluster.patch_configmap_key(namespace=NS, name="redis-session-config", key="note", value="x")
    before = fake.get("configmaps", "redis-session-config")
    with pytest.raises(KubernetesError) as err:
        cluster.patch_configmap_key(
            namespace=NS,
            name="redis-session-config",
            key="redis.conf",
            value="maxmemory 1mb\n",
            expected_resource_version=version,
        )
    assert str(err.value) == (
        "Kubernetes refused to patch configmap langgraph-agent/redis-session-config "
        "(409 Conflict): it changed since it was read; run the diagnosis again"
    )
    assert fake.get("configmaps", "redis-session-config") == before


# Deployments ------------------------------------------------------------------------


def test_reads_one_containers_resources(kube: FakeKubeSetup) -> None:
    resources = kube.cluster.read_container_resources(
        namespace=NS, deployment="redis-session", container="exporter"
    )
    assert resources == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}


def test_a_container_without_resources_reads_as_empty(kube: FakeKubeSetup) -> None:
    kube.fake.add_deployment("bare", [{"name": "main", "image": "busybox"}])
    resources = kube.cluster.read_container_resources(
        namespace=NS, deployment="bare", container="main"
    )
    assert resources == {"requests": {}, "limits": {}}


def test_an_unknown_container_names_the_containers_there(kube: FakeKubeSetup) -> None:
    with pytest.raises(KubernetesError) as err:
        kube.cluster.patch_container_resources(
            namespace=NS,
            deployment="redis-session",
            container="redis-server",
            requests={"memory": "1Gi"},
            limits={"memory": "1536Mi"},
        )
    assert str(err.value) == (
        "deployment langgraph-agent/redis-session has no container 'redis-server' "
        "(containers: redis, exporter): check redis_container in the targets file"
    )
    assert kube.fake.calls("PATCH") == []


def test_patches_one_container_and_keeps_the_rest_of_the_deployment(kube: FakeKubeSetup) -> None:
    before = kube.fake.get("deployments", "redis-session")
    assert before is not None
    kube.cluster.patch_container_resources(
        namespace=NS,
        deployment="redis-session",
        container="redis",
        requests={"memory": "1Gi"},
        limits={"memory": "1536Mi"},
    )
    after = kube.fake.get("deployments", "redis-session")
    assert after is not None
    expected = copy.deepcopy(before["spec"])
    redis = expected["template"]["spec"]["containers"][0]
    redis["resources"] = {
        "requests": {"cpu": "100m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1536Mi"},
    }
    assert after["spec"] == expected  # exporter, volumes, ports, CPU: all untouched
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    patch = kube.fake.calls("PATCH")[-1]
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "redis",
                            "resources": {
                                "requests": {"memory": "1Gi"},
                                "limits": {"memory": "1536Mi"},
                            },
                        }
                    ]
                }
            }
        }
    }


def test_requests_above_limits_are_rejected_by_the_api_server(kube: FakeKubeSetup) -> None:
    with pytest.raises(KubernetesError) as err:
        kube.cluster.patch_container_resources(
            namespace=NS,
            deployment="redis-session",
            container="redis",
            requests={"memory": "2Gi"},
            limits={"memory": "1Gi"},
        )
    message = str(err.value)
    assert message.startswith(
        "Kubernetes refused to patch deployment langgraph-agent/redis-session (422 Unprocessable"
    )
    assert "must be less than or equal to memory limit" in message
    assert "\n" not in message


def test_rollout_restart_stamps_the_pod_template_like_kubectl(kube: FakeKubeSetup) -> None:
    before = kube.fake.get("deployments", "langgraph-agent")
    at = datetime(2026, 11, 29, 5, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    kube.cluster.rollout_restart(namespace=NS, deployment="langgraph-agent", at=at)
    after = kube.fake.get("deployments", "langgraph-agent")
    assert before is not None and after is not None
    annotations = after["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": "2026-11-29T03:30:15Z"}
    expected = copy.deepcopy(before["spec"])
    expected["template"]["metadata"]["annotations"] = annotations
    assert after["spec"] == expected


def test_a_naive_restart_time_is_refused(kube: FakeKubeSetup) -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        kube.cluster.rollout_restart(
            namespace=NS, deployment="langgraph-agent", at=datetime(2026, 1, 1)
        )
    assert kube.fake.calls() == []


# Pods --------------------------------------------------------------------------------


def test_lists_pods_by_label_selector(kube: FakeKubeSetup) -> None:
    cluster = kube.cluster

    def names(selector: str) -> list[str]:
        return cluster.list_pods(namespace=NS, label_selector=selector)

    assert names("app=redis-session") == ["redis-session-7d9f8c6b5-x2k9p"]
    assert names("app==redis-session,pod-template-hash=7d9f8c6b5") == [
        "redis-session-7d9f8c6b5-x2k9p"
    ]
    assert names("app in (redis-mem, redis-session-backup)") == [
        "redis-mem-6f7c9d8b4-m4n5p",
        "redis-session-backup-28461-h7d2s",
    ]
    assert names("app!=langgraph-agent,app notin (redis-mem)") == [
        "redis-session-7d9f8c6b5-x2k9p",
        "redis-session-backup-28461-h7d2s",
    ]
    assert names("pod-template-hash") == ["redis-session-7d9f8c6b5-x2k9p"]
    assert names("app=nothing") == []


def test_a_malformed_selector_is_a_400_in_one_line(kube: FakeKubeSetup) -> None:
    with pytest.raises(KubernetesError) as err:
        kube.cluster.list_pods(namespace=NS, label_selector="app in redis")
    assert str(err.value) == (
        "Kubernetes refused to list pods in namespace langgraph-agent with labels app in redis "
        "(400 Bad Request): unable to parse requirement: 'app in redis'"
    )


def test_deletes_only_the_matching_pods_of_the_namespace(kube: FakeKubeSetup) -> None:
    fake = kube.fake
    deleted = kube.cluster.delete_pods(namespace=NS, label_selector="app=redis-session")
    assert deleted == ["redis-session-7d9f8c6b5-x2k9p"]
    assert fake.pod_names() == [
        "langgraph-agent-5c4d7b9f8-q8r7t",
        "langgraph-agent-5c4d7b9f8-xk2lp",
        "redis-mem-6f7c9d8b4-m4n5p",
        "redis-session-backup-28461-h7d2s",
    ]
    assert fake.pod_names("staging") == ["redis-session-0"]  # same label, other namespace
    assert [(r.method, r.rbac[2]) for r in fake.calls()] == [("GET", "list"), ("DELETE", "delete")]


def test_deleting_when_nothing_matches_deletes_nothing(kube: FakeKubeSetup) -> None:
    assert kube.cluster.delete_pods(namespace=NS, label_selector="app=gone") == []
    assert kube.fake.calls("DELETE") == []


def test_a_pod_that_vanished_before_its_delete_is_skipped(kube: FakeKubeSetup) -> None:
    fake = kube.fake
    fake.add_pod("langgraph-agent-5c4d7b9f8-zzzzz", {"app": "langgraph-agent"})
    pod_path = f"/api/v1/namespaces/{NS}/pods/langgraph-agent-5c4d7b9f8-xk2lp"
    fake.fail_next("DELETE", pod_path, 404)  # its controller deleted it first
    deleted = kube.cluster.delete_pods(namespace=NS, label_selector="app=langgraph-agent")
    assert deleted == ["langgraph-agent-5c4d7b9f8-q8r7t", "langgraph-agent-5c4d7b9f8-zzzzz"]


def test_timezone_of_restart_is_utc(kube: FakeKubeSetup) -> None:
    kube.cluster.rollout_restart(
        namespace=NS, deployment="redis-session", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    after = kube.fake.get("deployments", "redis-session")
    assert after is not None
    stamp = after["spec"]["template"]["metadata"]["annotations"][
        "kubectl.kubernetes.io/restartedAt"
    ]
    assert stamp == "2026-01-02T03:04:05Z"
    assert after["spec"]["template"]["metadata"]["labels"] == {"app": "redis-session"}
    assert [c["name"] for c in _containers(kube, "redis-session")] == ["redis", "exporter"]


def test_of_twenty_concurrent_patches_from_one_read_exactly_one_wins(kube: FakeKubeSetup) -> None:
    cluster = kube.cluster
    _, version = cluster.read_configmap(namespace=NS, name="redis-session-config")

    def patch(index: int) -> str:
        try:
            cluster.patch_configmap_key(
                namespace=NS,
                name="redis-session-config",
                key="redis.conf",
                value=set_directive(REDIS_CONF, "maxmemory", f"{600 + index}mb"),
                expected_resource_version=version,
            )
        except KubernetesError as err:
            return str(err)
        return "ok"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(patch, range(20)))
    assert outcomes.count("ok") == 1
    assert all("(409 Conflict)" in o for o in outcomes if o != "ok")
    stored = kube.fake.get("configmaps", "redis-session-config")
    assert stored is not None
    winner = outcomes.index("ok")
    assert stored["data"]["redis.conf"] == set_directive(
        REDIS_CONF, "maxmemory", f"{600 + winner}mb"
    )
