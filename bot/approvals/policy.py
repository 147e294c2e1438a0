"""Who may approve: Slack user ids and user groups from ``REDIS_MEM_APPROVERS``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from bot.errors import ConfigError

# Slack ids: U/W users, S user groups (upper-case letters and digits).
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")


class GroupResolver(Protocol):
    """Members of a Slack user group (``usergroups.users.list``)."""

    def members(self, group_id: str) -> frozenset[str]:
        """User ids of the group; raises Refused/RedisMemError when Slack fails."""
        ...


@dataclass(frozen=True)
class ApproverPolicy:
    """The approvers: listed users, and members of listed groups (resolved when asked)."""

    users: frozenset[str]
    groups: frozenset[str]
    resolver: GroupResolver | None = None

    @classmethod
    def parse(cls, text: str | None, *, resolver: GroupResolver | None = None) -> ApproverPolicy:
        """``"U1,W2,S3"``: U/W user ids, S group ids; a bad token is a one-line ConfigError."""
        users: set[str] = set()
        groups: set[str] = set()
        for token in (text or "").replace(";", ",").split(","):
            token = token.strip()
            if not token:
                continue
            if _USER.match(token):
                users.add(token)
            elif _GROUP.match(token):
                groups.add(token)
            else:
                raise ConfigError(
                    f"REDIS_MEM_APPROVERS: {token[:40]!r} is not a Slack user id (U.../W...) "
                    "or user-group id (S...)"
                )
        return cls(users=frozenset(users), groups=frozenset(groups), resolver=resolver)

    @property
    def empty(self) -> bool:
        """Nobody can approve (REDIS_MEM_APPROVERS unset)."""
        return not self.users and not self.groups

    def is_approver(self, user_id: str) -> bool:
        """Listed, or a member of a listed group (groups need a resolver; errors propagate)."""
        if user_id in self.users:
            return True
        if self.resolver is None:
            return False
        return any(user_id in self.resolver.members(group) for group in sorted(self.groups))
