"""One-line, secret-free messages for failed Kubernetes calls: what failed and what to do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from bot.kube.access import ApiCall

_ACTIONS = {"get": "read", "list": "list", "patch": "patch", "delete": "delete"}
_KINDS = {"configmaps": "configmap", "deployments": "deployment", "pods": "pod"}
_WRITES = frozenset({"patch", "update", "delete", "deletecollection", "create"})


@dataclass(frozen=True)
class CallSite:
    """What the adapter was doing: the API call and the object(s) it aimed at."""

    call: ApiCall
    namespace: str
    name: str = ""  # the object's name, or empty for a list
    selector: str = ""  # label selector of a list call

    @property
    def action(self) -> str:
        """The verb as a user reads it ("read" rather than "get")."""
        return _ACTIONS.get(self.call.verb, self.call.verb)

    @property
    def target(self) -> str:
        """``configmap ns/name`` or ``pods in ns with labels app=x``."""
        if self.name:
            return (
                f"{_KINDS.get(self.call.resource, self.call.resource)} {self.namespace}/{self.name}"
            )
        labels = f" with labels {self.selector}" if self.selector else ""
        return f"{self.call.resource} in namespace {self.namespace}{labels}"


def api_error(site: CallSite, *, status: int, reason: str, body: str | None) -> str:
    """The message for an HTTP error answer of the API server."""
    head = f"({status} {reason or 'Error'})"
    refused = f"Kubernetes refused to {site.action} {site.target} {head}"
    if status == 401:
        return (
            f"{refused}: the bot's credentials were rejected; "
            "check its kubeconfig or ServiceAccount token"
        )
    if status == 403:
        return (
            f'{refused}: the bot\'s ServiceAccount lacks "{site.call.verb}" on '
            f"{site.call.resource} — see deploy/base/rbac.yaml"
        )
    if status == 404:
        return (
            f"Kubernetes has no {site.target} {head}: check the namespace and names under "
            "'kubernetes' in the targets file"
        )
    if status == 409:
        return f"{refused}: it changed since it was read; run the diagnosis again"
    if status in (400, 422):
        return f"{refused}: {_server_message(body) or 'the request was invalid'}"
    if status == 429:
        return f"{refused}: the API server is throttling requests; try again in a minute"
    if status >= 500:
        return (
            f"Kubernetes API failed to {site.action} {site.target} {head}: the API server had an "
            f"error{_unknown_outcome(site)}; try again shortly"
        )
    return f"{refused}: {_server_message(body) or 'unexpected answer'}"


def transport_error(
    site: CallSite, *, host: str, timeout: float, timed_out: bool, detail: str
) -> str:
    """The message when the API server could not be reached or did not answer in time."""
    why = f"timed out after {timeout:g} s" if timed_out else detail
    return (
        f"Kubernetes API unreachable at {safe_host(host)}: {why} "
        f"(while trying to {site.action} {site.target}){_unknown_outcome(site)}"
    )


def safe_host(host: str) -> str:
    """The API server URL without any user:password part."""
    parts = urlsplit(host)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


def _unknown_outcome(site: CallSite) -> str:
    # A write that failed in flight may still have been applied by the server.
    if site.call.verb in _WRITES:
        return "; the change may or may not have been applied, so read it back before retrying"
    return ""


def _server_message(body: str | None) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, on one line and not too long."""
    if not body:
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    if not isinstance(message, str):
        return ""
    flat = " ".join(message.split())
    return flat if len(flat) <= 300 else flat[:297] + "..."
