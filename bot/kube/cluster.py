"""The Kubernetes adapter: the few reads and patches the remediation needs, nothing more.

Only this package imports the ``kubernetes`` client. Every call carries a
request timeout, and every failure (HTTP error, timeout, refused connection)
becomes one ``KubernetesError`` line saying what failed and what to do.
The calls each method makes are listed in ``bot.kube.access`` (and granted
by ``deploy/base/rbac.yaml``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from bot.errors import KubernetesError, UsageError
from bot.kube import access
from bot.kube.messages import CallSite, api_error, safe_host, transport_error

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class KubeCluster:
    """One Kubernetes API server, reached through the official client."""

    def __init__(self, *, api_client: ApiClient, timeout: float = 10.0) -> None:
        self._client = api_client
        self._core = CoreV1Api(api_client)
        self._apps = AppsV1Api(api_client)
        self._timeout = timeout

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None = None, context: str | None = None, timeout: float = 10.0
    ) -> KubeCluster:
        """In-cluster config when running in a pod (and no kubeconfig is named), else kubeconfig."""
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        configuration = client_configuration(
            in_cluster=in_pod and kubeconfig is None and context is None,
            kubeconfig=kubeconfig,
            context=context,
        )
        return cls(api_client=ApiClient(configuration), timeout=timeout)

    @property
    def host(self) -> str:
        """The API server URL (never with credentials)."""
        return safe_host(str(self._client.configuration.host))

    def close(self) -> None:
        """Release the connection pool."""
        client: Any = self._client  # close() is untyped
        client.close()

    # ConfigMaps -------------------------------------------------------------

    def read_configmap(self, *, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """The ConfigMap's ``data`` and its ``resourceVersion``."""
        site = CallSite(access.CONFIGMAP_GET, namespace, name)
        with self._call(site):
            obj = self._core.read_namespaced_config_map(
                name=name, namespace=namespace, _request_timeout=self._timeout
            )
        return dict(obj.data or {}), _resource_version(obj)

    def patch_configmap_key(
        self,
        *,
        namespace: str,
        name: str,
        key: str,
        value: str,
        expected_resource_version: str | None = None,
    ) -> str:
        """Set ``data[key]`` only (JSON merge patch); returns the new resourceVersion.

        With ``expected_resource_version`` the patch carries it, so the API
        server answers 409 if anyone changed the ConfigMap since it was read.
        """
        patch: dict[str, Any] = {"data": {key: value}}
        if expected_resource_version is not None:
            patch["metadata"] = {"resourceVersion": expected_resource_version}
        site = CallSite(access.CONFIGMAP_PATCH, namespace, name)
        with self._call(site):
            obj = self._core.patch_namespaced_config_map(
                name=name,
                namespace=namespace,
                body=patch,
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            )
        return _resource_version(obj)

    # Deployments ------------------------------------------------------------

    def read_container_resources(
        self, *, namespace: str, deployment: str, container: str
    ) -> dict[str, dict[str, str]]:
        """``{"requests": {...}, "limits": {...}}`` of one container of a Deployment."""
        found = self._container(namespace=namespace, deployment=deployment, container=container)
        resources = found.resources
        requests = resources.requests if resources is not None else None
        limits = resources.limits if resources is not None else None
        return {"requests": dict(requests or {}), "limits": dict(limits or {})}

    def patch_container_resources(
        self,
        *,
        namespace: str,
        deployment: str,
        container: str,
        requests: dict[str, str],
        limits: dict[str, str],
    ) -> None:
        """Set some requests/limits of ONE container; every other field and container stays.

        A strategic-merge patch merges ``containers`` by name and the
        requests/limits maps by key, so e.g. a CPU request is kept. The
        container is checked first: patching an unknown name would add a
        container instead.
        """
        self._container(namespace=namespace, deployment=deployment, container=container)
        entry = {"name": container, "resources": {"requests": requests, "limits": limits}}
        patch = {"spec": {"template": {"spec": {"containers": [entry]}}}}
        self._patch_deployment(namespace=namespace, deployment=deployment, patch=patch)

    def rollout_restart(self, *, namespace: str, deployment: str, at: datetime) -> None:
        """What ``kubectl rollout restart`` does: stamp the pod template so pods are replaced."""
        if at.tzinfo is None:
            raise UsageError("rollout_restart needs a timezone-aware time")
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self._patch_deployment(namespace=namespace, deployment=deployment, patch=patch)

    # Pods -------------------------------------------------------------------

    def list_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """Names of the pods matching ``label_selector``, in the API server's order."""
        site = CallSite(access.POD_LIST, namespace, selector=label_selector)
        with self._call(site):
            pods = self._core.list_namespaced_pod(
                namespace=namespace, label_selector=label_selector, _request_timeout=self._timeout
            )
        return [str(pod.metadata.name) for pod in pods.items if pod.metadata is not None]

    def delete_pods(self, *, namespace: str, label_selector: str) -> list[str]:
        """Delete the pods matching ``label_selector`` one by one; returns the names deleted.

        Listing first (as kubectl does) lets us report exactly which pods
        went; a pod already gone (404) is not an error.
        """
        deleted = []
        for name in self.list_pods(namespace=namespace, label_selector=label_selector):
            site = CallSite(access.POD_DELETE, namespace, name)
            try:
                with self._call(site):
                    self._core.delete_namespaced_pod(
                        name=name, namespace=namespace, _request_timeout=self._timeout
                    )
            except _PodGone:
                continue
            deleted.append(name)
        return deleted

    # Plumbing ---------------------------------------------------------------

    def _container(self, *, namespace: str, deployment: str, container: str) -> Any:
        site = CallSite(access.DEPLOYMENT_GET, namespace, deployment)
        with self._call(site):
            obj = self._apps.read_namespaced_deployment(
                name=deployment, namespace=namespace, _request_timeout=self._timeout
            )
        template = obj.spec.template if obj.spec is not None else None
        containers = template.spec.containers if template and template.spec else []
        for candidate in containers:
            if candidate.name == container:
                return candidate
        names = ", ".join(str(c.name) for c in containers) or "none"
        raise KubernetesError(
            f"deployment {namespace}/{deployment} has no container {container!r} "
            f"(containers: {names}): check redis_container in the targets file"
        )

    def _patch_deployment(self, *, namespace: str, deployment: str, patch: dict[str, Any]) -> None:
        site = CallSite(access.DEPLOYMENT_PATCH, namespace, deployment)
        with self._call(site):
            self._apps.patch_namespaced_deployment(
                name=deployment,
                namespace=namespace,
                body=patch,
                _content_type=STRATEGIC_MERGE_PATCH,
                _request_timeout=self._timeout,
            )

    @contextmanager
    def _call(self, site: CallSite) -> Iterator[None]:
        """Turn every client failure into one KubernetesError line (no tokens, no body dumps)."""
        try:
            yield
        except ApiException as err:
            status = int(err.status or 0)
            if status == 404 and site.call == access.POD_DELETE:
                raise _PodGone from None
            body = err.body if isinstance(err.body, str) else None
            message = api_error(site, status=status, reason=str(err.reason or ""), body=body)
            raise KubernetesError(message) from None
        except urllib3.exceptions.HTTPError as err:
            raise KubernetesError(
                transport_message(site, err, host=self.host, timeout=self._timeout)
            ) from None


