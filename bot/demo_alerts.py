"""The alert life cycle for real, in a throwaway redis-server: pending to resolved in seconds.

A small ``maxmemory`` with ``noeviction``, real session keys written until INFO says
the store is past 80%, then past 90%, then deleted; rules whose ``for`` is a second,
rounds every half second and a reminder after a few seconds. The same health service,
Dispatcher and TerminalNotifier as ``redis-mem watch``, with no Slack workspace.

Deterministic: each phase acts, then runs rounds until its event arrives. Memory is
filled by polling INFO, never by sleeping; the only waits are the round pacing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis

from bot.config import Target
from bot.demo import DAY, write_keys
from bot.errors import RedisMemError
from bot.health.model import Alert, AlertEvent, EventKind
from bot.health.ports import Delivered, Notifier
from bot.health.rules import ConfiguredRule, RuleBook
from bot.health.rulesfile import apply_overrides
from bot.redisproc import RedisServer

ALERT_SCENARIO = "alert-lifecycle"
SERVER_ARGS = ("--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
TARGET = "demo-sessions"
PREFIX = "session:demo:"
INTERVAL = 0.5  # seconds between rounds
# Well beyond what FIRED -> ESCALATED takes (a fill, a round, a second of ``for``), even on
# a slow machine: the reminder comes after the escalation, never before it.
REPEAT = timedelta(seconds=5)
TIMEOUT = 2.0
# Written as the rules file would say it; every other rule is off (no noise in the demo).
RULE_OVERRIDES: dict[str, dict[str, Any]] = {
    "memory-warning": {"for": "1s"},
    "memory-critical": {"for": "1s"},
}
CHUNK = 50  # sessions per write: ~1% of maxmemory, so a fill stops just past its mark
SESSION_BYTES = 1000
MAX_CHUNKS = 2000
MAX_ROUNDS = 30  # per phase (15 s): an event that never comes is one error line, not a hang


@dataclass(frozen=True)
class Phase:
    """What the demo does, then the event it waits for."""

    say: str
    until: EventKind
    fill_to: float | None = None  # write sessions until used/maxmemory reaches this
    drain: bool = False  # delete every demo session


PHASES = (
    Phase(
        "writing sessions past 80% of maxmemory: memory-warning is pending, fires after 1s",
        EventKind.FIRED,
        fill_to=0.85,
    ),
    Phase(
        "more sessions, past 90%: memory-critical is pending, then escalates the alert",
        EventKind.ESCALATED,
        fill_to=0.95,
    ),
    Phase(
        f"nobody acknowledges: a reminder {REPEAT.seconds}s after the last notice",
        EventKind.REMINDER,
    ),
    Phase("deleting the sessions: the alert resolves", EventKind.RESOLVED, drain=True),
)


def demo_rules() -> RuleBook:
    """The rules with RULE_OVERRIDES applied, the others disabled."""
    return RuleBook(
        tuple(
            ConfiguredRule(
                c.rule,
                apply_overrides(c.id, c.config, RULE_OVERRIDES.get(c.id, {"enabled": False})),
            )
            for c in RuleBook.defaults().rules
        )
    )


class _Recorder:
    """A Notifier that keeps every event, then hands it on."""

    def __init__(self, inner: Notifier | None) -> None:
        self.events: list[AlertEvent] = []
        self._inner = inner

    def deliver(self, event: AlertEvent, alert: Alert | None) -> Delivered:
        self.events.append(event)
        return self._inner.deliver(event, alert) if self._inner is not None else Delivered()


def run_alert_demo(
    *, notifier: Notifier | None = None, narrate: Callable[[str], None] = lambda _: None
) -> list[AlertEvent]:
    """Run the life cycle in its own redis-server; the events, in the order delivered.

    ``notifier``: also gets each event (the TerminalNotifier prints it); ``narrate``: a
    line before each phase. Raises ConfigError without redis-server, RedisMemError when
    an expected event does not come.
    """
    from bot.wiring import foreground_checks

    recorder = _Recorder(notifier)
    with RedisServer(*SERVER_ARGS) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        checks = foreground_checks(
            targets={TARGET: Target(name=TARGET, redis_url=server.url)},
            rules=demo_rules(),
            notifier=recorder,
            interval=INTERVAL,
            timeout=TIMEOUT,
            repeat_interval=REPEAT,
        )
        try:
            rounds = checks.paced()
            for phase in PHASES:
                narrate(phase.say)
                _act(client, phase)
                _rounds_until(rounds, recorder, phase.until)
        finally:
            checks.close()
            client.close()
    return recorder.events


def _act(client: redis.Redis, phase: Phase) -> None:
    if phase.fill_to is not None:
        fill(client, phase.fill_to)
    if phase.drain:
        drain(client)


def _rounds_until(rounds: Iterator[object], recorder: _Recorder, kind: EventKind) -> None:
    seen = len(recorder.events)
    for _ in range(MAX_ROUNDS):
        next(rounds)
        if any(e.kind is kind for e in recorder.events[seen:]):
            return
    raise RedisMemError(f"alert demo: no {kind.value} event after {MAX_ROUNDS} rounds")


def usage(client: redis.Redis) -> float:
    """used_memory / maxmemory, as INFO says now."""
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"]) / int(info["maxmemory"])


def fill(client: redis.Redis, ratio: float) -> None:
    """Write sessions until used/maxmemory reaches ``ratio`` (INFO polled after each chunk)."""
    first = int(client.dbsize())  # the demo store holds only our sessions: next free index
    for chunk in range(MAX_CHUNKS):
        if usage(client) >= ratio:
            return
        write_keys(
            client,
            prefix=PREFIX,
            count=CHUNK,
            value_bytes=SESSION_BYTES,
            ttl=DAY,
            first=first + chunk * CHUNK,
        )
    raise RedisMemError(f"alert demo: the store did not reach {ratio:.0%} of maxmemory")


def drain(client: redis.Redis) -> None:
    """Delete every demo session (UNLINK, in batches)."""
    batch: list[str] = []
    for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
