"""The persisted redis.conf of a target: what Redis comes up with at its next restart.

A port (``PersistedConfig``) so the diagnosis can compare the live settings with it
without knowing Kubernetes, and its implementation over the ``Cluster`` port
(``ConfigMapRedisConf``), which the Redis-config actions share to read the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import KubeCoordinates, Target
from bot.errors import KubernetesError
from bot.remediation.ports import Cluster


class PersistedConfig(Protocol):
    """Where a target's redis.conf is kept. Errors: ``RedisMemError`` (one line)."""

    def redis_conf(self, target: Target) -> str:
        """The text of the target's persisted redis.conf."""
        ...


def has_kube_coordinates(target: Target) -> bool:
    """Whether the targets file gave this target a ``kubernetes`` section.

    Every target gets the runbook's names by default (the fixes use them), but only a
    target that says where it lives is compared with a ConfigMap by the diagnosis: a
    ``--redis-url`` or a laptop's Redis has nothing to do with the cluster in the
    kubeconfig, and the diagnosis should not pay for a Kubernetes client it cannot use.
    """
    return "kubernetes" in target.model_fields_set


def configmap_where(coords: KubeCoordinates) -> str:
    """``ConfigMap <ns>/<name> <key>``: how previews, results and findings name the file."""
    return f"ConfigMap {coords.namespace}/{coords.redis_configmap} {coords.redis_configmap_key}"


def read_redis_conf(cluster: Cluster, coords: KubeCoordinates) -> tuple[str, str]:
    """redis.conf from the Redis ConfigMap and the ConfigMap's resourceVersion."""
    data, version = cluster.read_configmap(namespace=coords.namespace, name=coords.redis_configmap)
    if coords.redis_configmap_key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise KubernetesError(
            f"configmap {coords.namespace}/{coords.redis_configmap} has no key "
            f"{coords.redis_configmap_key!r} (keys: {keys}): "
            "check redis_configmap_key in the targets file"
        )
    return data[coords.redis_configmap_key], version


@dataclass(frozen=True)
class ConfigMapRedisConf:
    """``PersistedConfig`` over a Kubernetes cluster: the Redis ConfigMap's redis.conf key."""

    cluster: Cluster

    def redis_conf(self, target: Target) -> str:
        """See ``PersistedConfig``."""
        return read_redis_conf(self.cluster, target.kubernetes)[0]
