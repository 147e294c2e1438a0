"""A small, stateful fake Kubernetes API server over real HTTP, for the real ``kubernetes`` client.

Why not kmock 0.8 (see docs/DESIGN.md): no PUT, label selectors ignored, a
strategic-merge patch of ``containers`` replaces the list, and no
resourceVersion conflicts. This fake does exactly what our adapter uses, the
way the real API server does it:

- ConfigMaps (core/v1) and Deployments (apps/v1): GET, PATCH, PUT, DELETE;
  Leases (coordination.k8s.io/v1): GET, PUT, DELETE and POST (create; 409 when it exists);
  Pods: GET/DELETE by name, list and DELETE collection with a ``labelSelector``
  (``=``, ``==``, ``!=``, ``in (...)``, ``notin (...)``, ``key``, ``!key``).
- PATCH as ``application/merge-patch+json`` (RFC 7386),
  ``application/strategic-merge-patch+json`` (lists such as ``containers``
  merged BY NAME, maps merged by key, ``null`` deletes) and
  ``application/json-patch+json`` (RFC 6902 add/remove/replace/test);
  anything else is 415.
- One resourceVersion counter bumped on every write; a patch or PUT whose
  ``metadata.resourceVersion`` is stale gets 409 Conflict, as optimistic
  concurrency works on a real cluster. Deployments bump ``generation`` when
  their spec changes.
- Errors are real ``Status`` bodies (404 NotFound, 409 Conflict, 422 Invalid
  for e.g. a container without image or requests above limits...).
- Fault injection per test (``fail_next``, ``slow``) and a request log.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.kube.cluster import KubeCluster

NAMESPACE = "langgraph-agent"
REDIS_CONF = (
    "# Redis session store for langgraph-agent\n"
    "bind 0.0.0.0\n"
    "port 6379\n"
    "\n"
    "# Memory\n"
    "maxmemory 512mb\n"
    "maxmemory-policy allkeys-lru\n"
    "\n"
    "# Persistence\n"
    "appendonly yes\n"
    "appendfsync everysec\n"
    'save ""\n'
)
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

_KINDS = {
    "configmaps": ("ConfigMap", "v1"),
    "pods": ("Pod", "v1"),
    "deployments": ("Deployment", "apps/v1"),
    "leases": ("Lease", "coordination.k8s.io/v1"),
}
_GROUPS = {"deployments": "apps", "leases": "coordination.k8s.io"}
_ROUTES = (
    re.compile(
        r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>configmaps|pods)(?:/(?P<name>[^/]+))?$"
    ),
    re.compile(
        r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>deployments)(?:/(?P<name>[^/]+))?$"
    ),
    re.compile(
        r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>leases)"
        r"(?:/(?P<name>[^/]+))?$"
    ),
)
# Strategic merge: lists merged by a key instead of replaced (the ones a Deployment has).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An answer with a Kubernetes ``Status`` body."""

    def __init__(
        self, code: int, message: str, *, plural: str = "", name: str = "", reason: str = ""
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.plural, self.name = code, message, plural, name
        self.reason = reason or _REASONS.get(code, "Unknown")

    def status(self) -> dict[str, Any]:
        """The ``Status`` object the real API server sends."""
        details = {"name": self.name, "kind": self.plural} if self.name else {}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": details,
            "code": self.code,
        }


