"""The report's storage: history read from the audit database, and the scheduled slots.

``SqlReportSource`` reads what the health checks and the audit trail stored: a target's
points (raw samples while the window is within their retention, else the 5-minute
aggregates and the raw samples after the newest one), the alerts that overlap the window,
the fixes that ended in it and the chain's head. Reads select only the columns a point
needs (a 7-day report of 100 targets is ~200k aggregate rows). ``SqlSlotLedger`` claims a
channel's slot by inserting its row: the key makes one process the winner.

Database errors become ``AuditUnavailable`` (one line, password hidden).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, String, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from bot.audit.failures import read_rows, write_transaction
from bot.audit.models import EVENTS, HEAD_ID, AuditEvent, ChainHead
from bot.clock import utc_now
from bot.diagnosis.model import Severity
from bot.health.ports import AGGREGATE_BUCKET
from bot.health.tables import REPORT_SLOTS, AggregateRow, AlertRow, ReportSlotRow, SampleRow
from bot.reports.model import AlertSpan, AuditHead, FixRecord, Point, Resolution, Series

# The audit rows that end a fix, and the outcome a report shows for each.
FIX_ENDS = {
    "remediation.executed": "ok",
    "remediation.failed": "error",
    "remediation.cancelled": "cancelled",
    "remediation.interrupted": "interrupted",
}
REQUESTED = "remediation.requested"
APPROVED = "remediation.approved"
_MAX_ERROR = 1000  # a slot's stored error (a Slack error line, clipped)

# Times are read as the driver gives them (SQLite: text, PostgreSQL: a datetime) and made
# aware UTC once per distinct value (a round's time, a bucket's start: shared by every
# target), instead of parsed and converted once per row by the column's own type.
_PLAIN_TIME = String()
_RAW_COLUMNS = (SampleRow.target, type_coerce(SampleRow.at, _PLAIN_TIME), SampleRow.reachable,
                SampleRow.used_memory, SampleRow.maxmemory, SampleRow.evicted_keys,
                SampleRow.dbsize)  # fmt: skip
_AGGREGATE_COLUMNS = (AggregateRow.target, type_coerce(AggregateRow.bucket_start, _PLAIN_TIME),
                      AggregateRow.samples,
                      AggregateRow.reachable, AggregateRow.used_last, AggregateRow.used_min,
                      AggregateRow.used_max, AggregateRow.maxmemory_last, AggregateRow.ratio_last,
                      AggregateRow.ratio_min, AggregateRow.ratio_max, AggregateRow.evicted_first,
                      AggregateRow.evicted_last, AggregateRow.evicted_increase,
                      AggregateRow.dbsize_last)  # fmt: skip


class SqlReportSource:
    """``ReportSource`` over the audit database (health samples, aggregates, alerts, trail)."""

    def __init__(
        self,
        engine: Engine,
        *,
        raw_retention: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``raw_retention``: how long raw samples are kept (REDIS_MEM_SAMPLE_RETENTION): a
        window starting earlier than that reads the aggregates."""
        self.engine = engine
        self._raw_retention = raw_retention
        self._clock = clock

    # Points -------------------------------------------------------------------------------

    def series(
        self, *, targets: Collection[str], since: datetime, until: datetime
    ) -> dict[str, Series]:
        """Each target's points in [since, until], oldest first; a target without any is
        absent. Raw samples while ``since`` is within the raw retention, else aggregates
        (and the raw samples after each target's newest aggregate)."""
        names = sorted(set(targets))
        if not names:
            return {}
        if since >= self._clock() - self._raw_retention:
            points = self._raw_points(names, since=since, until=until)
            return {name: Series(name, tuple(p)) for name, p in points.items()}
        return self._aggregated(names, since=since, until=until)

    def _aggregated(
        self, names: list[str], *, since: datetime, until: datetime
    ) -> dict[str, Series]:
        query = (
            select(*_AGGREGATE_COLUMNS)
            .where(AggregateRow.target.in_(names))
            .where(AggregateRow.bucket_start >= since, AggregateRow.bucket_start <= until)
            .order_by(AggregateRow.target, AggregateRow.bucket_start)
        )
        with collector_paused():
            rows = self._rows(query, doing="reading health aggregates")
            points = _by_target(rows, _aggregate_point)
        # Raw samples after a target's newest bucket: the part no rollup has reached yet.
        ends = {name: p[-1].at + AGGREGATE_BUCKET for name, p in points.items()}
        fresh = [name for name in names if name not in ends]
        tails = self._raw_points(fresh, since=since, until=until) if fresh else {}
        if ends:
            after = min(ends.values())
            for name, raw in self._raw_points(list(ends), since=after, until=until).items():
                tails[name] = [p for p in raw if p.at >= ends[name]]
        for name, raw in tails.items():
            if raw:
                points.setdefault(name, []).extend(raw)
        return {
            name: Series(name, tuple(p), resolution=Resolution.FIVE_MINUTES)
            for name, p in sorted(points.items())
        }

    def _raw_points(
        self, names: list[str], *, since: datetime, until: datetime
    ) -> dict[str, list[Point]]:
        query = (
            select(*_RAW_COLUMNS)
            .where(SampleRow.target.in_(names), SampleRow.at >= since, SampleRow.at <= until)
            .order_by(SampleRow.target, SampleRow.at, SampleRow.id)
        )
        with collector_paused():
            return _by_target(self._rows(query, doing="reading health samples"), _raw_point)

    # Alerts, fixes, the chain's head -----------------------------------------------------

    def alerts(self, *, since: datetime, until: datetime) -> list[AlertSpan]:
        """Alerts that fired before ``until`` and were still firing at ``since`` or later."""
        query = (
            select(AlertRow.id, AlertRow.target, AlertRow.rule, AlertRow.severity)
            .add_columns(AlertRow.fired_at, AlertRow.resolved_at)
            .where(AlertRow.fired_at < until)
            .where(or_(AlertRow.resolved_at.is_(None), AlertRow.resolved_at >= since))
            .order_by(AlertRow.fired_at, AlertRow.id)
        )
        return [
            AlertSpan(
                id=row.id,
                target=row.target,
                rule=row.rule,
                severity=Severity(row.severity),
                fired_at=row.fired_at,
                resolved_at=row.resolved_at,
            )
            for row in self._rows(query, doing="reading alerts")
        ]

    def fixes(self, *, since: datetime, until: datetime) -> list[FixRecord]:
        """Fixes whose end (executed, failed, cancelled, interrupted) is in [since, until].

        The requester is the actor of the request's ``remediation.requested`` row; the
        approver the actor of its ``remediation.approved`` row, else of the ending row (an
        end with no approval in the trail). Both read in one more query for every request.
        """
        columns = (EVENTS.c.at, EVENTS.c.target, EVENTS.c.action, EVENTS.c.parameters,
                   EVENTS.c.summary, EVENTS.c.actor, EVENTS.c.request_id)  # fmt: skip
        query = (
            select(*columns)
            .where(AuditEvent.action.in_(tuple(FIX_ENDS)))
            .where(AuditEvent.at >= since, AuditEvent.at <= until)
            .order_by(AuditEvent.seq)
        )
        ends = self._rows(query, doing="reading fixes from the audit trail")
        ids = sorted({row.request_id for row in ends if row.request_id is not None})
        who = self._request_actors(ids)
        return [
            FixRecord(
                at=row.at,
                target=row.target or "",
                action=str((row.parameters or {}).get("action_id") or row.action),
                outcome=FIX_ENDS[row.action],
                summary=row.summary,
                approver=who.get((row.request_id, APPROVED), row.actor),
                request_id=row.request_id,
                requester=who.get((row.request_id, REQUESTED)),
            )
            for row in ends
        ]

    def _request_actors(self, ids: list[str]) -> dict[tuple[str, str], str]:
        """(request id, requested|approved) -> actor, the first such row of each request."""
        if not ids:
            return {}
        query = (
            select(EVENTS.c.request_id, EVENTS.c.action, EVENTS.c.actor)
            .where(AuditEvent.action.in_((REQUESTED, APPROVED)))
            .where(AuditEvent.request_id.in_(ids))
            .order_by(AuditEvent.seq.desc())  # the first row of a request wins below
        )
        rows = self._rows(query, doing="reading fix requests from the audit trail")
        return {(row.request_id, row.action): row.actor for row in rows}

    def audit_head(self) -> AuditHead | None:
        """The audit chain's newest row (seq and hash); None for an empty trail."""
        query = select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == HEAD_ID)
        rows = self._rows(query, doing="reading the audit chain's head")
        if not rows or not rows[0].seq:
            return None
        return AuditHead(seq=int(rows[0].seq), hash=str(rows[0].hash))

    def _rows(self, query: Any, *, doing: str) -> list[Row[Any]]:
        return read_rows(self.engine, query, doing=doing)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a window's rows become points.

    A 7-day report of a hundred targets builds ~400k tuples (rows, then points): the
    collector would run a generation-0 pass every 700 of them and older generations over
    the growing lists, a third of the read's time, and none of these objects can be in a
    cycle. The pause is process-wide (other threads allocate without collections for that
    second) and ends with the read, restoring the collector as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _utc(value: datetime | str) -> datetime:
    """A stored time (SQLite: naive UTC text; PostgreSQL: an aware datetime) as aware UTC."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _by_target(
    rows: Sequence[Sequence[Any]], point: Callable[[datetime, Sequence[Any]], Point]
) -> dict[str, list[Point]]:
    """Rows (target, time, ...) ordered by target -> each target's points, in row order.

    Each distinct time is converted once (a round's time, a bucket's start: shared by every
    target); the loop is inlined because it runs once per row (~200k for a 7-day report).
    """
    points: dict[str, list[Point]] = {}
    times: dict[datetime | str, datetime] = {}
    current: list[Point] = []
    name = None
    for row in rows:
        if row[0] != name:
            name, current = row[0], []
            points[name] = current
        at = times.get(row[1])
        if at is None:
            at = times[row[1]] = _utc(row[1])
        current.append(point(at, row))
    return points


def _raw_point(at: datetime, row: Sequence[Any]) -> Point:
    """A raw sample (``_RAW_COLUMNS``) as a point of one check, at ``at``."""
    _, _, reachable, used, maxmemory, evicted, dbsize = row
    ratio = used / maxmemory if used is not None and maxmemory else None
    return Point(at, 1, 1 if reachable else 0, used, used, used, maxmemory, ratio, ratio, ratio,
                 evicted, evicted, 0, dbsize)  # fmt: skip


def _aggregate_point(at: datetime, row: Sequence[Any]) -> Point:
    """An aggregate (``_AGGREGATE_COLUMNS``, in ``Point``'s field order after the target).

    Built straight from the row's slice (no keyword matching): a 7-day report builds
    ~200k of these.
    """
    return tuple.__new__(Point, (at, *row[2:15]))


class SqlSlotLedger:
    """``SlotLedger`` over the ``report_slots`` table: inserting the row is the claim."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        """``clock``: when ``posted`` happened."""
        self.engine = engine
        self._clock = clock

    def claim(self, *, channel: str, slot: datetime, at: datetime) -> bool:
        """Insert (channel, slot); False when the row exists (this or another process won).

        ON CONFLICT DO NOTHING: a loser (PostgreSQL: one waiting on the winner's
        uncommitted row) inserts nothing and raises nothing.
        """
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = (
            dialect.insert(REPORT_SLOTS)
            .values(channel=channel, slot=slot, claimed_at=at)
            .on_conflict_do_nothing()
            .returning(REPORT_SLOTS.c.channel)  # psycopg's rowcount says -1 here
        )
        with self._write(doing="claiming a report slot") as conn:
            return conn.execute(stmt).first() is not None

    def posted(self, *, channel: str, slot: datetime, ts: str | None, error: str | None) -> None:
        """Store how the claimed slot's report went: its message ts, or the error."""
        stmt = (
            update(REPORT_SLOTS)
            .where(ReportSlotRow.channel == channel, ReportSlotRow.slot == slot)
            .values(
                posted_at=self._clock(),
                message_ts=ts,
                error=None if error is None else error[:_MAX_ERROR],
            )
        )
        with self._write(doing="storing a report slot") as conn:
            conn.execute(stmt)

    def _write(self, *, doing: str) -> AbstractContextManager[Connection]:
        return write_transaction(self.engine, doing=doing)
