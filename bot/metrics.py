"""The bot's own Prometheus metrics beside the Slack face's (bot/slack/metrics.py).

One adapter implements the observer ports: the health checks' (``CheckObserver``), the
alert dispatcher's (``AlertObserver``), the Slack client's (``SlackCallObserver``,
bot/slack/observed.py, matched structurally) and, as an ``AuditSink`` decorator, the
approval requests' transitions, read from the ``remediation.*`` audit rows every
transition writes before (or as) it takes effect.

Label values come from fixed sets only: target names from the targets file, rule ids
from the rule book, event kinds, Slack method names and error codes (bounded in
bot/slack/observed.py), approval states. Never a user id, a key name or free text.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from bot.audit.entry import AuditEntry, AuditSink
from bot.health.model import AlertEvent
from bot.health.ports import CheckOutcome
from bot.health.rules import RULES_BY_ID

OTHER = "other"
# A check is bounded by REDIS_MEM_CHECK_TIMEOUT (seconds); a healthy one takes milliseconds.
CHECK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The audit actions ``remediation.<state>`` that are a request's transitions (the others,
# cancel_requested, not_started, verified, say something about a request without moving it).
APPROVAL_STATES = (
    "requested",
    "approved",
    "rejected",
    "expired",
    "refused",
    "executed",
    "failed",
    "cancelled",
    "interrupted",
)
_APPROVAL_ACTIONS = {f"remediation.{state}": state for state in APPROVAL_STATES}


@dataclass(frozen=True)
class ServiceMetrics:
    """Checks by target and outcome, alerts by rule and state, Slack API errors by method
    and error, approval transitions by state."""

    checks: Counter
    check_seconds: Histogram
    alerts: Counter
    slack_errors: Counter
    approvals: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ServiceMetrics:
        """Register the metrics on ``registry`` (never the global one)."""
        metrics = cls(
            checks=Counter(
                "redis_mem_checks",
                "Scheduled health checks, by target and outcome (ok, unreachable, error).",
                ["target", "outcome"],
                registry=registry,
            ),
            check_seconds=Histogram(
                "redis_mem_check_duration_seconds",
                "Time to read, evaluate and store one target's health check.",
                ["target"],
                buckets=CHECK_BUCKETS,
                registry=registry,
            ),
            alerts=Counter(
                "redis_mem_alerts",
                "Alert events delivered (fired, escalated, resolved...), by rule and state.",
                ["rule", "state"],
                registry=registry,
            ),
            slack_errors=Counter(
                "redis_mem_slack_api_errors",
                "Slack Web API calls that failed after their retries, by method and error.",
                ["method", "error"],
                registry=registry,
            ),
            approvals=Counter(
                "redis_mem_approvals",
                "Approval request transitions, by state (counted as each is audited).",
                ["state"],
                registry=registry,
            ),
        )
        for state in APPROVAL_STATES:  # a fixed set: shown at 0 from the start
            metrics.approvals.labels(state=state)
        return metrics

    def checked(self, target: str, seconds: float, outcome: CheckOutcome) -> None:
        """One health check of ``target`` (a name from the targets file)."""
        self.checks.labels(target=target, outcome=outcome.value).inc()
        self.check_seconds.labels(target=target).observe(max(0.0, seconds))

    def delivered(self, event: AlertEvent) -> None:
        """One alert event delivered by the dispatcher."""
        rule = event.rule if event.rule in RULES_BY_ID else OTHER
        self.alerts.labels(rule=rule, state=event.kind.value).inc()

    def slack_call_failed(self, method: str, error: str) -> None:
        """One failed Web API call (labels already bounded by bot/slack/observed.py)."""
        self.slack_errors.labels(method=method, error=error).inc()

    def approval_audited(self, entry: AuditEntry) -> None:
        """Count ``entry`` when it is a request's transition (``remediation.<state>``)."""
        state = _APPROVAL_ACTIONS.get(entry.action)
        if state is not None:
            self.approvals.labels(state=state).inc()

    def counting(self, sink: AuditSink) -> AuditSink:
        """``sink``, counting the approval transitions it records."""
        return ApprovalCountingSink(sink, self)


class ApprovalCountingSink:
    """An AuditSink that records into ``inner``, then counts approval transitions.

    Only rows that were written count: a transition whose row could not be written
    either did not happen (the row comes first) or is written later by the audit
    backlog (bot.approvals.backlog), which this sink does not see.
    """

    def __init__(self, inner: AuditSink, metrics: ServiceMetrics) -> None:
        """``inner``: the real sink (the audit store)."""
        self._inner = inner
        self._metrics = metrics

    def record(self, entry: AuditEntry) -> None:
        """Record ``entry`` (AuditUnavailable propagates, nothing counted), then count it."""
        self._inner.record(entry)
        self._metrics.approval_audited(entry)
