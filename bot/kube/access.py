"""Which Kubernetes API calls each adapter method makes: the source of ``deploy/base/rbac.yaml``.

The Role in ``deploy/base/rbac.yaml`` must grant exactly ``required_rules()`` for the
target's coordinates; a test compares the two, and another checks that the
calls the adapter really sends (seen by the fake API server) are in this table.

Leader election (``bot.kube.lease``, ``LEASE_METHOD_CALLS``) adds, with
``required_rules(coords, leader_election=True)``: ``get`` and ``update`` on the
Lease ``redis-mem-leader`` by name, and ``create`` on leases without a name
(RBAC cannot restrict ``create`` by name: the object does not exist yet).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import KubeCoordinates


@dataclass(frozen=True)
class ApiCall:
    """One API call: the RBAC verb on a resource of an API group ("" is the core group)."""

    group: str
    resource: str
    verb: str

    @property
    def named(self) -> bool:
        """Whether RBAC ``resourceNames`` can restrict it (``list``/``deletecollection`` cannot)."""
        return self.verb not in ("list", "deletecollection", "create", "watch")


CONFIGMAP_GET = ApiCall("", "configmaps", "get")
CONFIGMAP_PATCH = ApiCall("", "configmaps", "patch")
DEPLOYMENT_GET = ApiCall("apps", "deployments", "get")
DEPLOYMENT_PATCH = ApiCall("apps", "deployments", "patch")
POD_LIST = ApiCall("", "pods", "list")
POD_DELETE = ApiCall("", "pods", "delete")
LEASE_GET = ApiCall("coordination.k8s.io", "leases", "get")
LEASE_CREATE = ApiCall("coordination.k8s.io", "leases", "create")
LEASE_UPDATE = ApiCall("coordination.k8s.io", "leases", "update")
LEASE_NAME = "redis-mem-leader"  # the leader-election Lease (docs/decisions/leader-election.md)

# KubeCluster method -> the calls it makes, in order.
METHOD_CALLS: dict[str, tuple[ApiCall, ...]] = {
    "read_configmap": (CONFIGMAP_GET,),
    "patch_configmap_key": (CONFIGMAP_PATCH,),
    "read_container_resources": (DEPLOYMENT_GET,),
    "patch_container_resources": (DEPLOYMENT_GET, DEPLOYMENT_PATCH),
    "rollout_restart": (DEPLOYMENT_PATCH,),
    "list_pods": (POD_LIST,),
    "delete_pods": (POD_LIST, POD_DELETE),
}

# KubeLeaseStore (bot.kube.lease) method -> the calls it makes.
LEASE_METHOD_CALLS: dict[str, tuple[ApiCall, ...]] = {
    "get": (LEASE_GET,),
    "create": (LEASE_CREATE,),
    "replace": (LEASE_UPDATE,),
}


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule with a single group and resource (as deploy/base/rbac.yaml has it)."""

    group: str
    resource: str
    verbs: frozenset[str]
    names: frozenset[str]  # empty: any name


def required_rules(coords: KubeCoordinates, *, leader_election: bool = False) -> set[Rule]:
    """The least-privilege rules for one target: named objects get only named verbs.

    ``leader_election``: also the Lease calls (the ``ha`` deployment runs several replicas).
    """
    names = {
        "configmaps": frozenset({coords.redis_configmap, coords.app_configmap}),
        "deployments": frozenset({coords.redis_deployment, coords.app_deployment}),
        # Pod names are generated, so a pod cannot be named in advance.
        "pods": frozenset[str](),
        "leases": frozenset({LEASE_NAME}),
    }
    tables = [METHOD_CALLS, LEASE_METHOD_CALLS] if leader_election else [METHOD_CALLS]
    calls = {call for table in tables for method_calls in table.values() for call in method_calls}
    grouped: dict[tuple[str, str, frozenset[str]], set[str]] = {}
    for call in calls:
        scope = names[call.resource] if call.named else frozenset[str]()
        grouped.setdefault((call.group, call.resource, scope), set()).add(call.verb)
    return {
        Rule(group, resource, frozenset(verbs), scope)
        for (group, resource, scope), verbs in grouped.items()
    }
