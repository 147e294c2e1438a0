"""How a result names the servers of a multi-server target (a cluster's primaries).

One line each, for the step details that the Slack result message, the audit row's
summary and ``state`` all carry: ``on 3 of 3 primaries (127.0.0.1:7001, ...)``, or
``on 2 of 3 primaries (...); 127.0.0.1:7003 refused: ...``. A primary that did not take
the change is always named, with its reason; the ones that did, up to ``SHOWN``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Target
from bot.remediation.ports import NodeOutcome

SHOWN = 6  # addresses listed before "+N more" (a Slack step line is clipped at 400)


def applied_on(nodes: Sequence[NodeOutcome], *, counts: bool = False) -> str:
    """`` on 2 of 3 primaries (a, b); c refused: why`` ('' for a one-server target).

    ``counts``: each primary with its keys changed (``a 40``), for the key actions.
    """
    if not nodes:
        return ""
    took = [n for n in nodes if n.applied]
    names = [f"{n.address} {n.changed:,}" if counts else n.address for n in took]
    more = f", +{len(names) - SHOWN} more" if len(names) > SHOWN else ""
    listed = ", ".join(names[:SHOWN]) + more
    line = f" on {len(took)} of {len(nodes)} primaries" + (f" ({listed})" if listed else "")
    refused = [n for n in nodes if not n.applied]
    if refused:
        line += "; " + "; ".join(_refusal(n, counts=counts) for n in refused[:SHOWN])
        if len(refused) > SHOWN:
            line += f"; +{len(refused) - SHOWN} more primaries NOT changed"
    return line


def _refusal(node: NodeOutcome, *, counts: bool) -> str:
    why = node.reason or "no reason given"
    if counts and node.changed:
        return f"{node.address} stopped after {node.changed:,} keys: {why}"
    return f"{node.address} NOT changed: {why}"


def partly(nodes: Sequence[NodeOutcome]) -> bool:
    """Some primaries took the change and some did not."""
    return any(n.applied for n in nodes) and not all(n.applied for n in nodes)


def cluster_refusal(target: Target, action_id: str, why: str) -> list[str]:
    """``[reason]`` when ``target`` is a cluster and ``why`` says the fix must not run on one."""
    if target.mode != "cluster" or not why:
        return []
    return [f"{action_id} is not run on a cluster target: {why}"]
