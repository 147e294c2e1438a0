"""deploy/overlays/{single,ha}, rendered by the real ``kubectl kustomize``: the properties a
platform team checks before applying them (docs/decisions/deploy.md says why each is so)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings, Target
from bot.targets_file import load_targets
from tests.kustomize_render import OVERLAYS, ROOT, Doc, only, render

NAMESPACE = "langgraph-agent"
LABELS = {"app": "redis-mem"}
RUN_AS = 10001  # the Dockerfile's user (tests/test_packaging.py checks that side)
MIN_MEMORY_LIMIT = 512 * 2**20  # a month's report for 100 targets peaked at ~400 MB RSS
# Not the bot's variables, but read in the container: matplotlib's config directory.
FOREIGN_ENV = {"MPLCONFIGDIR"}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str) -> float:
    match = _QUANTITY.match(str(quantity))
    assert match, f"not a memory quantity: {quantity!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def _pod(docs: list[Doc]) -> dict[str, Any]:
    spec: dict[str, Any] = only(docs, "Deployment")["spec"]["template"]
    return spec


def _container(docs: list[Doc]) -> dict[str, Any]:
    containers = _pod(docs)["spec"]["containers"]
    assert [c["name"] for c in containers] == ["redis-mem"]
    container: dict[str, Any] = containers[0]
    return container


def _env(docs: list[Doc]) -> dict[str, dict[str, Any]]:
    entries = _container(docs)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    return {e["name"]: e for e in entries}


def _port(docs: list[Doc]) -> int:
    [port] = _container(docs)["ports"]
    assert port["name"] == "http"
    assert _env(docs)["PORT"]["value"] == str(port["containerPort"])
    return int(port["containerPort"])


def _mounts(docs: list[Doc]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """mountPath -> (the mount, its volume)."""
    volumes = {v["name"]: v for v in _pod(docs)["spec"]["volumes"]}
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in _container(docs)["volumeMounts"]}


def _design_env_names() -> set[str]:
    """Every variable docs/DESIGN.md's Environment table names (the contract)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    table = text.split("### Environment", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def docs(overlay: str) -> list[Doc]:
    return render(overlay)


def test_each_overlay_renders_exactly_its_objects_in_the_namespace(
    overlay: str, docs: list[Doc]
) -> None:
    shared = {"ConfigMap", "Deployment", "NetworkPolicy", "Role", "RoleBinding", "Service"}
    shared |= {"ServiceAccount"}
    extra = {"single": {"PersistentVolumeClaim"}, "ha": {"PodDisruptionBudget"}}[overlay]
    assert sorted(d["kind"] for d in docs) == sorted(shared | extra)
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_the_pod_runs_unprivileged_on_a_read_only_root(docs: list[Doc]) -> None:
    pod = _pod(docs)["spec"]
    assert pod["serviceAccountName"] == only(docs, "ServiceAccount")["metadata"]["name"]
    for container in pod["containers"] + pod.get("initContainers", []):
        effective = pod["securityContext"] | container.get("securityContext", {})
        assert effective["runAsNonRoot"] is True
        assert effective["runAsUser"] == RUN_AS and effective["runAsGroup"] == RUN_AS
        assert effective["readOnlyRootFilesystem"] is True
        assert effective["allowPrivilegeEscalation"] is False
        assert effective["capabilities"] == {"drop": ["ALL"]}
        assert effective["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in effective or effective["privileged"] is False


def test_every_writable_path_is_a_volume_and_matplotlib_has_one(docs: list[Doc]) -> None:
    mounts = _mounts(docs)
    tmp_mount, tmp_volume = mounts["/tmp"]
    assert "emptyDir" in tmp_volume and not tmp_mount.get("readOnly", False)
    assert tmp_volume["emptyDir"].get("sizeLimit"), "a runaway /tmp must not fill the node"
    assert _env(docs)["MPLCONFIGDIR"]["value"].startswith("/tmp/")
    targets_mount, targets_volume = mounts["/etc/redis-mem"]
    assert targets_mount["readOnly"] is True and "configMap" in targets_volume


def test_resources_are_requested_and_limited(docs: list[Doc]) -> None:
    resources = _container(docs)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) >= {"memory"}
    limit = _bytes(resources["limits"]["memory"])
    assert limit >= MIN_MEMORY_LIMIT
    assert _bytes(resources["requests"]["memory"]) <= limit


def test_probes_ask_readyz_and_healthz_on_the_http_port(docs: list[Doc]) -> None:
    container = _container(docs)
    _port(docs)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A liveness probe must not fail on a slow dependency: /healthz only says "serving".
    assert container["livenessProbe"]["timeoutSeconds"] >= 1


def test_pod_name_and_namespace_come_from_the_downward_api(docs: list[Doc]) -> None:
    env = _env(docs)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_prometheus_scrapes_metrics_on_the_http_port(docs: list[Doc]) -> None:
    annotations = _pod(docs)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(_port(docs))
    assert annotations["prometheus.io/path"] == "/metrics"