@dataclass
class Request:
    """One request as the fake saw it (the body parsed as JSON), and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    status: int = 0

    @property
    def rbac(self) -> tuple[str, str, str, str]:
        """(api group, resource, RBAC verb, object name or "") this request needs."""
        match = _route(self.path)
        if match is None:
            return ("?", "?", self.method.lower(), "")
        plural, name = match.group("plural"), match.group("name") or ""
        group = _GROUPS.get(plural, "")
        verbs = {"GET": "get", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
        if not name:
            verbs = {"GET": "list", "DELETE": "deletecollection", "POST": "create"}
        return (group, plural, verbs.get(self.method, self.method.lower()), unquote(name))


@dataclass
class _Fault:
    method: str
    prefix: str
    status: int
    times: int
    message: str


@dataclass
class _Slow:
    method: str
    prefix: str
    seconds: float


@dataclass
class FakeKube:
    """The fake API server: objects in memory, served over HTTP on a free loopback port."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _version: int = 1000
    _faults: list[_Fault] = field(default_factory=list)
    _slow: list[_Slow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    # Life cycle ---------------------------------------------------------------

    def start(self) -> FakeKube:
        """Serve on 127.0.0.1 on a free port, in a daemon thread."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; slow requests still waiting are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """Base URL for ``kubernetes.client.Configuration(host=...)``."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # State --------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as a create would (kind decides the collection); returns a copy."""
        plural = {kind: plural for plural, (kind, _) in _KINDS.items()}[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", NAMESPACE)
        meta.setdefault("uid", f"uid-{plural}-{meta['name']}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if plural == "deployments":
            meta.setdefault("generation", 1)
        with self._lock:
            meta["resourceVersion"] = self._next_version()
            self.objects[(plural, meta["namespace"], meta["name"])] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def get(self, plural: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        """A copy of a stored object, or None."""
        with self._lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def add_configmap(
        self, name: str, data: dict[str, str], *, namespace: str = NAMESPACE
    ) -> dict[str, Any]:
        """Create a ConfigMap."""
        meta = {"name": name, "namespace": namespace}
        return self.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})

    def add_deployment(
        self,
        name: str,
        containers: list[dict[str, Any]],
        *,
        namespace: str = NAMESPACE,
        labels: dict[str, str] | None = None,
        extra_spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a Deployment whose pods carry ``labels`` (default ``app=<name>``)."""
        labels = labels or {"app": name}
        pod_spec: dict[str, Any] = {"containers": containers, **(extra_spec or {})}
        template = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
        spec = {"replicas": 1, "selector": {"matchLabels": dict(labels)}, "template": template}
        meta = {"name": name, "namespace": namespace, "labels": dict(labels)}
        return self.put(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
        )

    def add_pod(
        self, name: str, labels: dict[str, str], *, namespace: str = NAMESPACE
    ) -> dict[str, Any]:
        """Create a running Pod with one container."""
        meta = {"name": name, "namespace": namespace, "labels": labels}
        spec = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        pod["status"] = {"phase": "Running"}
        return self.put(pod)

    def pod_names(self, namespace: str = NAMESPACE) -> list[str]:
        """Names of the pods left in a namespace, sorted."""
        with self._lock:
            return sorted(n for (p, ns, n) in self.objects if p == "pods" and ns == namespace)

    def seed_runbook(self) -> FakeKube:
        """The runbook's objects in ``langgraph-agent``, plus bystanders that must stay put."""
        self.add_configmap("redis-session-config", {"redis.conf": REDIS_CONF})
        self.add_configmap(
            "langgraph-agent-config",
            {
                "session_ttl_seconds": "86400",
                "session_max_concurrent": "5",
                "session_sliding_window": "false",
            },
        )
        self.add_deployment(
            "redis-session", runbook_redis_containers(), extra_spec=_redis_pod_extras()
        )
        self.add_deployment("langgraph-agent", [_agent_container()])
        redis_labels = {"app": "redis-session", "pod-template-hash": "7d9f8c6b5"}
        self.add_pod("redis-session-7d9f8c6b5-x2k9p", redis_labels)
        self.add_pod("langgraph-agent-5c4d7b9f8-q8r7t", {"app": "langgraph-agent"})
        self.add_pod("langgraph-agent-5c4d7b9f8-xk2lp", {"app": "langgraph-agent"})
        self.add_pod("redis-session-backup-28461-h7d2s", {"app": "redis-session-backup"})
        self.add_pod("redis-mem-6f7c9d8b4-m4n5p", {"app": "redis-mem"})
        self.add_pod("redis-session-0", {"app": "redis-session"}, namespace="staging")
        return self

    # Fault injection and inspection --------------------------------------------

    def fail_next(
        self, method: str, path_prefix: str, status: int, *, times: int = 1, message: str = ""
    ) -> None:
        """The next ``times`` requests of ``method`` ("*": any) under ``path_prefix`` fail."""
        text = message or f"injected {status} {_REASONS.get(status, 'error')}"
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, status, times, text))

    def slow(self, seconds: float, *, method: str = "*", path_prefix: str = "/") -> None:
        """Delay matching requests by ``seconds`` before handling them (they are still applied)."""
        with self._lock:
            self._slow.append(_Slow(method.upper(), path_prefix, seconds))

    def clear_faults(self) -> None:
        """Forget every injected failure and delay."""
        with self._lock:
            self._faults.clear()
            self._slow.clear()

    def calls(self, method: str | None = None) -> list[Request]:
        """The requests logged so far (optionally of one method)."""
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method.upper()]

    # Serving --------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        """Answer one request: (HTTP status, JSON body). Runs in the server's threads."""
        delay = self._delay_for(request)
        if delay:
            self._stopping.wait(delay)
        with self._lock:
            try:
                fault = self._take_fault(request)
                if fault is not None:
                    raise ApiError(fault.status, fault.message)
                status, body = 200, self._dispatch(request)
            except ApiError as err:
                status, body = err.code, err.status()
            request.status = status
            self.requests.append(request)
        return status, body

    def _delay_for(self, request: Request) -> float:
        with self._lock:
            return sum(s.seconds for s in self._slow if _matches(s, request))

    def _take_fault(self, request: Request) -> _Fault | None:
        for fault in self._faults:
            if _matches(fault, request):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _dispatch(self, request: Request) -> dict[str, Any]:
        match = _route(request.path)
        if match is None:
            raise ApiError(404, "the server could not find the requested resource")
        plural, ns, name = match.group("plural"), unquote(match.group("ns")), match.group("name")
        if name is None:
            return self._collection(request, plural, ns)
        key = (plural, ns, unquote(name))
        handlers = {"GET": self._read, "PATCH": self._patch, "PUT": self._replace}
        handlers["DELETE"] = self._delete
        if request.method not in handlers:
            raise ApiError(405, f"{request.method} is not supported on {plural}")
        return handlers[request.method](request, key)

    def _existing(self, key: tuple[str, str, str]) -> dict[str, Any]:
        obj = self.objects.get(key)
        if obj is None:
            plural, _, name = key
            raise ApiError(404, f'{plural} "{name}" not found', plural=plural, name=name)
        return obj

    def _read(self, _: Request, key: tuple[str, str, str]) -> dict[str, Any]:
        return copy.deepcopy(self._existing(key))

    def _patch(self, request: Request, key: tuple[str, str, str]) -> dict[str, Any]:
        current = self._existing(key)
        patchers = {
            MERGE_PATCH: merge_patch,
            STRATEGIC_PATCH: strategic_merge,
            JSON_PATCH: json_patch,
        }
        patcher = patchers.get(request.content_type)
        if patcher is None:
            raise ApiError(
                415, f"the body of the request was in an unknown format: {request.content_type}"
            )
        return self._write(key, current, patcher(current, request.body))

    def _replace(self, request: Request, key: tuple[str, str, str]) -> dict[str, Any]:
        current = self._existing(key)
        new = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
        # An update without resourceVersion is unconditional (ConfigMaps, Deployments allow it).
        new.setdefault("metadata", {}).setdefault(
            "resourceVersion", current["metadata"]["resourceVersion"]
        )
        return self._write(key, current, new)

    def _write(
        self, key: tuple[str, str, str], current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        plural, ns, name = key
        meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else None
        if meta is None or meta.get("name") != name or meta.get("namespace", ns) != ns:
            raise ApiError(422, f'{plural} "{name}" is invalid: metadata.name: field is immutable')
        if str(meta.get("resourceVersion", "")) != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                plural=plural,
                name=name,
            )
        _validate(plural, name, new)
        for immutable in ("uid", "creationTimestamp", "namespace"):
            meta[immutable] = current["metadata"][immutable]
        if plural == "deployments" and new.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_version()
        self.objects[key] = new
        return copy.deepcopy(new)

    def _delete(self, _: Request, key: tuple[str, str, str]) -> dict[str, Any]:
        obj = self._existing(key)
        del self.objects[key]
        self._next_version()
        return copy.deepcopy(obj)

    def _collection(self, request: Request, plural: str, ns: str) -> dict[str, Any]:
        if request.method == "POST" and plural == "leases":
            return self._create(request, plural, ns)
        if request.method not in ("GET", "DELETE"):
            raise ApiError(405, f"{request.method} is not supported on the {plural} collection")
        requirements = parse_selector(request.query.get("labelSelector", ""))
        keys = sorted(k for k in self.objects if k[0] == plural and k[1] == ns)
        items = [
            self.objects[k]
            for k in keys
            if matches_selector(self.objects[k]["metadata"].get("labels") or {}, requirements)
        ]
        if request.method == "DELETE":
            for item in items:
                del self.objects[(plural, ns, item["metadata"]["name"])]
            self._next_version()
        kind, api_version = _KINDS[plural]
        meta = {"resourceVersion": str(self._version)}
        items = copy.deepcopy(items)
        return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items}

    def _create(self, request: Request, plural: str, ns: str) -> dict[str, Any]:
        """POST (Leases only): 409 AlreadyExists when the name is taken, as the API server does."""
        obj = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None
        if meta is None or not meta.get("name") or meta.get("namespace", ns) != ns:
            raise ApiError(422, f"{plural} is invalid: metadata.name: Required value")
        name = str(meta["name"])
        if (plural, ns, name) in self.objects:
            raise ApiError(
                409,
                f'{plural} "{name}" already exists',
                plural=plural,
                name=name,
                reason="AlreadyExists",
            )
        kind, api_version = _KINDS[plural]
        obj.update(kind=kind, apiVersion=api_version)
        meta.update(namespace=ns, uid=f"uid-{plural}-{name}", resourceVersion=self._next_version())
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        self.objects[(plural, ns, name)] = obj
        return copy.deepcopy(obj)

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing; every method goes to ``FakeKube.handle``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls
    owner: FakeKube

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, ApiError(400, "the request body is not JSON").status())
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        request = Request(self.command, parts.path, query, content_type, body)
        status, payload = self.owner.handle(request)
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout test): nothing to answer

    do_GET = do_PATCH = do_PUT = do_DELETE = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``FakeKube.requests``."""


def _route(path: str) -> re.Match[str] | None:
    for pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            return match
    return None


def _matches(rule: _Fault | _Slow, request: Request) -> bool:
    return rule.method in ("*", request.method) and request.path.startswith(rule.prefix)


# Patches ------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, lists replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge: like a merge patch, but keyed lists merge item by item."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            raise ApiError(400, f"the fake does not implement the {key} directive")
        if value is None:
            result.pop(key, None)
        elif key in _MERGE_KEYS and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _MERGE_KEYS[key])
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def _merge_list(target: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise ApiError(400, f"map does not contain declared merge key: {merge_key}")
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                merged[index] = strategic_merge(existing, item)
                break
        else:
            merged.append(strategic_merge({}, item))
    return merged


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test)."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        parent, last = _pointer(doc, str(op.get("path", "")))
        kind = op.get("op")
        if kind == "test":
            if _child(parent, last) != op.get("value"):
                raise ApiError(422, f"test operation failed at {op.get('path')}")
        elif kind == "remove":
            _child(parent, last)
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op.get("value"))
                else:
                    parent[index] = op.get("value")
            else:
                if kind == "replace":
                    _child(parent, last)
                parent[last] = op.get("value")
        else:
            raise ApiError(400, f"unsupported json patch operation {kind!r}")
    return doc


def _pointer(doc: Any, path: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise ApiError(400, "json patch path must not be empty")
    node = doc
    for part in parts[:-1]:
        node = _child(node, part)
    return node, parts[-1]


def _child(node: Any, part: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"json patch path not found at {part!r}") from None


# Validation (the few rules that matter for what we patch) -----------------------

_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_SUFFIX: dict[str, Decimal | int] = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (``512Mi``, ``100m``, ``1.5Gi``) as a number."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(text)
    suffix = match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(match.group(1)) * Decimal(10) ** int(suffix[1:])
    return Decimal(match.group(1)) * Decimal(_SUFFIX[suffix])


def _validate(plural: str, name: str, obj: dict[str, Any]) -> None:
    problem = _problem(plural, obj)
    if problem:
        raise ApiError(422, f'{plural} "{name}" is invalid: {problem}', plural=plural, name=name)


def _problem(plural: str, obj: dict[str, Any]) -> str:
    if plural == "configmaps":
        data = obj.get("data") or {}
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        return f"data[{bad[0]}]: Invalid value: must be a string" if bad else ""
    if plural == "deployments":
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        return _containers_problem(spec.get("containers") or [])
    return ""


def _containers_problem(containers: list[dict[str, Any]]) -> str:
    names = [c.get("name") for c in containers]
    if len(set(names)) != len(names):
        return "spec.template.spec.containers: Duplicate value"
    for index, container in enumerate(containers):
        where = f"spec.template.spec.containers[{index}]"
        if not container.get("image"):
            return f"{where}.image: Required value"
        problem = _resources_problem(where, container.get("resources") or {})
        if problem:
            return problem
    return ""


def _resources_problem(where: str, resources: dict[str, Any]) -> str:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    try:
        req = {k: quantity(str(v)) for k, v in requests.items()}
        lim = {k: quantity(str(v)) for k, v in limits.items()}
    except ValueError as err:
        return (
            f"{where}.resources: Invalid value: {err}: quantities must match the regular expression"
        )
    for key, value in req.items():
        if key in lim and value > lim[key]:
            problem = f"must be less than or equal to {key} limit"
            return f"{where}.resources.requests: Invalid value: {problem}"
    return ""


# Label selectors ------------------------------------------------------------------

_KEY = r"[A-Za-z0-9][A-Za-z0-9./_-]*"
_SET_REQ = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)$")
_EQ_REQ = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>[A-Za-z0-9._-]*)$")
_EXISTS_REQ = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")


class Requirement(NamedTuple):
    """One part of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]


