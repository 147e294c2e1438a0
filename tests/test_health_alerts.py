"""The alert life cycle from rule outcomes: fire, escalate, de-escalate, remind, snooze, resolve."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from bot.health.alerts import AlertPlan, plan_alerts
from bot.health.engine import evaluate
from bot.health.model import Alert, EventKind, RuleState, RuleStatus, Sample, Severity
from bot.health.rules import RuleBook
from tests.health_support import MEMORY, at, book, down, only, sample


class Walk:
    """Feed samples minute by minute through the engine and the alert planner."""

    def __init__(self, rules: RuleBook, *, repeat: timedelta = timedelta(minutes=30)) -> None:
        self.rules = rules
        self.repeat = repeat
        self.samples: list[Sample] = []
        self.states: dict[str, RuleState] = {}
        self.alerts: dict[str, Alert] = {}
        self.ids = (f"{n:032x}" for n in itertools.count(1))
        self.log: list[tuple[float, EventKind, str]] = []

    def step(self, new: Sample) -> AlertPlan:
        self.samples.append(new)
        outcomes = evaluate(
            target="prod", samples=self.samples, states=self.states, rules=self.rules, now=new.at
        )
        self.states = {o.rule.id: o.state for o in outcomes if o.state}
        plan = plan_alerts(
            target="prod",
            outcomes=outcomes,
            open_alerts=self.alerts,
            now=new.at,
            repeat_interval=self.repeat,
            channel="C0ALERTS",
            new_id=lambda: next(self.ids),
        )
        for change in plan.changes:
            if change.alert.firing:
                self.alerts[change.alert.group] = change.alert
            else:
                self.alerts.pop(change.alert.group, None)
        minute = (new.at - at(0)).total_seconds() / 60
        self.log += [(minute, e.kind, e.rule) for e in plan.events]
        return plan

    def run(self, used: Sequence[int], start: int = 0) -> None:
        for minute, value in enumerate(used, start=start):
            self.step(sample(minute, used=value))

    def posted(self) -> list[tuple[float, EventKind, str]]:
        """(minute, kind, rule) of every event but PENDING."""
        return [entry for entry in self.log if entry[1] is not EventKind.PENDING]


def test_warning_then_critical_escalates_the_same_alert_and_falls_back() -> None:
    walk = Walk(MEMORY)
    walk.run([70, 85, 85, 85, 95, 95, 95, 85, 85, 60])
    assert walk.posted() == [
        (3, EventKind.FIRED, "memory-warning"),
        (5, EventKind.ESCALATED, "memory-critical"),
        (7, EventKind.DEESCALATED, "memory-warning"),
        (9, EventKind.RESOLVED, "memory-warning"),
    ]
    ids = {e.alert_id for e in walk.step(sample(10, used=85)).events}  # a new episode
    assert ids == {None}  # pending only: nothing to post yet


def test_critical_first_posts_critical_and_warning_firing_later_changes_nothing() -> None:
    walk = Walk(MEMORY)
    walk.run([70, 95, 95, 95, 95])
    assert walk.posted() == [(2, EventKind.FIRED, "memory-critical")]
    assert walk.alerts["memory"].severity is Severity.CRITICAL
    assert walk.states["memory-warning"].status is RuleStatus.FIRING  # fired at 3: no event


def test_one_alert_id_across_escalation_and_resolution() -> None:
    walk = Walk(MEMORY)
    ids = []
    for minute, used in enumerate([85, 85, 85, 95, 95, 60]):
        ids += [e.alert_id for e in walk.step(sample(minute, used=used)).events if e.alert_id]
    assert len(set(ids)) == 1 and len(ids) == 3  # fired, escalated, resolved


def test_reminders_every_repeat_interval_until_acknowledged() -> None:
    walk = Walk(only("memory-warning", **{"memory-warning": {"for_seconds": 0}}),
                repeat=timedelta(minutes=3))  # fmt: skip
    walk.run([85] * 8)
    reminders = [m for m, kind, _ in walk.log if kind is EventKind.REMINDER]
    assert reminders == [3, 6]
    walk.alerts["memory"] = replace(walk.alerts["memory"], acknowledged_by="U0BOB")
    walk.run([85] * 6, start=8)
    assert [m for m, kind, _ in walk.log if kind is EventKind.REMINDER] == [3, 6]


def test_a_snooze_silences_reminders_then_notifies_again_when_it_ends() -> None:
    walk = Walk(only("memory-warning", **{"memory-warning": {"for_seconds": 0}}),
                repeat=timedelta(minutes=3))  # fmt: skip
    walk.run([85])
    walk.alerts["memory"] = replace(walk.alerts["memory"], snoozed_by="U0BOB", snoozed_until=at(10))
    walk.run([85] * 13, start=1)
    later = [(m, kind) for m, kind, _ in walk.log if m > 0]
    assert later == [(10, EventKind.SNOOZE_ENDED), (13, EventKind.REMINDER)]
    assert walk.alerts["memory"].snoozed_until is None


def test_escalation_lifts_acknowledgement_and_snooze() -> None:
    walk = Walk(MEMORY)
    walk.run([85, 85, 85])
    walk.alerts["memory"] = replace(
        walk.alerts["memory"], acknowledged_by="U0BOB", snoozed_by="U0BOB", snoozed_until=at(60)
    )
    walk.step(sample(3, used=95))
    plan = walk.step(sample(4, used=95))
    [change] = plan.changes
    assert change.clear_ack and change.clear_snooze
    [escalated] = plan.events
    assert escalated.detail.endswith("(memory-warning); acknowledgement and snooze lifted")
    assert change.alert.acknowledged_by is None and change.alert.snoozed_until is None


def test_an_alert_resolves_once() -> None:
    walk = Walk(MEMORY)
    walk.run([85, 85, 85, 85, 85, 62])
    assert walk.log[-1][1] is EventKind.RESOLVED
    assert walk.step(sample(6, used=62)).events == ()


def test_resolved_event_detail_names_the_duration_and_current_value() -> None:
    walk = Walk(MEMORY)
    walk.run([85, 85, 85, 85, 85])
    plan = walk.step(sample(5, used=62))
    [event] = [e for e in plan.events if e.kind is EventKind.RESOLVED]
    assert "firing for 3m" in event.detail
    assert "now 62.0% of 100 B (threshold 80%)" in event.detail


def test_store_down_has_its_own_alert_beside_the_memory_one() -> None:
    walk = Walk(
        book(**{"memory-warning": {"for_seconds": 0}, "memory-forecast": {"enabled": False}})
    )
    walk.step(sample(0, used=85))
    walk.step(down(1))
    walk.step(down(2))
    assert set(walk.alerts) == {"memory", "store-down"}
    store_down = walk.alerts["store-down"]
    assert "connection refused" in store_down.detail
    assert store_down.severity is Severity.CRITICAL


def test_pending_and_cleared_events_carry_no_alert() -> None:
    walk = Walk(MEMORY)
    walk.run([85, 70])
    assert [(k, rule) for _, k, rule in walk.log] == [
        (EventKind.PENDING, "memory-warning"),
        (EventKind.CLEARED, "memory-warning"),
    ]
