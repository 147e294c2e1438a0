"""The health use cases: a check round over every target, acknowledge, snooze, the overview.

Ordering rules (docs/decisions/health-checks.md):
- each target is checked in its own worker, concurrently and bounded; a target's
  sample, rule states, alert changes and events are stored in one transaction as soon
  as it is read, so a hung target costs only its own timeout;
- the in-memory ``for`` timers advance only once that transaction committed: with the
  database down nothing is lost, the next round sees the same transitions again;
- the events go to the outbox; ``Dispatcher`` audits and delivers them afterwards,
  so a slow or failing Slack never delays a check;
- acknowledge/snooze are conditional UPDATEs, then audited (a refusal is audited too).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bot.audit.entry import AuditEntry, AuditSink
from bot.clock import utc_now
from bot.config import Target
from bot.errors import AuditUnavailable, RedisMemError, Refused
from bot.health.alerts import AlertPlan, alert_event, plan_alerts
from bot.health.engine import Outcome, evaluate
from bot.health.model import Alert, AlertEvent, EventKind, RuleState, RuleStatus, Sample
from bot.health.ports import (
    CheckObserver,
    CheckOutcome,
    Diagnoser,
    Evaluation,
    HealthStore,
    SampleSource,
    Snooze,
    bucket_floor,
)
from bot.health.promql import LOOKBACK_MS
from bot.health.rules import EVICTION_RANGE_MS, FORECAST_RANGE_MS, RULES, RuleBook

log = logging.getLogger(__name__)

# The oldest sample any rule reads: the forecast's hour plus the instant lookback.
HISTORY = timedelta(milliseconds=max(FORECAST_RANGE_MS, EVICTION_RANGE_MS) + LOOKBACK_MS)
GRACE_SECONDS = 1.0  # a round waits this much beyond the per-target timeout
MAX_PARALLEL = 32
ALERT_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: all a button carries
# Groups whose alerts carry no diagnosis (an unreachable store cannot be diagnosed).
NO_DIAGNOSIS_GROUPS = frozenset(rule.group for rule in RULES if not rule.diagnosable)


@dataclass(frozen=True)
class TargetCheck:
    """One target in one round: its sample, every rule's outcome, the events it caused.

    error: why the result was not stored (audit database down...), else None.
    """

    target: str
    sample: Sample
    outcomes: tuple[Outcome, ...]
    events: tuple[AlertEvent, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class RoundResult:
    """A check round: when, the targets' checks, the targets still running at its deadline."""

    at: datetime
    checks: tuple[TargetCheck, ...]
    late: tuple[str, ...] = ()
    skipped: bool = False


@dataclass(frozen=True)
class AlertsOverview:
    """What ``/redis-mem alerts`` shows: rules pending and alerts firing, every target."""

    pending: tuple[RuleState, ...]
    firing: tuple[Alert, ...]


