"""Diagnosis and capacity plans as JSON-safe dicts (the ``--json`` contract in docs/DESIGN.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.diagnosis.capacity import CapacityPlan, plan_from_diagnosis
from bot.diagnosis.model import Check, Diagnosis, Drift, Finding, Scenario, ShardDiagnosis
from bot.replication import SentinelReading
from bot.shards import Topology


def diagnosis_to_dict(d: Diagnosis) -> dict[str, Any]:
    """The ``diagnose --json`` document: docs/DESIGN.md's keys first, then the extras."""
    plan = plan_from_diagnosis(d)
    return {
        "target": d.target,
        "checked_at": iso_utc(d.checked_at),
        "used_memory": d.used_memory,
        "maxmemory": d.maxmemory,
        "usage_ratio": d.usage_ratio,
        "severity": d.severity.value,
        "evicted_keys": d.evicted_keys,
        "mem_fragmentation_ratio": d.mem_fragmentation_ratio,
        "dbsize": d.dbsize,
        "maxmemory_policy": d.maxmemory_policy,
        "session_keys": d.session_keys,
        "ttl": {
            "sampled": d.ttl.sampled,
            "without_ttl": d.ttl.without_ttl,
            "without_ttl_ratio": d.ttl.without_ttl_ratio,
            "histogram": dict(d.ttl.histogram),
            "long_ttl": d.ttl.long_ttl,
        },
        "sizes": {
            "sampled": d.sizes.sampled,
            "mean_bytes": d.sizes.mean_bytes,
            "p95_bytes": d.sizes.p95_bytes,
            "max_bytes": d.sizes.max_bytes,
            "top_keys": [{"key": key, "bytes": n} for key, n in d.sizes.top_keys],
        },
        "scenarios": [_scenario(s) for s in d.scenarios],
        "recommended_actions": list(d.recommended_actions),
        "checks": [_check(c) for c in d.checks],
        "findings": [_finding(f) for f in d.findings],
        "sample_mode": d.sample_mode,
        "idle": {
            "sampled": d.idle.sampled,
            "measure": d.idle.measure,
            "stale": d.idle.stale,
            "stale_ratio": d.idle.stale_ratio,
            "p50_idle_seconds": d.idle.p50_idle_seconds,
            "max_idle_seconds": d.idle.max_idle_seconds,
        },
        "capacity": capacity_to_dict(plan) if plan is not None else None,
        "redis_version": d.redis_version,
        "used_memory_rss": d.used_memory_rss,
        "used_memory_peak": d.used_memory_peak,
        "policy_source": d.policy_source,
        # null: not compared (no Kubernetes coordinates, or the ConfigMap unreadable: a
        # finding says why); []: compared, no difference.
        "drift": None if d.drift is None else [_drift(x) for x in d.drift],
        # null: not a mode: sentinel target.
        "sentinel": None if d.sentinel is None else _sentinel(d.sentinel),
        # null: not a mode: cluster target. Else the topology and each shard, worst first.
        "cluster": None if d.cluster is None else _cluster(d.cluster, d.shards),
    }


def capacity_to_dict(plan: CapacityPlan) -> dict[str, Any]:
    """A capacity plan for ``capacity --json`` (and the ``capacity`` part of a diagnosis)."""
    return {
        "users": plan.users,
        "sessions_per_user": plan.sessions_per_user,
        "sessions": plan.sessions,
        "session_size": plan.session_size,
        "overhead": plan.overhead,
        "required_bytes": plan.required_bytes,
        "recommended_min_bytes": plan.recommended_min_bytes,
        "recommended_max_bytes": plan.recommended_max_bytes,
        "maxmemory": plan.maxmemory_directive,
        "maxmemory_bytes": plan.maxmemory_bytes,
        "pod_memory_request": plan.pod_memory_request,
        "pod_memory_limit": plan.pod_memory_limit,
        "pod_memory_limit_bytes": plan.pod_memory_limit_bytes,
        "current_maxmemory": plan.current_maxmemory,
        "current_is_enough": plan.current_is_enough,
    }


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _scenario(s: Scenario) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "runbook": s.runbook,
        "evidence": list(s.evidence),
        "recommended_actions": list(s.recommended_actions),
    }


def _check(c: Check) -> dict[str, Any]:
    return {
        "id": c.id,
        "step": c.step,
        "title": c.title,
        "status": c.status.value,
        "summary": c.summary,
        "details": c.details,
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {"id": f.id, "severity": f.severity.value, "message": f.message}


def _sentinel(reading: SentinelReading) -> dict[str, Any]:
    return {
        "master_name": reading.master_name,
        "primary": reading.primary,
        "sentinel": reading.sentinel,
        "replicas": [
            {"address": r.address, "lag_bytes": r.lag_bytes, "link": r.link, "error": r.error}
            for r in reading.replicas
        ],
    }


def _cluster(topology: Topology, shards: tuple[ShardDiagnosis, ...]) -> dict[str, Any]:
    return {
        "state": topology.state,
        "seed": topology.seed,
        "problem": topology.problem,
        "shards": [_shard(s) for s in shards],
    }


def _shard(s: ShardDiagnosis) -> dict[str, Any]:
    d = s.diagnosis
    return {
        "name": s.name,
        "primary": s.shard.primary,
        "slots": s.shard.slot_count,
        "used_memory": None if d is None else d.used_memory,
        "maxmemory": None if d is None else d.maxmemory,
        "usage_ratio": None if d is None else d.usage_ratio,
        "session_keys": None if d is None else d.session_keys,
        "severity": s.severity.value,
        "scenarios": list(s.scenario_ids),
        "error": s.error,
    }


def _drift(d: Drift) -> dict[str, Any]:
    return {"directive": d.directive, "live": d.live, "configmap": d.configmap}
