"""The nodes of a Sentinel or Cluster target: one's URL from the address it reports, and how
a node (a sentinel, a seed) is named in messages."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bot.config import Target
from bot.errors import RedisMemError, RedisUnavailable
from bot.redisinfo.client import shown_url

MIN_ATTEMPT_SECONDS = 0.2  # a node asked last still gets a loopback round trip
T = TypeVar("T")


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


def ask_in_turn(
    urls: Sequence[str],
    ask: Callable[[str, float], T],
    *,
    timeout: float,
    none_answered: str,
    fatal: tuple[type[RedisMemError], ...] = (),
) -> T:
    """``ask(url, seconds)`` of each node in order until one answers, ``timeout`` shared
    among those not yet asked (one hung node costs its share, never the whole reading).

    ``fatal`` errors end the search at once; none answering is one-line RedisUnavailable,
    ``<none_answered>: <each one's reason>``.
    """
    deadline = time.monotonic() + timeout
    reasons: list[str] = []
    for index, url in enumerate(urls):
        share = (deadline - time.monotonic()) / (len(urls) - index)
        budget = round(max(share, MIN_ATTEMPT_SECONDS), 2)  # messages show it: "1.67 s"
        try:
            return ask(url, budget)
        except fatal:
            raise
        except RedisMemError as err:
            reasons.append(short_reason(err.message, url))
    raise RedisUnavailable(f"{none_answered}: {'; '.join(reasons)}")


def reply_map(reply: Any) -> dict[str, Any]:
    """A node's map reply as a dict: redis-py parses some of them, a RESP2 flat list of
    pairs is read too; anything else is empty."""
    if isinstance(reply, dict):
        return {str(key): value for key, value in reply.items()}
    if isinstance(reply, list):
        return {str(k): v for k, v in zip(reply[::2], reply[1::2], strict=False)}
    return {}