class HealthService:
    """Checks every target on each round and keeps the alerts' life cycle."""

    def __init__(
        self,
        *,
        targets: Mapping[str, Target],
        source: SampleSource,
        store: HealthStore,
        rules: RuleBook,
        audit: AuditSink,
        interval: float,
        timeout: float,
        repeat_interval: timedelta,
        retention: timedelta = timedelta(hours=48),
        aggregate_retention: timedelta = timedelta(days=30),
        default_channel: str | None = None,
        diagnoser: Diagnoser | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_events: Callable[[], None] = lambda: None,
        max_parallel: int = MAX_PARALLEL,
        observer: CheckObserver | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """``interval``: seconds between rounds (round times are aligned to it);
        ``timeout``: a target's check budget; ``on_events``: called when events are queued;
        ``retention``: raw samples, ``aggregate_retention``: their 5-minute aggregates;
        ``observer``: told each check's outcome and duration, as measured by ``timer``
        (seconds, monotonic)."""
        if aggregate_retention < retention:
            raise ValueError("the aggregate retention must be at least the raw retention")
        self.targets = dict(targets)
        self.rules = rules
        self._source = source
        self._store = store
        self._audit = audit
        self._interval = interval
        self._timeout = timeout
        self._repeat = repeat_interval
        self._retention = retention
        self._aggregate_retention = aggregate_retention
        self._default_channel = default_channel
        self._diagnoser = diagnoser
        self._clock = clock
        self._on_events = on_events
        self._observer = observer
        self._timer = timer
        workers = max(1, min(max_parallel, len(self.targets)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redis-mem-check")
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._history: dict[str, deque[Sample]] = {}
        self._states: dict[str, dict[str, RuleState]] = {}
        self._loaded = False
        self._last_round: datetime | None = None
        self._closing = False

    @property
    def interval(self) -> float:
        """Seconds between rounds."""
        return self._interval

    # The round ----------------------------------------------------------------------------

    def round_time(self) -> datetime:
        """Now, floored to the interval grid: evaluations line up like Prometheus's."""
        seconds = self._clock().timestamp()
        return datetime.fromtimestamp(seconds - seconds % self._interval, tz=UTC)

    def run_round(self, now: datetime | None = None) -> RoundResult:
        """Check every target once at ``now`` (default: the current grid time)."""
        now = now or self.round_time()
        if self._last_round is not None and now <= self._last_round:
            return RoundResult(at=now, checks=(), skipped=True)  # a coalesced duplicate
        self._last_round = now
        self._load()
        opened = self._open_by_target()
        futures: dict[str, Future[TargetCheck]] = {}
        late = []
        for name, target in self.targets.items():
            with self._lock:
                if name in self._in_flight:  # its previous check is still stuck in a timeout
                    late.append(name)
                    continue
                self._in_flight.add(name)
            alerts = opened.get(name, []) if opened is not None else None
            futures[name] = self._pool.submit(self.check_target, target, now, alerts)
        done, _ = wait(futures.values(), timeout=self._timeout + GRACE_SECONDS)
        checks = tuple(f.result() for f in futures.values() if f in done)
        late += [name for name, f in futures.items() if f not in done]
        if late:
            log.warning("check round %s: still running at the deadline: %s", now, ", ".join(late))
        return RoundResult(at=now, checks=checks, late=tuple(late))

    def _open_by_target(self) -> dict[str, list[Alert]] | None:
        """Every open alert, read once per round (None: each target reads its own)."""
        try:
            alerts = self._store.open_alerts()
        except AuditUnavailable:
            return None
        by_target: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_target.setdefault(alert.target, []).append(alert)
        return by_target

    def check_target(
        self, target: Target, now: datetime, opened: list[Alert] | None = None
    ) -> TargetCheck:
        """Check one target at ``now`` in this thread (a round runs these concurrently).

        ``opened``: the target's open alerts if the caller read them (else read here).
        Never raises: an unexpected error is logged and reported in ``error``.
        """
        started = self._timer()
        try:
            check = self._check(target, now, opened)
        except Exception:  # one broken target must not break the round
            if not self._closing:  # close() pulled the connection from under it: expected
                log.exception("health check of %s failed", target.name)
            sample = Sample(target.name, now, reachable=False, error="internal error")
            check = TargetCheck(target.name, sample, (), error="internal error (see the log)")
        finally:
            with self._lock:
                self._in_flight.discard(target.name)
        if self._observer is not None:
            self._observer.checked(target.name, self._timer() - started, check_outcome(check))
        return check

    def _check(self, target: Target, now: datetime, opened: list[Alert] | None) -> TargetCheck:
        sample = self.read_sample(target, now)
        samples = self._remember(sample)
        old = self._states.get(target.name, {})
        outcomes = evaluate(
            target=target.name, samples=samples, states=old, rules=self.rules, now=now
        )
        try:
            alerts = opened if opened is not None else self._store.open_alerts(target.name)
            by_group = {a.group: a for a in alerts}
            plan = self._diagnosed(target, self._plan(target, outcomes, by_group, now))
            states = _state_writes(old, outcomes)
            self._store.record(Evaluation(target.name, sample, states, plan.changes, plan.events))
        except AuditUnavailable as err:
            log.warning("health check of %s not stored: %s", target.name, err.message)
            return TargetCheck(target.name, sample, tuple(outcomes), error=err.message)
        self._states[target.name] = {o.rule.id: o.state for o in outcomes if o.state}
        if plan.events:
            self._on_events()
        return TargetCheck(target.name, sample, tuple(outcomes), plan.events)

    def read_sample(self, target: Target, now: datetime) -> Sample:
        """The target's sample at ``now``; an unreachable target is a sample too."""
        try:
            return self._source.read(target, at=now)
        except RedisMemError as err:
            return Sample(target.name, now, reachable=False, error=err.message)

    def _plan(
        self, target: Target, outcomes: list[Outcome], opened: dict[str, Alert], now: datetime
    ) -> AlertPlan:
        return plan_alerts(
            target=target.name,
            outcomes=outcomes,
            open_alerts=opened,
            now=now,
            repeat_interval=self._repeat,
            channel=target.channel or self._default_channel,
            new_id=lambda: uuid.uuid4().hex,
        )

    def _diagnosed(self, target: Target, plan: AlertPlan) -> AlertPlan:
        """Attach a fresh diagnosis to alerts that fired or escalated (before they are posted)."""
        news = {e.alert_id for e in plan.events if e.kind in (EventKind.FIRED, EventKind.ESCALATED)}
        wanted = [
            c
            for c in plan.changes
            if c.alert.id in news and c.alert.group not in NO_DIAGNOSIS_GROUPS
        ]
        if self._diagnoser is None or not wanted:
            return plan
        diagnosis = self._diagnoser(target.name)
        changes = tuple(
            replace(c, alert=replace(c.alert, diagnosis=diagnosis)) if c in wanted else c
            for c in plan.changes
        )
        return replace(plan, changes=changes)

    def _remember(self, sample: Sample) -> list[Sample]:
        """Append to the target's in-memory history (trimmed to what rules read)."""
        history = self._history.setdefault(sample.target, deque())
        history.append(sample)
        while history and history[0].at < sample.at - HISTORY:
            history.popleft()
        return list(history)

    def _load(self) -> None:
        """Seed history and ``for`` timers from the database once (a restart resumes them)."""
        if self._loaded:
            return
        try:
            since = self._clock() - HISTORY
            samples = self._store.recent_samples(since=since)
            states = self._store.rule_states()
        except AuditUnavailable as err:
            log.warning("health state not loaded (retried next round): %s", err.message)
            return
        self._history = {t: deque(s) for t, s in samples.items() if t in self.targets}
        self._states = {t: s for t, s in states.items() if t in self.targets}
        self._loaded = True

    # One look, nothing stored (``redis-mem check``) -------------------------------------

    def check_now(self) -> tuple[list[TargetCheck], str | None]:
        """Evaluate every target now against the stored history, storing nothing.

        Returns the checks and a warning when the stored history could not be read.
        """
        now = self._clock()
        warning = None
        try:
            history = self._store.recent_samples(since=now - HISTORY)
            states = self._store.rule_states()
        except AuditUnavailable as err:
            history, states, warning = {}, {}, f"no stored samples used: {err.message}"

        def one(target: Target) -> TargetCheck:
            sample = self.read_sample(target, now)
            samples = [*history.get(target.name, []), sample]
            outcomes = evaluate(
                target=target.name,
                samples=samples,
                states=states.get(target.name, {}),
                rules=self.rules,
                now=now,
            )
            return TargetCheck(target.name, sample, tuple(outcomes))

        return list(self._pool.map(one, self.targets.values())), warning

    # Clicks -------------------------------------------------------------------------------

    def acknowledge(
        self, alert_id: str, *, actor: str, actor_name: str | None = None, on: str | None = None
    ) -> Alert:
        """Stop the reminders of a firing alert; Refused (audited) when it cannot be."""
        alert = self._clicked(alert_id, actor=actor, action="acknowledge", on=on)
        if alert.acknowledged_by is not None:
            raise self._refuse(alert_id, actor, "acknowledge", "it is already acknowledged")
        now = self._clock()
        if not self._store.acknowledge(alert.id, by=actor, at=now):
            raise self._refuse(alert_id, actor, "acknowledge", "it is acknowledged or resolved")
        updated = replace(alert, acknowledged_by=actor, acknowledged_at=now)
        self._record_click(updated, EventKind.ACKNOWLEDGED, actor, actor_name, now, "acknowledged")
        return updated

    def snooze(
        self,
        alert_id: str,
        *,
        actor: str,
        hours: float,
        actor_name: str | None = None,
        on: str | None = None,
    ) -> Alert:
        """Silence a firing alert's reminders for ``hours``; it notifies again after."""
        if not 0 < hours <= 7 * 24:
            raise Refused("a snooze lasts between a moment and 7 days")
        alert = self._clicked(alert_id, actor=actor, action="snooze", on=on)
        now = self._clock()
        until = now + timedelta(hours=hours)
        if not self._store.snooze(alert.id, snooze=Snooze(by=actor, until=until)):
            raise self._refuse(alert_id, actor, "snooze", "it is resolved")
        updated = replace(alert, snoozed_by=actor, snoozed_until=until)
        detail = f"snoozed until {until:%Y-%m-%d %H:%M} UTC"
        self._record_click(updated, EventKind.SNOOZED, actor, actor_name, now, detail)
        return updated

    def _clicked(self, alert_id: str, *, actor: str, action: str, on: str | None) -> Alert:
        """The firing alert a button names; Refused for a forged, unknown or stale id."""
        if not ALERT_ID.fullmatch(alert_id):
            raise self._refuse(alert_id, actor, action, "that is not an alert id")
        alert = self._store.get_alert(alert_id)
        if alert is None:
            raise self._refuse(alert_id, actor, action, "no such alert")
        if on is not None and alert.message_ts is not None and on != alert.message_ts:
            raise self._refuse(
                alert_id, actor, action, "that button is not on this alert's message"
            )
        if not alert.firing:
            raise self._refuse(alert_id, actor, action, "it is resolved already")
        return alert

    def _refuse(self, alert_id: str, actor: str, action: str, reason: str) -> Refused:
        """Audit a refused click; the Refused to raise (its message is for the clicker)."""
        entry = AuditEntry(
            actor=actor,
            source="slack",
            action="access.denied",
            outcome="denied",
            summary=f"alert {action} refused: {reason}",
            parameters={"alert_id": alert_id[:64], "action": f"alert.{action}"},
        )
        try:
            self._audit.record(entry)
        except AuditUnavailable as err:
            log.warning("refusal not audited: %s", err.message)
        return Refused(f"cannot {action} this alert: {reason}")

    def _record_click(
        self,
        alert: Alert,
        kind: EventKind,
        actor: str,
        actor_name: str | None,
        now: datetime,
        detail: str,
    ) -> None:
        """Queue the message refresh, then audit the click (an audit failure is raised: the
        click has taken effect, and the clicker is told the trail is unavailable)."""
        event = alert_event(kind, alert, now, detail=detail, actor=actor)
        self._store.add_events([event], audited=True)
        self._on_events()
        self._audit.record(
            AuditEntry(
                actor=actor,
                actor_name=actor_name,
                source="slack",
                action=f"alert.{kind.value}",
                outcome="ok",
                summary=f"{alert.target} {alert.rule}: {detail}",
                target=alert.target,
                parameters={"alert_id": alert.id, "rule": alert.rule, "value": alert.value},
                channel=alert.channel,
                message_ts=alert.message_ts,
            )
        )

    # Reading ------------------------------------------------------------------------------

    def overview(self) -> AlertsOverview:
        """Pending rules and firing alerts of every target (from the database: any replica)."""
        states = self._store.rule_states()
        pending = tuple(
            state
            for by_rule in states.values()
            for state in by_rule.values()
            if state.status is RuleStatus.PENDING
        )
        return AlertsOverview(pending=pending, firing=tuple(self._store.open_alerts()))

    def rollup(self) -> int:
        """Aggregate the complete 5-minute buckets of samples; how many aggregates were written."""
        return self._store.rollup(until=self._clock())

    def prune(self) -> int:
        """Roll up, then drop samples (and delivered events) past the raw retention and
        aggregates past theirs; how many rows went."""
        now = self._clock()
        self._store.rollup(until=now)  # a raw sample goes only once its bucket is aggregated
        # A retention shorter than a bucket must not eat the samples of the open bucket.
        before = min(now - self._retention, bucket_floor(now))
        return self._store.prune(before=before, aggregates_before=now - self._aggregate_retention)

    def close(self) -> None:
        """Stop the workers (a stuck one ends with its socket timeout) and the connections."""
        self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._source.close()


def check_outcome(check: TargetCheck) -> CheckOutcome:
    """ERROR when the check was not stored, else whether Redis could be read."""
    if check.error is not None:
        return CheckOutcome.ERROR
    return CheckOutcome.OK if check.sample.reachable else CheckOutcome.UNREACHABLE


def _state_writes(
    old: Mapping[str, RuleState], outcomes: Iterable[Outcome]
) -> dict[str, RuleState | None]:
    """The rule states to write: changed ones; None deletes (inactive, or disabled since)."""
    new = {o.rule.id: o.state for o in outcomes}
    return {rule: new.get(rule) for rule in {*new, *old} if new.get(rule) != old.get(rule)}


__all__ = ["AlertsOverview", "HealthService", "RoundResult", "TargetCheck"]
