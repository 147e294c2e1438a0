"""The demo's alert life cycle: a real redis-server filled past 80% and 90%, then emptied."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from bot.demo_alerts import ALERT_SCENARIO, PHASES, demo_rules, run_alert_demo
from bot.health.model import EventKind
from bot.presenters.health import TerminalNotifier
from tests.clirun import invoke_cli

LIFECYCLE = [
    ("pending", "memory-warning"),
    ("fired", "memory-warning"),
    ("pending", "memory-critical"),
    ("escalated", "memory-critical"),
    ("reminder", "memory-critical"),
    ("resolved", "memory-critical"),
]
LABELS = ["PENDING", "FIRING", "PENDING", "ESCALATED", "REMINDER", "RESOLVED"]


def test_the_demo_rules_are_the_memory_rules_with_a_second_of_for() -> None:
    enabled = {r.id: r.config.for_seconds for r in demo_rules().enabled}
    assert enabled == {"memory-warning": 1.0, "memory-critical": 1.0}


def test_the_alert_demo_walks_the_whole_life_cycle_in_order() -> None:
    out = io.StringIO()
    said: list[str] = []
    events = run_alert_demo(
        notifier=TerminalNotifier(Console(file=out, width=80)), narrate=said.append
    )
    assert [(e.kind.value, e.rule) for e in events] == LIFECYCLE
    assert len(said) == len(PHASES)
    by_kind = {e.kind: e for e in events}
    fired, escalated = by_kind[EventKind.FIRED], by_kind[EventKind.ESCALATED]
    resolved = by_kind[EventKind.RESOLVED]
    assert fired.value is not None and 0.8 < fired.value < 0.9
    assert escalated.value is not None and escalated.value > 0.9
    assert resolved.value is not None and resolved.value < 0.8
    assert len({e.alert_id for e in events if e.alert_id}) == 1  # one alert, one message
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[3] for line in lines] == LABELS  # one line per event, no wrap
    assert all(line.split("  ")[1] == "demo-sessions" for line in lines)


def test_demo_json_ends_with_the_alert_life_cycle(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}"}
    result = invoke_cli("demo", "--json", env=env)
    assert result.code == 0, result
    items = json.loads(result.stdout)
    *diagnoses, lifecycle = items
    assert diagnoses and all("severity" in item for item in diagnoses)
    assert set(lifecycle) == {"demo_scenario", "events"}
    assert lifecycle["demo_scenario"] == ALERT_SCENARIO
    assert [(e["kind"], e["rule"]) for e in lifecycle["events"]] == LIFECYCLE
    first = lifecycle["events"][0]
    assert set(first) == {"at", "kind", "target", "rule", "severity", "value", "detail"}
    assert first["at"].endswith("Z") and first["target"] == "demo-sessions"
    listed = json.loads(invoke_cli("audit", "list", "--json", env=env).stdout)
    [row] = [r for r in listed if r["action"] == "command.demo"]
    assert "alert-lifecycle=pending>fired>pending>escalated>reminder>resolved" in row["summary"]
