"""The composition root's part for ``redis-mem serve``: the runtime around the Bolt app.

``run_bot`` wires the audit store, the services (beside ``bot.wiring``'s builders), the
Slack app, the alert outbox, the scheduled jobs (health rounds, approval expiry,
retention and rollup, the channel reports) and the HTTP server, and stops them in
reverse order on SIGTERM. Like ``bot.wiring``, each function imports what it builds
inside its body.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.clock import utc_now
from bot.config import Settings
from bot.wiring import (
    audit_store,
    database_ready,
    diagnosis_service,
    health_service,
    remediation_service,
    slack_clients,
)

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy import Engine

    from bot.alertmanager.http import Webhook
    from bot.approvals.service import RemediationService
    from bot.audit.entry import AuditSink
    from bot.audit.store import SqlAuditStore
    from bot.health.service import HealthService
    from bot.metrics import ServiceMetrics
    from bot.reports.service import ReportService
    from bot.runtime.cron import CronSlots
    from bot.runtime.leadership import Leadership
    from bot.runtime.scheduler import JobScheduler
    from bot.runtime.worker import WakeableWorker
    from bot.services.diagnose import DiagnosisService


def run_bot(settings: Settings) -> None:
    """``redis-mem serve``: wire the audit store, the services, the Bolt app and the runtime.

    Every configuration problem (Slack credentials, targets or rules file, audit database
    behind its migrations) is a one-line error before anything listens. The runtime then
    runs the scheduler (health checks, approval expiry, retention) and the alert outbox
    beside the HTTP server, and stops them in reverse order on SIGTERM.
    """
    import logging

    # One line per record on stderr, for kubectl logs; our messages carry no secrets
    # (errors are redacted where they are made), and Bolt logs no tokens at INFO.
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from prometheus_client import CollectorRegistry

    from bot.metrics import ServiceMetrics
    from bot.runtime.component import Runtime
    from bot.runtime.pool import Foreground
    from bot.serve import serve
    from bot.slack.app import build_app
    from bot.slack.deps import aside_pool, work_pool
    from bot.slack.groups import SlackGroupResolver
    from bot.slack.listeners.approvals import fix_executor
    from bot.slack.metrics import BotMetrics, leader_gauge
    from bot.wiring_leader import leader_election
    from bot.wiring_reports import report_service, report_slots

    registry = CollectorRegistry()
    metrics = ServiceMetrics.create(registry)  # checks, alerts, Slack errors, approvals
    # Missing credentials: one line before the database.
    clients = slack_clients(settings, observer=metrics)
    slots = report_slots(settings)  # a bad REDIS_MEM_REPORT_SCHEDULE too
    store, engine = audit_store(settings)
    election = leader_election(settings)  # a cluster that cannot be configured: one line
    leader_gauge(registry, election.leadership.is_leader)
    diagnosis = diagnosis_service(settings)
    slack = clients.alerts
    remediation = remediation_service(
        settings,
        engine=engine,
        audit=metrics.counting(store),  # approval transitions, as they are audited
        diagnosis=diagnosis,
        resolver=SlackGroupResolver(slack),
    )
    outbox, health = alert_outbox(
        settings,
        engine=engine,
        audit=store,
        client=slack,
        diagnosis=diagnosis,
        metrics=metrics,
        leadership=election.leadership,
    )
    reports = report_service(settings, engine=engine, diagnosis=diagnosis)
    fixes = fix_executor()
    acks = Foreground()  # the work waits for the acks in flight (bot/slack/app.py)
    work = work_pool(workers=settings.slack_workers, queue=settings.slack_queue, after=acks)
    aside = aside_pool(after=acks)
    app = build_app(
        settings=settings,
        client=clients.listeners,
        diagnosis=diagnosis,
        audit=store,
        metrics=BotMetrics.create(registry),
        audit_reader=store,
        remediation=remediation,
        fix_executor=fixes,
        health=health,
        reports=reports,
        work=work,
        aside=aside,
        foreground=acks,
    )
    scheduler = scheduled_jobs(
        settings,
        remediation=remediation,
        client=slack,
        health=health,
        leadership=election.leadership,
    )
    add_audit_backlog_sweep(scheduler, engine=engine, audit=store, client=slack)
    if slots is not None:
        add_channel_reports(
            scheduler, slots=slots, engine=engine, audit=store, client=slack, service=reports
        )
    from bot.slack.expiry import recover_interrupted

    recover_interrupted(service=remediation, client=slack)  # what a dead process left running
    # Alertmanager's webhook (REDIS_MEM_WEBHOOK_TOKEN): every replica answers it.
    webhook, webhook_worker = alertmanager_webhook(
        settings, engine=engine, audit=store, client=slack, diagnosis=diagnosis
    )
    try:
        # The Slack work pool stops first (SIGTERM), then the fix pool: queued requests and
        # approvals are not started and their askers told; running ones finish while the
        # scheduler and outbox still run. The elector starts first and stops last, releasing
        # the lease once nothing here runs scheduled work any more.
        Runtime([*election.components, scheduler, outbox, *webhook_worker, fixes, aside, work]).run(
            lambda: serve(
                settings=settings,
                app=app,
                registry=registry,
                ready=database_ready(engine),
                webhook=webhook,
            )
        )
    finally:
        health.close()
        reports.close()
        engine.dispose()


def alert_outbox(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditSink,
    client: WebClient,
    diagnosis: DiagnosisService,
    metrics: ServiceMetrics | None = None,
    leadership: Leadership | None = None,
) -> tuple[WakeableWorker, HealthService]:
    """The health service and the worker that delivers its events to Slack.

    A check round or a click wakes the worker; it also polls, for failed deliveries and
    for what a follower's clicks queued. Only the leader delivers (``leadership``): two
    replicas draining one outbox could both post the same event.
    ``metrics``: counts the checks and the delivered alert events.
    """
    from bot.health.dispatch import Dispatcher
    from bot.health.store import SqlHealthStore
    from bot.runtime.worker import WakeableWorker
    from bot.slack.notifier import SlackNotifier

    dispatcher = Dispatcher(
        store=SqlHealthStore(engine),
        notifier=SlackNotifier(client, clock=utc_now),
        audit=audit,
        clock=utc_now,
        max_backoff=timedelta(seconds=settings.check_interval),
        observer=metrics,
    )
    worker = WakeableWorker(
        "alert-outbox", dispatcher.run_once, poll=OUTBOX_POLL_SECONDS, leadership=leadership
    )
    health = health_service(
        settings,
        engine=engine,
        audit=audit,
        diagnosis=diagnosis,
        on_events=worker.wake,
        observer=metrics,
    )
    return worker, health


def add_audit_backlog_sweep(
    scheduler: JobScheduler, *, engine: Engine, audit: SqlAuditStore, client: WebClient
) -> None:
    """Every few seconds, write the audit rows applied changes still owe (bot.approvals.backlog)."""
    from bot.approvals.backlog import AuditBacklog
    from bot.approvals.store import ApprovalStore
    from bot.slack.audit_backlog import SWEEP_SECONDS, BacklogSweep

    backlog = AuditBacklog(store=ApprovalStore(engine), audit=audit, clock=utc_now)
    sweep = BacklogSweep(backlog=backlog, client=client)
    scheduler.every("flush-audit-backlog", sweep, seconds=SWEEP_SECONDS)


def add_channel_reports(
    scheduler: JobScheduler,
    *,
    slots: CronSlots,
    engine: Engine,
    audit: AuditSink,
    client: WebClient,
    service: ReportService,
) -> None:
    """Tick the channel reports: each slot's report is posted once per channel."""
    from bot.reports.schedule import TICK_SECONDS
    from bot.wiring_reports import scheduled_reports

    job = scheduled_reports(slots=slots, engine=engine, audit=audit, client=client, service=service)
    scheduler.every("channel-report", job.run_tick, seconds=TICK_SECONDS, run_now=True)


