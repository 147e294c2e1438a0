"""The nine remediation actions by id (the ids are a contract: see docs/DESIGN.md).

What each fix is called, how urgent it is and which scenarios recommend it is declared
once in ``bot.diagnosis.actions``; this module finds the class that implements each
(``implementations``) and checks that the two agree.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from typing import Any

from bot.diagnosis.actions import ACTIONS, ActionRegistry
from bot.errors import UsageError
from bot.remediation.actions.base import Action


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


def implementations(package: str = "bot.remediation.actions") -> list[Action[Any]]:
    """One instance of every concrete action class in ``package`` (a package's modules,
    or one module), in the order the classes were defined.

    A fix is registered by its declaration (``bot.diagnosis.actions``) and found here by
    its class's ``info``: a tenth fix is its module, its tests and its ``ActionInfo``
    entry, nothing else. ``build_catalogue`` refuses a class and a declaration that do
    not match, so a forgotten half fails at import, naming the fix.
    """
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(getattr(root, "__path__", []), prefix=f"{package}."):
        importlib.import_module(module.name)
    found: dict[type[Action[Any]], None] = {}  # ordered, once each
    pending: list[type[Action[Any]]] = list(Action.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        inside = cls.__module__ == package or cls.__module__.startswith(f"{package}.")
        if inside and not inspect.isabstract(cls) and getattr(cls, "info", None) is not None:
            found[cls] = None
    return [cls() for cls in found]


# Stateless objects: building them at import opens nothing and reads no settings.
CATALOGUE: dict[str, Action[Any]] = build_catalogue(implementations())


def get_action(action_id: str) -> Action[Any]:
    """The action with this id; UsageError (one line, listing the ids) otherwise."""
    try:
        return CATALOGUE[action_id]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise UsageError(f"unknown action {action_id!r} (known: {known})") from None
