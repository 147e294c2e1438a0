"""LazyCluster: the bot starts without a cluster; the first Kubernetes call connects, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import KubernetesError
from bot.kube.cluster import KubeCluster
from bot.kube.lazy import LazyCluster
from tests.fakekube import NAMESPACE, running_fake_kube


def test_connects_on_first_use_and_only_once() -> None:
    with running_fake_kube() as kube:
        connects: list[KubeCluster] = []

        def connect() -> KubeCluster:
            connects.append(kube.cluster)
            return kube.cluster

        lazy = LazyCluster(connect)
        assert connects == []  # building it touches nothing
        pods = lazy.list_pods(namespace=NAMESPACE, label_selector="app=redis-session")
        data, _ = lazy.read_configmap(namespace=NAMESPACE, name="redis-session-config")
        assert pods and "maxmemory" in data["redis.conf"]
        assert len(connects) == 1


def test_without_cluster_configuration_each_call_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment of a laptop with no cluster: no in-cluster variables, no kubeconfig.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    lazy = LazyCluster()
    for _ in range(2):  # a failed connect is not cached: the next fix tries again
        with pytest.raises(KubernetesError) as caught:
            lazy.list_pods(namespace=NAMESPACE, label_selector="app=redis-session")
        assert "\n" not in str(caught.value)
        assert str(caught.value).startswith("cannot load the Kubernetes")
