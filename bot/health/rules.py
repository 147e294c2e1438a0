"""The six alert rules (ids are a contract), each with its PromQL twin and its defaults.

A rule measures one target at one evaluation time and says whether its condition
holds, with the value and a line for people. ``engine.step`` then applies the
``for``/``keep_firing_for`` semantics of Prometheus. Each rule also carries the
PromQL expression it is equivalent to: the promtool test renders and runs those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.diagnosis.model import Severity
from bot.health import promql
from bot.health.series import SeriesView, to_ms
from bot.units import format_bytes, format_duration

MEMORY_GROUP = "memory"
EVICTION_RANGE_MS = 5 * 60 * 1000
FORECAST_RANGE_MS = 60 * 60 * 1000
FORECAST_HORIZON_S = 6 * 3600.0


@dataclass(frozen=True)
class Reading:
    """What a rule saw: whether its condition holds, the value compared, and why in words.

    value None: no data (no reading within the lookback); the condition then does not hold.
    """

    holds: bool
    value: float | None
    detail: str


@dataclass(frozen=True)
class RuleConfig:
    """A rule's tunables (defaults below, overridden by REDIS_MEM_RULES_FILE)."""

    threshold: float | None
    for_seconds: float
    severity: Severity
    keep_firing_for_seconds: float = 0.0
    enabled: bool = True


Measure = Callable[[SeriesView, int, RuleConfig], Reading]


@dataclass(frozen=True)
class Rule:
    """One alert rule: id, the Slack message group it posts in, defaults, how it measures.

    promql: the equivalent Prometheus expression, ``{threshold}`` and ``{interval}``
    (the check interval) to be filled in. show: how a value of this rule reads.
    """

    id: str
    group: str
    title: str
    defaults: RuleConfig
    measure: Measure
    promql: str
    show: Callable[[float], str]
    # What a rules file may set as its threshold: a share of a limit in (0, 1], a rate
    # per second, or nothing (the rule fires on a state, such as unreachable).
    threshold_kind: Literal["ratio", "rate", "none"] = "ratio"
    diagnosable: bool = True  # False: its alert carries no diagnosis (nothing to read)

    def value_text(self, value: float | None) -> str:
        """The rule's value in words (``83.0% of maxmemory``), ``no data`` without one."""
        return "no data" if value is None else self.show(value)

    def expression(self, config: RuleConfig, *, interval: str = "1m") -> str:
        """The PromQL expression of this rule under ``config``."""
        return self.promql.format(threshold=config.threshold, interval=interval)


def _threshold(config: RuleConfig) -> float:
    return config.threshold if config.threshold is not None else 0.0


def _memory_ratio(view: SeriesView, at: int, config: RuleConfig) -> Reading:
    used = promql.instant(view.points("redis_memory_used_bytes"), at)
    limit = promql.instant(view.points("redis_memory_max_bytes"), at)
    if used is None or limit is None:
        return Reading(False, None, "no memory reading in the last 5m")
    if limit <= 0:  # maxmemory 0: no limit to be near (the diagnosis reports it)
        return Reading(False, None, f"{format_bytes(used)} used, no maxmemory limit")
    ratio = used / limit
    threshold = _threshold(config)
    detail = f"{ratio:.1%} of {format_bytes(limit)} (threshold {threshold:.0%})"
    return Reading(ratio > threshold, ratio, detail)


def _eviction_rate(view: SeriesView, at: int, config: RuleConfig) -> Reading:
    per_second = promql.rate(view.points("redis_evicted_keys_total"), at, EVICTION_RANGE_MS)
    if per_second is None:
        return Reading(False, None, "fewer than two eviction readings in the last 5m")
    threshold = _threshold(config)
    detail = f"{per_second:,.1f} keys evicted per second over 5m (threshold {threshold:g}/s)"
    return Reading(per_second > threshold, per_second, detail)


def _store_down(view: SeriesView, at: int, config: RuleConfig) -> Reading:
    up = promql.instant(view.points("redis_up"), at)
    if up is None:
        return Reading(False, None, "no check in the last 5m")
    latest = view.latest
    error = latest.error if latest is not None and not latest.reachable else None
    return Reading(up == 0, up, error or ("reachable" if up else "unreachable"))


def _connections(view: SeriesView, at: int, config: RuleConfig) -> Reading:
    clients = promql.instant(view.points("redis_connected_clients"), at)
    limit = promql.instant(view.points("redis_config_maxclients"), at)
    ratio = clients / limit if clients is not None and limit else None
    threshold = _threshold(config)
    full = ratio is not None and ratio > threshold
    rejected = _rejected_since_last(view, at)
    parts = []
    if ratio is not None and clients is not None and limit is not None:
        parts.append(
            f"{clients:,.0f} of {limit:,.0f} clients ({ratio:.0%}, threshold {threshold:.0%})"
        )
    if rejected:
        parts.append(f"{rejected:,.0f} connections rejected since the last check")
    return Reading(full or rejected > 0, ratio, "; ".join(parts) or "no client reading")


def _rejected_since_last(view: SeriesView, at: int) -> float:
    """How many connections were rejected between the previous check and the latest one."""
    points = view.points("redis_rejected_connections_total")
    pair = promql.previous(points, at)
    latest = view.latest
    if pair is None or latest is None or pair[1][0] != to_ms(latest.at):
        return 0.0  # the latest check has no reading: nothing is known to have grown
    grown = pair[1][1] - pair[0][1]
    return grown if grown > 0 else 0.0  # a drop is a restart, not negative rejections


