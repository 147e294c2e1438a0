"""SqlHealthStore: samples, rule states, alerts and the event outbox in the audit database.

Writes of one evaluation are one transaction. The round owns an alert's state
columns; acknowledge/snooze (clicks) own theirs and are conditional UPDATEs, so a
click and a round never overwrite each other's columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from bot.audit.failures import read_rows, write_transaction
from bot.diagnosis.model import Severity
from bot.health.alerts import AlertChange
from bot.health.model import (
    Alert,
    AlertDiagnosis,
    AlertEvent,
    AlertStatus,
    EventKind,
    RuleState,
    RuleStatus,
    Sample,
    ScenarioDigest,
)
from bot.health.ports import AGGREGATE_BUCKET, Evaluation, Snooze, StoredEvent, bucket_floor
from bot.health.rollup import aggregates
from bot.health.tables import (
    AGGREGATES,
    ALERTS,
    EVENTS,
    RULE_STATES,
    SAMPLES,
    AggregateRow,
    AlertEventRow,
    AlertRow,
    RuleStateRow,
    SampleRow,
)

# Columns of an alert that evaluations write; the rest belong to clicks and delivery.
ROUND_COLUMNS = ("rule", "severity", "status", "value", "detail", "resolved_at",
                 "last_notified_at", "diagnosis", "open_key")  # fmt: skip
_SAMPLE_FIELDS = tuple(c.name for c in SAMPLES.columns if c.name != "id")


class SqlHealthStore:
    """``HealthStore`` over SQLAlchemy; database errors become ``AuditUnavailable``."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated to head: the ``health_*`` tables)."""
        self.engine = engine

    # Reading ------------------------------------------------------------------------------

    def recent_samples(self, *, since: datetime) -> dict[str, list[Sample]]:
        """Samples at or after ``since`` by target, oldest first."""
        query = select(SAMPLES).where(SampleRow.at >= since).order_by(SampleRow.at, SampleRow.id)
        by_target: dict[str, list[Sample]] = {}
        for row in self._rows(query, doing="reading health samples"):
            sample = Sample(**{name: row._mapping[name] for name in _SAMPLE_FIELDS})
            by_target.setdefault(sample.target, []).append(sample)
        return by_target

    def rule_states(self) -> dict[str, dict[str, RuleState]]:
        """Pending and firing rules: target -> rule -> state."""
        states: dict[str, dict[str, RuleState]] = {}
        for row in self._rows(select(RULE_STATES), doing="reading alert rule states"):
            data = dict(row._mapping)
            state = RuleState(**{**data, "status": RuleStatus(data["status"])})
            states.setdefault(state.target, {})[state.rule] = state
        return states

    def open_alerts(self, target: str | None = None) -> list[Alert]:
        """Firing alerts, oldest first."""
        query = select(ALERTS).where(AlertRow.status == AlertStatus.FIRING.value)
        if target is not None:
            query = query.where(AlertRow.target == target)
        query = query.order_by(AlertRow.fired_at, AlertRow.id)
        return [_alert(row) for row in self._rows(query, doing="reading open alerts")]

    def get_alert(self, alert_id: str) -> Alert | None:
        """The alert with that id, or None."""
        rows = self._rows(select(ALERTS).where(AlertRow.id == alert_id), doing="reading an alert")
        return _alert(rows[0]) if rows else None

    # One evaluation -----------------------------------------------------------------------

    def record(self, evaluation: Evaluation) -> None:
        """Store sample, states, alert changes and events in one transaction."""
        with self._write(doing="recording a health check") as conn:
            conn.execute(insert(SAMPLES), [_sample_values(evaluation.sample)])
            for rule, state in evaluation.states.items():
                _put_state(conn, evaluation.target, rule, state)
            for change in evaluation.changes:
                _put_alert(conn, change)
            _insert_events(conn, evaluation.events, audited=False)

    # Clicks -------------------------------------------------------------------------------

    def acknowledge(self, alert_id: str, *, by: str, at: datetime) -> bool:
        """Acknowledge a firing alert nobody acknowledged yet; True if this call did it."""
        stmt = (
            update(ALERTS)
            .where(
                AlertRow.id == alert_id,
                AlertRow.status == AlertStatus.FIRING.value,
                AlertRow.acknowledged_by.is_(None),
            )
            .values(acknowledged_by=by, acknowledged_at=at)
        )
        with self._write(doing="acknowledging an alert") as conn:
            return int(conn.execute(stmt).rowcount) == 1

    def snooze(self, alert_id: str, *, snooze: Snooze) -> bool:
        """Snooze a firing alert (a later snooze replaces an earlier one)."""
        stmt = (
            update(ALERTS)
            .where(AlertRow.id == alert_id, AlertRow.status == AlertStatus.FIRING.value)
            .values(snoozed_by=snooze.by, snoozed_until=snooze.until)
        )
        with self._write(doing="snoozing an alert") as conn:
            return int(conn.execute(stmt).rowcount) == 1

    # The outbox ---------------------------------------------------------------------------

    def add_events(self, events: Sequence[AlertEvent], *, audited: bool) -> None:
        """Append events to the outbox."""
        with self._write(doing="queueing alert notifications") as conn:
            _insert_events(conn, events, audited=audited)

    def due_events(self, now: datetime, *, limit: int = 200) -> list[StoredEvent]:
        """Undelivered events due at ``now``, oldest first."""
        due = (AlertEventRow.next_attempt_at.is_(None)) | (AlertEventRow.next_attempt_at <= now)
        query = (
            select(EVENTS)
            .where(AlertEventRow.delivered_at.is_(None), due)
            .order_by(AlertEventRow.id)
            .limit(limit)
        )
        return [_stored_event(row) for row in self._rows(query, doing="reading the outbox")]

    def mark_audited(self, event_id: int) -> None:
        """The event's audit row exists."""
        self._update_event(event_id, audited=True)

    def mark_delivered(self, event_id: int, *, at: datetime, error: str | None = None) -> None:
        """No more delivery for this event."""
        self._update_event(event_id, delivered_at=at, error=error)

    def mark_failed(self, event_id: int, *, error: str, retry_at: datetime) -> None:
        """Delivery failed; due again at ``retry_at``."""
        stmt = (
            update(EVENTS)
            .where(AlertEventRow.id == event_id)
            .values(attempts=AlertEventRow.attempts + 1, error=error, next_attempt_at=retry_at)
        )
        with self._write(doing="updating the outbox") as conn:
            conn.execute(stmt)

    def set_message(self, alert_id: str, *, channel: str, ts: str) -> None:
        """Where the alert's message lives."""
        stmt = update(ALERTS).where(AlertRow.id == alert_id).values(channel=channel, message_ts=ts)
        with self._write(doing="storing an alert's message") as conn:
            conn.execute(stmt)

    # Retention -----------------------------------------------------------------------------

    def rollup(self, *, until: datetime) -> int:
        """Aggregate each target's complete 5-minute buckets after its newest aggregate.

        One transaction per target: a first rollup over weeks of samples never holds the
        SQLite write lock for long. A bucket another run wrote meanwhile is left alone by
        the key, so two runs never double a row. How many aggregates this run wrote.
        """
        end = bucket_floor(until)  # buckets starting before it are complete at ``until``
        written = 0
        for target in self._rollup_targets(end):
            with self._write(doing="rolling up health samples") as conn:
                written += _rollup_target(conn, target, end)
        return written

    def _rollup_targets(self, end: datetime) -> list[str]:
        """The targets that can have a complete bucket left to roll up, by name.

        Only those with a sample since the newest aggregate of all: older buckets were
        rolled up by the run that wrote that aggregate (each target then starts after its
        own newest one, ``_rollup_target``).
        """
        doing = "rolling up health samples"
        newest = self._rows(select(func.max(AggregateRow.bucket_start)), doing=doing)[0][0]
        query = select(SampleRow.target).distinct().where(SampleRow.at < end)
        if newest is not None:
            query = query.where(SampleRow.at >= newest)
        return [row[0] for row in self._rows(query.order_by(SampleRow.target), doing=doing)]

    def prune(self, *, before: datetime, aggregates_before: datetime | None = None) -> int:
        """Delete samples and delivered events older than ``before``, and aggregates whose
        bucket starts before ``aggregates_before`` (None: keep every aggregate)."""
        with self._write(doing="pruning old health samples") as conn:
            samples = conn.execute(delete(SAMPLES).where(SampleRow.at < before)).rowcount
            events = conn.execute(
                delete(EVENTS).where(
                    AlertEventRow.delivered_at.is_not(None), AlertEventRow.at < before
                )
            ).rowcount
            aggregates = 0
            if aggregates_before is not None:
                old = AggregateRow.bucket_start < aggregates_before
                aggregates = conn.execute(delete(AGGREGATES).where(old)).rowcount
        return int(samples) + int(events) + int(aggregates)

    # Plumbing -----------------------------------------------------------------------------

    def _update_event(self, event_id: int, **values: Any) -> None:
        with self._write(doing="updating the outbox") as conn:
            conn.execute(update(EVENTS).where(AlertEventRow.id == event_id).values(**values))

    def _rows(self, query: Any, *, doing: str) -> list[Row[Any]]:
        return read_rows(self.engine, query, doing=doing)

    def _write(self, *, doing: str) -> AbstractContextManager[Connection]:
        return write_transaction(self.engine, doing=doing)


