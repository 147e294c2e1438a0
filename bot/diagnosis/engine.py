"""``diagnose``: one snapshot in, the runbook's answer out. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import Thresholds
from bot.diagnosis.actions import ACTIONS, ActionRegistry
from bot.diagnosis.checks import run_checks
from bot.diagnosis.drift import PersistedConf, compare
from bot.diagnosis.facts import Facts, gather
from bot.diagnosis.findings import find_findings
from bot.diagnosis.model import Check, Diagnosis, Scenario, Severity
from bot.diagnosis.scenarios import find_scenarios
from bot.diagnosis.shards import judge_shards, with_shards
from bot.redisinfo.snapshot import Snapshot


def diagnose(
    snapshot: Snapshot,
    thresholds: Thresholds,
    persisted: PersistedConf | None = None,
    *,
    actions: ActionRegistry = ACTIONS,
) -> Diagnosis:
    """Run the six runbook checks, name the scenarios, and rank the fixes.

    ``persisted``: the redis.conf the store restarts with (or why it could not be read);
    differences from the live settings become ``drift`` and findings. None: not compared.
    ``actions``: the declared fixes the scenarios recommend from (tests pass their own).
    A cluster's snapshot (``Snapshot.cluster``) is judged as a whole and shard by shard
    (``bot.diagnosis.shards``): the worst of them is the severity.
    """
    whole = _diagnose_one(snapshot, thresholds, persisted, actions)
    if snapshot.cluster is None:
        return whole
    # Each shard by itself too (no drift: the ConfigMap is compared once, for the whole).
    shards = judge_shards(
        snapshot.cluster, lambda shard: _diagnose_one(shard, thresholds, None, actions)
    )
    return with_shards(
        whole,
        snapshot.cluster,
        shards,
        rank=lambda scenarios, mitigate: rank_actions(
            scenarios, mitigate=mitigate, actions=actions
        ),
        mitigation_ratio=thresholds.mitigation_ratio,
        refused={a.id: a.not_on_cluster for a in actions if a.not_on_cluster},
    )


def _diagnose_one(
    snapshot: Snapshot,
    thresholds: Thresholds,
    persisted: PersistedConf | None,
    actions: ActionRegistry,
) -> Diagnosis:
    facts = gather(snapshot, thresholds)
    checks = run_checks(facts)
    scenarios = find_scenarios(facts, actions)
    drift, drift_findings = compare(snapshot, persisted)
    findings = sorted((*find_findings(facts), *drift_findings), key=lambda x: -x.severity.rank)
    mem = snapshot.memory
    return Diagnosis(
        target=snapshot.target,
        checked_at=snapshot.taken_at,
        severity=overall_severity(checks, scenarios),
        used_memory=mem.used_memory,
        maxmemory=mem.maxmemory,
        usage_ratio=facts.usage_ratio,
        evicted_keys=snapshot.stats.evicted_keys,
        mem_fragmentation_ratio=mem.mem_fragmentation_ratio,
        dbsize=snapshot.dbsize,
        maxmemory_policy=snapshot.maxmemory_policy,
        session_keys=facts.session_keys,
        sample_mode=snapshot.sample.mode,
        ttl=facts.ttl,
        sizes=facts.sizes,
        idle=facts.idle,
        checks=checks,
        scenarios=scenarios,
        findings=tuple(findings),
        recommended_actions=rank_actions(
            scenarios, mitigate=_needs_mitigation(facts), actions=actions
        ),
        redis_version=snapshot.redis_version,
        used_memory_rss=mem.used_memory_rss,
        used_memory_peak=mem.used_memory_peak,
        policy_source=snapshot.policy_source,
        drift=drift,
        sentinel=snapshot.sentinel,
    )


def overall_severity(checks: Iterable[Check], scenarios: Iterable[Scenario]) -> Severity:
    """The worst check; at least a warning when a scenario is named.

    Only the memory check can be critical, so a critical diagnosis (exit code 1,
    a page) always means memory is at the runbook's alert level.
    """
    worst = max((c.status for c in checks), key=lambda s: s.rank, default=Severity.OK)
    if any(True for _ in scenarios) and worst is Severity.OK:
        return Severity.WARNING
    return worst


def _needs_mitigation(f: Facts) -> bool:
    ratio = f.usage_ratio
    return ratio is not None and ratio >= f.th.mitigation_ratio


def rank_actions(
    scenarios: Iterable[Scenario], *, mitigate: bool, actions: ActionRegistry = ACTIONS
) -> tuple[str, ...]:
    """Union of the scenarios' actions, most urgent first, no duplicates.

    Above the mitigation ratio, the mitigation fixes (evicting the idlest sessions) come
    first: the only fix that frees memory within seconds.
    """
    wanted = {a for s in scenarios for a in s.recommended_actions}
    ranked = [e.id for e in actions.by_urgency() if e.id in wanted]
    if mitigate:
        first = actions.mitigations()
        ranked = [*first, *(a for a in ranked if a not in first)]
    return tuple(ranked)
