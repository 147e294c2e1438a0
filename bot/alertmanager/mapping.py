"""Which target an Alertmanager alert is about.

In this order: its ``redis_mem_target`` label (a target name); else its ``instance``
label (``host:port``, or a ``redis://host:port`` URL as redis_exporter's ``addr`` is)
matched against the targets' Redis host and port; else the only target when there is
exactly one. A ``redis_mem_target`` naming no target is unmapped, not guessed: the
label is the operator's explicit answer, and a wrong one should show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.config import Target
from bot.limits import echo

TARGET_LABEL = "redis_mem_target"
INSTANCE_LABEL = "instance"
DEFAULT_REDIS_PORT = 6379
SHOWN_CHARS = 80


@dataclass(frozen=True)
class Mapped:
    """The target of an alert (None: unmapped) and, when unmapped, why (one phrase)."""

    target: str | None
    why: str = ""


def map_alert(labels: Mapping[str, str], targets: Mapping[str, Target]) -> Mapped:
    """The target ``labels`` point at (see module doc)."""
    named = labels.get(TARGET_LABEL, "").strip()
    if named:
        if named in targets:
            return Mapped(named)
        return Mapped(None, f"{TARGET_LABEL}={echo(named)} names no target")
    instance = labels.get(INSTANCE_LABEL, "").strip()
    if instance:
        address = host_port(instance)
        matches = [t.name for t in targets.values() if address and redis_address(t) == address]
        if len(matches) == 1:
            return Mapped(matches[0])
        if len(matches) > 1:
            return Mapped(None, f"instance {shown(instance)} is the Redis of several targets")
    if len(targets) == 1:
        return Mapped(next(iter(targets)))
    if instance:
        return Mapped(None, f"instance {shown(instance)} is the Redis of no target")
    return Mapped(None, f"no {TARGET_LABEL} or {INSTANCE_LABEL} label")


def redis_address(target: Target) -> tuple[str, int] | None:
    """The target's Redis ``(host, port)``, host lower case; None for a unix socket, and for a
    Sentinel or Cluster target (its data nodes are discovered, its redis_url names none)."""
    if target.mode != "standalone" or target.redis_url.startswith("unix://"):
        return None
    return host_port(target.redis_url)


def host_port(text: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``, ``[::1]:port`` or ``scheme://host:port/...``.

    Without a port, Redis's own; None when ``text`` is no address at all.
    """
    if "://" not in text:
        text = f"//{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a port that is not a number, brackets that are not IPv6
        return None
    host = (parts.hostname or "").lower()
    if not host:
        return None
    return host, port if port is not None else DEFAULT_REDIS_PORT


def shown(instance: str) -> str:
    """The instance as ``host:port`` (a URL's password dropped); else as ``echo`` shows it."""
    address = host_port(instance)
    if address is None:
        return echo(instance)
    host, port = address
    host = f"[{host}]" if ":" in host else host
    text = f"{host}:{port}"
    return "".join(c if c.isprintable() else "?" for c in text[:SHOWN_CHARS]) + (
        "…" if len(text) > SHOWN_CHARS else ""
    )
