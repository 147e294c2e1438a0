"""Which Kubernetes API calls each adapter method makes: the source of ``deploy/rbac.yaml``.

The Role in ``deploy/rbac.yaml`` must grant exactly ``required_rules()`` for the
target's coordinates; a test compares the two, and another checks that the
calls the adapter really sends (seen by the fake API server) are in this table.
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


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule with a single group and resource (how deploy/rbac.yaml is written)."""

    group: str
    resource: str
    verbs: frozenset[str]
    names: frozenset[str]  # empty: any name


def required_rules(coords: KubeCoordinates) -> set[Rule]:
    """The least-privilege rules for one target: named objects get only named verbs."""
    names = {
        "configmaps": frozenset({coords.redis_configmap, coords.app_configmap}),
        "deployments": frozenset({coords.redis_deployment, coords.app_deployment}),
        # Pod names are generated, so a pod cannot be named in advance.
        "pods": frozenset[str](),
    }
    calls = {call for method_calls in METHOD_CALLS.values() for call in method_calls}
    grouped: dict[tuple[str, str, frozenset[str]], set[str]] = {}
    for call in calls:
        scope = names[call.resource] if call.named else frozenset[str]()
        grouped.setdefault((call.group, call.resource, scope), set()).add(call.verb)
    return {
        Rule(group, resource, frozenset(verbs), scope)
        for (group, resource, scope), verbs in grouped.items()
    }
