"""The composition root: the one place that turns settings into adapters and services.

Faces (CLI, Slack, scheduler) call these builders; nothing else constructs adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from bot.approvals.policy import ApproverPolicy, GroupResolver
from bot.approvals.service import RemediationService
from bot.approvals.store import ApprovalStore
from bot.audit.engine import make_engine
from bot.audit.entry import AuditSink
from bot.audit.migrate import prepare_database
from bot.audit.store import SqlAuditStore
from bot.config import DEFAULT_TARGET_NAME, Settings, Target, load_targets
from bot.errors import UsageError
from bot.health.digest import diagnose_for_alert
from bot.health.rulesfile import load_rules
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.kube.lazy import LazyCluster
from bot.redisinfo.ops import LiveRedisOps
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.sampler import LiveSampleSource
from bot.redisinfo.snapshot import RedisProbe
from bot.remediation.model import RemediationLimits, utc_now
from bot.remediation.ports import Cluster, RedisOps
from bot.services.diagnose import DiagnosisService

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from slack_sdk import WebClient


def targets_for(
    settings: Settings, *, redis_url: str | None = None, name: str | None = None
) -> dict[str, Target]:
    """The configured targets, or one ad-hoc target when a URL is given on the command line."""
    if redis_url is None:
        return load_targets(settings)
    try:
        target = Target(
            name=name or DEFAULT_TARGET_NAME,
            redis_url=redis_url,
            session_pattern=settings.session_pattern,
        )
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise UsageError(f"--redis-url/--target: {field}: {first['msg']}") from None
    return {target.name: target}


def diagnosis_service(
    settings: Settings, targets: dict[str, Target] | None = None
) -> DiagnosisService:
    """A DiagnosisService over real Redis connections (one per diagnosis)."""

    def probe_for(target: Target) -> RedisProbe:
        return LiveRedisProbe(
            name=target.name, url=target.connection_url(), scan_rate=settings.scan_rate
        )

    return DiagnosisService(
        targets=targets if targets is not None else load_targets(settings),
        probe_factory=probe_for,
        thresholds=settings.thresholds,
        sample_size=settings.sample_size,
    )


def audit_store(settings: Settings) -> tuple[SqlAuditStore, Engine]:
    """The audit store on DATABASE_URL, migrated (SQLite) or checked current (PostgreSQL).

    Raises ConfigError (schema behind) or AuditUnavailable (database unreachable).
    """
    prepare_database(settings.database_url)
    engine = make_engine(settings.database_url)
    return SqlAuditStore(engine), engine


def database_ready(engine: Engine) -> Callable[[], bool]:
    """Readiness: the audit database answers (changes must not run without it)."""

    def ready() -> bool:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    return ready


def remediation_service(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditSink,
    diagnosis: DiagnosisService,
    resolver: GroupResolver | None = None,
    cluster: Cluster | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RemediationService:
    """The approval-gated remediation over the audit database, Redis and Kubernetes.

    ``cluster``: None connects lazily (kubeconfig or in-cluster) on the first
    Kubernetes call. Raises ConfigError for a malformed REDIS_MEM_APPROVERS.
    """
    kube: Cluster = cluster if cluster is not None else LazyCluster()  # connects on first use

    def adapters(target: Target) -> tuple[Cluster, RedisOps]:
        return kube, LiveRedisOps(url=target.connection_url())

    return RemediationService(
        store=ApprovalStore(engine),
        audit=audit,
        diagnosis=diagnosis,
        adapters=adapters,
        policy=ApproverPolicy.parse(settings.approvers, resolver=resolver),
        limits=RemediationLimits(max_keys=settings.max_keys),
        ttl=timedelta(minutes=settings.approval_ttl_minutes),
        clock=clock,
    )


def health_service(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditSink,
    diagnosis: DiagnosisService | None = None,
    targets: dict[str, Target] | None = None,
    on_events: Callable[[], None] = lambda: None,
    clock: Callable[[], datetime] = utc_now,
) -> HealthService:
    """The scheduled health checks over real Redis connections and the audit database.

    ``diagnosis``: when given, alerts that fire carry a fresh diagnosis. Raises
    ConfigError for a bad REDIS_MEM_RULES_FILE.
    """
    diagnoser = None
    if diagnosis is not None:
        diagnoser = diagnose_for_alert(lambda name: diagnosis.diagnose(name), clock=clock)
    return HealthService(
        targets=targets if targets is not None else load_targets(settings),
        source=LiveSampleSource(timeout=settings.check_timeout),
        store=SqlHealthStore(engine),
        rules=load_rules(settings.rules_file),
        audit=audit,
        interval=settings.check_interval,
        timeout=settings.check_timeout,
        repeat_interval=timedelta(seconds=settings.repeat_interval),
        retention=timedelta(seconds=settings.sample_retention),
        default_channel=settings.channel,
        diagnoser=diagnoser,
        clock=clock,
        on_events=on_events,
    )


def run_bot(settings: Settings) -> None:
    """``redis-mem serve``: wire the audit store, the diagnosis and the Bolt app, then serve.

    Every configuration problem (Slack credentials, targets file, audit database
    behind its migrations) is a one-line error before anything listens.
    """
    import logging

    from prometheus_client import CollectorRegistry
    from slack_sdk import WebClient

    # One line per record on stderr, for kubectl logs; our messages carry no secrets
    # (errors are redacted where they are made), and Bolt logs no tokens at INFO.
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from bot.serve import serve
    from bot.slack.app import api_base_url, build_app, slack_credentials
    from bot.slack.groups import SlackGroupResolver
    from bot.slack.listeners.approvals import fix_executor
    from bot.slack.metrics import BotMetrics

    token, _ = slack_credentials(settings)
    store, engine = audit_store(settings)
    registry = CollectorRegistry()
    diagnosis = diagnosis_service(settings)
    # Its own client: build_app checks the token with auth.test; this one only lists groups.
    slack = WebClient(token=token, base_url=api_base_url(settings.slack_api_url))
    remediation = remediation_service(
        settings,
        engine=engine,
        audit=store,
        diagnosis=diagnosis,
        resolver=SlackGroupResolver(slack),
    )
    fixes = fix_executor()
    app = build_app(
        settings=settings,
        diagnosis=diagnosis,
        audit=store,
        metrics=BotMetrics.create(registry),
        audit_reader=store,
        remediation=remediation,
        fix_executor=fixes,
    )
    sweeper = expiry_scheduler(remediation=remediation, client=slack)
    sweeper.start()
    try:
        serve(settings=settings, app=app, registry=registry, ready=database_ready(engine))
    finally:
        # Stopped (SIGTERM): no new work arrives. Let running fixes finish so none
        # stops halfway; approvals still queued stay pending (nothing ran).
        logging.getLogger(__name__).info("shutting down: waiting for running fixes")
        sweeper.shutdown(wait=False)
        fixes.shutdown(wait=True, cancel_futures=True)
        engine.dispose()


def expiry_scheduler(*, remediation: RemediationService, client: WebClient) -> BackgroundScheduler:
    """An (unstarted) APScheduler that expires undecided approval requests every 30 s."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.slack.expiry import SWEEP_SECONDS, expire_and_refresh

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        expire_and_refresh,
        "interval",
        seconds=SWEEP_SECONDS,
        kwargs={"service": remediation, "client": client},
        id="expire-approval-requests",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
