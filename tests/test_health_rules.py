"""Rule configuration (REDIS_MEM_RULES_FILE, durations) and what each rule reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError, UsageError
from bot.health.engine import evaluate, step
from bot.health.model import RuleState, RuleStatus, Severity
from bot.health.promql import predict_linear, rate
from bot.health.rules import RULE_IDS, RULES, Reading, RuleBook
from bot.health.rulesfile import load_rules
from bot.health.service import NO_DIAGNOSIS_GROUPS
from bot.units import parse_duration, prometheus_duration
from tests.health_support import at, down, only, sample


def test_rule_ids_are_the_contract() -> None:
    assert RULE_IDS == (
        "memory-warning",
        "memory-critical",
        "eviction-rate",
        "store-down",
        "connections-exhausted",
        "memory-forecast",
    )


def test_defaults_are_the_runbooks() -> None:
    rules = RuleBook.defaults()
    warning, critical = rules.get("memory-warning").config, rules.get("memory-critical").config
    assert (warning.threshold, warning.for_seconds, warning.severity) == (0.8, 600, "warning")
    assert (critical.threshold, critical.for_seconds, critical.severity) == (0.9, 300, "critical")
    assert rules.get("eviction-rate").config.threshold == 10
    assert rules.get("store-down").config.for_seconds == 60
    assert rules.get("memory-forecast").config.for_seconds == 900


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("4h", 14400), ("1h30m", 5400), ("14d", 1209600), ("0", 0),
     ("45", 45), ("1s500ms", 1.5)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(prometheus_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text",
    [
        *["", "10x", "30m1h", "1m1m", "-1s", "1.5h"],
        pytest.param("9" * 5000 + "s", id="5000-digit-seconds"),
        pytest.param("9" * 5000, id="5000-digit-string"),
        pytest.param(10**5000, id="5000-digit-int"),
    ],
)
def test_bad_durations_are_one_line(text: str | int) -> None:
    with pytest.raises(UsageError) as err:
        parse_duration(text)
    assert "\n" not in err.value.message and len(err.value.message) < 120


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    return path


def test_rules_file_overrides_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  memory-warning: {threshold: 0.75, for: 30s, keep_firing_for: 2m}\n"
        "  eviction-rate: {enabled: false}\n  store-down: {severity: warning, for: 0}\n",
    )
    rules = load_rules(path)
    warning = rules.get("memory-warning").config
    assert (warning.threshold, warning.for_seconds, warning.keep_firing_for_seconds) == (
        0.75,
        30,
        120,
    )
    assert "eviction-rate" not in [r.id for r in rules.enabled]
    assert rules.get("store-down").config.severity is Severity.WARNING
    assert rules.get("memory-critical").config == RuleBook.defaults().get("memory-critical").config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {memory-warnin: {for: 1m}}", "unknown rule 'memory-warnin'"),
        ("rules: {memory-warning: {treshold: 0.7}}", "memory-warning: unknown field 'treshold'"),
        ("rules: {memory-warning: {for: 10x}}", "memory-warning.for: invalid duration '10x'"),
        ("rules: {memory-warning: {threshold: 80}}", "memory-warning.threshold: a share"),
        (
            "rules: {memory-warning: {threshold: abc}}",
            "memory-warning.threshold: expected a number",
        ),
        (
            "rules: {store-down: {threshold: 1}}",
            "store-down.threshold: store-down has no threshold",
        ),
        ("rules: {eviction-rate: {threshold: -1}}", "eviction-rate.threshold: must be above 0"),
        (
            "rules: {eviction-rate: {enabled: maybe}}",
            "eviction-rate.enabled: expected true or false",
        ),
        (
            "rules: {memory-critical: {severity: page}}",
            "memory-critical.severity: expected warning",
        ),
        ("rules: [memory-warning]", "expected a mapping under 'rules:'"),
        ("rules: {memory-warning: 5}", "memory-warning: expected a mapping of fields"),
        ("rules: {a: [", "is not valid YAML"),
        (
            "rules: {eviction-rate: {threshold: .inf}}",
            "eviction-rate.threshold: must be above 0 and at most",
        ),
        ("rules: {memory-warning: {threshold: .nan}}", "memory-warning.threshold: a share"),
        ("rules: {memory-warning: {for: 1.5}}", "memory-warning.for: invalid duration (a float)"),
        ("rules: {memory-warning: {for: [1]}}", "memory-warning.for: invalid duration (a list)"),
        ("rules: {9: {for: 1m}}", "unknown rule an int"),
        # An alias bomb: a 300-byte file whose value is a list of 9**8 items, never printed.
        (
            "a: &a [x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefg", "bcdefgh", strict=True)
            )
            + "rules: {memory-warning: {for: *h, threshold: *h}}",
            "memory-warning.threshold: expected a number (got a list)",
        ),
    ],
)
def test_bad_rules_files_name_the_rule_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert message in err.value.message, err.value.message
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_unreadable_rules_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.yml")
    for not_a_file in (tmp_path, Path("/dev/zero")):  # would hang or fill memory
        with pytest.raises(ConfigError, match="is not a regular file"):
            load_rules(not_a_file)
    huge = tmp_path / "huge.yml"
    huge.write_text("rules: {}\n" + "#" * 2_000_000)
    with pytest.raises(ConfigError, match="is larger than 1024 KB"):
        load_rules(huge)
    binary = tmp_path / "bin.yml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_rules(binary)


def test_settings_read_the_health_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MEM_CHECK_INTERVAL", "15")
    monkeypatch.setenv("REDIS_MEM_REPEAT_INTERVAL", "30m")
    monkeypatch.setenv("REDIS_MEM_SAMPLE_RETENTION", "2d")
    settings = Settings.load()
    assert (settings.check_interval, settings.repeat_interval, settings.sample_retention) == (
        15,
        1800,
        172800,
    )
    monkeypatch.setenv("REDIS_MEM_REPEAT_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="REDIS_MEM_REPEAT_INTERVAL: invalid duration 'soon'"):
        Settings.load()
    monkeypatch.setenv("REDIS_MEM_REPEAT_INTERVAL", "4h")
    monkeypatch.setenv("REDIS_MEM_CHECK_INTERVAL", "0")
    with pytest.raises(ConfigError, match="REDIS_MEM_CHECK_INTERVAL"):
        Settings.load()


def outcome(rule_id: str, samples: list, minute: float) -> Reading:  # type: ignore[type-arg]
    [result] = evaluate(
        target="prod", samples=samples, states={}, rules=only(rule_id), now=at(minute)
    )
    return result.reading


def test_no_maxmemory_never_fires_and_says_why() -> None:
    reading = outcome("memory-warning", [sample(0, used=10**9, maxmemory=0)], 0)
    assert (reading.holds, reading.value) == (False, None)
    assert "no maxmemory limit" in reading.detail


def test_eviction_rate_counts_a_restart_as_a_reset_not_a_negative_rate() -> None:
    samples = [sample(m, evicted_keys=e) for m, e in enumerate([0, 6000, 12000, 30, 6030])]
    reading = outcome("eviction-rate", samples, 4)
    assert reading.value is not None and reading.value > 10 and reading.holds


def test_store_down_reads_the_error_of_the_latest_check() -> None:
    reading = outcome("store-down", [sample(0), down(1, "Redis at x rejected the password")], 1)
    assert reading.holds and reading.detail == "Redis at x rejected the password"


def test_connections_rejected_since_the_last_check() -> None:
    samples = [sample(0, rejected_connections=4), sample(1, rejected_connections=9)]
    reading = outcome("connections-exhausted", samples, 1)
    assert reading.holds and "5 connections rejected since the last check" in reading.detail
    gap = [sample(0, rejected_connections=4), sample(1, rejected_connections=9), down(2)]
    assert not outcome("connections-exhausted", gap, 2).holds  # nothing known to have grown


def test_forecast_says_when_the_limit_is_reached() -> None:
    mib = 1024**2
    samples = [sample(m, used=(50 + m) * mib, maxmemory=100 * mib) for m in range(30)]
    reading = outcome("memory-forecast", samples, 29)
    assert reading.holds
    assert "+60.0 MB/h" in reading.detail and "90% of 100.0 MB in about 11m" in reading.detail
    flat = [sample(m, used=80 * mib, maxmemory=100 * mib) for m in range(30)]
    assert not outcome("memory-forecast", flat, 29).holds


def test_keep_firing_for_counts_from_the_first_false_evaluation() -> None:
    config = only("memory-warning").get("memory-warning").config
    config = replace(config, keep_firing_for_seconds=120)
    firing = RuleState("prod", "memory-warning", RuleStatus.FIRING, at(0), 0.85, fired_at=at(0))
    false = Reading(False, 0.7, "70%")
    kept, transition = step(firing, false, target="prod", rule="memory-warning", config=config,
                            now=at(1))  # fmt: skip
    assert kept is not None and kept.keep_firing_since == at(1) and transition is None
    kept, transition = step(kept, false, target="prod", rule="memory-warning", config=config,
                            now=at(2))  # fmt: skip
    assert kept is not None and transition is None
    gone, transition = step(kept, false, target="prod", rule="memory-warning", config=config,
                            now=at(3))  # fmt: skip
    assert gone is None and transition == "resolved"


def test_samples_at_one_instant_have_no_rate_and_no_trend() -> None:
    # A bot restarted within the same millisecond as its last check stores two samples
    # at one instant: Prometheus never has that; there is no rate or line yet, no crash.
    points = [(1_000, 5.0), (1_000, 7.0)]
    assert rate(points, 1_000, 300_000) is None
    assert predict_linear(points, 1_000, 3_600_000, 6 * 3600) is None
    assert rate([(0, 5.0), (1_000, 7.0)], 1_000, 300_000) is not None


def test_what_a_threshold_means_is_declared_on_each_rule() -> None:
    # One declaration per rule: the rules file and the alert's diagnosis read it there.
    for rule in RULES:
        threshold = rule.defaults.threshold
        if rule.threshold_kind == "none":
            assert threshold is None
        elif rule.threshold_kind == "ratio":
            assert threshold is not None and 0 < threshold <= 1
        else:
            assert threshold is not None and threshold > 1
    assert {"store-down"} == NO_DIAGNOSIS_GROUPS
