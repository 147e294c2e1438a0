"""The composition root: the one place that turns settings into adapters and services.

Faces (the CLI's commands, the demo, the Slack app, serve's runtime) receive what these
builders make: nothing else constructs an adapter or a client (Redis, Kubernetes, the
audit database, Slack's Web API). The demo's own redis-py connections, which write its
throwaway stores, are the scenario itself, not an adapter.

Each builder imports the adapters and services it builds, inside its body: a CLI command
loads only its own machinery (``diagnose`` never loads Alembic, Slack or the approvals,
nor the Kubernetes client without a target that has coordinates; ``capacity`` not even
Redis), which is most of its start-up time (docs/decisions/runtime.md,
bench/cli_start.py). Names used only in signatures are imported for the type checker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.clock import utc_now
from bot.config import DEFAULT_TARGET_NAME, Settings, Target, first_error
from bot.errors import UsageError
from bot.targets_file import load_targets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from slack_sdk import WebClient
    from slack_sdk.http_retry.handler import RetryHandler
    from sqlalchemy import Engine

    from bot.approvals.policy import GroupResolver
    from bot.approvals.service import RemediationService
    from bot.audit.entry import AuditEntry, AuditSink
    from bot.audit.store import SqlAuditStore
    from bot.health.foreground import ForegroundChecks
    from bot.health.ports import CheckObserver, Notifier
    from bot.health.rules import RuleBook
    from bot.health.service import HealthService
    from bot.kube.cluster import KubeCluster
    from bot.redisinfo.snapshot import RedisProbe
    from bot.remediation.ports import Cluster, RedisOps
    from bot.services.diagnose import DiagnosisService, ProbeFactory
    from bot.slack.observed import SlackCallObserver


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
        raise UsageError(f"--redis-url/--target: {first_error(err)}") from None
    return {target.name: target}


def diagnosis_service(
    settings: Settings, targets: dict[str, Target] | None = None, *, cluster: Cluster | None = None
) -> DiagnosisService:
    """A DiagnosisService over real Redis connections (one per diagnosis).

    Targets with Kubernetes coordinates are compared with their ConfigMap's redis.conf
    (drift) through ``cluster``; None connects lazily on the first such diagnosis, each
    read bounded by REDIS_MEM_CHECK_TIMEOUT so an unreachable API cannot stall it.
    """
    from bot.kube.lazy import LazyCluster  # the client itself loads on first use only
    from bot.remediation.persisted import ConfigMapRedisConf
    from bot.services.diagnose import DiagnosisService

    def connect() -> KubeCluster:
        from bot.kube.cluster import KubeCluster

        return KubeCluster.connect(timeout=settings.check_timeout)

    return DiagnosisService(
        targets=targets if targets is not None else load_targets(settings),
        probe_factory=probe_for(settings),
        thresholds=settings.thresholds,
        sample_size=settings.sample_size,
        persisted=ConfigMapRedisConf(cluster if cluster is not None else LazyCluster(connect)),
    )


def probe_for(settings: Settings) -> ProbeFactory:
    """How a target is read: a real Redis connection, its SCAN bounded by REDIS_MEM_SCAN_BUDGET.

    The diagnosis service's, and the demo's (each throwaway store is a target).
    """
    from bot.redisinfo.cluster_probe import ClusterProbe
    from bot.redisinfo.probe import LiveRedisProbe
    from bot.redisinfo.sentinel import SentinelProbe

    def probe(target: Target) -> RedisProbe:
        if target.mode == "cluster":  # the primaries are asked of the seeds at each snapshot
            return ClusterProbe(
                target=target, scan_budget=settings.scan_budget, timeout=settings.check_timeout
            )
        if target.mode == "sentinel":  # the primary is asked of the sentinels at each snapshot
            return SentinelProbe(
                target=target, scan_budget=settings.scan_budget, timeout=settings.check_timeout
            )
        return LiveRedisProbe(
            name=target.name, url=target.connection_url(), scan_budget=settings.scan_budget
        )

    return probe


@contextmanager
def audit_engine(settings: Settings, *, read_only: bool = True) -> Iterator[Engine]:
    """DATABASE_URL's engine for one CLI command, disposed after it.

    ``read_only`` (audit list, verify, export) neither creates nor migrates: a missing
    SQLite file or a database behind head is a one-line ConfigError saying so.
    """
    from bot.audit.engine import make_engine
    from bot.audit.migrate import check_readable

    engine = make_engine(settings.database_url)
    try:
        if read_only:
            check_readable(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def audit_reader(settings: Settings) -> Iterator[SqlAuditStore]:
    """The audit trail, read-only (``audit_engine``), for one CLI command."""
    from bot.audit.store import SqlAuditStore

    with audit_engine(settings) as engine:
        yield SqlAuditStore(engine)


def audit_store(settings: Settings) -> tuple[SqlAuditStore, Engine]:
    """The audit store on DATABASE_URL, migrated (SQLite) or checked current (PostgreSQL).

    Raises ConfigError (schema behind) or AuditUnavailable (database unreachable).
    """
    from bot.audit.engine import make_engine
    from bot.audit.migrate import prepare_database
    from bot.audit.store import SqlAuditStore
    from bot.datadir import ensure_default_database_dir

    ensure_default_database_dir(settings.database_url)  # the first write creates its folder
    prepare_database(settings.database_url)
    engine = make_engine(settings.database_url)
    return SqlAuditStore(engine), engine


def record_entry(settings: Settings, entry: AuditEntry) -> None:
    """Write one audit row for a short-lived process (a CLI command), then let go.

    A plain SQLite file at head takes the stdlib writer (``bot.audit.sqlite_append``:
    the same row, without SQLAlchemy's start-up cost); anything else the audit store,
    which creates, migrates or refuses. Raises ConfigError or AuditUnavailable.
    """
    from bot.audit.sqlite_append import try_append

    if try_append(settings.database_url, entry):
        return
    store, engine = audit_store(settings)
    try:
        store.record(entry)
    finally:
        engine.dispose()


def database_ready(engine: Engine) -> Callable[[], bool]:
    """Readiness: an audit row could be written now (changes must not run without one).

    A rolled-back INSERT, bounded in time and cached (``bot.audit.readiness``).
    """
    from bot.audit.readiness import WriteProbe

    return WriteProbe(engine)


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
    from bot.approvals.policy import ApproverPolicy
    from bot.approvals.service import RemediationService
    from bot.approvals.store import ApprovalStore
    from bot.kube.lazy import LazyCluster
    from bot.redisinfo.ops import LiveRedisOps
    from bot.redisinfo.sentinel import target_url
    from bot.remediation.model import RemediationLimits

    kube: Cluster = cluster if cluster is not None else LazyCluster()  # connects on first use

    def adapters(target: Target) -> tuple[Cluster, RedisOps]:
        # Built per fix, after its fresh diagnosis: a sentinel target's current primary,
        # a cluster target's primaries as the seeds name them now.
        if target.mode == "cluster":
            from bot.redisinfo.ops_cluster import ClusterRedisOps

            return kube, ClusterRedisOps.discover(target, timeout=settings.check_timeout)
        return kube, LiveRedisOps(url=target_url(target, timeout=settings.check_timeout))

    return RemediationService(
        store=ApprovalStore(engine),
        audit=audit,
        diagnosis=diagnosis,
        adapters=adapters,
        policy=ApproverPolicy.parse(settings.approvers, resolver=resolver),
        limits=RemediationLimits(max_keys=settings.max_keys, rate=settings.fix_rate),
        ttl=timedelta(minutes=settings.approval_ttl_minutes),
        clock=clock,
    )


def health_service(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditSink | None = None,
    diagnosis: DiagnosisService | None = None,
    targets: dict[str, Target] | None = None,
    on_events: Callable[[], None] = lambda: None,
    clock: Callable[[], datetime] = utc_now,
    observer: CheckObserver | None = None,
) -> HealthService:
    """The scheduled health checks over real Redis connections and the audit database.

    ``audit``: the sink of its events (None: an audit store on ``engine``, built here).
    ``diagnosis``: when given, alerts that fire carry a fresh diagnosis. ``observer``:
    told each check's outcome and duration (the metrics). Raises ConfigError for a bad
    REDIS_MEM_RULES_FILE.
    """
    import time

    from bot.audit.store import SqlAuditStore
    from bot.health.digest import diagnose_for_alert
    from bot.health.rulesfile import load_rules
    from bot.health.service import HealthService
    from bot.health.store import SqlHealthStore
    from bot.redisinfo.sampler import LiveSampleSource

    diagnoser = None
    if diagnosis is not None:
        diagnoser = diagnose_for_alert(lambda name: diagnosis.diagnose(name), clock=clock)
    return HealthService(
        targets=targets if targets is not None else load_targets(settings),
        source=LiveSampleSource(timeout=settings.check_timeout),
        store=SqlHealthStore(engine),
        rules=load_rules(settings.rules_file),
        audit=audit if audit is not None else SqlAuditStore(engine),
        interval=settings.check_interval,
        timeout=settings.check_timeout,
        repeat_interval=timedelta(seconds=settings.repeat_interval),
        retention=timedelta(seconds=settings.sample_retention),
        aggregate_retention=timedelta(seconds=settings.aggregate_retention),
        default_channel=settings.channel,
        diagnoser=diagnoser,
        clock=clock,
        on_events=on_events,
        observer=observer,
        timer=time.monotonic,  # durations: a clock that never steps back
    )


# Seconds per HTTP attempt of each client's calls (their retries: bot/slack/retry.py).
LISTENER_CALL_TIMEOUT = 10
ALERT_CALL_TIMEOUT = 10


@dataclass(frozen=True)
class SlackClients:
    """The two Web API clients of one process: same token and API URL, other retries."""

    # Bolt's, which the listeners answer with: twice, a Retry-After of up to 3 s (an ack
    # never waits for them, but the asker does).
    listeners: WebClient
    # The alert notifier's, the sweeps' and the group resolver's: a 429 with a short
    # Retry-After, a 500/503 or a dropped connection is retried inside the call; anything
    # longer is the outbox's to retry.
    alerts: WebClient


def slack_clients(settings: Settings, *, observer: SlackCallObserver | None = None) -> SlackClients:
    """Both Slack Web API clients on SLACK_BOT_TOKEN and SLACK_API_URL.

    ``observer``: told of every call that failed after its retries (the metrics).
    Raises ConfigError naming the missing credentials. Nothing is called yet: build_app
    checks the token (auth.test) through ``listeners``.
    """
    from slack_sdk import WebClient

    from bot.slack.app import api_base_url, slack_credentials
    from bot.slack.observed import ObservedWebClient
    from bot.slack.retry import alert_retry_handlers, listener_retry_handlers

    token, _ = slack_credentials(settings)
    base_url = api_base_url(settings.slack_api_url)

    def client(timeout: int, retry_handlers: list[RetryHandler]) -> WebClient:
        if observer is None:
            return WebClient(
                token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers
            )
        return ObservedWebClient(
            observer=observer,
            token=token,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=retry_handlers,
        )

    return SlackClients(
        listeners=client(LISTENER_CALL_TIMEOUT, listener_retry_handlers()),
        alerts=client(ALERT_CALL_TIMEOUT, alert_retry_handlers()),
    )


# =============================================================================================
# Health checks outside `serve` (added for `redis-mem check`, `watch` and the demo's alert
# scenario). `check` reads the real history read-only; `watch` and the demo keep their alert
# state in a private in-memory SQLite database, so they never fight a running
# `redis-mem serve` over the real alert state, and nothing of it outlives the process.


def private_health_engine() -> Engine:
    """A migrated in-memory SQLite database, private to this process and safe across threads."""
    from sqlalchemy.pool import QueuePool

    from bot.audit.engine import make_engine
    from bot.audit.migrate import upgrade

    # The database lives in its one connection, so the pool must never drop it. A pool of
    # exactly one (not StaticPool) also hands it to one user at a time: the check workers
    # and the dispatcher share it, and on a StaticPool their transactions interleave (a
    # second BEGIN fails) while a lock in pool events deadlocks on its shared record.
    engine = make_engine(
        "sqlite://",
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    upgrade(engine)
    return engine


def history_engine(settings: Settings) -> tuple[Engine, str | None]:
    """The database ``check`` reads history from, never created nor migrated.

    When DATABASE_URL cannot be read (a missing SQLite file, a schema behind head, an
    unreachable server), an empty private database instead, and the one-line reason.
    """
    from bot.audit.engine import make_engine
    from bot.audit.migrate import check_readable
    from bot.errors import AuditUnavailable, ConfigError

    engine: Engine | None = None
    try:
        engine = make_engine(settings.database_url)
        check_readable(engine)
    except (AuditUnavailable, ConfigError) as err:
        if engine is not None:
            engine.dispose()
        return private_health_engine(), err.message
    return engine, None


def foreground_checks(
    *,
    targets: Mapping[str, Target],
    rules: RuleBook,
    notifier: Notifier,
    interval: float,
    timeout: float,
    repeat_interval: timedelta,
    clock: Callable[[], datetime] = utc_now,
) -> ForegroundChecks:
    """Health checks of ``targets`` whose alert state lives in a private database."""
    from bot.audit.store import SqlAuditStore
    from bot.health.dispatch import Dispatcher
    from bot.health.foreground import ForegroundChecks
    from bot.health.service import HealthService
    from bot.health.store import SqlHealthStore
    from bot.redisinfo.sampler import LiveSampleSource

    engine = private_health_engine()
    store = SqlHealthStore(engine)
    audit = SqlAuditStore(engine)  # the private trail: alert transitions are audited there
    service = HealthService(
        targets=targets,
        source=LiveSampleSource(timeout=timeout),
        store=store,
        rules=rules,
        audit=audit,
        interval=interval,
        timeout=timeout,
        repeat_interval=repeat_interval,
        clock=clock,
    )
    dispatcher = Dispatcher(store=store, notifier=notifier, audit=audit, clock=clock)
    return ForegroundChecks(
        service=service,
        dispatcher=dispatcher,
        on_close=engine.dispose,
        clock=clock,
    )


def watch_checks(
    settings: Settings, *, targets: Mapping[str, Target], notifier: Notifier
) -> ForegroundChecks:
    """``redis-mem watch``: the configured rules and cadence; ConfigError for a bad rules file."""
    from bot.health.rulesfile import load_rules

    return foreground_checks(
        targets=targets,
        rules=load_rules(settings.rules_file),
        notifier=notifier,
        interval=settings.check_interval,
        timeout=settings.check_timeout,
        repeat_interval=timedelta(seconds=settings.repeat_interval),
    )
