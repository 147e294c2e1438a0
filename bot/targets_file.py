"""The targets file: its targets (``bot.config.Target``) and its alert routes.

``load_targets`` is the one way in: the file named by REDIS_MEM_TARGETS_FILE, else one
``default`` target from REDIS_URL. Nothing here runs at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.config import DEFAULT_TARGET_NAME, Settings, Target, first_error, slack_channel
from bot.config_files import read_yaml
from bot.errors import ConfigError, TargetNotFound
from bot.labels import check_labels


def load_targets(settings: Settings) -> dict[str, Target]:
    """The targets by name: the targets file when set, else one ``default`` from REDIS_URL."""
    if settings.targets_file is None:
        target = Target(
            name=DEFAULT_TARGET_NAME,
            redis_url=settings.redis_url,
            session_pattern=settings.session_pattern,
        )
        return {target.name: target}
    return _read_targets_file(settings.targets_file, settings.session_pattern)


def _read_targets_file(path: Path, default_pattern: str) -> dict[str, Target]:
    raw = read_yaml(path, what="targets file")
    entries = raw.get("targets") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"targets file {path}: expected a non-empty list under 'targets'")
    routes = _read_routes(path, raw)
    targets: dict[str, Target] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"targets file {path}: entry {index + 1} is not a mapping")
        entry.setdefault("session_pattern", default_pattern)
        try:
            target = Target.model_validate(entry)
        except ValidationError as err:
            raise ConfigError(
                f"targets file {path}: entry {index + 1}: {first_error(err)}"
            ) from None
        if target.name in targets:
            raise ConfigError(f"targets file {path}: duplicate target name {target.name!r}")
        targets[target.name] = routed(target, routes)
    return targets


class Route(BaseModel):
    """``- match: {team: payments}`` / ``channel: C0PAYMENTS``: where alerts of the
    targets that carry every label of ``match`` go, unless a target names its own channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: dict[str, str]
    channel: str

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> dict[str, str]:
        labels = check_labels(value)
        if not labels:
            raise ValueError("must name at least one label, e.g. {team: payments}")
        return labels

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> str:
        channel = slack_channel(value) if isinstance(value, str) else None
        if channel is None:
            raise ValueError("must be a Slack channel id (C0123ABCD) or name (#ops)")
        return channel

    def matches(self, labels: dict[str, str]) -> bool:
        """Every label of ``match`` is on the target with the same value."""
        return all(labels.get(key) == value for key, value in self.match.items())


def _read_routes(path: Path, raw: Any) -> list[Route]:
    """The targets file's top-level ``routes:`` (none: an empty list); ConfigError line."""
    entries = raw.get("routes") if isinstance(raw, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"targets file {path}: 'routes' must be a list of match/channel")
    routes = []
    for index, entry in enumerate(entries):
        try:
            routes.append(Route.model_validate(entry))
        except ValidationError as err:
            raise ConfigError(
                f"targets file {path}: route {index + 1}: {first_error(err)}"
            ) from None
    return routes


def routed(target: Target, routes: list[Route]) -> Target:
    """The target with the first matching route's channel, if it has none of its own."""
    if target.channel is not None:
        return target
    for route in routes:
        if route.matches(target.labels):
            return target.model_copy(update={"channel": route.channel})
    return target


def pick_target(targets: dict[str, Target], name: str | None) -> Target:
    """The named target, or the first one when no name is given."""
    if name is None:
        return next(iter(targets.values()))
    try:
        return targets[name]
    except KeyError:
        known = ", ".join(sorted(targets))
        raise TargetNotFound(f"unknown target {name!r} (known: {known})") from None
