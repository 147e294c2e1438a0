"""Connect to a Redis by URL and turn every connection-level failure into one line.

The messages name the server by its redacted URL (``bot.config.redact_url``) and
never contain a password, whatever redis-py put in its own exception text.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from bot.config import redact_url, url_password
from bot.errors import ConfigError, RedisUnavailable

DEFAULT_TIMEOUT = 5.0


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client of the Redis at ``url`` that has answered PING.

    Short connect/read timeouts and no retries, so an unreachable server fails in
    ``timeout`` seconds. Replies are decoded as UTF-8 with ``surrogateescape``, so a
    binary key name survives the round trip when sent back as ``key_bytes(key)``.
    Raises ConfigError for a malformed URL, RedisUnavailable when Redis cannot be used.
    """
    client = client_for(url, timeout=timeout)
    with redis_errors(url, timeout=timeout):
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
    return client


def client_for(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client of the Redis at ``url`` (no connection yet), set up as ``connect`` says."""
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # redis-py retries with backoff by default: that turns "down" into a long hang.
            retry=Retry(NoBackoff(), 0),
            # RESP2 works on every server version and needs no HELLO (which ACLs may deny).
            protocol=2,
            decode_responses=True,
            encoding_errors="surrogateescape",
        )
    except (ValueError, TypeError) as err:
        message = _scrub(str(err), url)
        raise ConfigError(f"invalid Redis URL {redact_url(url)}: {message}") from None


def key_bytes(key: str) -> bytes:
    """The exact bytes of a key name read through ``connect()``'s client.

    Send keys back to Redis as these bytes: redis-py's hiredis packer encodes ``str``
    strictly, so a binary key name (decoded with surrogates) would fail as a str.
    """
    return key.encode("utf-8", "surrogateescape")


@contextmanager
def redis_errors(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Re-raise any redis-py error inside the block as a one-line RedisUnavailable."""
    try:
        yield
    except RedisError as err:
        raise RedisUnavailable(describe_error(err, url=url, timeout=timeout)) from None


def describe_error(err: RedisError, *, url: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """A one-line, password-free sentence saying why Redis at ``url`` cannot be used."""
    where = redact_url(url)
    text = _scrub(str(err), url)
    if isinstance(err, AuthenticationError):
        return _auth_message(where, text)
    if isinstance(err, BusyLoadingError):
        return f"Redis at {where} is still loading its data into memory; try again shortly"
    if isinstance(err, RedisTimeoutError):
        return f"cannot reach Redis at {where}: no answer within {timeout:g} s"
    if isinstance(err, RedisConnectionError):
        return f"cannot reach Redis at {where}: {_connection_reason(err, text)}"
    if isinstance(err, ResponseError):
        return f"Redis at {where} refused a command: {text}"
    return f"Redis at {where} failed: {text}"


def _auth_message(where: str, text: str) -> str:
    if "NOAUTH" in text or "Authentication required" in text:
        return f"Redis at {where} requires a password and none was given"
    if "without any password configured" in text or "no password is set" in text:
        return f"Redis at {where} has no password set but one was given"
    return f"Redis at {where} rejected the password"


def _connection_reason(err: BaseException, text: str) -> str:
    """The root cause of a redis-py ConnectionError (redis-py chains the OSError)."""
    for cause in _causes(err):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, FileNotFoundError):
            return "no such socket file"
        if isinstance(cause, ConnectionResetError):
            return "the server reset the connection (a TLS port? use rediss://)"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause.strerror})"
        if isinstance(cause, TimeoutError | socket.timeout):
            return "connection timed out"
    if "Connection closed by server" in text:
        return "the server closed the connection (TLS port, or too many clients?)"
    return text


def _causes(err: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = err
    for _ in range(10):  # a chain is short; never loop on a cyclic one
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from ``text``: redis-py never shows it whole, but be sure.

    An unencoded ``#``, ``?`` or ``/`` cuts the password where urlsplit reads it, and
    redis-py then quotes the piece before it ("Port could not be cast to integer value
    as 'TopSecret'"): every piece is removed too (from 3 characters: shorter ones would
    mangle the message and give nothing away).
    """
    password = url_password(url)
    if password:
        forms = {password, unquote(password)}
        forms |= {piece for form in set(forms) for piece in _PASSWORD_CUTS.split(form)}
        for form in sorted((f for f in forms if len(f) >= 3), key=len, reverse=True):
            text = text.replace(form, "***")
    return redact_url(" ".join(text.split()))


_PASSWORD_CUTS = re.compile(r"[#?/]")