def _forecast(view: SeriesView, at: int, config: RuleConfig) -> Reading:
    used_points = view.points("redis_memory_used_bytes")
    fit = promql.predict_linear(used_points, at, FORECAST_RANGE_MS, FORECAST_HORIZON_S)
    limit = promql.instant(view.points("redis_memory_max_bytes"), at)
    if fit is None or limit is None:
        return Reading(False, None, "fewer than two memory readings in the last hour")
    if limit <= 0:
        return Reading(False, None, "no maxmemory limit to reach")
    predicted, slope = fit
    ratio = predicted / limit
    threshold = _threshold(config)
    holds = ratio > threshold and slope > 0
    return Reading(holds, ratio, _forecast_detail(view, at, slope, limit, threshold))


def _forecast_detail(
    view: SeriesView, at: int, slope: float, limit: float, threshold: float
) -> str:
    growth = f"{'+' if slope >= 0 else '-'}{format_bytes(abs(slope) * 3600)}/h over the last hour"
    used = promql.instant(view.points("redis_memory_used_bytes"), at)
    if slope <= 0 or used is None:
        return f"{growth}: not rising"
    left = (threshold * limit - used) / slope
    if left <= 0:
        return f"{growth}: already above {threshold:.0%} of {format_bytes(limit)}"
    return f"{growth}: {threshold:.0%} of {format_bytes(limit)} in about {format_duration(left)}"


MEMORY_WARNING = Rule(
    id="memory-warning",
    group=MEMORY_GROUP,
    title="Memory above the warning level",
    defaults=RuleConfig(threshold=0.80, for_seconds=600, severity=Severity.WARNING),
    measure=_memory_ratio,
    promql="redis_memory_used_bytes / redis_memory_max_bytes > {threshold}"
    " and redis_memory_max_bytes > 0",
    show=lambda v: f"{v:.1%} of maxmemory",
)
MEMORY_CRITICAL = Rule(
    id="memory-critical",
    group=MEMORY_GROUP,
    title="Memory above the critical level",
    defaults=RuleConfig(threshold=0.90, for_seconds=300, severity=Severity.CRITICAL),
    measure=_memory_ratio,
    promql=MEMORY_WARNING.promql,
    show=lambda v: f"{v:.1%} of maxmemory",
)
EVICTION_RATE = Rule(
    id="eviction-rate",
    group="eviction-rate",
    title="Keys being evicted",
    defaults=RuleConfig(threshold=10.0, for_seconds=300, severity=Severity.WARNING),
    measure=_eviction_rate,
    promql="rate(redis_evicted_keys_total[5m]) > {threshold}",
    show=lambda v: f"{v:,.1f} keys evicted/s",
    threshold_kind="rate",
)
STORE_DOWN = Rule(
    id="store-down",
    group="store-down",
    title="Session store unreachable",
    defaults=RuleConfig(threshold=None, for_seconds=60, severity=Severity.CRITICAL),
    measure=_store_down,
    promql="redis_up == 0",
    show=lambda v: "reachable" if v else "unreachable",
    threshold_kind="none",
    diagnosable=False,  # an unreachable store cannot be diagnosed
)
CONNECTIONS_EXHAUSTED = Rule(
    id="connections-exhausted",
    group="connections-exhausted",
    title="Client connections exhausted",
    defaults=RuleConfig(threshold=0.90, for_seconds=300, severity=Severity.WARNING),
    measure=_connections,
    promql="redis_connected_clients / redis_config_maxclients > {threshold}"
    " or (redis_rejected_connections_total"
    " - redis_rejected_connections_total offset {interval}) > 0",
    show=lambda v: f"{v:.0%} of maxclients",
)
MEMORY_FORECAST = Rule(
    id="memory-forecast",
    group="memory-forecast",
    title="Memory on course to the critical level",
    defaults=RuleConfig(threshold=0.90, for_seconds=900, severity=Severity.WARNING),
    measure=_forecast,
    promql="predict_linear(redis_memory_used_bytes[1h], 21600) / redis_memory_max_bytes"
    " > {threshold} and deriv(redis_memory_used_bytes[1h]) > 0"
    " and redis_memory_max_bytes > 0",
    show=lambda v: f"{v:.0%} of maxmemory in 6h at this rate",
)

# The one declaration of the rules: ids, order of evaluation and of display.
RULES: tuple[Rule, ...] = (
    MEMORY_WARNING,
    MEMORY_CRITICAL,
    EVICTION_RATE,
    STORE_DOWN,
    CONNECTIONS_EXHAUSTED,
    MEMORY_FORECAST,
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
RULE_IDS = tuple(RULES_BY_ID)


@dataclass(frozen=True)
class ConfiguredRule:
    """A rule with the configuration it runs under."""

    rule: Rule
    config: RuleConfig

    @property
    def id(self) -> str:
        """The rule id."""
        return self.rule.id


@dataclass(frozen=True)
class RuleBook:
    """Every rule with its configuration, in RULES order (disabled ones included)."""

    rules: tuple[ConfiguredRule, ...]

    @classmethod
    def defaults(cls) -> RuleBook:
        """The runbook's rules as they ship."""
        return cls(tuple(ConfiguredRule(rule, rule.defaults) for rule in RULES))

    @property
    def enabled(self) -> tuple[ConfiguredRule, ...]:
        """The rules that are evaluated."""
        return tuple(r for r in self.rules if r.config.enabled)

    def get(self, rule_id: str) -> ConfiguredRule:
        """The configured rule ``rule_id`` (KeyError if there is none)."""
        for configured in self.rules:
            if configured.id == rule_id:
                return configured
        raise KeyError(rule_id)
