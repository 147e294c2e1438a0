"""A Kubernetes cluster that connects on first use.

The bot starts (and diagnoses) without any cluster configuration; only a fix
that touches Kubernetes needs one, and then fails with a one-line
KubernetesError if there is none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.kube.cluster import KubeCluster


class LazyCluster:
    """A ``Cluster`` that loads the Kubernetes configuration on first use, once.

    Without a kubeconfig or in-cluster ServiceAccount, each Kubernetes action
    answers with the one-line KubernetesError, while diagnosis and the
    Redis-only actions keep working.
    """

    def __init__(self, connect: Callable[[], KubeCluster] | None = None) -> None:
        self._connect = connect or connect_from_environment
        self._cluster: KubeCluster | None = None
        self._lock = threading.Lock()

    def get(self) -> KubeCluster:
        """The connected cluster (KubernetesError, one line, when it cannot be configured)."""
        with self._lock:
            if self._cluster is None:
                self._cluster = self._connect()
            return self._cluster

    def read_configmap(self, *, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """See ``Cluster``."""
        return self.get().read_configmap(namespace=namespace, name=name)

    def patch_configmap_key(
        self,
        *,
        namespace: str,
        name: str,
        key: str,
        value: str,
        expected_resource_version: str | None = None,
    ) -> str:
        """See ``Cluster``."""
        return self.get().patch_configmap_key(
            namespace=namespace,
            name=name,
            key=key,
            value=value,
            expected_resource_version=expected_resource_version,
        )

    def read_container_resources(
        self, *, namespace: str, deployment: str, container: str
    ) -> dict[str, dict[str, str]]:
        """See ``Cluster``."""
        return self.get().read_container_resources(
            namespace=namespace, deployment=deployment, container=container
        )

    def patch_container_resources(
        self,
        *,
        namespace: str,
        deployment: str,
        container: str,
        requests: dict[str, str],
        limits: dict[str, str],
    ) -> None:
        """See ``Cluster``."""
        self.get().patch_container_resources(
            namespace=namespace,
            deployment=deployment,
            container=container,
            requests=requests,
            limits=limits,
        )

    def rollout_restart(self, *, namespace: str, deployment: str, at: datetime) -> None:
        """See ``Cluster``."""
        self.get().rollout_restart(namespace=namespace, deployment=deployment, at=at)

    def list_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """See ``Cluster``."""
        return self.get().list_pods(namespace=namespace, label_selector=label_selector)

    def delete_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """See ``Cluster``."""
        return self.get().delete_pods(namespace=namespace, label_selector=label_selector)


def connect_from_environment() -> KubeCluster:
    # Imported here: the kubernetes client is slow to import and only fixes need it.
    from bot.kube.cluster import KubeCluster

    return KubeCluster.connect()
