"""Every Kubernetes failure is one KubernetesError line: what failed and what to do."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient, Configuration

from bot.errors import KubernetesError
from bot.kube.cluster import KubeCluster
from tests.fakekube import NAMESPACE, FakeKubeSetup, running_fake_kube

NS = NAMESPACE
CM_PATH = f"/api/v1/namespaces/{NS}/configmaps/redis-session-config"
DEPLOY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/redis-session"
TOKEN = "s3cr3t-bearer-token-0123456789"


@pytest.fixture
def kube() -> Iterator[FakeKubeSetup]:
    with running_fake_kube() as setup:
        yield setup


def _patch_cm(cluster: KubeCluster) -> str:
    return cluster.patch_configmap_key(
        namespace=NS, name="redis-session-config", key="redis.conf", value="maxmemory 1gb\n"
    )


def _error(call: object) -> str:
    with pytest.raises(KubernetesError) as err:
        call()  # type: ignore[operator]
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_403_names_the_missing_verb_and_the_rbac_file(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("PATCH", CM_PATH, 403)
    assert _error(lambda: _patch_cm(kube.cluster)) == (
        "Kubernetes refused to patch configmap langgraph-agent/redis-session-config "
        '(403 Forbidden): the bot\'s ServiceAccount lacks "patch" on configmaps '
        "— see deploy/base/rbac.yaml"
    )


def test_403_on_a_read_names_the_get_verb(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("GET", DEPLOY_PATH, 403)
    message = _error(
        lambda: kube.cluster.read_container_resources(
            namespace=NS, deployment="redis-session", container="redis"
        )
    )
    assert message == (
        "Kubernetes refused to read deployment langgraph-agent/redis-session (403 Forbidden): "
        'the bot\'s ServiceAccount lacks "get" on deployments — see deploy/base/rbac.yaml'
    )


def test_404_points_at_the_targets_file(kube: FakeKubeSetup) -> None:
    message = _error(lambda: kube.cluster.read_configmap(namespace=NS, name="redis-config"))
    assert message == (
        "Kubernetes has no configmap langgraph-agent/redis-config (404 Not Found): check the "
        "namespace and names under 'kubernetes' in the targets file"
    )


def test_409_says_it_changed_since_read(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("PATCH", DEPLOY_PATH, 409)
    message = _error(
        lambda: kube.cluster.rollout_restart(
            namespace=NS, deployment="redis-session", at=datetime(2026, 1, 1, tzinfo=UTC)
        )
    )
    assert message == (
        "Kubernetes refused to patch deployment langgraph-agent/redis-session (409 Conflict): "
        "it changed since it was read; run the diagnosis again"
    )


def test_500_on_a_write_warns_that_the_outcome_is_unknown(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("PATCH", CM_PATH, 500)
    assert _error(lambda: _patch_cm(kube.cluster)) == (
        "Kubernetes API failed to patch configmap langgraph-agent/redis-session-config "
        "(500 Internal Server Error): the API server had an error; the change may or may not "
        "have been applied, so read it back before retrying; try again shortly"
    )


def test_503_on_a_read_just_says_try_again(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("GET", f"/api/v1/namespaces/{NS}/pods", 503)
    assert _error(
        lambda: kube.cluster.list_pods(namespace=NS, label_selector="app=redis-session")
    ) == (
        "Kubernetes API failed to list pods in namespace langgraph-agent with labels "
        "app=redis-session (503 Service Unavailable): the API server had an error; "
        "try again shortly"
    )


def test_a_failed_delete_stops_and_reports(kube: FakeKubeSetup) -> None:
    kube.fake.fail_next("DELETE", f"/api/v1/namespaces/{NS}/pods/", 403)
    message = _error(
        lambda: kube.cluster.delete_pods(namespace=NS, label_selector="app=redis-session")
    )
    assert message == (
        "Kubernetes refused to delete pod langgraph-agent/redis-session-7d9f8c6b5-x2k9p "
        '(403 Forbidden): the bot\'s ServiceAccount lacks "delete" on pods — see '
        "deploy/base/rbac.yaml"
    )
    assert "redis-session-7d9f8c6b5-x2k9p" in kube.fake.pod_names()


def test_a_slow_read_times_out_in_one_line() -> None:
    with running_fake_kube(timeout=0.2) as (fake, cluster):
        fake.slow(5, method="GET")
        message = _error(lambda: cluster.read_configmap(namespace=NS, name="redis-session-config"))
        assert message == (
            f"Kubernetes API unreachable at {fake.url}: timed out after 0.2 s "
            "(while trying to read configmap langgraph-agent/redis-session-config)"
        )
        fake.clear_faults()


def test_a_slow_write_times_out_and_says_it_may_have_applied() -> None:
    with running_fake_kube(timeout=0.2) as (fake, cluster):
        fake.slow(5, method="PATCH")
        message = _error(lambda: _patch_cm(cluster))
        assert message == (
            f"Kubernetes API unreachable at {fake.url}: timed out after 0.2 s (while trying to "
            "patch configmap langgraph-agent/redis-session-config); the change may or may not "
            "have been applied, so read it back before retrying"
        )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_api_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    configuration = Configuration(host=url)
    configuration.retries = 0
    cluster = KubeCluster(api_client=ApiClient(configuration), timeout=1.0)
    try:
        message = _error(
            lambda: cluster.list_pods(namespace=NS, label_selector="app=redis-session")
        )
    finally:
        cluster.close()
    assert message == (
        f"Kubernetes API unreachable at {url}: connection refused or host not reachable "
        "(while trying to list pods in namespace langgraph-agent with labels app=redis-session)"
    )


def _kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "bot", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "bot"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_connect_with_a_kubeconfig_and_never_leak_its_token(
    kube: FakeKubeSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = _kubeconfig(tmp_path / "config", kube.fake.url)
    cluster = KubeCluster.connect(kubeconfig=str(kubeconfig), context="fake", timeout=2.0)
    try:
        data, _ = cluster.read_configmap(namespace=NS, name="redis-session-config")
        assert "maxmemory 512mb" in data["redis.conf"]
        kube.fake.fail_next("GET", CM_PATH, 401)
        message = _error(lambda: cluster.read_configmap(namespace=NS, name="redis-session-config"))
    finally:
        cluster.close()
    assert message == (
        "Kubernetes refused to read configmap langgraph-agent/redis-session-config "
        "(401 Unauthorized): the bot's credentials were rejected; check its kubeconfig or "
        "ServiceAccount token"
    )
    assert TOKEN not in message


def test_a_missing_kubeconfig_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    message = _error(lambda: KubeCluster.connect(kubeconfig=str(tmp_path / "missing")))
    assert message.startswith("cannot load the Kubernetes kubeconfig configuration: ")


def test_an_unknown_context_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    message = _error(lambda: KubeCluster.connect(kubeconfig=str(kubeconfig), context="prod"))
    assert message.startswith("cannot load the Kubernetes kubeconfig configuration: ")
    assert "prod" in message and TOKEN not in message


@pytest.mark.skipif(
    Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(),
    reason="running in a pod that has a ServiceAccount token",
)
def test_in_a_pod_without_a_service_account_token_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    message = _error(lambda: KubeCluster.connect())
    assert message.startswith(
        "cannot load the Kubernetes in-cluster ServiceAccount configuration: "
    )
