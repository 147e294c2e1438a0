"""Builders shared by the health tests: samples at given minutes, rule books, a clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bot.config import Target
from bot.health.model import Sample
from bot.health.rules import ConfiguredRule, RuleBook

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``T0`` plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def sample(minutes: float, *, used: int = 50, maxmemory: int = 100, **fields: object) -> Sample:
    """A reachable sample of ``prod`` at ``at(minutes)``."""
    values: dict[str, object] = {
        "used_memory": used,
        "maxmemory": maxmemory,
        "evicted_keys": 0,
        "expired_keys": 0,
        "dbsize": 10,
        "connected_clients": 5,
        "maxclients": 100,
        "rejected_connections": 0,
        "fragmentation_ratio": 1.1,
        **fields,
    }
    return Sample("prod", at(minutes), reachable=True, **values)  # type: ignore[arg-type]


def down(minutes: float, error: str = "cannot reach Redis: connection refused") -> Sample:
    """An unreachable sample of ``prod``."""
    return Sample("prod", at(minutes), reachable=False, error=error)


def book(**changes: dict[str, object]) -> RuleBook:
    """The default rules with some configs changed: ``book(**{"memory-warning": {...}})``."""
    rules = []
    for configured in RuleBook.defaults().rules:
        change = changes.get(configured.id, {})
        rules.append(ConfiguredRule(configured.rule, replace(configured.config, **change)))
    return RuleBook(tuple(rules))


def only(*rule_ids: str, **changes: dict[str, object]) -> RuleBook:
    """Only ``rule_ids`` enabled (with ``changes``), every other rule off."""
    off = {r.id: {"enabled": False} for r in RuleBook.defaults().rules if r.id not in rule_ids}
    return book(**{**off, **changes})


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = field(default=T0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def target(name: str, url: str, channel: str | None = "C0ALERTS") -> Target:
    """A target with an alert channel."""
    return Target(name=name, redis_url=url, channel=channel)