def parse_selector(text: str) -> list[Requirement]:
    """Parse a label selector as the API server does; a bad one is a 400."""
    requirements = []
    for part in _split_top_level(text):
        requirement = _requirement(part.strip())
        if requirement is None:
            raise ApiError(400, f"unable to parse requirement: {part.strip()!r}")
        requirements.append(requirement)
    return requirements


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip() or parts:
        parts.append(current)
    return parts


def _requirement(part: str) -> Requirement | None:
    if match := _SET_REQ.match(part):
        values = frozenset(v.strip() for v in match.group("values").split(",") if v.strip())
        return Requirement(match.group("key"), match.group("op"), values)
    if match := _EQ_REQ.match(part):
        op = "=" if match.group("op") in ("=", "==") else "!="
        return Requirement(match.group("key"), op, frozenset({match.group("value")}))
    if match := _EXISTS_REQ.match(part):
        op = "!exists" if match.group("neg") else "exists"
        return Requirement(match.group("key"), op, frozenset())
    return None


def matches_selector(labels: dict[str, str], requirements: list[Requirement]) -> bool:
    """Whether labels satisfy every requirement (``!=``/``notin`` match when the key is absent)."""
    return all(_satisfies(labels, r) for r in requirements)


def _satisfies(labels: dict[str, str], req: Requirement) -> bool:
    present, value = req.key in labels, labels.get(req.key)
    checks = {
        "exists": present,
        "!exists": not present,
        "=": present and value in req.values,
        "in": present and value in req.values,
        "!=": not present or value not in req.values,
        "notin": not present or value not in req.values,
    }
    return checks[req.op]