OUTBOX_POLL_SECONDS = 5.0
WEBHOOK_POLL_SECONDS = 5.0


def alertmanager_webhook(
    settings: Settings,
    *,
    engine: Engine,
    audit: AuditSink,
    client: WebClient,
    diagnosis: DiagnosisService,
) -> tuple[Webhook | None, list[WakeableWorker]]:
    """``POST /alertmanager`` and the worker that shows its groups in Slack; (None, [])
    while REDIS_MEM_WEBHOOK_TOKEN is unset (the endpoint is off).

    Not gated by leadership: the replica that received a notification shows it, and the
    group's row claim keeps two replicas from posting one group twice.
    """
    if not settings.webhook_token:
        return None, []
    from bot.alertmanager.http import Webhook
    from bot.alertmanager.service import AlertmanagerService
    from bot.alertmanager.slack import SlackGroupPoster
    from bot.alertmanager.store import SqlGroupStore
    from bot.runtime.worker import WakeableWorker

    def deliver() -> None:
        service.deliver_pending()

    worker = WakeableWorker("alertmanager", deliver, poll=WEBHOOK_POLL_SECONDS)
    service = AlertmanagerService(
        targets=diagnosis.targets,
        default_channel=settings.channel,
        store=SqlGroupStore(engine),
        audit=audit,
        poster=SlackGroupPoster(client),
        diagnose=diagnosis.shared,
        clock=utc_now,
        on_received=worker.wake,
    )
    return Webhook(token=settings.webhook_token, intake=service), [worker]


RETENTION_SWEEP_SECONDS = 3600
ROLLUP_SECONDS = 300  # the samples' aggregate bucket: a report sees up to the last whole one


def scheduled_jobs(
    settings: Settings,
    *,
    remediation: RemediationService,
    client: WebClient,
    health: HealthService,
    leadership: Leadership | None = None,
) -> JobScheduler:
    """The (unstarted) scheduler: health rounds, approval expiry, sample retention.

    ``leadership``: asked before every run (default: this process always leads).
    """
    from bot.runtime.scheduler import JobScheduler
    from bot.slack.expiry import SWEEP_SECONDS, expire_and_refresh

    scheduler = JobScheduler(leadership=leadership)
    scheduler.every("health-check", health.run_round, seconds=settings.check_interval, run_now=True)
    scheduler.every(
        "expire-approval-requests",
        lambda: expire_and_refresh(service=remediation, client=client),
        seconds=SWEEP_SECONDS,
    )
    scheduler.every("prune-health-samples", health.prune, seconds=RETENTION_SWEEP_SECONDS)
    scheduler.every("rollup-health-samples", health.rollup, seconds=ROLLUP_SECONDS)
    return scheduler
