"""Hold our rule engine against Prometheus itself: ``promtool test rules``.

A scenario is a minute-by-minute series of checks of one target. We evaluate it
with ``bot.health.engine`` every minute, write what we concluded (which rules fire
at each minute, with which value) as promtool's expectations, and let promtool
evaluate the rules' PromQL twins over the same series: it passes only if
Prometheus fires and resolves every alert at the same evaluations, with the same
value to six decimals.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.health.engine import evaluate
from bot.health.model import RuleState, RuleStatus, Sample
from bot.health.rules import RuleBook
from bot.health.series import SERIES
from bot.units import prometheus_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # promtool's series start at time 0
INSTANCE = "prod"
# Rules whose value is not Prometheus's: ``a or b`` takes the value of whichever side is
# present, ours is always the client ratio. Their firing times are still compared.
VALUE_NOT_COMPARED = frozenset({"connections-exhausted"})


@dataclass(frozen=True)
class Check:
    """One minute of a scenario: a reading, an unreachable store, or no check at all (None)."""

    used: int | None = None
    maxmemory: int | None = 100
    evicted: int | None = 0
    clients: int | None = 10
    maxclients: int | None = 100
    rejected: int | None = 0
    up: bool = True


def promtool_available() -> bool:
    """Whether ``promtool`` (Debian package ``prometheus``) is on PATH."""
    return shutil.which("promtool") is not None


def samples_of(checks: Sequence[Check | None]) -> list[Sample]:
    """Our samples for the scenario: one per minute that had a check."""
    samples = []
    for minute, check in enumerate(checks):
        if check is None:
            continue
        at = EPOCH + timedelta(minutes=minute)
        if not check.up:
            samples.append(Sample(INSTANCE, at, reachable=False, error="no answer within 5 s"))
            continue
        samples.append(
            Sample(
                INSTANCE,
                at,
                reachable=True,
                used_memory=check.used,
                maxmemory=check.maxmemory,
                evicted_keys=check.evicted,
                connected_clients=check.clients,
                maxclients=check.maxclients,
                rejected_connections=check.rejected,
            )
        )
    return samples


def our_alerts(
    checks: Sequence[Check | None], rules: RuleBook, minutes: int
) -> dict[int, dict[str, float | None]]:
    """minute -> {rule id: value} of the rules our engine has FIRING after that evaluation."""
    samples = samples_of(checks)
    states: dict[str, RuleState] = {}
    firing: dict[int, dict[str, float | None]] = {}
    for minute in range(minutes + 1):
        now = EPOCH + timedelta(minutes=minute)
        seen = [s for s in samples if s.at <= now]
        outcomes = evaluate(target=INSTANCE, samples=seen, states=states, rules=rules, now=now)
        states = {o.rule.id: o.state for o in outcomes if o.state is not None}
        firing[minute] = {
            rule: state.value for rule, state in states.items() if state.status is RuleStatus.FIRING
        }
    return firing


def series_values(checks: Sequence[Check | None]) -> dict[str, str]:
    """promtool ``values`` strings per series (``_`` where a minute has no sample)."""
    samples = {round((s.at - EPOCH).total_seconds()) // 60: s for s in samples_of(checks)}
    out = {}
    for name, read in SERIES.items():
        values = []
        for minute in range(len(checks)):
            sample = samples.get(minute)
            value = read(sample) if sample is not None else None
            values.append("_" if value is None else repr(value))
        out[name] = " ".join(values)
    return out


def rules_document(rules: RuleBook) -> dict[str, Any]:
    """rules.yml: each enabled rule's PromQL twin under its own id as the alert name."""
    entries = []
    for configured in rules.enabled:
        entry: dict[str, Any] = {
            "alert": configured.id,
            "expr": configured.rule.expression(configured.config, interval="1m"),
            "for": prometheus_duration(configured.config.for_seconds),
        }
        if configured.config.keep_firing_for_seconds:
            entry["keep_firing_for"] = prometheus_duration(
                configured.config.keep_firing_for_seconds
            )
        if configured.id not in VALUE_NOT_COMPARED:
            entry["annotations"] = {"value": '{{ printf "%.6f" $value }}'}
        entries.append(entry)
    return {"groups": [{"name": "redis-mem", "interval": "1m", "rules": entries}]}


def promtool_tests(
    checks: Sequence[Check | None], rules: RuleBook, expected: dict[int, dict[str, float | None]]
) -> dict[str, Any]:
    """test.yml: the series, and at every minute what our engine says is firing."""
    asserts = []
    for minute, firing in expected.items():
        for configured in rules.enabled:
            alerts = []
            if configured.id in firing:
                alert: dict[str, Any] = {"exp_labels": {"instance": INSTANCE}}
                if configured.id not in VALUE_NOT_COMPARED:
                    value = firing[configured.id]
                    alert["exp_annotations"] = {"value": f"{value:.6f}"}
                alerts.append(alert)
            asserts.append(
                {"eval_time": f"{minute}m", "alertname": configured.id, "exp_alerts": alerts}
            )
    series = [
        {"series": f'{name}{{instance="{INSTANCE}"}}', "values": values}
        for name, values in series_values(checks).items()
    ]
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": asserts}],
    }


def run_promtool(
    workdir: Path,
    checks: Sequence[Check | None],
    rules: RuleBook,
    *,
    extra_minutes: int = 0,
    expected: dict[int, dict[str, float | None]] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[int, dict[str, float | None]]]:
    """Write both files, run ``promtool test rules``; the result and what we expected.

    ``expected``: the expectations to write instead of our engine's (the control test).
    """
    if expected is None:
        expected = our_alerts(checks, rules, len(checks) - 1 + extra_minutes)
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules_document(rules), sort_keys=False))
    (workdir / "test.yml").write_text(
        yaml.safe_dump(promtool_tests(checks, rules, expected), sort_keys=False)
    )
    proc = subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc, expected
