"""Remediation as frozen data: the context an action runs in, and what it shows and reports.

A ``Preview`` is what the approver reads and what the bot re-checks before it
executes (its ``facts`` are the reads it relied on); an ``ExecutionResult``
says exactly what state things are in, even after a partial failure; a
``Verification`` compares the diagnosis before and after.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from bot.clock import utc_now
from bot.config import Target
from bot.diagnosis.model import Diagnosis
from bot.remediation.ports import BulkResult, Cluster, RedisOps

Risk = Literal["low", "medium", "high"]
ParamValue = int | bool | str
Params = dict[str, ParamValue]

DAY = 86400


@dataclass(frozen=True)
class RemediationLimits:
    """Safety limits every action obeys (configurable by the composition root).

    max_keys: a key action touches at most this many keys.
    rate: key actions change at most this many keys a second (None: unthrottled, bench only).
    min/max_ttl_seconds: the TTLs an action may set.
    pod_headroom: pod memory limit over maxmemory (runbook: 1.5x).
    """

    max_keys: int = 100_000
    # Keys a second: bench/remediation.py measured it to add well under 1 ms to
    # other clients' p99 latency.
    rate: int | None = 20_000
    min_ttl_seconds: int = 60
    max_ttl_seconds: int = 30 * DAY
    pod_headroom: float = 1.5
    target_ratio: float = 0.80  # evict-idle-sessions aims at this usage (runbook alert at 80%)


@dataclass(frozen=True)
class ActionContext:
    """Everything an action may read or change: adapters are passed in, never built here."""

    target: Target
    diagnosis: Diagnosis  # the fresh one
    cluster: Cluster
    redis: RedisOps
    limits: RemediationLimits = field(default_factory=RemediationLimits)
    clock: Callable[[], datetime] = utc_now


@dataclass(frozen=True)
class Change:
    """One concrete change: where, before -> after, and for a config file the diff lines."""

    where: str  # e.g. "ConfigMap langgraph-agent/redis-session-config redis.conf"
    before: str
    after: str
    diff: tuple[str, ...] = ()

    def line(self) -> str:
        """One human line, e.g. ``live CONFIG SET maxmemory: 536870912 -> 1073741824``."""
        if not self.before:
            return f"{self.where}: {self.after}"
        return f"{self.where}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class Preview:
    """Exactly what an action will do with these parameters, read (never written) just now."""

    action_id: str
    title: str
    runbook: str
    risk: Risk
    params: Params
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()
    loses_data: bool = False
    logs_users_out: bool = False
    facts: dict[str, str] = field(default_factory=dict)  # the reads it relied on

    @property
    def fingerprint(self) -> str:
        """A short hash of ``facts``: equal fingerprints, same situation."""
        canonical = json.dumps(self.facts, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, stored with an approval request."""
        return {
            "action_id": self.action_id,
            "title": self.title,
            "runbook": self.runbook,
            "risk": self.risk,
            "params": dict(self.params),
            "changes": [
                {"where": c.where, "before": c.before, "after": c.after, "diff": list(c.diff)}
                for c in self.changes
            ],
            "warnings": list(self.warnings),
            "loses_data": self.loses_data,
            "logs_users_out": self.logs_users_out,
            "facts": dict(self.facts),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preview:
        """Inverse of ``to_dict`` (the fingerprint is recomputed, not trusted)."""
        return cls(
            action_id=str(data["action_id"]),
            title=str(data["title"]),
            runbook=str(data["runbook"]),
            risk=data["risk"],
            params=dict(data["params"]),
            changes=tuple(
                Change(c["where"], c["before"], c["after"], tuple(c.get("diff", ())))
                for c in data["changes"]
            ),
            warnings=tuple(data.get("warnings", ())),
            loses_data=bool(data.get("loses_data", False)),
            logs_users_out=bool(data.get("logs_users_out", False)),
            facts={str(k): str(v) for k, v in data.get("facts", {}).items()},
        )


class StepKind(StrEnum):
    """What a step does; behaviour keys on this, never on a step's label."""

    CHECK = "check"  # reads only (a precondition re-checked): not part of the state line
    LIVE = "live"  # a live change (CONFIG SET): lost at the next restart
    POD = "pod"  # the Redis pod itself (its memory limit, its deletion)
    CHANGE = "change"  # any other change (ConfigMap, Deployment, keys, pods)


@dataclass(frozen=True)
class Step:
    """One step of an execution: done or not, and what it did or why it failed.

    ``attempted`` False: an earlier step failed hard, so this one never ran.
    ``partial``: it failed after changing part of what it changes (some primaries of a
    cluster took a CONFIG SET, others did not): ``detail`` says which.
    """

    name: str
    ok: bool
    detail: str
    kind: StepKind = StepKind.CHANGE
    attempted: bool = True
    partial: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    """What an execution did, in order; ``state`` says where things stand (exact, one line)."""

    action_id: str
    steps: tuple[Step, ...]
    complete: bool
    state: str
    keys_changed: int | None = None  # key actions: keys expired/unlinked
    bulk: BulkResult | None = None


@dataclass(frozen=True)
class Verification:
    """The diagnosis before and after an action, and a one-line verdict."""

    used_memory_before: int
    used_memory_after: int
    usage_ratio_before: float | None
    usage_ratio_after: float | None
    evicted_keys_before: int
    evicted_keys_after: int
    dbsize_before: int
    dbsize_after: int
    session_keys_before: int
    session_keys_after: int
    verdict: str
    details: tuple[str, ...] = ()  # action-specific lines (keys without TTL, fragmentation...)
