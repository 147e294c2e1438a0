"""deploy/rbac.yaml grants exactly the calls the adapter makes, and nothing more."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import KubeCoordinates
from bot.kube.access import METHOD_CALLS, ApiCall, Rule, required_rules
from bot.kube.cluster import KubeCluster
from tests.fakekube import NAMESPACE, FakeKubeSetup, running_fake_kube

RBAC = Path(__file__).resolve().parent.parent / "deploy" / "rbac.yaml"
COORDS = KubeCoordinates()
NOT_API_CALLS = {"connect", "close", "host"}


@pytest.fixture
def kube() -> Iterator[FakeKubeSetup]:
    with running_fake_kube() as setup:
        yield setup


def _documents() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert sorted(kinds) == ["Role", "RoleBinding", "ServiceAccount"], kinds
    return {d["kind"]: d for d in docs}


def _role_rules() -> set[Rule]:
    rules = set()
    for rule in _documents()["Role"]["rules"]:
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


def test_the_role_is_exactly_the_required_rules() -> None:
    assert _role_rules() == required_rules(COORDS)


def test_the_role_binding_and_service_account_match() -> None:
    docs = _documents()
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


def test_no_wildcards_and_no_write_verbs_beyond_patch_and_delete() -> None:
    for rule in _role_rules():
        assert "*" not in rule.verbs and rule.resource != "*" and rule.group != "*"
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


def test_the_table_lists_every_public_method_of_the_adapter() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(KubeCluster)
        if not name.startswith("_") and name not in NOT_API_CALLS
    }
    assert public == set(METHOD_CALLS)


def test_every_call_the_adapter_sends_is_in_the_table_and_allowed(kube: FakeKubeSetup) -> None:
    assert COORDS.namespace == NAMESPACE
    rules = _role_rules()
    for method, run in _exercise(kube.cluster).items():
        before = len(kube.fake.calls())
        run()
        sent = kube.fake.calls()[before:]
        seen = tuple(ApiCall(*r.rbac[:3]) for r in sent)
        assert seen == METHOD_CALLS[method], method
        for request in sent:
            assert _allowed(rules, *request.rbac), (method, request.rbac)
            assert request.path.startswith(
                (f"/api/v1/namespaces/{NAMESPACE}/", f"/apis/apps/v1/namespaces/{NAMESPACE}/")
            )
