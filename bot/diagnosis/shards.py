"""A cluster judged shard by shard and as a whole. Pure: no I/O.

The whole cluster's snapshot (every readable primary added up) is diagnosed as a
standalone store is; each primary's own snapshot is diagnosed again by itself, because
a shard at 92% is critical while the total reads 60%, and a TTL leak confined to one
hash tag hides in the cluster's average. The shards are ordered worst first; the
diagnosis's scenarios and findings name the shard they were seen on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from bot.cluster_reading import ClusterReading
from bot.diagnosis.facts import pct, size
from bot.diagnosis.model import Diagnosis, Finding, Scenario, Severity, ShardDiagnosis
from bot.redisinfo.snapshot import Snapshot

# shard-skew: a shard this many times the shards' mean (memory or session keys) ...
SKEW_RATIO = 1.5
# ... and this far above it, so a tiny or empty cluster (an empty node's ~1.5 MB, a few
# hundred keys' difference) never flaps between skewed and not.
SKEW_MIN_BYTES = 8 * 1024**2
SKEW_MIN_KEYS = 1000
TAG_SHARE = 0.5  # a hash tag on at least this share of a skewed shard's sampled keys is named
NAMED_SHARDS = 5  # "also on shard a, b, c, d, e and 7 more"
SKEW_FINDINGS = 3  # skewed shards told one by one (most skewed first); the rest in one line

Judge = Callable[[Snapshot], Diagnosis]
T = TypeVar("T", Scenario, Finding)


@dataclass(frozen=True)
class ShardLoad:
    """What the skew finding compares: one readable shard's memory, sessions, and the hash
    tag most of its sampled session keys share (None: no dominant tag)."""

    label: str
    used_memory: int
    session_keys: int
    tag: str | None = None
    tag_share: float = 0.0


def judge_shards(reading: ClusterReading, judge: Judge) -> tuple[ShardDiagnosis, ...]:
    """Every shard diagnosed by itself (``judge``: the engine), worst first."""
    judged = [
        ShardDiagnosis(r.shard, diagnosis=judge(r.snapshot))
        if r.snapshot is not None
        else ShardDiagnosis(r.shard, error=r.error or "unreadable")
        for r in reading.shards
    ]
    return tuple(sorted(judged, key=_worst_first))


def _worst_first(s: ShardDiagnosis) -> tuple[int, int, float, int]:
    d = s.diagnosis
    ratio = -1.0 if d is None or d.usage_ratio is None else d.usage_ratio
    return (-s.severity.rank, 0 if d is None else 1, -ratio, -(d.used_memory if d else 0))


def with_shards(
    whole: Diagnosis,
    reading: ClusterReading,
    shards: tuple[ShardDiagnosis, ...],
    *,
    rank: Callable[[Sequence[Scenario], bool], tuple[str, ...]],
    mitigation_ratio: float,
    refused: Mapping[str, str] | None = None,
) -> Diagnosis:
    """The whole cluster's diagnosis with its shards: worst severity, scenarios and
    findings named by shard, fixes from the whole and the worst shards (``rank``:
    the engine's ``rank_actions``). ``refused``: fix id -> why it is not run on a cluster;
    a scenario then does not offer it and says why, and it is never recommended."""
    refused = refused or {}
    scenarios = _without(_scenarios(whole.scenarios, shards), refused)
    findings = (*cluster_findings(reading, shards), *_findings(whole.findings, shards))
    severities = [whole.severity, *(s.severity for s in shards)]
    if reading.topology.problem is not None:
        severities.append(Severity.CRITICAL)
    mitigate = any(
        d.usage_ratio is not None and d.usage_ratio >= mitigation_ratio
        for d in (whole, *(s.diagnosis for s in shards if s.diagnosis is not None))
    )
    return replace(
        whole,
        severity=max(severities, key=lambda s: s.rank),
        scenarios=scenarios,
        findings=tuple(sorted(findings, key=lambda x: -x.severity.rank)),
        recommended_actions=tuple(a for a in rank(scenarios, mitigate) if a not in refused),
        cluster=reading.topology,
        shards=shards,
    )


def _scenarios(
    whole: tuple[Scenario, ...], shards: tuple[ShardDiagnosis, ...]
) -> tuple[Scenario, ...]:
    """The whole's scenarios, each saying which shards show it; then those seen on some
    shards only, as the worst such shard's, titled with it."""
    seen = {s.id for s in whole}
    out = [_on(s, [x for x in shards if s.id in x.scenario_ids], "on shard") for s in whole]
    for scenario_id, (first, *others) in _by_id(shards, lambda d: d.scenarios).items():
        if scenario_id in seen:
            continue
        own: Scenario = first[1]
        titled = replace(own, title=f"{own.title} on shard {first[0].label}")
        # Its evidence is that shard's own: say so in the evidence too (the terminal shows
        # the runbook's heading, not the title).
        only = "" if others else " only"
        out.append(_on(titled, [first[0], *(s for s, _ in others)], "seen on shard", only))
    return tuple(out)


def _without(scenarios: tuple[Scenario, ...], refused: Mapping[str, str]) -> tuple[Scenario, ...]:
    """The scenarios without the fixes a cluster refuses, each saying which and why."""
    out = []
    for scenario in scenarios:
        dropped = [a for a in scenario.recommended_actions if a in refused]
        if not dropped:
            out.append(scenario)
            continue
        kept = tuple(a for a in scenario.recommended_actions if a not in refused)
        why = tuple(f"{a} is not offered on a cluster: {refused[a]}" for a in dropped)
        out.append(replace(scenario, evidence=(*scenario.evidence, *why), recommended_actions=kept))
    return tuple(out)


def _findings(
    whole: tuple[Finding, ...], shards: tuple[ShardDiagnosis, ...]
) -> tuple[Finding, ...]:
    """The whole's findings, then a shard's warning or critical one the whole lacks
    (a shard at 96% needs its mitigation while the total is fine), named by shard."""
    seen = {f.id for f in whole}
    out = list(whole)
    shard_findings = _by_id(
        shards, lambda d: tuple(f for f in d.findings if f.severity is not Severity.OK)
    )
    for finding_id, (first, *others) in shard_findings.items():
        if finding_id in seen:
            continue
        shard, own = first
        more = f" (also on {_names([s for s, _ in others])})" if others else ""
        out.append(replace(own, message=f"on shard {shard.label}: {own.message}{more}"))
    return tuple(out)


def _by_id(
    shards: Iterable[ShardDiagnosis], items: Callable[[Diagnosis], tuple[T, ...]]
) -> dict[str, list[tuple[ShardDiagnosis, T]]]:
    """Each scenario or finding id with the shards it is on, worst shard first."""
    grouped: dict[str, list[tuple[ShardDiagnosis, T]]] = {}
    for shard in shards:
        for item in items(shard.diagnosis) if shard.diagnosis is not None else ():
            grouped.setdefault(item.id, []).append((shard, item))
    return grouped


def _on(
    scenario: Scenario, shards: Sequence[ShardDiagnosis], lead: str, tail: str = ""
) -> Scenario:
    if not shards:
        return scenario
    return replace(scenario, evidence=(*scenario.evidence, f"{lead} {_names(shards)}{tail}"))


def _names(shards: Sequence[ShardDiagnosis]) -> str:
    named = ", ".join(s.label for s in shards[:NAMED_SHARDS])
    rest = len(shards) - NAMED_SHARDS
    return f"{named} and {rest} more" if rest > 0 else named


# --- the cluster's own findings -------------------------------------------------------------


def cluster_findings(
    reading: ClusterReading, shards: tuple[ShardDiagnosis, ...]
) -> tuple[Finding, ...]:
    """``cluster-state``, ``shard-down`` for each unreadable primary, ``shard-skew``,
    ``policy-mismatch``."""
    found: list[Finding] = []
    topology = reading.topology
    if topology.problem is not None:
        found.append(
            Finding(
                "cluster-state",
                Severity.CRITICAL,
                f"cluster: {topology.problem} (cluster_state {topology.state}, "
                f"seen by seed {topology.seed}): some keys cannot be read or written",
            )
        )
    readable = sum(1 for s in shards if s.diagnosis is not None)
    for shard in shards:
        if shard.error is not None:
            message = (
                f"shard {shard.label} unreadable: {shard.error}; the other {readable} shards "
                "are diagnosed without it (its memory is in no total)"
            )
            found.append(Finding("shard-down", Severity.CRITICAL, message))
    found.extend(shard_skew(loads(reading)))
    found.extend(policy_mismatch(shards))
    return tuple(found)


def loads(reading: ClusterReading) -> list[ShardLoad]:
    """The readable shards' loads, for ``shard_skew``."""
    out = []
    for r in reading.shards:
        snap = r.snapshot
        if snap is None:
            continue
        tag, share = dominant_tag(k.key for k in snap.sample.keys)
        label = r.shard.label
        out.append(
            ShardLoad(label, snap.memory.used_memory, snap.sample.session_keys_estimate, tag, share)
        )
    return out


def shard_skew(shards: Sequence[ShardLoad]) -> tuple[Finding, ...]:
    """A shard holding far more memory or session keys than the shards' mean.

    Far more: at least ``SKEW_RATIO`` times the mean AND ``SKEW_MIN_BYTES`` (or
    ``SKEW_MIN_KEYS``) above it. Needs two shards or more.
    """
    if len(shards) < 2:
        return ()
    mean_mem = sum(s.used_memory for s in shards) / len(shards)
    mean_keys = sum(s.session_keys for s in shards) / len(shards)
    found: list[tuple[float, ShardLoad, list[str]]] = []
    for shard in shards:
        parts = []
        if _skewed(shard.used_memory, mean_mem, SKEW_MIN_BYTES):
            parts.append(
                f"{shard.used_memory / mean_mem:.1f}x the shards' mean used_memory "
                f"({size(shard.used_memory)} vs {size(mean_mem)})"
            )
        if _skewed(shard.session_keys, mean_keys, SKEW_MIN_KEYS):
            parts.append(
                f"{shard.session_keys / mean_keys:.1f}x the shards' mean session keys "
                f"({shard.session_keys:,} vs {mean_keys:,.0f})"
            )
        if parts:
            by_memory = shard.used_memory / mean_mem if mean_mem > 0 else 0.0
            ratio = max(by_memory, shard.session_keys / mean_keys if mean_keys > 0 else 0.0)
            found.append((ratio, shard, parts))
    found.sort(key=lambda item: -item[0])
    told = [
        Finding("shard-skew", Severity.WARNING, _skew_message(shard, parts))
        for _, shard, parts in found[:SKEW_FINDINGS]
    ]
    if len(found) > SKEW_FINDINGS:
        rest = ", ".join(shard.label for _, shard, _ in found[SKEW_FINDINGS:][:NAMED_SHARDS])
        more = len(found) - SKEW_FINDINGS
        extra = f" and {more - NAMED_SHARDS} more" if more > NAMED_SHARDS else ""
        message = f"{more} more shards hold {SKEW_RATIO}x the shards' mean or more: {rest}{extra}"
        told.append(Finding("shard-skew", Severity.WARNING, message))
    return tuple(told)


def _skewed(value: float, mean: float, floor: float) -> bool:
    return mean > 0 and value >= SKEW_RATIO * mean and value - mean >= floor


def _skew_message(shard: ShardLoad, parts: list[str]) -> str:
    tag = ""
    if shard.tag is not None:
        share = pct(shard.tag_share)
        tag = f"; {share} of its sampled session keys share the hash tag {{{shard.tag}}}"
    return (
        f"shard {shard.label} holds {' and '.join(parts)}: hot slot or hash-tag abuse: "
        f"keys like session:{{tag}}:* land on one slot{tag}"
    )


def dominant_tag(keys: Iterable[str]) -> tuple[str | None, float]:
    """The hash tag (Redis's rule: the first ``{...}``, non-empty) most keys share, and the
    share of keys that carry it; (None, share) when under ``TAG_SHARE``."""
    counts: Counter[str] = Counter()
    total = 0
    for key in keys:
        total += 1
        start = key.find("{")
        end = key.find("}", start + 1) if start >= 0 else -1
        if end > start + 1:
            counts[key[start + 1 : end]] += 1
    if not counts:
        return None, 0.0
    tag, count = counts.most_common(1)[0]
    share = count / total
    return (tag if share >= TAG_SHARE else None), share


def policy_mismatch(shards: Sequence[ShardDiagnosis]) -> tuple[Finding, ...]:
    """The shards disagree on maxmemory-policy: the cluster evicts differently per slot."""
    policies: dict[str, list[ShardDiagnosis]] = {}
    for shard in shards:
        if shard.diagnosis is not None:
            policies.setdefault(shard.diagnosis.maxmemory_policy, []).append(shard)
    if len(policies) < 2:
        return ()
    ordered = sorted(policies.items(), key=lambda item: -len(item[1]))
    said = "; ".join(f"{policy} on {_names(on)}" for policy, on in ordered)
    message = f"the shards disagree on maxmemory-policy: {said}"
    return (Finding("policy-mismatch", Severity.WARNING, message),)
