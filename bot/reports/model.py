"""The channel health report as frozen data: what the store gives, what the figures say.

Inputs (read by a ``ReportSource``): a target's memory points over the window (raw
samples, or 5-minute aggregates for long windows), the alerts that overlap it, the fixes
executed in it, the audit trail's head; and, per target, a ``LiveView`` taken now from
the diagnosis engine. Outputs: ``TargetReport`` per target and the ``Report`` of a
channel, worst target first. Faces (Slack, terminal, JSON, the chart) only read these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.diagnosis.capacity import CapacityPlan
from bot.diagnosis.model import Severity

# Forecasts further out than this are "more than 30 days" (a trend is not that stable).
FORECAST_HORIZON = timedelta(days=30)
# The forecast's line: when memory reaches this share of maxmemory (memory-critical).
FORECAST_RATIO = 0.90
# Windows a report may cover: a moment (1 minute) up to the aggregates' retention.
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=30)
DEFAULT_WINDOW = timedelta(hours=24)


class Resolution(StrEnum):
    """What one point stands for: one check, or a 5-minute bucket of checks."""

    RAW = "raw"
    FIVE_MINUTES = "5m"


class Point(NamedTuple):
    """One point of a target's series: a raw sample, or a 5-minute aggregate of samples.

    ``at``: the sample's time, or the bucket's start. ``used``/``maxmemory``/``ratio``/
    ``dbsize``: the last reading in the bucket (a raw sample's own). ``used_min``/
    ``used_max`` and ``ratio_min``/``ratio_max``: the bucket's extremes (a raw sample's
    own value). Evictions are a counter: ``evicted_first``/``evicted_last`` its first and
    last readings in the bucket, ``evicted_increase`` what it rose inside the bucket,
    restarts counted (a counter that goes down restarted: the new value is the increase).
    ``samples``: checks in the bucket, ``reachable`` how many of them read the store.
    Readings are None when no check of the bucket read them.

    A NamedTuple, not a frozen dataclass: immutable alike, and a 7-day report of a hundred
    targets builds 200,000 of them (``_make`` from a row costs a fifth of a frozen
    dataclass's ``__init__``, which sets each field through ``object.__setattr__``).
    """

    at: datetime
    samples: int = 1
    reachable: int = 1
    used: int | None = None
    used_min: int | None = None
    used_max: int | None = None
    maxmemory: int | None = None
    ratio: float | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None
    evicted_first: int | None = None
    evicted_last: int | None = None
    evicted_increase: int = 0
    dbsize: int | None = None


@dataclass(frozen=True)
class Series:
    """A target's points over a window, oldest first."""

    target: str
    points: tuple[Point, ...]
    resolution: Resolution = Resolution.RAW


@dataclass(frozen=True)
class AlertSpan:
    """An alert that overlaps the window: when it fired and resolved (None: still firing)."""

    id: str
    target: str
    rule: str
    severity: Severity
    fired_at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class FixRecord:
    """A fix that ended in the window, from the audit trail.

    outcome: ``ok`` (executed), ``error`` (failed), ``cancelled`` or ``interrupted``.
    requester/approver: Slack user ids (or ``cli:<user>``); requester is None when
    the request's own row is not in the trail.
    """

    at: datetime
    target: str
    action: str
    outcome: str
    summary: str
    approver: str
    request_id: str | None = None
    requester: str | None = None


@dataclass(frozen=True)
class AuditHead:
    """The audit chain's newest row: a channel keeps this copy outside the database."""

    seq: int
    hash: str

    @property
    def anchor(self) -> str:
        """``SEQ:HASH``, what ``redis-mem audit verify --anchor`` takes."""
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class ScenarioLine:
    """A runbook scenario found now: its id and title."""

    id: str
    title: str


@dataclass(frozen=True)
class LiveView:
    """What the diagnosis engine says of a target now (sampled), for the report.

    error: why no diagnosis could be taken (unreachable, timed out), else None.
    """

    target: str
    checked_at: datetime
    severity: Severity = Severity.OK
    session_keys: int = 0
    sampled: int = 0
    without_ttl: int = 0
    without_ttl_ratio: float | None = None
    mean_session_bytes: float | None = None
    maxmemory: int = 0
    scenarios: tuple[ScenarioLine, ...] = ()
    capacity: CapacityPlan | None = None
    error: str | None = None

    @classmethod
    def failed(cls, target: str, at: datetime, error: str) -> LiveView:
        """No diagnosis, and why: a warning in the report (someone should look)."""
        return cls(target=target, checked_at=at, severity=Severity.WARNING, error=error)


@dataclass(frozen=True)
class MemoryFigures:
    """Memory over the window, bytes and share of maxmemory (None without a limit)."""

    now_bytes: int | None
    peak_bytes: int | None
    min_bytes: int | None
    maxmemory: int | None
    now_ratio: float | None
    peak_ratio: float | None
    min_ratio: float | None
    trend_bytes_per_hour: float | None  # least squares over the window; None: < 2 points


class Outlook(StrEnum):
    """What the forecast says, in words."""

    REACHES = "reaches"  # reaches 90% at ``ratio_90_at``
    ALREADY = "already"  # at or above 90% now
    BEYOND = "beyond"  # more than 30 days at this trend
    NOT_RISING = "not-rising"
    UNKNOWN = "unknown"  # no limit, or too few points


@dataclass(frozen=True)
class Forecast:
    """When memory reaches 90% of maxmemory at the window's trend."""

    outlook: Outlook
    ratio_90_at: datetime | None = None
    hours_left: float | None = None


@dataclass(frozen=True)
class AlertFigures:
    """Alerts in the window: fired per rule, time firing (overlap with the window), open."""

    fired: dict[str, int] = field(default_factory=dict)
    firing_seconds: float = 0.0
    open: tuple[AlertSpan, ...] = ()

    @property
    def total_fired(self) -> int:
        """Alerts fired in the window, every rule."""
        return sum(self.fired.values())


@dataclass(frozen=True)
class KeyFigures:
    """Keys (DBSIZE) now and their change over the window."""

    now: int | None
    change: int | None


@dataclass(frozen=True)
class TargetReport:
    """One target's part of the report."""

    target: str
    samples: int  # checks in the window (a 5-minute point counts its checks)
    resolution: Resolution
    memory: MemoryFigures
    forecast: Forecast
    evicted_keys: int
    keys: KeyFigures
    alerts: AlertFigures
    fixes: tuple[FixRecord, ...]
    live: LiveView | None
    severity: Severity  # the worst of: the live diagnosis, the open alerts, memory now
    series: Series  # what the chart draws

    @property
    def capacity_line(self) -> str | None:
        """ "maxmemory 512mb is 2.4x what the measured sessions need", or None."""
        from bot.reports.figures import capacity_line

        return capacity_line(self)


@dataclass(frozen=True)
class Report:
    """The report of one channel (or one target) for a window, worst target first.

    ``more``: targets beyond the ones kept in full are still in ``targets``; faces
    decide how many to show (Slack: the worst ten in full).
    """

    generated_at: datetime
    since: datetime
    until: datetime
    timezone: str
    targets: tuple[TargetReport, ...]
    audit_head: AuditHead | None
    channel: str | None = None
    # Each labelled target's labels (bot.config.Target.labels), shown in its lines.
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def window(self) -> timedelta:
        """until - since."""
        return self.until - self.since

    @property
    def zone(self) -> ZoneInfo:
        """The report's zone (checked by the settings); UTC for a name this system does not
        know (the label says UTC)."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    @property
    def has_samples(self) -> bool:
        """Any target has a point in the window (else there is no chart to draw)."""
        return any(t.series.points for t in self.targets)
