"""The leader-election Lease: ``coordination.k8s.io/v1`` Lease ``redis-mem-leader``.

A ``LeaseStore`` (the port of ``bot.runtime.election``) over the official client: get,
create, and replace with the ``resourceVersion`` last read. A 409 answer (create of an existing
Lease, replace of a changed one) is not an error: someone else won this round. Every
other failure is one ``KubernetesError`` line. The calls are listed in
``bot.kube.access.LEASE_METHOD_CALLS`` (and granted by the ``ha`` overlay's Role).

Why not ``kubernetes.leaderelection``: it sleeps on the wall clock, has no fencing (its
callback keeps running after a lost renew) and never releases the Lease on shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client import (
    ApiClient,
    CoordinationV1Api,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes.client.exceptions import ApiException

from bot.errors import KubernetesError
from bot.kube import access
from bot.kube.cluster import client_configuration, transport_message
from bot.kube.messages import CallSite, api_error, safe_host
from bot.leases import LeaseRecord, VersionedLease

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeLeaseStore:
    """One Lease in one namespace, reached through the official client."""

    def __init__(
        self,
        *,
        api_client: ApiClient,
        namespace: str,
        name: str = access.LEASE_NAME,
        timeout: float = 5.0,
    ) -> None:
        """``timeout``: per request (an attempt that hangs is a failed attempt)."""
        self._client = api_client
        self._api = CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self._timeout = timeout
        self.description = f"Kubernetes Lease {namespace}/{name}"

    @classmethod
    def connect(cls, *, namespace: str, timeout: float = 5.0) -> KubeLeaseStore:
        """In-cluster ServiceAccount in a pod (no KUBECONFIG), else the kubeconfig."""
        return cls(api_client=ApiClient(_configuration()), namespace=namespace, timeout=timeout)

    def close(self) -> None:
        """Release the connection pool."""
        client: Any = self._client  # close() is untyped
        client.close()

    def get(self) -> VersionedLease | None:
        """The Lease, or None when there is none yet."""
        try:
            with self._call(access.LEASE_GET):
                lease = self._api.read_namespaced_lease(
                    name=self.name, namespace=self.namespace, _request_timeout=self._timeout
                )
        except _Conflict:  # a 404: nobody created it yet
            return None
        return _versioned(lease)

    def create(self, record: LeaseRecord) -> VersionedLease | None:
        """Create the Lease; None when it exists already (409)."""
        body = self._lease(record, version=None)
        try:
            with self._call(access.LEASE_CREATE):
                lease = self._api.create_namespaced_lease(
                    namespace=self.namespace, body=body, _request_timeout=self._timeout
                )
        except _Conflict:
            return None
        return _versioned(lease)

    def replace(self, record: LeaseRecord, version: str) -> VersionedLease | None:
        """Replace the Lease if it is still at ``version``; None on a 409 conflict."""
        body = self._lease(record, version=version)
        try:
            with self._call(access.LEASE_UPDATE):
                lease = self._api.replace_namespaced_lease(
                    name=self.name,
                    namespace=self.namespace,
                    body=body,
                    _request_timeout=self._timeout,
                )
        except _Conflict:
            return None
        return _versioned(lease)

    def _lease(self, record: LeaseRecord, *, version: str | None) -> V1Lease:
        meta = V1ObjectMeta(name=self.name, namespace=self.namespace, resource_version=version)
        spec = V1LeaseSpec(
            holder_identity=record.holder or None,
            lease_duration_seconds=record.duration_seconds,
            acquire_time=record.acquired_at,
            renew_time=record.renewed_at,
            lease_transitions=record.transitions,
        )
        return V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec)

    @contextmanager
    def _call(self, call: access.ApiCall) -> Iterator[None]:
        """409 (and 404 on get) become ``_Conflict``; anything else one KubernetesError line."""
        site = CallSite(call, self.namespace, self.name)
        try:
            yield
        except ApiException as err:
            status = int(err.status or 0)
            if status == 409 or (status == 404 and call == access.LEASE_GET):
                raise _Conflict from None
            body = err.body if isinstance(err.body, str) else None
            message = api_error(site, status=status, reason=str(err.reason or ""), body=body)
            raise KubernetesError(message) from None
        except urllib3.exceptions.HTTPError as err:
            host = safe_host(str(self._client.configuration.host))
            raise KubernetesError(
                transport_message(site, err, host=host, timeout=self._timeout)
            ) from None


class _Conflict(Exception):
    """Someone else won this round (409), or there is no Lease yet (404 on get)."""


def lease_namespace() -> str:
    """``POD_NAMESPACE``, else the ServiceAccount's namespace file, else ``default``."""
    namespace = os.environ.get("POD_NAMESPACE", "").strip()
    if namespace:
        return namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _versioned(lease: V1Lease) -> VersionedLease:
    spec: Any = lease.spec or V1LeaseSpec()
    meta: Any = lease.metadata
    record = LeaseRecord(
        holder=str(spec.holder_identity or ""),
        duration_seconds=int(spec.lease_duration_seconds or 0),
        acquired_at=spec.acquire_time,
        renewed_at=spec.renew_time,
        transitions=int(spec.lease_transitions or 0),
    )
    return VersionedLease(record, str(meta.resource_version if meta else ""))


def _configuration() -> Any:
    """``KubeCluster.connect``'s configuration, in-cluster unless KUBECONFIG is set."""
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")
    try:
        # One request per attempt (no retries): the elector retries on its own.
        return client_configuration(in_cluster=in_pod)
    except KubernetesError as err:
        raise KubernetesError(f"leader election: {err.message}") from None
