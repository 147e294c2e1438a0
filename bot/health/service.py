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

import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.audit.entry import AuditSink
from bot.clock import utc_now
from bot.config import Target
from bot.errors import AuditUnavailable, RedisMemError
from bot.health.alerts import AlertPlan, plan_alerts
from bot.health.checks import (
    AlertsOverview,
    RoundResult,
    TargetCheck,
    worst_outcome,
)
from bot.health.clicks import AlertClicks
from bot.health.engine import Outcome, evaluate
from bot.health.model import Alert, AlertDiagnosis, EventKind, RuleState, RuleStatus, Sample
from bot.health.ports import (
    CheckObserver,
    Diagnoser,
    Evaluation,
    HealthStore,
    SampleSource,
    bucket_floor,
)
from bot.health.promql import LOOKBACK_MS
from bot.health.rules import EVICTION_RANGE_MS, FORECAST_RANGE_MS, RULES, RuleBook
from bot.health.subjects import (
    SubjectSamples,
    cluster_rules,
    gone_plan,
    gone_sample,
    is_cluster_subject,
    vanished,
)
from bot.shards import parent

log = logging.getLogger(__name__)

# The oldest sample any rule reads: the forecast's hour plus the instant lookback.
HISTORY = timedelta(milliseconds=max(FORECAST_RANGE_MS, EVICTION_RANGE_MS) + LOOKBACK_MS)
GRACE_SECONDS = 1.0  # a round waits this much beyond the per-target timeout
MAX_PARALLEL = 32
# A target's open alerts by subject (a cluster's shards, or the target alone).
Opened = dict[str, list[Alert]]
# Groups whose alerts carry no diagnosis (an unreachable store cannot be diagnosed).
NO_DIAGNOSIS_GROUPS = frozenset(rule.group for rule in RULES if not rule.diagnosable)


