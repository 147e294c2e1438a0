"""What remediation needs from the outside world, as Protocols.

The catalogue (``bot.remediation.actions``) is written against these; the
composition root passes the real adapters (``bot.kube.cluster.KubeCluster``,
``bot.redisinfo.ops.LiveRedisOps``) and the tests pass the same adapters pointed
at a fake Kubernetes API server and a real redis-server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Progress of a long Redis action: (keys scanned, keys changed so far).
BulkProgress = Callable[[int, int], None]
# Asked between batches; True stops the action cleanly (cancel, shutdown).
StopFlag = Callable[[], bool]


@dataclass(frozen=True)
class NodeOutcome:
    """What one server of a multi-server target (a cluster primary) did of a change.

    applied: the change took there (a key action: it ran to its end, or to the cap or a
    cancel); reason: why not, or why it ended early, one line; scanned/changed: a key
    action's own counts on that server.
    """

    address: str  # host:port, as the cluster names it
    applied: bool
    reason: str = ""
    scanned: int = 0
    changed: int = 0


@dataclass(frozen=True)
class BulkResult:
    """What a long Redis action did: always exact, even when it stopped early.

    scanned: keys looked at; changed: keys expired/unlinked; skipped: looked at but
    left alone (already had a TTL, used again since measured...); stopped: why it
    ended before the keyspace did ("cap", "stopped", "error: ..."), None when complete.
    """

    scanned: int
    changed: int
    skipped: int
    stopped: str | None = None
    nodes: tuple[NodeOutcome, ...] = ()  # per server of a cluster (empty: one server)


@dataclass(frozen=True)
class LiveSetting:
    """Outcome of a ``CONFIG SET``: applied, or why not (CONFIG renamed, read-only...)."""

    name: str
    value: str
    applied: bool  # a cluster: on every primary
    reason: str = ""  # why not applied, one line
    nodes: tuple[NodeOutcome, ...] = ()  # per primary of a cluster (empty: one server)


class Cluster(Protocol):
    """Kubernetes operations on one target's namespace (see bot/kube/cluster.py)."""

    def read_configmap(self, *, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """The ConfigMap's data and its resourceVersion."""
        ...

    def patch_configmap_key(
        self,
        *,
        namespace: str,
        name: str,
        key: str,
        value: str,
        expected_resource_version: str | None = None,
    ) -> str:
        """Set one data key (409 if changed since read); returns the new resourceVersion."""
        ...

    def read_container_resources(
        self, *, namespace: str, deployment: str, container: str
    ) -> dict[str, dict[str, str]]:
        """{"requests": {...}, "limits": {...}} of one container."""
        ...

    def patch_container_resources(
        self,
        *,
        namespace: str,
        deployment: str,
        container: str,
        requests: dict[str, str],
        limits: dict[str, str],
    ) -> None:
        """Strategic-merge one container's resources, keeping everything else."""
        ...

    def rollout_restart(self, *, namespace: str, deployment: str, at: datetime) -> None:
        """Set the kubectl restartedAt annotation on the pod template."""
        ...

    def list_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """Names of the pods matching the selector."""
        ...

    def delete_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """Delete the matching pods; the names deleted."""
        ...


class RedisOps(Protocol):
    """Changes to a live Redis (see bot/redisinfo/ops.py). Errors: RedisUnavailable."""

    def config_get(self, name: str) -> str | None:
        """A CONFIG value, or None when CONFIG is unavailable (renamed, denied).

        A cluster: the value when every primary answers the same; otherwise one line
        saying which primary has which (``a on h:1, h:2; b on h:3``), so a preview shows
        the disagreement and never compares equal to a single value.
        """
        ...

    def config_set(self, name: str, value: str) -> LiveSetting:
        """CONFIG SET, reporting (not raising) when the server does not allow it."""
        ...

    def expire_without_ttl(
        self,
        *,
        pattern: str,
        seconds: int,
        max_keys: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
    ) -> BulkResult:
        """``EXPIRE key seconds NX`` on matching keys that have no TTL, in rate-limited batches."""
        ...

    def idlest_keys(self, *, pattern: str, count: int, rate: int | None) -> list[tuple[str, int]]:
        """The ``count`` keys idle longest: (key, idle seconds or LFU counter), idlest first."""
        ...

    def unlink_if_idle(
        self,
        *,
        keys: list[str],
        min_idle_seconds: int,
        rate: int | None,
        progress: BulkProgress | None = None,
        should_stop: StopFlag | None = None,
        max_freq: int | None = None,
    ) -> BulkResult:
        """UNLINK each key still idle >= min_idle_seconds (re-checked inside Redis, atomically).

        Under an LFU policy Redis keeps no idle time: a key goes only if its LFU
        counter is still <= ``max_freq`` (None: 0), so one used since it was measured stays.
        """
        ...
