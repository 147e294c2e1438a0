"""The URL of one data node of a Sentinel or Cluster target, from the address it reports."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from bot.config import Target


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
