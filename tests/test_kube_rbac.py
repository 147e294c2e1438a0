"""The rendered overlays' RBAC grants exactly the calls the adapters make, and nothing more.

``kubectl kustomize deploy/overlays/<name>`` (tests/kustomize_render.py) is what a platform
team applies, so that is what is compared with ``bot/kube/access.py``: ``single`` grants the
fix and drift calls, ``ha`` those and the leader Lease.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.config import KubeCoordinates
from bot.kube.access import LEASE_METHOD_CALLS, METHOD_CALLS, ApiCall, Rule, required_rules
from bot.kube.cluster import KubeCluster
from bot.kube.lease import KubeLeaseStore
from bot.leases import LeaseRecord
from tests.fakekube import NAMESPACE, FakeKubeSetup, running_fake_kube
from tests.kustomize_render import Doc, render

COORDS = KubeCoordinates()
NOT_API_CALLS = {"connect", "close", "host"}
NOT_LEASE_CALLS = {"connect", "close", "namespace", "name", "description"}
# The Lease rules as issue 12 specifies them, written out so a change to the table
# (bot/kube/access.py) that widens them fails here too.
LEASE_RULES = {
    Rule(
        "coordination.k8s.io",
        "leases",
        frozenset({"get", "update"}),
        frozenset({"redis-mem-leader"}),
    ),
    Rule("coordination.k8s.io", "leases", frozenset({"create"}), frozenset()),
}
EXPECTED = {"single": required_rules(COORDS), "ha": required_rules(COORDS, leader_election=True)}


@pytest.fixture
def kube() -> Iterator[FakeKubeSetup]:
    with running_fake_kube() as setup:
        yield setup


def _rbac(overlay: str) -> dict[str, Doc]:
    docs = [
        d
        for d in render(overlay)
        if d["apiVersion"].startswith("rbac.") or d["kind"] == "ServiceAccount"
    ]
    kinds = [d["kind"] for d in docs]
    assert sorted(kinds) == ["Role", "RoleBinding", "ServiceAccount"], kinds
    return {d["kind"]: d for d in docs}


def _role_rules(overlay: str) -> set[Rule]:
    rules = set()
    for rule in _rbac(overlay)["Role"]["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                names = frozenset(rule.get("resourceNames", []))
                rules.add(Rule(group, resource, frozenset(rule["verbs"]), names))
    return rules


def _allowed(rules: set[Rule], group: str, resource: str, verb: str, name: str) -> bool:
    return any(
        r.group == group
        and r.resource == resource
        and verb in r.verbs
        and (not r.names or name in r.names)
        for r in rules
    )


@pytest.mark.parametrize("overlay", sorted(EXPECTED))
def test_the_role_is_exactly_the_required_rules(overlay: str) -> None:
    assert _role_rules(overlay) == EXPECTED[overlay]


def test_only_ha_has_the_lease_and_it_is_the_issues_rules() -> None:
    assert EXPECTED["ha"] - EXPECTED["single"] == LEASE_RULES
    assert not any(rule.resource == "leases" for rule in _role_rules("single"))


@pytest.mark.parametrize("overlay", sorted(EXPECTED))
def test_the_role_binding_and_service_account_match(overlay: str) -> None:
    docs = _rbac(overlay)
    for doc in docs.values():
        assert doc["metadata"]["namespace"] == COORDS.namespace
    assert docs["ServiceAccount"]["metadata"]["name"] == "redis-mem"
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "redis-mem", "namespace": COORDS.namespace}
    ]


@pytest.mark.parametrize("overlay", sorted(EXPECTED))
def test_no_wildcards_and_no_write_verbs_beyond_the_adapters(overlay: str) -> None:
    for rule in _role_rules(overlay):
        assert "*" not in rule.verbs and rule.resource != "*" and rule.group != "*"
        if rule.resource == "leases":
            assert rule.verbs <= {"get", "create", "update"}
        else:
            assert rule.verbs <= {"get", "list", "patch", "delete"}


def _exercise(cluster: KubeCluster) -> dict[str, Callable[[], object]]:
    """One call of every adapter method on the target's objects."""
    ns = COORDS.namespace
    return {
        "read_configmap": lambda: cluster.read_configmap(namespace=ns, name=COORDS.app_configmap),
        "patch_configmap_key": lambda: cluster.patch_configmap_key(
            namespace=ns, name=COORDS.app_configmap, key="session_max_concurrent", value="3"
        ),
        "read_container_resources": lambda: cluster.read_container_resources(
            namespace=ns, deployment=COORDS.redis_deployment, container=COORDS.redis_container
        ),
        "patch_container_resources": lambda: cluster.patch_container_resources(
            namespace=ns,
            deployment=COORDS.redis_deployment,
            container=COORDS.redis_container,
            requests={"memory": "1Gi"},
            limits={"memory": "1536Mi"},
        ),
        "rollout_restart": lambda: cluster.rollout_restart(
            namespace=ns, deployment=COORDS.app_deployment, at=datetime(2026, 1, 1, tzinfo=UTC)
        ),
        "list_pods": lambda: cluster.list_pods(namespace=ns, label_selector=COORDS.pod_selector),
        "delete_pods": lambda: cluster.delete_pods(
            namespace=ns, label_selector=COORDS.pod_selector
        ),
    }


def _public(cls: type[Any], exclude: set[str]) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_") and n not in exclude}


def test_the_tables_list_every_public_method_of_the_adapters() -> None:
    assert _public(KubeCluster, NOT_API_CALLS) == set(METHOD_CALLS)
    assert _public(KubeLeaseStore, NOT_LEASE_CALLS) == set(LEASE_METHOD_CALLS)


def _check_sent(
    kube: FakeKubeSetup,
    runs: dict[str, Callable[[], object]],
    table: dict[str, Any],
    *,
    overlay: str,
) -> None:
    """Each run sends exactly its table entry, and ``overlay``'s Role allows every request."""
    rules = _role_rules(overlay)
    for method, run in runs.items():
        before = len(kube.fake.calls())
        run()
        sent = kube.fake.calls()[before:]
        assert tuple(ApiCall(*r.rbac[:3]) for r in sent) == table[method], method
        for request in sent:
            assert _allowed(rules, *request.rbac), (method, request.rbac)
            assert f"/namespaces/{NAMESPACE}/" in request.path


def test_every_call_the_adapter_sends_is_in_the_table_and_allowed(kube: FakeKubeSetup) -> None:
    assert COORDS.namespace == NAMESPACE
    # single's Role is ha's without the Lease (above): allowed there is allowed in both.
    _check_sent(kube, _exercise(kube.cluster), METHOD_CALLS, overlay="single")


def test_every_lease_call_is_in_the_table_and_allowed_by_ha(kube: FakeKubeSetup) -> None:
    configuration = Configuration(host=kube.fake.url)
    configuration.retries = 0
    store = KubeLeaseStore(api_client=ApiClient(configuration), namespace=NAMESPACE)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = LeaseRecord(holder="pod-a", duration_seconds=15, acquired_at=now, renewed_at=now)
    created: list[Any] = []
    runs: dict[str, Callable[[], object]] = {
        "get": store.get,
        "create": lambda: created.append(store.create(record)),
        "replace": lambda: store.replace(record, created[0].version),
    }
    try:
        _check_sent(kube, runs, LEASE_METHOD_CALLS, overlay="ha")
    finally:
        store.close()
    assert created[0] is not None
