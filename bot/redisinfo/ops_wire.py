"""One connection held for a whole Redis change, with failures classified.

A bulk change must report exactly how many keys it touched. redis-py's client
hides whether a failed command reached Redis; here a failure before sending
(``sent=False``: nothing was applied) is told apart from a lost reply
(``sent=True``: Redis may have applied the command).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from bot.redisinfo.client import describe_error
from bot.redisinfo.fullscan import eval_script
from bot.redisinfo.ops_scripts import Script

Command = Sequence[Any]


class WireLost(Exception):
    """The connection failed: ``replies`` were read before it did; ``sent`` says if
    the remaining commands had been sent (then their outcome is unknown)."""

    def __init__(self, reason: str, *, replies: list[Any], sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.replies = replies
        self.sent = sent


class Wire:
    """A connection taken from ``client``'s pool until ``close()``; one exchange at a time."""

    def __init__(self, client: redis.Redis, *, url: str, timeout: float) -> None:
        self._pool = client.connection_pool
        self._url = url
        self._timeout = timeout
        self._conn: Any = self._pool.get_connection()  # redis-py: untyped

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._pool.release(self._conn)

    def call(self, *args: Any) -> Any:
        """One command's reply; an error reply raises its ResponseError."""
        reply = self.pipeline([args])[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The replies in order, an error reply as its ResponseError; WireLost on failure."""
        conn = self._conn
        try:
            self._check_open()
            conn.send_packed_command(conn.pack_commands(commands))
        except RedisError as err:
            conn.disconnect()
            raise WireLost(self._describe(err), replies=[], sent=False) from None
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as err:
                replies.append(err)
            except RedisError as err:
                conn.disconnect()
                raise WireLost(self._describe(err), replies=replies, sent=True) from None
        return replies

    def _check_open(self) -> None:
        """Catch a closed connection before sending, so that nothing is in doubt."""
        try:
            waiting = self._conn.can_read(timeout=0)
        except RedisConnectionError:  # EOF: Redis closed it
            raise RedisConnectionError("it closed the connection (stopped or restarted?)") from None
        if waiting:  # bytes nobody asked for: out of step, never reuse
            raise RedisConnectionError("the connection is out of step with Redis")

    def eval(self, script: Script, keys: Sequence[bytes], *args: Any) -> list[Any]:
        """Run ``script`` (EVALSHA, loading it on NOSCRIPT); ScriptingUnavailable if refused."""
        return eval_script(self.call, script, keys, *args)

    def _describe(self, err: RedisError) -> str:
        return describe_error(err, url=self._url, timeout=self._timeout)
