"""The nine remediation actions by id (the ids are a contract: see docs/DESIGN.md).

What each fix is called, how urgent it is and which scenarios recommend it is declared
once in ``bot.diagnosis.actions``; this module registers the class that implements it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.diagnosis.actions import ACTIONS, ActionRegistry
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


def build_catalogue(
    actions: Iterable[Action[Any]], declared: ActionRegistry = ACTIONS
) -> dict[str, Action[Any]]:
    """The actions by id, in the declared (contract) order.

    ValueError (one line) when the implementations and the declarations disagree: a fix
    declared without a class would be recommended but fail on click, a class without a
    declaration would never be recommended.
    """
    by_id = {action.id: action for action in actions}
    missing = [i for i in declared.ids if i not in by_id]
    undeclared = [i for i, a in by_id.items() if declared.get(i) != a.info]
    if missing or undeclared:
        raise ValueError(f"actions declared without a class: {missing}; undeclared: {undeclared}")
    return {i: by_id[i] for i in declared.ids}


# The registration: one line per fix. Stateless objects: building them at import opens
# nothing and reads no settings.
CATALOGUE: dict[str, Action[Any]] = build_catalogue(
    (
        RaiseMaxmemory(),
        ShortenSessionTtl(),
        LimitConcurrentSessions(),
        ExpireKeysWithoutTtl(),
        RestartRedis(),
        EnableActiveDefrag(),
        SetEvictionPolicy(),
        EnableSlidingWindow(),
        EvictIdleSessions(),
    )
)


def get_action(action_id: str) -> Action[Any]:
    """The action with this id; UsageError (one line, listing the ids) otherwise."""
    try:
        return CATALOGUE[action_id]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise UsageError(f"unknown action {action_id!r} (known: {known})") from None
