"""Shared set-up for the approvals tests: the real service on a real audit database, a real
redis-server and the fake Kubernetes API server (real client), with an injected clock.

Fixtures: ``pytest_plugins = ("tests.remediation_support", "tests.approvals_support")``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.approvals.model import Actor
from bot.approvals.policy import ApproverPolicy
from bot.approvals.service import RemediationService
from bot.approvals.store import ApprovalStore
from bot.audit.engine import make_engine
from bot.audit.entry import AuditEntry, AuditSink
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore, StoredEntry
from bot.config import Target, Thresholds
from bot.errors import AuditUnavailable
from bot.redisinfo.probe import LiveRedisProbe
from bot.remediation.model import RemediationLimits
from bot.remediation.ports import Cluster, RedisOps
from bot.services.diagnose import DiagnosisService
from tests.remediation_support import NOW, Env

REQUESTER = Actor("U0REQUEST", "rita")
APPROVER = Actor("U0APPROVE", "alice")
OUTSIDER = Actor("U0OUTSIDE", "olga")
ONCALL_MEMBER = Actor("W0ONCALL1", "omar")
APPROVERS = "U0APPROVE, U0APPROV2, S0ONCALL"
REDIS_CM = "/api/v1/namespaces/langgraph-agent/configmaps/redis-session-config"


class Clock:
    """A settable clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


class StaticGroups:
    """A GroupResolver with fixed members (the Slack one calls usergroups.users.list)."""

    def __init__(self, groups: dict[str, frozenset[str]]) -> None:
        self.groups = groups
        self.asked: list[str] = []

    def members(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        return self.groups.get(group_id, frozenset())


class SwitchableAudit:
    """A real audit store that can be made to fail, as a down database would (AuditUnavailable):
    always (``broken``) or only when recording the action ``fail_on``."""

    def __init__(self, inner: AuditSink) -> None:
        self.inner = inner
        self.broken = False
        self.fail_on: str | None = None

    def record(self, entry: AuditEntry) -> None:
        if self.broken or entry.action == self.fail_on:
            raise AuditUnavailable("audit database sqlite:///audit.db unavailable: disk I/O error")
        self.inner.record(entry)


class LockingAudit:
    """A real audit store; recording ``lock_on`` first makes another SQLite connection take
    the database's write lock (``BEGIN EXCLUSIVE``) and keep it until ``release``, so that
    write and every later one really fail ("database is locked")."""

    def __init__(self, inner: AuditSink, *, path: Path, lock_on: str) -> None:
        self.inner = inner
        self.path = path
        self.lock_on = lock_on
        self._holder: sqlite3.Connection | None = None

    def record(self, entry: AuditEntry) -> None:
        if entry.action == self.lock_on and self._holder is None:
            self._holder = sqlite3.connect(self.path, isolation_level=None)
            self._holder.execute("BEGIN EXCLUSIVE")
        self.inner.record(entry)

    def release(self) -> None:
        """End the other connection's transaction: the database is writable again."""
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None


@dataclass
class Rig:
    """The service and everything it talks to."""

    env: Env
    engine: Engine
    audit: SqlAuditStore
    sink: SwitchableAudit
    store: ApprovalStore
    clock: Clock
    service: RemediationService

    def rows(self, request_id: str | None = None) -> list[StoredEntry]:
        """Audit rows oldest first (of one request when given)."""
        rows = list(reversed(self.audit.list_entries(limit=10_000)))
        return [r for r in rows if request_id is None or r.request_id == request_id]

    def actions(self, request_id: str | None = None) -> list[str]:
        """The audit actions, oldest first."""
        return [r.action for r in self.rows(request_id)]

    def rebuild(self, **overrides: object) -> RemediationService:
        """Another service on the same parts with some arguments changed."""
        self.service = build_service(self, **overrides)
        return self.service


def build_service(rig: Rig, **overrides: object) -> RemediationService:
    """The real service: real diagnosis pipeline, adapters on the fake cluster and the redis."""
    env, clock = rig.env, rig.clock
    url = env.server.url

    def probe(target: Target) -> LiveRedisProbe:
        return LiveRedisProbe(name=target.name, url=url, clock=clock)

    def adapters(target: Target) -> tuple[Cluster, RedisOps]:
        return env.cluster, env.ops

    kwargs: dict[str, object] = {
        "store": rig.store,
        "audit": rig.sink,
        "diagnosis": DiagnosisService(
            targets={env.target.name: env.target}, probe_factory=probe, thresholds=Thresholds()
        ),
        "adapters": adapters,
        "policy": ApproverPolicy.parse(
            APPROVERS, resolver=StaticGroups({"S0ONCALL": frozenset({"W0ONCALL1"})})
        ),
        "limits": RemediationLimits(),
        "clock": clock,
        "progress_interval": timedelta(0),
    }
    kwargs.update(overrides)
    return RemediationService(**kwargs)  # type: ignore[arg-type]


def make_rig(env: Env, engine: Engine) -> Rig:
    """Migrate ``engine`` and build the rig on it."""
    upgrade(engine)
    clock = Clock()
    audit = SqlAuditStore(engine, clock=clock)
    rig = Rig(env, engine, audit, SwitchableAudit(audit), ApprovalStore(engine), clock, None)  # type: ignore[arg-type]
    rig.service = build_service(rig)
    return rig


@pytest.fixture
def rig(env: Env, tmp_path: Path) -> Iterator[Rig]:
    """The service on a SQLite audit database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    yield make_rig(env, engine)
    engine.dispose()


@pytest.fixture
def rig_db(env: Env, db_engine: Engine) -> Rig:
    """The service on SQLite and on PostgreSQL (``tests.dbfixtures.db_engine``)."""
    return make_rig(env, db_engine)
