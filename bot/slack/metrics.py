"""Prometheus metrics of the Slack face, on a registry passed in (never the global one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Diagnosis of a sampled store takes well under a second; a --full scan may take minutes.
DIAGNOSIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class BotMetrics:
    """Commands handled (by subcommand and outcome) and how long diagnoses take."""

    registry: CollectorRegistry
    commands: Counter
    diagnosis_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> BotMetrics:
        """Register the metrics on ``registry`` (a fresh one when None)."""
        registry = registry if registry is not None else CollectorRegistry()
        commands = Counter(
            "redis_mem_slack_commands",
            "Slash commands handled, by subcommand and outcome.",
            ["subcommand", "outcome"],
            registry=registry,
        )
        diagnosis_seconds = Histogram(
            "redis_mem_diagnosis_duration_seconds",
            "Time to snapshot and diagnose one target.",
            ["target"],
            buckets=DIAGNOSIS_BUCKETS,
            registry=registry,
        )
        return cls(registry=registry, commands=commands, diagnosis_seconds=diagnosis_seconds)

    def command_handled(self, *, subcommand: str, outcome: str) -> None:
        """Count one handled command."""
        self.commands.labels(subcommand=subcommand, outcome=outcome).inc()


def leader_gauge(registry: CollectorRegistry, is_leader: Callable[[], bool]) -> Gauge:
    """``redis_mem_leader``: 1 while this replica runs the scheduled jobs, else 0 (at scrape)."""
    gauge = Gauge(
        "redis_mem_leader",
        "1 while this replica leads (runs the scheduled jobs), else 0.",
        registry=registry,
    )
    gauge.set_function(lambda: 1.0 if is_leader() else 0.0)
    return gauge
