"""The nodes of a Sentinel or Cluster target: one's URL from the address it reports, and how
a node (a sentinel, a seed) is named in messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from bot.config import Target
from bot.redisinfo.client import shown_url


def node_url(target: Target, address: str) -> str:
    """``redis_url`` (scheme, credentials, db, options; ``password_env`` applied) pointed
    at the data node ``address`` (host:port, as a sentinel or a cluster node reports it).

    Secret (a password may be in it): never show it.
    """
    parts = urlsplit(target.connection_url())
    if parts.scheme == "unix":  # a socket path cannot name a node a sentinel reports
        parts = parts._replace(scheme="redis", path="")
    host, _, port = address.rpartition(":")
    shown_host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{shown_host}:{port}" if userinfo else f"{shown_host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def where(url: str) -> str:
    """A node as messages name it: host:port (never its password), or its URL scrubbed."""
    return urlsplit(url).netloc.rpartition("@")[2] or shown_url(url)


def short_reason(message: str, url: str) -> str:
    """One node's reason, without the "cannot reach Redis at <url>: " every one repeats."""
    shown = shown_url(url)
    for prefix in (f"cannot reach Redis at {shown}: ", f"Redis at {shown} "):
        if message.startswith(prefix):
            return f"{where(url)} {message.removeprefix(prefix)}"
    return f"{where(url)} {message}"