# Runbook objects --------------------------------------------------------------------


def runbook_redis_containers() -> list[dict[str, Any]]:
    """The ``redis-session`` pod: redis (limit 1.5x maxmemory, as the runbook says) + exporter."""
    redis = {
        "name": "redis",
        "image": "redis:7.2-alpine",
        "command": ["redis-server", "/etc/redis/redis.conf"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "768Mi"},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}],
    }
    exporter = {
        "name": "exporter",
        "image": "oliver006/redis_exporter:v1.62.0",
        "ports": [{"name": "metrics", "containerPort": 9121}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    }
    return [redis, exporter]


def _redis_pod_extras() -> dict[str, Any]:
    config = {"name": "config", "configMap": {"name": "redis-session-config"}}
    return {"volumes": [config], "terminationGracePeriodSeconds": 30}


def _agent_container() -> dict[str, Any]:
    return {
        "name": "agent",
        "image": "langgraph-agent:1.4.0",
        "envFrom": [{"configMapRef": {"name": "langgraph-agent-config"}}],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
    }


# Fixture ------------------------------------------------------------------------------


class FakeKubeSetup(NamedTuple):
    """The running fake (seeded with the runbook's objects) and a real-client adapter on it."""

    fake: FakeKube
    cluster: KubeCluster


@contextmanager
def running_fake_kube(*, timeout: float = 5.0, seed: bool = True) -> Iterator[FakeKubeSetup]:
    """Start a fake API server and a ``KubeCluster`` whose real ``ApiClient`` points at it."""
    fake = FakeKube().start()
    if seed:
        fake.seed_runbook()
    configuration = Configuration(host=fake.url)
    configuration.retries = 0  # one request per call, so the request log is exact
    cluster = KubeCluster(api_client=ApiClient(configuration), timeout=timeout)
    try:
        yield FakeKubeSetup(fake, cluster)
    finally:
        cluster.close()
        fake.stop()


@pytest.fixture
def fake_kube() -> Iterator[FakeKubeSetup]:
    """A seeded fake Kubernetes API server and a ``KubeCluster`` talking to it over HTTP."""
    with running_fake_kube() as setup:
        yield setup
