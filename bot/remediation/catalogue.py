"""The nine remediation actions by id (the ids are a contract: see DESIGN.md)."""

from __future__ import annotations

from typing import Any

from bot.errors import UsageError
from bot.remediation.actions.app_config import (
    EnableSlidingWindow,
    LimitConcurrentSessions,
    ShortenSessionTtl,
)
from bot.remediation.actions.base import Action
from bot.remediation.actions.keys import EvictIdleSessions, ExpireKeysWithoutTtl
from bot.remediation.actions.pods import RestartRedis
from bot.remediation.actions.redis_config import (
    EnableActiveDefrag,
    RaiseMaxmemory,
    SetEvictionPolicy,
)


def _build() -> dict[str, Action[Any]]:
    actions: list[Action[Any]] = [
        RaiseMaxmemory(),
        ShortenSessionTtl(),
        LimitConcurrentSessions(),
        ExpireKeysWithoutTtl(),
        RestartRedis(),
        EnableActiveDefrag(),
        SetEvictionPolicy(),
        EnableSlidingWindow(),
        EvictIdleSessions(),
    ]
    return {action.id: action for action in actions}


# Stateless objects: building them at import opens nothing and reads no settings.
CATALOGUE: dict[str, Action[Any]] = _build()


def get_action(action_id: str) -> Action[Any]:
    """The action with this id; UsageError (one line, listing the ids) otherwise."""
    try:
        return CATALOGUE[action_id]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise UsageError(f"unknown action {action_id!r} (known: {known})") from None
