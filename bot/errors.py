"""Errors every face turns into a one-line message (never a traceback).

Each carries a message that is safe to show a user: no secrets, no stack.
"""

from __future__ import annotations


class RedisMemError(Exception):
    """Base of every error a user may see; ``str(err)`` is the one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\n", " ").strip())

    @property
    def message(self) -> str:
        """The one-line, secret-free message."""
        return str(self)


class UsageError(RedisMemError):
    """Bad arguments: a malformed size, an unknown subcommand, a missing value."""


class ConfigError(RedisMemError):
    """Bad configuration: an unreadable targets file, a missing environment variable."""


class TargetNotFound(UsageError):
    """A target name that the targets file does not define."""


class RedisUnavailable(RedisMemError):
    """Redis could not be reached or refused us (down, wrong password, timeout, TLS)."""


class AuditUnavailable(RedisMemError):
    """The audit database could not record an event; changes must not run."""


class KubernetesError(RedisMemError):
    """The Kubernetes API refused or failed a call (403, 404, 409, 5xx, timeout)."""


class Refused(RedisMemError):
    """Refused by policy or state: self-approval, not an approver, expired, already done..."""
