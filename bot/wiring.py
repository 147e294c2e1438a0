"""The composition root: the one place that turns settings into adapters and services.

Faces (CLI, Slack, scheduler) call these builders; nothing else constructs adapters.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from bot.audit.engine import make_engine
from bot.audit.migrate import prepare_database
from bot.audit.store import SqlAuditStore
from bot.config import DEFAULT_TARGET_NAME, Settings, Target, load_targets
from bot.errors import UsageError
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.snapshot import RedisProbe
from bot.services.diagnose import DiagnosisService


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


def run_bot(settings: Settings) -> None:
    """``redis-mem serve``: wire the audit store, the diagnosis and the Bolt app, then serve.

    Every configuration problem (Slack credentials, targets file, audit database
    behind its migrations) is a one-line error before anything listens.
    """
    from prometheus_client import CollectorRegistry

    from bot.serve import serve
    from bot.slack.app import build_app, slack_credentials
    from bot.slack.metrics import BotMetrics

    slack_credentials(settings)
    store, engine = audit_store(settings)
    registry = CollectorRegistry()
    app = build_app(
        settings=settings,
        diagnosis=diagnosis_service(settings),
        audit=store,
        metrics=BotMetrics.create(registry),
        audit_reader=store,
    )
    serve(settings=settings, app=app, registry=registry, ready=database_ready(engine))
