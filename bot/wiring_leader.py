"""The composition root's part for leader election: which claim, which elector.

``REDIS_MEM_LEADER_ELECTION``: ``kubernetes`` (the Lease ``redis-mem-leader``),
``database`` (a PostgreSQL advisory lock), ``none`` (this process always leads), or
``auto``: kubernetes when running in a cluster or KUBECONFIG is set, else database on
PostgreSQL, else none (SQLite: one process by construction). Like ``bot.wiring``, each
function imports what it builds inside its body.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings
from bot.runtime.component import Component
from bot.runtime.election import Elector, LeaseClaim, LeaseTimings
from bot.runtime.leadership import AlwaysLeader, Leadership

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Election:
    """Who decides leadership: the port the jobs ask, and the components that run it."""

    mode: str  # "kubernetes", "database" or "none"
    leadership: Leadership
    components: tuple[Component, ...] = ()


def election_mode(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """``auto`` resolved: kubernetes in a cluster or with KUBECONFIG, database on PostgreSQL."""
    if settings.leader_election != "auto":
        return settings.leader_election
    if environ.get("KUBERNETES_SERVICE_HOST") or environ.get("KUBECONFIG"):
        return "kubernetes"
    return "none" if _sqlite(settings.database_url) else "database"


def leader_election(settings: Settings, environ: Mapping[str, str] = os.environ) -> Election:
    """The election for ``serve`` (unstarted); a cluster that cannot be configured is one line."""
    mode = election_mode(settings, environ)
    timings = LeaseTimings.scaled(settings.lease_seconds)
    if mode == "kubernetes":
        return Election(mode, *_one(lease_elector(timings, environ)))
    if mode == "database" and not _sqlite(settings.database_url):
        return Election(mode, *_one(advisory_elector(settings.database_url, timings)))
    if _sqlite(settings.database_url):
        log.info(
            "leader election: none: SQLite allows one bot process, so this process is the "
            "leader by construction (run replicas on PostgreSQL or in Kubernetes)"
        )
    else:
        log.info("leader election: none (REDIS_MEM_LEADER_ELECTION=none): this process leads")
    return Election("none", AlwaysLeader())


def lease_elector(timings: LeaseTimings, environ: Mapping[str, str]) -> Elector:
    """The elector on the Lease ``redis-mem-leader`` in POD_NAMESPACE, as POD_NAME."""
    from bot.kube.lease import KubeLeaseStore, lease_namespace  # the client is slow to import

    timeout = max(0.5, min(5.0, timings.renew_deadline / 2))
    store = KubeLeaseStore.connect(namespace=lease_namespace(), timeout=timeout)
    identity = environ.get("POD_NAME", "").strip() or socket.gethostname()
    claim = LeaseClaim(store, identity=identity, timings=timings)
    log.info("leader election: %s as %r", store.description, identity)
    return Elector(claim, retry=timings.retry, fence=timings.renew_deadline)


def advisory_elector(database_url: str, timings: LeaseTimings) -> Elector:
    """The elector on a PostgreSQL advisory lock (released at once when a session ends).

    The fence is two retry periods, not the renew deadline: the server frees the lock the
    moment it drops our session, so a lost connection must stop the jobs soon.
    """
    from bot.audit.advisory import AdvisoryLockClaim

    claim = AdvisoryLockClaim(database_url)
    fence = min(timings.renew_deadline, 2 * timings.retry)
    return Elector(claim, retry=timings.retry, fence=fence, drop_on_failure=True)


def _one(elector: Elector) -> tuple[Leadership, tuple[Component, ...]]:
    return elector, (elector,)


def _sqlite(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"
