"""What the Slack listeners need, handed to every ``register(app, deps)``."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.audit.entry import AuditSink
from bot.audit.store import StoredEntry
from bot.config import DEFAULT_SLACK_QUEUE, DEFAULT_SLACK_WORKERS, Settings
from bot.diagnosis.model import Diagnosis
from bot.runtime.pool import BoundedPool, Foreground
from bot.services.diagnose import DiagnosisService
from bot.slack.metrics import BotMetrics

if TYPE_CHECKING:
    from bot.approvals.service import RemediationService
    from bot.health.service import HealthService
    from bot.reports.service import ReportService


class AuditReader(Protocol):
    """Reads the newest audit entries (``bot.audit.store.SqlAuditStore`` is one)."""

    def list_entries(self, *, limit: int = 50) -> Sequence[StoredEntry]:
        """Newest first; raises AuditUnavailable when the database cannot be read."""
        ...


@dataclass(frozen=True)
class SlackDeps:
    """Services and ports the listeners call; built once by ``build_app``."""

    settings: Settings
    diagnosis: DiagnosisService
    audit: AuditSink
    metrics: BotMetrics
    # Fixes, pending, the approval buttons: every process that answers Slack has them.
    remediation: RemediationService
    audit_reader: AuditReader | None = None
    # Where approved fixes run; owned by the composition root so shutdown can drain it.
    fix_executor: Executor | None = None
    health: HealthService | None = None  # None: alert buttons and ``alerts`` say "not configured"
    reports: ReportService | None = None  # None: ``report`` says "not configured"
    # Where every listener's work runs after its ack (bot/slack/afterack.py); the
    # composition root owns it so SIGTERM stops it (tests get a default one).
    work: BoundedPool = field(
        default_factory=lambda: work_pool(workers=DEFAULT_SLACK_WORKERS, queue=DEFAULT_SLACK_QUEUE)
    )
    # Book-keeping after an ack (audit rows of refused commands, "busy" notices).
    aside: BoundedPool = field(default_factory=lambda: aside_pool())


# The work runs at a lower CPU priority than the acks (``bot.runtime.pool.lower_priority``).
WORK_NICE = 10
ASIDE_WORKERS = 2
ASIDE_QUEUE = 256


def work_pool(*, workers: int, queue: int, after: Foreground | None = None) -> BoundedPool:
    """The pool the listeners hand their work to, once acked; its jobs start after the
    acks in flight (``after``, see ``build_app``)."""
    return BoundedPool(
        workers=workers, queue=queue, name="redis-mem-slack", nice=WORK_NICE, after=after
    )


def aside_pool(after: Foreground | None = None) -> BoundedPool:
    """The small pool of book-keeping after acks."""
    return BoundedPool(
        workers=ASIDE_WORKERS,
        queue=ASIDE_QUEUE,
        name="redis-mem-aside",
        nice=WORK_NICE,
        after=after,
    )


def timed_diagnosis(deps: SlackDeps, target: str) -> Diagnosis:
    """Diagnose one target, timing it in the duration histogram; a diagnosis of it
    already running for another ``status``/``diagnose``/``keys`` is shared, not repeated
    (fixes take their own, uncoalesced readings)."""
    with deps.metrics.diagnosis_seconds.labels(target=target).time():
        return deps.diagnosis.shared(target)
