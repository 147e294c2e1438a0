"""What the Redis-config actions check against the persisted redis.conf before any change.

Live Redis and its ConfigMap drift apart (a ``CONFIG SET`` by hand, the runbook's
whole-file patches). An action that compares its new value with the live one only can
then write a value into the ConfigMap that undoes more than it does: ``raise-maxmemory``
once wrote ``maxmemory 70mb`` over ``512mb`` because Redis ran with 64mb. So every
Redis-config action shows the drift in its preview, and refuses an edit of the file
that would not set exactly its own directives to exactly its values.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.diagnosis.drift import DRIFT_DIRECTIVES, canonical, drift_message, find_drift
from bot.diagnosis.model import Drift
from bot.redisconf import effective_settings, set_directives
from bot.remediation.model import ActionContext

DRIFT_FACT = "config drift"


def live_drift(ctx: ActionContext, text: str) -> tuple[Drift, ...]:
    """The drift between the live Redis (CONFIG GET, now) and ``text``; unreadable ones skipped."""
    live = {name: ctx.redis.config_get(name) for name in DRIFT_DIRECTIVES}
    return find_drift(live, text)


def drift_fact(drift: tuple[Drift, ...], wanted: Mapping[str, str]) -> dict[str, str]:
    """The drift of the settings the action leaves alone, as a preview fact (absent when none).

    A re-check then sees it move. The action's own settings are facts already (their live
    values, and the ConfigMap's resourceVersion).
    """
    others = [d for d in drift if d.directive not in wanted]
    if not others:
        return {}
    shown = "; ".join(
        f"{d.directive} live {d.live} ConfigMap {d.configmap or '(absent)'}" for d in others
    )
    return {DRIFT_FACT: shown}


def drift_warnings(drift: tuple[Drift, ...], wanted: Mapping[str, str]) -> list[str]:
    """One preview line per drifted setting, saying whether this action settles it."""
    out = []
    for d in drift:
        if d.directive in wanted:
            out.append(
                f"configuration drift: {drift_message(d)}; this action sets both to "
                f"{wanted[d.directive]}"
            )
        else:
            out.append(f"configuration drift: {drift_message(d)}; this action leaves it as it is")
    return out


def edit_conflict(text: str, wanted: Mapping[str, str], *, where: str) -> str | None:
    """Why writing ``wanted`` into ``text`` would not set exactly those directives (None: fine).

    ``set_directives`` edits one line per directive, so this is a net under it: the edited
    file is parsed again, and any directive whose effective value would change besides
    the wanted ones (another drifted directive rewritten, a lowered maxmemory) or a
    wanted one that would not read as asked is a refusal before anything changes.
    """
    before = effective_settings(text)
    after = effective_settings(set_directives(text, dict(wanted)))
    for name, value in wanted.items():
        got = after.get(name.lower())
        if got is None or canonical(name, got) != canonical(name, value):
            return (
                f"the {where} would read {name} {got or '(absent)'} after the edit, not {value}: "
                "edit the ConfigMap by hand; nothing changed"
            )
    others = (set(before) | set(after)) - {n.lower() for n in wanted}
    for name in sorted(others):
        if before.get(name) != after.get(name):
            return (
                f"the edit would also change {name} in the {where} "
                f"({before.get(name, '(absent)')} -> {after.get(name, '(absent)')}): this action "
                f"changes only {', '.join(wanted)}; nothing changed"
            )
    return None
