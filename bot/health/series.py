"""A target's recent samples as the PromQL series our rules read (``redis_*`` names)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property

from bot.health.model import Sample
from bot.health.promql import Point

# The series a sample feeds, by redis_exporter's names (what the oracle test writes).
SERIES: dict[str, Callable[[Sample], float | None]] = {
    "redis_up": lambda s: 1.0 if s.reachable else 0.0,
    "redis_memory_used_bytes": lambda s: _num(s.used_memory),
    "redis_memory_max_bytes": lambda s: _num(s.maxmemory),
    "redis_evicted_keys_total": lambda s: _num(s.evicted_keys),
    "redis_connected_clients": lambda s: _num(s.connected_clients),
    "redis_config_maxclients": lambda s: _num(s.maxclients),
    "redis_rejected_connections_total": lambda s: _num(s.rejected_connections),
}


def _num(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def to_ms(when: datetime) -> int:
    """Milliseconds since the epoch, as Prometheus stamps samples."""
    return round(when.timestamp() * 1000)


class SeriesView:
    """The samples of one target, oldest first, read as series (built per evaluation)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = samples

    @cached_property
    def _points(self) -> dict[str, list[Point]]:
        points: dict[str, list[Point]] = {name: [] for name in SERIES}
        for sample in self._samples:
            at = to_ms(sample.at)
            for name, read in SERIES.items():
                value = read(sample)
                if value is not None:
                    points[name].append((at, value))
        return points

    def points(self, name: str) -> list[Point]:
        """The (ms, value) points of series ``name`` (an unreachable check adds none but up)."""
        return self._points[name]

    @property
    def latest(self) -> Sample | None:
        """The newest sample, if any."""
        return self._samples[-1] if self._samples else None