class HealthService(AlertClicks):
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
        self._cluster_rules = cluster_rules(rules)  # the cluster's own subject: store-down
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
        futures: dict[str, Future[tuple[TargetCheck, ...]]] = {}
        late = []
        for name, target in self.targets.items():
            with self._lock:
                if name in self._in_flight:  # its previous check is still stuck in a timeout
                    late.append(name)
                    continue
                self._in_flight.add(name)
            alerts = opened.get(name, {}) if opened is not None else None
            futures[name] = self._pool.submit(self.check_target, target, now, alerts)
        done, _ = wait(futures.values(), timeout=self._timeout + GRACE_SECONDS)
        checks = tuple(c for f in futures.values() if f in done for c in f.result())
        late += [name for name, f in futures.items() if f not in done]
        if late:
            log.warning("check round %s: still running at the deadline: %s", now, ", ".join(late))
        return RoundResult(at=now, checks=checks, late=tuple(late))

    def _open_by_target(self) -> dict[str, Opened] | None:
        """Every open alert by target, then subject, read once per round (None: each
        target reads its own)."""
        try:
            alerts = self._store.open_alerts()
        except AuditUnavailable:
            return None
        by_target: dict[str, Opened] = {}
        for alert in alerts:
            subjects = by_target.setdefault(parent(alert.target), {})
            subjects.setdefault(alert.target, []).append(alert)
        return by_target

    def check_target(
        self, target: Target, now: datetime, opened: Opened | None = None
    ) -> tuple[TargetCheck, ...]:
        """Check one target, every subject of it, at ``now`` in this thread (a round runs
        these concurrently); one check per subject, the target's own first.

        ``opened``: the target's open alerts by subject if the caller read them (else
        read here). Never raises: an unexpected error is logged and reported in ``error``.
        """
        started = self._timer()
        try:
            checks = self._check_all(target, now, opened)
        except Exception:  # one broken target must not break the round
            if not self._closing:  # close() pulled the connection from under it: expected
                log.exception("health check of %s failed", target.name)
            sample = Sample(target.name, now, reachable=False, error="internal error")
            checks = (TargetCheck(target.name, sample, (), error="internal error (see the log)"),)
        finally:
            with self._lock:
                self._in_flight.discard(target.name)
        if self._observer is not None:
            self._observer.checked(target.name, self._timer() - started, worst_outcome(checks))
        return checks

    def _check_all(
        self, target: Target, now: datetime, opened: Opened | None
    ) -> tuple[TargetCheck, ...]:
        read = self.read_samples(target, now)
        if opened is None:
            opened = self._read_open(target)
        # Every subject's alert is diagnosed on its target: two shards firing in one round
        # share one diagnosis of the cluster.
        diagnose = self._diagnose_once(target)
        checks = [self._check(target, s, now, opened, diagnose) for s in read.samples]
        # A subject the cluster no longer has must not keep its alert firing for ever.
        # (Copies: the other targets' workers add keys to these dicts meanwhile.)
        for name in vanished(target.name, read, dict(self._states), opened or {}):
            gone = gone_sample(name, now)
            checks.append(self._check(target, gone, now, opened, diagnose, gone=True))
        if read.complete:
            seen = {sample.target for sample in read.samples}
            for name in [n for n in list(self._history) if parent(n) == target.name]:
                if name not in seen:  # resharded away: its samples are no rule's input now
                    self._history.pop(name, None)
        return tuple(checks)

    def _read_open(self, target: Target) -> Opened | None:
        """The target's open alerts by subject; None when the database cannot say."""
        by_target = self._open_by_target()
        return None if by_target is None else by_target.get(target.name, {})

    def _check(
        self,
        target: Target,
        sample: Sample,
        now: datetime,
        opened: Opened | None,
        diagnose: Callable[[], AlertDiagnosis] | None,
        *,
        gone: bool = False,
    ) -> TargetCheck:
        """Evaluate and store one subject's sample (``gone``: alone, no history read)."""
        name = sample.target
        samples = [sample] if gone else self._remember(sample)
        old = self._states.get(name, {})
        rules = self._rules_for(target, name)
        outcomes = evaluate(target=name, samples=samples, states=old, rules=rules, now=now)
        try:
            alerts = opened.get(name, []) if opened is not None else self._store.open_alerts(name)
            by_group = {a.group: a for a in alerts}
            plan = _diagnosed(self._plan(target, name, outcomes, by_group, now), diagnose)
            plan = gone_plan(plan, now) if gone else plan
            states = _state_writes(old, outcomes)
            self._store.record(Evaluation(name, sample, states, plan.changes, plan.events))
        except AuditUnavailable as err:
            # At shutdown a worker that was stuck on a hung store returns after the engine
            # is gone: expected, and nothing the next start would not check again.
            if not self._closing:
                log.warning("health check of %s not stored: %s", name, err.message)
            return TargetCheck(name, sample, tuple(outcomes), error=err.message)
        self._states[name] = {o.rule.id: o.state for o in outcomes if o.state}
        if gone and not self._states[name]:
            del self._states[name]  # resolved for good: not evaluated again
        if plan.events:
            self._on_events()
        return TargetCheck(name, sample, tuple(outcomes), plan.events)

    def _rules_for(self, target: Target, subject: str) -> RuleBook:
        """A cluster's own subject runs store-down only (bot.health.subjects says why)."""
        if is_cluster_subject(target.mode, target.name, subject):
            return self._cluster_rules
        return self.rules

    def read_samples(self, target: Target, now: datetime) -> SubjectSamples:
        """Every subject's sample at ``now``; an unreachable one is a sample too."""
        try:
            return self._source.read_all(target, at=now)
        except RedisMemError as err:  # the port says it never raises; a fake may
            return SubjectSamples((Sample(target.name, now, reachable=False, error=err.message),))

    def _plan(
        self,
        target: Target,
        name: str,
        outcomes: list[Outcome],
        opened: dict[str, Alert],
        now: datetime,
    ) -> AlertPlan:
        """The alerts of subject ``name``, posted in its target's channel."""
        return plan_alerts(
            target=name,
            outcomes=outcomes,
            open_alerts=opened,
            now=now,
            repeat_interval=self._repeat,
            channel=target.channel or self._default_channel,
            new_id=lambda: uuid.uuid4().hex,
        )

    def _diagnose_once(self, target: Target) -> Callable[[], AlertDiagnosis] | None:
        """The target's diagnosis, made on first use and kept for the rest of its check."""
        diagnoser = self._diagnoser
        if diagnoser is None:
            return None
        return functools.cache(lambda: diagnoser(target.name))

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
        # Keyed by subject: a cluster shard's history and timers belong to its target.
        self._history = {t: deque(s) for t, s in samples.items() if parent(t) in self.targets}
        self._states = {t: s for t, s in states.items() if parent(t) in self.targets}
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

        def one(target: Target, sample: Sample) -> TargetCheck:
            outcomes = evaluate(
                target=sample.target,
                samples=[*history.get(sample.target, []), sample],
                states=states.get(sample.target, {}),
                rules=self._rules_for(target, sample.target),
                now=now,
            )
            return TargetCheck(sample.target, sample, tuple(outcomes))

        def each(target: Target) -> list[TargetCheck]:
            return [one(target, s) for s in self.read_samples(target, now).samples]

        return [c for cs in self._pool.map(each, self.targets.values()) for c in cs], warning

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


def _state_writes(
    old: Mapping[str, RuleState], outcomes: Iterable[Outcome]
) -> dict[str, RuleState | None]:
    """The rule states to write: changed ones; None deletes (inactive, or disabled since)."""
    new = {o.rule.id: o.state for o in outcomes}
    return {rule: new.get(rule) for rule in {*new, *old} if new.get(rule) != old.get(rule)}


def _diagnosed(plan: AlertPlan, diagnose: Callable[[], AlertDiagnosis] | None) -> AlertPlan:
    """Attach a fresh diagnosis to alerts that fired or escalated (before they are posted)."""
    news = {e.alert_id for e in plan.events if e.kind in (EventKind.FIRED, EventKind.ESCALATED)}
    wanted = [
        c for c in plan.changes if c.alert.id in news and c.alert.group not in NO_DIAGNOSIS_GROUPS
    ]
    if diagnose is None or not wanted:
        return plan
    diagnosis = diagnose()
    changes = tuple(
        replace(c, alert=replace(c.alert, diagnosis=diagnosis)) if c in wanted else c
        for c in plan.changes
    )
    return replace(plan, changes=changes)


__all__ = ["AlertsOverview", "HealthService", "RoundResult", "TargetCheck"]
