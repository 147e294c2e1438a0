"""A channel health report as a JSON-safe dict (``redis-mem report --json``).

The keys the issue names are a contract (docs/DESIGN.md): ``generated_at``, ``since``,
``audit_head`` {``seq``, ``hash``}, ``targets`` with ``target``, ``samples``, ``memory``
{``now_ratio``, ``peak_ratio``, ``min_ratio``, ``trend_bytes_per_hour``}, ``forecast``
{``ratio_90_at``, ``hours_left``}, ``evicted_keys``, ``keys`` {``now``, ``change``},
``alerts`` {``fired``, ``firing_seconds``} and ``fixes``. Others may be added beside
them (``until``, ``live``, ``capacity``...); none of those may be renamed. Times are
ISO 8601 in UTC with a ``Z`` (``report.timezone`` is for people, not for parsers).
"""

from __future__ import annotations

from typing import Any

from bot.diagnosis.serialize import capacity_to_dict, iso_utc
from bot.reports.model import (
    AlertFigures,
    AlertSpan,
    AuditHead,
    FixRecord,
    Forecast,
    LiveView,
    MemoryFigures,
    Report,
    TargetReport,
)
from bot.reports.window import window_text


def report_json(report: Report) -> dict[str, Any]:
    """The whole report: when, over which window, the audit head, then each target worst
    first."""
    return {
        "generated_at": iso_utc(report.generated_at),
        "since": iso_utc(report.since),
        "until": iso_utc(report.until),
        "window": window_text(report.window),
        "timezone": report.timezone,
        "channel": report.channel,
        "audit_head": audit_head_json(report.audit_head),
        "targets": [target_json(target) for target in report.targets],
    }


def audit_head_json(head: AuditHead | None) -> dict[str, Any] | None:
    """``{seq, hash, anchor}``; None for an empty trail."""
    if head is None:
        return None
    return {"seq": head.seq, "hash": head.hash, "anchor": head.anchor}


def target_json(target: TargetReport) -> dict[str, Any]:
    """One target's part of the report."""
    live = target.live
    plan = live.capacity if live is not None else None
    return {
        "target": target.target,
        "severity": target.severity.value,
        "samples": target.samples,
        "resolution": target.resolution.value,
        "memory": memory_json(target.memory),
        "forecast": forecast_json(target.forecast),
        "evicted_keys": target.evicted_keys,
        "keys": {"now": target.keys.now, "change": target.keys.change},
        "alerts": alerts_json(target.alerts),
        "fixes": [fix_json(fix) for fix in target.fixes],
        "live": None if live is None else live_json(live),
        "capacity": {
            "line": target.capacity_line,
            "plan": None if plan is None else capacity_to_dict(plan),
        },
    }


def memory_json(memory: MemoryFigures) -> dict[str, Any]:
    """Shares of maxmemory (None without a limit), bytes, and the trend in bytes per hour."""
    return {
        "now_ratio": memory.now_ratio,
        "peak_ratio": memory.peak_ratio,
        "min_ratio": memory.min_ratio,
        "trend_bytes_per_hour": memory.trend_bytes_per_hour,
        "now_bytes": memory.now_bytes,
        "peak_bytes": memory.peak_bytes,
        "min_bytes": memory.min_bytes,
        "maxmemory": memory.maxmemory,
    }


def forecast_json(forecast: Forecast) -> dict[str, Any]:
    """When memory reaches 90% (None: not at this trend, or unknown) and what it means."""
    at = forecast.ratio_90_at
    return {
        "ratio_90_at": None if at is None else iso_utc(at),
        "hours_left": forecast.hours_left,
        "outlook": forecast.outlook.value,
    }


def alerts_json(alerts: AlertFigures) -> dict[str, Any]:
    """Fired per rule in the window, seconds firing inside it, the ones still open."""
    return {
        "fired": dict(alerts.fired),
        "firing_seconds": alerts.firing_seconds,
        "open": [open_alert_json(alert) for alert in alerts.open],
    }


def open_alert_json(alert: AlertSpan) -> dict[str, Any]:
    """An alert still firing at the end of the window."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity.value,
        "fired_at": iso_utc(alert.fired_at),
    }


def fix_json(fix: FixRecord) -> dict[str, Any]:
    """A fix that ended in the window: what, on which target, how it ended, and who."""
    return {
        "at": iso_utc(fix.at),
        "action": fix.action,
        "target": fix.target,
        "outcome": fix.outcome,
        "requester": fix.requester,
        "approver": fix.approver,
        "summary": fix.summary,
        "request_id": fix.request_id,
    }


def live_json(live: LiveView) -> dict[str, Any]:
    """The diagnosis taken now: sessions without TTL (sampled), scenarios, or its error."""
    return {
        "checked_at": iso_utc(live.checked_at),
        "severity": live.severity.value,
        "session_keys": live.session_keys,
        "sampled": live.sampled,
        "without_ttl": live.without_ttl,
        "without_ttl_ratio": live.without_ttl_ratio,
        "mean_session_bytes": live.mean_session_bytes,
        "maxmemory": live.maxmemory,
        "scenarios": [{"id": s.id, "title": s.title} for s in live.scenarios],
        "error": live.error,
    }
