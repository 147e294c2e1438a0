"""Prometheus's alerting-rule semantics, one evaluation at a time. Pure: the clock is an argument.

From ``rules/alerting.go`` (2.42), for one rule and one target:
- condition holds, no active alert: it becomes PENDING with ``active_at = now``;
- PENDING becomes FIRING at the first evaluation where ``now - active_at >= for``
  (with ``for: 0`` in the same evaluation);
- condition does not hold: a PENDING alert is dropped; a FIRING one resolves, unless
  ``keep_firing_for`` has not yet passed since the condition first stopped holding;
- no data counts as "does not hold" (the series is absent from the result vector).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.health.model import EventKind, RuleState, RuleStatus, Sample
from bot.health.rules import ConfiguredRule, Reading, RuleBook, RuleConfig
from bot.health.series import SeriesView, to_ms


@dataclass(frozen=True)
class Outcome:
    """One rule after one evaluation: what it read, where it stands, what changed.

    state None: inactive. transition: PENDING, FIRED, RESOLVED or CLEARED, or None.
    """

    rule: ConfiguredRule
    reading: Reading
    state: RuleState | None
    transition: EventKind | None

    @property
    def status(self) -> str:
        """``inactive``, ``pending`` or ``firing``."""
        return self.state.status.value if self.state else "inactive"


def step(
    previous: RuleState | None,
    reading: Reading,
    *,
    target: str,
    rule: str,
    config: RuleConfig,
    now: datetime,
) -> tuple[RuleState | None, EventKind | None]:
    """The rule's next state and the transition, if any (Prometheus's ``Eval``)."""
    if reading.holds:
        if previous is None:
            state = RuleState(target, rule, RuleStatus.PENDING, active_at=now, value=reading.value)
            transition: EventKind | None = EventKind.PENDING
        else:
            state = replace(previous, value=reading.value, keep_firing_since=None)
            transition = None
        held = (now - state.active_at).total_seconds()
        if state.status is RuleStatus.PENDING and held >= config.for_seconds:
            return replace(state, status=RuleStatus.FIRING, fired_at=now), EventKind.FIRED
        return state, transition
    if previous is None:
        return None, None
    if previous.status is RuleStatus.PENDING:
        return None, EventKind.CLEARED
    if config.keep_firing_for_seconds > 0:
        since = previous.keep_firing_since or now
        if (now - since).total_seconds() < config.keep_firing_for_seconds:
            return replace(previous, keep_firing_since=since), None
    return None, EventKind.RESOLVED


def evaluate(
    *,
    target: str,
    samples: Sequence[Sample],
    states: Mapping[str, RuleState],
    rules: RuleBook,
    now: datetime,
) -> list[Outcome]:
    """Evaluate every enabled rule of ``rules`` for one target at ``now``.

    ``samples``: the target's recent samples, oldest first (the newest taken at ``now``);
    ``states``: its stored rule states by rule id.
    """
    view = SeriesView(samples)
    at = to_ms(now)
    outcomes = []
    for configured in rules.enabled:
        reading = configured.rule.measure(view, at, configured.config)
        state, transition = step(
            states.get(configured.id),
            reading,
            target=target,
            rule=configured.id,
            config=configured.config,
            now=now,
        )
        outcomes.append(Outcome(configured, reading, state, transition))
    return outcomes