def client_configuration(
    *, in_cluster: bool, kubeconfig: str | None = None, context: str | None = None
) -> Any:
    """The in-cluster ServiceAccount's configuration, else the kubeconfig's (one-line errors).

    No silent retries: a timed-out PATCH may have been applied, and a GET retried three
    times would turn a 10 s timeout into 40 s. The caller decides.
    """
    configuration = kubernetes.client.Configuration()
    loaders: Any = kubernetes.config  # its loaders are untyped
    try:
        if in_cluster:
            loaders.load_incluster_config(client_configuration=configuration)
        else:
            loaders.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as err:
        where = "in-cluster ServiceAccount" if in_cluster else "kubeconfig"
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        message = f"cannot load the Kubernetes {where} configuration: {detail}"
        raise KubernetesError(message) from None
    configuration.retries = 0
    return configuration


def transport_message(
    site: CallSite, err: urllib3.exceptions.HTTPError, *, host: str, timeout: float
) -> str:
    """The one line for an API server that could not be reached or did not answer in time."""
    cause: BaseException = err
    if isinstance(err, urllib3.exceptions.MaxRetryError) and err.reason is not None:
        cause = err.reason
    # urllib3 makes NewConnectionError a ConnectTimeoutError: a refusal is not a timeout.
    refused = isinstance(cause, urllib3.exceptions.NewConnectionError)
    timed_out = isinstance(cause, urllib3.exceptions.TimeoutError) and not refused
    detail = _transport_detail(cause)
    return transport_error(site, host=host, timeout=timeout, timed_out=timed_out, detail=detail)


def _resource_version(obj: Any) -> str:
    metadata = obj.metadata
    return str(metadata.resource_version) if metadata is not None else ""


class _PodGone(Exception):
    """A pod vanished between list and delete: someone (or its controller) got there first."""


def _transport_detail(cause: BaseException) -> str:
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "host name does not resolve"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        return "connection refused or host not reachable"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS handshake failed (check the CA and server name)"
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        return "the connection was dropped"
    return type(cause).__name__
