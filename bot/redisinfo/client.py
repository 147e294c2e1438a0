"""Connect to a Redis by URL and turn every connection-level failure into one line.

A URL is checked before redis-py reads it (``check_url``): redis-py quotes a piece of
a password cut by an unencoded ``#`` as the "port", sends a 10,000-character host to
the IDNA codec (UnicodeError), lets the query string override our timeouts, and turns
an unknown option into a TypeError on first connect. Every message goes through
``bot.audit.scrub.scrub_text`` (the URL that names the server, and whatever redis-py
says): no password, whole or in pieces.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

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

from bot.audit.scrub import scrub_text
from bot.errors import ConfigError, RedisUnavailable
from bot.limits import echo, elided

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
    check_url(url)
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
    except (ValueError, TypeError) as err:  # check_url let through what redis-py refuses
        message = scrub_text(" ".join(str(err).split()))
        raise ConfigError(f"invalid Redis URL {shown_url(url)}: {message}") from None


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
    where = shown_url(url)
    text = scrub_text(" ".join(str(err).split()))
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


# --- URL checks ---------------------------------------------------------------------------

MAX_URL_CHARS = 2_048  # a real URL with TLS file paths is a few hundred characters
_SHOWN_URL_CHARS = 256  # longer ones are named by their length in messages
_SCHEMES = ("redis://", "rediss://", "unix://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_HOST_BYTES = 253  # a DNS name
_MAX_DB_DIGITS = 10  # a database index is a C int in Redis
# The query options a URL may set. redis-py lets the URL override any client argument,
# the timeouts that make a dead server fail fast included, and hands an unknown name to
# the connection's constructor, which raises TypeError at the first command.
_OPTIONS = frozenset({"db", "username", "password", "client_name"})
_TLS_OPTIONS = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
     "ssl_password", "ssl_check_hostname"}
)  # fmt: skip
# Options redis-py reads from a URL that redis-mem sets itself (timeouts, retries, protocol).
_KNOWN_OPTIONS = frozenset(redis.connection.URL_QUERY_ARGUMENT_PARSERS) | _TLS_OPTIONS
_CERT_REQS = ("none", "optional", "required")  # redis-py compares them case-sensitively
_PORT_RANGE = "the port must be a number from 1 to 65535"


def check_url(url: str) -> None:
    """ConfigError (one line, no password) unless redis-py will read ``url`` as written."""
    problem = url_problem(url)
    if problem is not None:
        raise ConfigError(f"invalid Redis URL {shown_url(url)}: {problem}")


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, in words that repeat none of it; None when nothing."""
    if len(url) > MAX_URL_CHARS:
        return f"{len(url):,} characters (at most {MAX_URL_CHARS:,})"
    if _CONTROL.search(url) or not _is_utf8(url):
        return "it holds a control character or invalid UTF-8"
    if not url.startswith(_SCHEMES):
        return "expected a URL starting with redis://, rediss:// or unix://"
    try:
        parts = urlsplit(url)
    except ValueError:  # unbalanced brackets, or an [IPv6] host that is not one
        return (
            "the host in brackets is not an IPv6 address (a password holding '[' or ']'"
            " must be percent-encoded: %5B, %5D)"
        )
    if "@" in url[len(parts.scheme) + 3 + len(parts.netloc) :]:
        # urlsplit cut the userinfo at an unencoded '#', '?' or '/' in the password
        return (
            "an '@' after the host (a password holding '#', '?' or '/' must be"
            " percent-encoded: %23, %3F, %2F)"
        )
    if parts.fragment or "#" in url:
        return "a '#' has no meaning in a Redis URL (percent-encode it as %23)"
    if parts.scheme == "unix":
        if parts.netloc.rpartition("@")[2]:  # redis-py would ignore it, and dial the path
            return "a unix:// URL names a socket file, not a host: unix:///run/redis.sock"
        if not unquote(parts.path).strip("/"):
            return "expected a socket path: unix:///run/redis.sock"
        return _query_problem(parts.query, tls=False)
    return _host_problem(parts) or _query_problem(parts.query, tls=parts.scheme == "rediss")


def shown_url(url: str) -> str:
    """``url`` as a message may show it: scrubbed, or only its length when long or odd."""
    if len(url) > _SHOWN_URL_CHARS or _CONTROL.search(url) or not _is_utf8(url):
        return elided(len(url))
    return scrub_text(url)  # not only redact_url: "password=x" is no URL but still a secret


def _host_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:  # not digits (urlsplit reads only ASCII ones), or over 65535
        return _PORT_RANGE
    if port == 0:  # redis-py would silently connect to 6379 instead
        return _PORT_RANGE
    host = unquote(parts.hostname or "")  # as redis-py reads it
    if host and ":" not in host and not _is_host_name(host):  # ':': urlsplit checked [IPv6]
        return "the host is not a host name (dot-separated labels of 1 to 63 characters)"
    database = unquote(parts.path).strip("/")
    if database and not _is_database(database):
        return "the path must be a database number, as in redis://host:6379/0"
    return None


def _query_problem(query: str, *, tls: bool) -> str | None:
    allowed = _OPTIONS | _TLS_OPTIONS if tls else _OPTIONS
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _TLS_OPTIONS and not tls:
            return f"option {name} needs a rediss:// URL"
        if name not in allowed and name in _KNOWN_OPTIONS:
            return f"option {name} is set by redis-mem, not by the URL"
        if name not in allowed:
            return f"unknown option '{echo(name)}' (it takes {', '.join(sorted(allowed))})"
        if name == "db" and not _is_database(value):
            return "db must be a database number"
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            return f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}"
    return None


def _is_host_name(host: str) -> bool:
    """What the socket module can look up: printable, IDNA-encodable, a DNS name's length."""
    if not host.isprintable() or any(char.isspace() for char in host):
        return False
    try:
        return len(host.encode("idna")) <= _MAX_HOST_BYTES
    except UnicodeError:  # an empty label, one over 63 characters, a lone surrogate
        return False


def _is_database(text: str) -> bool:
    return text.isascii() and text.isdecimal() and len(text) <= _MAX_DB_DIGITS


def _is_utf8(text: str) -> bool:
    """False for lone surrogates (bytes that were not UTF-8 in argv or a file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
