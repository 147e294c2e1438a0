"""Configuration drift: live settings a restart would change, because redis.conf says otherwise.

The runbook's own ConfigMap patches leave Redis running with values its ConfigMap does not
hold (a ``CONFIG SET`` by hand, a patch that replaced the whole file). Compared here, with
values read as Redis reads them: ``64mb`` is 67108864 bytes (and ``64m`` is 64,000,000),
``YES`` is ``yes``, and a directive absent from the file is Redis's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.diagnosis.model import Drift, Finding, Severity
from bot.redisconf import conf_bytes, get_directive
from bot.redisinfo.snapshot import Snapshot
from bot.units import redis_size

DRIFT_DIRECTIVES = ("maxmemory", "maxmemory-policy", "activedefrag", "appendonly")
# What Redis runs with when redis.conf has no line for the directive (Redis 7 defaults).
REDIS_DEFAULTS = {
    "maxmemory": "0",
    "maxmemory-policy": "noeviction",
    "activedefrag": "no",
    "appendonly": "no",
}
DRIFT_FINDING = "config-drift"
UNCHECKED_FINDING = "config-drift-unchecked"


@dataclass(frozen=True)
class PersistedConf:
    """The persisted redis.conf a diagnosis compares with: its text, or why there is none.

    where: ``ConfigMap <ns>/<name> <key>``; reason: one line, set when ``text`` is None.
    """

    where: str
    text: str | None = None
    reason: str = ""


def canonical(directive: str, value: str) -> str | None:
    """``value`` in the form two readings compare by; None when Redis would not read it."""
    if directive == "maxmemory":
        n = conf_bytes(value)
        return None if n is None else str(n)
    return value.strip().lower()


def shown(directive: str, value: str) -> str:
    """A value as people read it: ``64mb`` rather than ``67108864`` (others as they are)."""
    if directive != "maxmemory":
        return value
    n = conf_bytes(value)
    if n is None or n == 0:
        return value
    return redis_size(n)


def find_drift(live: Mapping[str, str | None], text: str) -> tuple[Drift, ...]:
    """The ``DRIFT_DIRECTIVES`` whose live value (None: unknown, skipped) ``text`` contradicts."""
    found = []
    for name in DRIFT_DIRECTIVES:
        now = live.get(name)
        if now is None:
            continue
        written = get_directive(text, name)
        restart = written if written is not None else REDIS_DEFAULTS[name]
        if canonical(name, now) == canonical(name, restart):
            continue
        found.append(Drift(name, shown(name, now), written, shown(name, restart)))
    return tuple(found)


def live_settings(snapshot: Snapshot) -> dict[str, str | None]:
    """The live values of ``DRIFT_DIRECTIVES``: CONFIG GET, else what INFO says (None: unknown).

    Without CONFIG (renamed, denied) INFO still gives maxmemory, the policy and whether
    the append-only file is on; activedefrag is then unknown and not compared.
    """
    live: dict[str, str | None] = {n: snapshot.settings.get(n) for n in DRIFT_DIRECTIVES}
    if live["maxmemory"] is None:
        live["maxmemory"] = str(snapshot.memory.maxmemory)
    if live["maxmemory-policy"] is None and snapshot.maxmemory_policy:
        live["maxmemory-policy"] = snapshot.maxmemory_policy
    aof = snapshot.persistence.get("aof_enabled")
    if live["appendonly"] is None and aof in ("0", "1"):
        live["appendonly"] = "yes" if aof == "1" else "no"
    return live


def drift_message(drift: Drift) -> str:
    """``live maxmemory 64mb, ConfigMap 512mb: a restart changes the limit``."""
    if drift.configmap is None:
        written = f"has no {drift.directive} line (Redis default {drift.restart_value})"
    else:
        written = drift.configmap
    return f"live {drift.directive} {drift.live}, ConfigMap {written}: {_consequence(drift)}"


def _consequence(drift: Drift) -> str:
    on = "on" if drift.restart_value.strip().lower() == "yes" else "off"
    if drift.directive == "maxmemory":
        return "a restart changes the limit"
    if drift.directive == "maxmemory-policy":
        return "a restart changes the eviction policy"
    if drift.directive == "activedefrag":
        return f"a restart turns active defragmentation {on}"
    return f"a restart turns the append-only file {on}"


def compare(
    snapshot: Snapshot, persisted: PersistedConf | None
) -> tuple[tuple[Drift, ...] | None, tuple[Finding, ...]]:
    """The drift and its findings; (None, note) when there was nothing to compare with.

    ``persisted`` None: the caller did not ask (no finding at all).
    """
    if persisted is None:
        return None, ()
    if persisted.text is None:
        note = Finding(
            UNCHECKED_FINDING,
            Severity.OK,
            f"live settings not compared with the persisted redis.conf: {persisted.reason}",
        )
        return None, (note,)
    drift = find_drift(live_settings(snapshot), persisted.text)
    return drift, tuple(Finding(DRIFT_FINDING, Severity.WARNING, drift_message(d)) for d in drift)
