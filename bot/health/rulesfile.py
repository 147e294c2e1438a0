"""REDIS_MEM_RULES_FILE: per-rule overrides of the defaults, checked at start-up.

```yaml
rules:
  memory-warning: {threshold: 0.75, for: 30s}
  eviction-rate: {enabled: false}
```
Fields: ``threshold``, ``for``, ``keep_firing_for``, ``severity`` (warning|critical),
``enabled``. Any mistake is one ConfigError naming the file, the rule and the field.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.config_files import read_yaml
from bot.diagnosis.model import Severity
from bot.errors import ConfigError, UsageError
from bot.health.rules import RULES_BY_ID, ConfiguredRule, RuleBook, RuleConfig
from bot.units import clip, parse_duration

FIELDS = ("threshold", "for", "keep_firing_for", "severity", "enabled")
MAX_RATE = 1e9  # evictions per second: far beyond any Redis


def load_rules(path: Path | None) -> RuleBook:
    """The rules with the file's overrides applied (the defaults when ``path`` is None)."""
    book = RuleBook.defaults()
    if path is None:
        return book
    overrides = _read(path)
    rules = []
    for configured in book.rules:
        raw = overrides.get(configured.id)
        if raw is None:
            rules.append(configured)
            continue
        try:
            config = apply_overrides(configured.id, configured.config, raw)
        except UsageError as err:
            raise ConfigError(f"rules file {path}: {err.message}") from None
        rules.append(ConfiguredRule(configured.rule, config))
    return RuleBook(tuple(rules))


def _read(path: Path) -> dict[str, Any]:
    document = read_yaml(path, what="rules file")
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, dict):
        raise ConfigError(f"rules file {path}: expected a mapping under 'rules:' keyed by rule id")
    for rule_id, fields in rules.items():
        if rule_id not in RULES_BY_ID:
            known = ", ".join(RULES_BY_ID)
            raise ConfigError(f"rules file {path}: unknown rule {shown(rule_id)} (known: {known})")
        if not isinstance(fields, dict):
            raise ConfigError(f"rules file {path}: {rule_id}: expected a mapping of fields")
    return {str(k): v for k, v in rules.items()}


def apply_overrides(rule_id: str, config: RuleConfig, raw: dict[Any, Any]) -> RuleConfig:
    """``config`` with the fields of ``raw`` applied; UsageError names the bad field."""
    for name in raw:
        if name not in FIELDS:
            raise UsageError(
                f"{rule_id}: unknown field {shown(name)} (fields: {', '.join(FIELDS)})"
            )
    changes: dict[str, Any] = {}
    if "threshold" in raw:
        changes["threshold"] = _threshold(rule_id, raw["threshold"])
    for name, attr in (("for", "for_seconds"), ("keep_firing_for", "keep_firing_for_seconds")):
        if name in raw:
            changes[attr] = _duration(rule_id, name, raw[name])
    if "severity" in raw:
        changes["severity"] = _severity(rule_id, raw["severity"])
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise UsageError(f"{rule_id}.enabled: expected true or false")
        changes["enabled"] = raw["enabled"]
    return replace(config, **changes)


def _threshold(rule_id: str, value: Any) -> float:
    kind = RULES_BY_ID[rule_id].threshold_kind
    if kind == "none":
        raise UsageError(f"{rule_id}.threshold: {rule_id} has no threshold (it fires on a state)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{rule_id}.threshold: expected a number (got {shown(value)})")
    number = float(value) if isinstance(value, float) or -MAX_RATE < value < MAX_RATE else 0.0
    if kind == "ratio":  # a share of a limit (maxmemory, maxclients): (0, 1]
        if not 0 < number <= 1:  # NaN fails this too
            raise UsageError(
                f"{rule_id}.threshold: a share of the limit, between 0 and 1 (e.g. 0.8)"
            )
    elif not 0 < number <= MAX_RATE:
        raise UsageError(f"{rule_id}.threshold: must be above 0 and at most {MAX_RATE:g} keys/s")
    return number


def _duration(rule_id: str, name: str, value: Any) -> float:
    try:
        return parse_duration(value)
    except UsageError as err:
        raise UsageError(f"{rule_id}.{name}: {err.message}") from None


def _severity(rule_id: str, value: Any) -> Severity:
    if value not in (Severity.WARNING.value, Severity.CRITICAL.value):
        raise UsageError(f"{rule_id}.severity: expected warning or critical")
    return Severity(value)


def shown(value: Any) -> str:
    """What the file said, fit for one line: a string quoted and clipped, else its type.

    Never ``str()`` of the value itself: YAML aliases make a small file a huge list, and
    a 5,000-digit number cannot even be converted.
    """
    if isinstance(value, str):
        return repr(clip(value, 40))
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
