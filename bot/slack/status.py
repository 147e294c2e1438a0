"""``status``: diagnose every target at once and keep one line each."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from bot.errors import RedisMemError
from bot.slack.blocks.status import TargetStatus, status_message
from bot.slack.deps import SlackDeps, timed_diagnosis
from bot.slack.jobs import Result

log = logging.getLogger(__name__)

MAX_PARALLEL = 8  # targets diagnosed at the same time; each holds one Redis connection


def run_status(deps: SlackDeps) -> Result:
    """Every target's severity; an unreachable one is a line, not a failure."""
    names = list(deps.diagnosis.targets)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names)) or 1) as pool:
        rows = list(pool.map(lambda name: target_status(deps, name), names))
    return Result(message=status_message(rows), outcome=worst(rows), summary=summary(rows))


def target_status(deps: SlackDeps, name: str) -> TargetStatus:
    """One target's diagnosis, or the one-line reason it could not be read."""
    try:
        return TargetStatus(name=name, diagnosis=timed_diagnosis(deps, name))
    except RedisMemError as err:
        return TargetStatus(name=name, error=err.message)
    except Exception:  # one broken target must not hide the others
        log.exception("status: diagnosis of %s failed", name)
        return TargetStatus(name=name, error="internal error (see the bot's log)")


def worst(rows: list[TargetStatus]) -> str:
    """The worst severity seen, or ``error`` when no target could be read."""
    severities = [row.diagnosis.severity for row in rows if row.diagnosis is not None]
    if not severities:
        return "error"
    return max(severities, key=lambda s: s.rank).value


def summary(rows: list[TargetStatus]) -> str:
    """``prod critical, stage ok, cache unreachable``."""
    parts = [
        f"{row.name} {row.diagnosis.severity.value if row.diagnosis else 'unreachable'}"
        for row in rows
    ]
    return ", ".join(parts)
