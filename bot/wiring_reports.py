"""The composition root's part for channel health reports (beside ``bot.wiring``).

Builds the report service over the audit database and the diagnosis engine, and the
scheduled job that posts it. Like ``bot.wiring``, every builder imports what it builds
inside its body, so ``redis-mem diagnose`` never loads the reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import utc_now
from bot.config import Settings, Target
from bot.errors import ConfigError

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy import Engine

    from bot.audit.entry import AuditSink
    from bot.reports.schedule import ScheduledReports
    from bot.reports.service import ReportService
    from bot.runtime.cron import CronSlots
    from bot.services.diagnose import DiagnosisService

# A diagnosis for a report samples up to REDIS_MEM_SAMPLE_SIZE keys: far more than a
# health check's INFO, so it gets its own, longer bound (a hung store still ends).
REPORT_DIAGNOSIS_SECONDS = 15.0
SCHEDULE_OFF = "off"


def report_service(
    settings: Settings,
    *,
    engine: Engine,
    targets: dict[str, Target] | None = None,
    diagnosis: DiagnosisService | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ReportService:
    """Reports over DATABASE_URL's history and a live diagnosis of each target.

    ``diagnosis``: the process's own (serve shares it with the listeners); None builds one.
    """
    from bot.reports.live import live_from
    from bot.reports.service import ReportService
    from bot.reports.store import SqlReportSource
    from bot.wiring import diagnosis_service

    if diagnosis is None:
        diagnosis = diagnosis_service(settings, targets)
    return ReportService(
        targets=targets if targets is not None else diagnosis.targets,
        source=SqlReportSource(
            engine, raw_retention=timedelta(seconds=settings.sample_retention), clock=clock
        ),
        live=live_from(diagnosis.shared, clock=clock),
        timezone=settings.timezone,
        default_channel=settings.channel,
        clock=clock,
        live_timeout=REPORT_DIAGNOSIS_SECONDS,
    )


@contextmanager
def report_reader(settings: Settings) -> Iterator[ReportService]:
    """``redis-mem report``: the service over a read-only DATABASE_URL (never created nor
    migrated: a missing file or a schema behind head is one line), closed after."""
    from bot.wiring import audit_engine

    with audit_engine(settings) as engine:
        service = report_service(settings, engine=engine)
        try:
            yield service
        finally:
            service.close()


def report_slots(settings: Settings) -> CronSlots | None:
    """REDIS_MEM_REPORT_SCHEDULE in REDIS_MEM_TIMEZONE; None when ``off``.

    ConfigError (one line) for an expression that is not five valid cron fields.
    """
    from bot.runtime.cron import CronSlots, ScheduleError

    expression = settings.report_schedule.strip()
    if expression.lower() == SCHEDULE_OFF:
        return None
    try:
        return CronSlots.parse(expression, settings.timezone)
    except ScheduleError as err:
        raise ConfigError(f"invalid configuration: REDIS_MEM_REPORT_SCHEDULE: {err}") from None


def scheduled_reports(
    *,
    slots: CronSlots,
    engine: Engine,
    audit: AuditSink,
    client: WebClient,
    service: ReportService,
    clock: Callable[[], datetime] = utc_now,
) -> ScheduledReports:
    """The job that posts each channel's report at its slot (``bot.reports.schedule``)."""
    from bot.reports.schedule import ScheduledReports
    from bot.reports.store import SqlSlotLedger
    from bot.slack.report_post import SlackReportPublisher

    return ScheduledReports(
        service=service,
        ledger=SqlSlotLedger(engine),
        publisher=SlackReportPublisher(client),
        slots=slots,
        audit=audit,
        clock=clock,
    )
