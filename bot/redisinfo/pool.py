"""One redis-py client, and so one connection pool, per target: kept between snapshots.

``status`` over a hundred targets every few minutes would otherwise open (and close) a
hundred TCP connections, each with its PING, every time. A ``ClientPool`` keeps one
client per URL and timeout; redis-py checks a pooled connection before lending it and
reconnects one the server closed (a restart), so a stale connection is never an error.

Opt-in (``LiveRedisProbe(clients=...)``): a pooled connection stays authenticated, so a
password changed on the server is noticed only when that connection is replaced (an
ACL user removed, or a restart, closes it at once). The pool holds at most ``most``
clients; the least recently used one beyond that is closed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import redis

from bot.redisinfo.client import DEFAULT_TIMEOUT, client_for

DEFAULT_MOST = 512  # clients kept: a fleet of a few hundred targets


class ClientPool:
    """``client(url, timeout)``: the same ``redis.Redis`` each time (thread-safe)."""

    def __init__(self, *, most: int = DEFAULT_MOST) -> None:
        self._most = most
        self._clients: OrderedDict[tuple[str, float], redis.Redis] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the keys hold URLs, and URLs may hold passwords
        return f"ClientPool({len(self._clients)} clients)"

    def client(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
        """The pooled client of ``url``; ConfigError for a malformed URL (nothing kept)."""
        key = (url, timeout)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found
        made = client_for(url, timeout=timeout)  # no connection yet: nothing to wait for
        with self._lock:
            kept = self._clients.setdefault(key, made)
            self._clients.move_to_end(key)
            evicted = [
                self._clients.popitem(last=False)[1] for _ in range(len(self._clients) - self._most)
            ]
        for client in [*evicted, *([made] if kept is not made else [])]:
            client.close()
        return kept

    def close(self) -> None:
        """Close every client (at shutdown)."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()