def _sample_values(sample: Sample) -> dict[str, Any]:
    return {name: getattr(sample, name) for name in _SAMPLE_FIELDS}


# The rollup ----------------------------------------------------------------------------------

# In the order bot.health.rollup.Bucket.add reads them.
_ROLLUP_COLUMNS = (SampleRow.at, SampleRow.reachable, SampleRow.used_memory,
                   SampleRow.maxmemory, SampleRow.evicted_keys, SampleRow.dbsize)  # fmt: skip


def _rollup_target(conn: Connection, target: str, end: datetime) -> int:
    """Aggregate ``target``'s samples from after its newest aggregate up to ``end``."""
    own = conn.execute(
        select(func.max(AggregateRow.bucket_start)).where(AggregateRow.target == target)
    ).scalar()
    query = select(*_ROLLUP_COLUMNS).where(SampleRow.target == target, SampleRow.at < end)
    if own is not None:
        query = query.where(SampleRow.at >= own + AGGREGATE_BUCKET)
    rows = aggregates(target, conn.execute(query.order_by(SampleRow.at, SampleRow.id)))
    return _insert_new(conn, AGGREGATES, rows)


def _insert_new(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose key is not taken yet; how many were inserted.

    Counted from RETURNING: an executemany's rowcount is -1 on psycopg.
    """
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    key = table.primary_key.columns.values()[0]
    stmt = dialect.insert(table).on_conflict_do_nothing().returning(key)
    return len(conn.execute(stmt, rows).all())


def _put_state(conn: Connection, target: str, rule: str, state: RuleState | None) -> None:
    key = (RuleStateRow.target == target, RuleStateRow.rule == rule)
    conn.execute(delete(RULE_STATES).where(*key))
    if state is not None:
        values = asdict(state)
        values["status"] = state.status.value
        conn.execute(insert(RULE_STATES).values(**values))


def _put_alert(conn: Connection, change: AlertChange) -> None:
    values = _alert_values(change.alert)
    if change.new:
        conn.execute(insert(ALERTS).values(**values))
        return
    owned = {name: values[name] for name in ROUND_COLUMNS}
    if change.clear_ack:
        owned.update(acknowledged_by=None, acknowledged_at=None)
    if change.clear_snooze:
        owned.update(snoozed_by=None, snoozed_until=None)
    conn.execute(update(ALERTS).where(AlertRow.id == change.alert.id).values(**owned))


def _alert_values(alert: Alert) -> dict[str, Any]:
    values = {name: getattr(alert, name) for name in _ALERT_FIELDS}
    values.update(
        rule_group=alert.group,
        severity=alert.severity.value,
        status=alert.status.value,
        diagnosis=_diagnosis_json(alert.diagnosis),
        open_key=f"{alert.target}/{alert.group}" if alert.firing else None,
    )
    return values


_ALERT_FIELDS = ("id", "target", "rule", "value", "detail", "active_at", "fired_at",
                 "last_notified_at", "resolved_at", "channel", "message_ts", "acknowledged_by",
                 "acknowledged_at", "snoozed_by", "snoozed_until")  # fmt: skip


def _alert(row: Row[Any]) -> Alert:
    data = row._mapping
    return Alert(
        **{name: data[name] for name in _ALERT_FIELDS},
        group=data["rule_group"],
        severity=Severity(data["severity"]),
        status=AlertStatus(data["status"]),
        diagnosis=_diagnosis(data["diagnosis"]),
    )


def _diagnosis_json(diagnosis: AlertDiagnosis | None) -> dict[str, Any] | None:
    if diagnosis is None:
        return None
    data = asdict(diagnosis)
    data["checked_at"] = diagnosis.checked_at.isoformat()
    return data


def _diagnosis(data: dict[str, Any] | None) -> AlertDiagnosis | None:
    if not data:
        return None
    scenarios = tuple(
        ScenarioDigest(
            id=s["id"], title=s["title"], evidence=tuple(s["evidence"]), actions=tuple(s["actions"])
        )
        for s in data.get("scenarios", ())
    )
    return AlertDiagnosis(
        checked_at=datetime.fromisoformat(data["checked_at"]),
        severity=data["severity"],
        scenarios=scenarios,
        recommended_actions=tuple(data.get("recommended_actions", ())),
        error=data.get("error"),
    )


def _insert_events(conn: Connection, events: Sequence[AlertEvent], *, audited: bool) -> None:
    rows = [
        {
            **{name: getattr(event, name) for name in _EVENT_FIELDS},
            "kind": event.kind.value,
            "severity": event.severity.value,
            "audited": audited or not event.kind.audited,
            "attempts": 0,
        }
        for event in events
    ]
    if rows:
        conn.execute(insert(EVENTS), rows)


_EVENT_FIELDS = ("alert_id", "target", "rule", "at", "value", "detail", "actor")


def _stored_event(row: Row[Any]) -> StoredEvent:
    data = row._mapping
    event = AlertEvent(
        **{name: data[name] for name in _EVENT_FIELDS},
        kind=EventKind(data["kind"]),
        severity=Severity(data["severity"]),
    )
    return StoredEvent(
        id=data["id"], event=event, audited=bool(data["audited"]), attempts=data["attempts"]
    )