def test_every_variable_is_a_documented_one_and_secrets_come_from_secrets(
    docs: list[Doc],
) -> None:
    env = _env(docs)
    unknown = set(env) - _design_env_names() - FOREIGN_ENV
    assert not unknown, f"not in docs/DESIGN.md's Environment table (a typo is ignored): {unknown}"
    for name, entry in env.items():
        if re.search(r"TOKEN|SECRET|PASSWORD", name) or entry.get("value", "").startswith("post"):
            assert "secretKeyRef" in entry.get("valueFrom", {}), name
    assert _container(docs)["envFrom"] == [{"secretRef": {"name": "redis-mem"}}]


def test_the_targets_file_is_mounted_and_valid(docs: list[Doc], tmp_path: Path) -> None:
    target = rendered_target(docs, tmp_path)
    assert target.kubernetes.namespace == NAMESPACE
    assert target.password_env is not None  # the password comes from the Secret


def rendered_target(docs: list[Doc], tmp_path: Path) -> Target:
    """The one target of the rendered ConfigMap, read by the bot's own loader."""
    env = _env(docs)
    path = Path(env["REDIS_MEM_TARGETS_FILE"]["value"])
    _mount, volume = _mounts(docs)[str(path.parent)]
    configmap = only(docs, "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    copy = tmp_path / path.name
    copy.write_text(configmap["data"][path.name])
    [target] = load_targets(Settings(REDIS_MEM_TARGETS_FILE=copy)).values()
    return target


def test_the_service_and_selectors_reach_the_pods(docs: list[Doc]) -> None:
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["selector"] == {"matchLabels": LABELS}
    assert LABELS.items() <= _pod(docs)["metadata"]["labels"].items()
    service = only(docs, "Service")["spec"]
    assert service["selector"] == LABELS
    assert [p["targetPort"] for p in service["ports"]] == ["http"]


def _egress_ports(policy: Doc) -> set[tuple[str, int]]:
    ports = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("ports"), f"an egress rule open on every port: {rule}"
        assert rule.get("to"), f"an egress rule open to every destination: {rule}"
        ports |= {(p["protocol"], p["port"]) for p in rule["ports"]}
    return ports


def _rule_to(policy: Doc, protocol: str, port: int) -> list[dict[str, Any]]:
    [rule] = [
        r for r in policy["spec"]["egress"] if {"protocol": protocol, "port": port} in r["ports"]
    ]
    peers: list[dict[str, Any]] = rule["to"]
    return peers


def test_the_network_policy_allows_only_what_the_bot_talks_to(
    overlay: str, docs: list[Doc], tmp_path: Path
) -> None:
    policy = only(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {"matchLabels": LABELS}
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": _port(docs)}]}]
    dns = {("UDP", 53), ("TCP", 53)}
    wanted = dns | {("TCP", 6379), ("TCP", 443), ("TCP", 6443)}
    if overlay == "ha":
        wanted.add(("TCP", 5432))  # PostgreSQL; single's SQLite is a file on its volume
    assert _egress_ports(policy) == wanted
    kube_dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    assert _rule_to(policy, "UDP", 53) == [kube_dns] == _rule_to(policy, "TCP", 53)
    target = rendered_target(docs, tmp_path)
    key, _, value = target.kubernetes.pod_selector.partition("=")
    assert _rule_to(policy, "TCP", 6379) == [{"podSelector": {"matchLabels": {key: value}}}]
    assert target.redis_url.rsplit(":", 1)[1].startswith("6379")


def test_single_keeps_the_audit_trail_on_a_claim_and_recreates() -> None:
    docs = render("single")
    spec = only(docs, "Deployment")["spec"]
    assert spec["strategy"] == {"type": "Recreate"}  # the claim is ReadWriteOnce
    url = _env(docs)["DATABASE_URL"]["value"]
    assert url == "sqlite:////data/redis-mem.db"
    mount, volume = _mounts(docs)["/data"]
    assert "emptyDir" not in volume and not mount.get("readOnly", False)
    claim = only(docs, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _env(docs)["REDIS_MEM_LEADER_ELECTION"]["value"] == "none"


def test_ha_runs_two_spread_replicas_on_postgresql_with_a_budget() -> None:
    docs = render("ha")
    spec = only(docs, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = _env(docs)
    assert set(env["DATABASE_URL"]) == {"name", "valueFrom"}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    assert env["REDIS_MEM_LEADER_ELECTION"]["value"] == "kubernetes"
    assert "/data" not in _mounts(docs)
    budget = only(docs, "PodDisruptionBudget")["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": LABELS}}
    [term] = _pod(docs)["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": LABELS}


def test_no_overlay_keeps_anything_in_an_empty_dir_but_tmp(docs: list[Doc]) -> None:
    for path, (_mount, volume) in _mounts(docs).items():
        assert "emptyDir" not in volume or path == "/tmp", path
    assert yaml.safe_dump(docs).count("emptyDir") == 1
