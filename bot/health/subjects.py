"""A target's health subjects: the target itself, and one per shard of a cluster target.

A cluster target ``sessions`` is checked as ``sessions`` (the cluster: reachable, its
state, the shards' totals) and ``sessions/0-5460``... (each shard's primary). Each subject
has its own samples, rule states and alerts, so the rules and the alert life cycle are
the standalone target's, unchanged, and an alert names the shard it is about.

Why only ``store-down`` is evaluated on the cluster subject: memory, evictions and
connections are limits of each node (maxmemory is per primary). The total's ratio would
hide one full shard behind two empty ones, and a full cluster would alert twice, once
per shard and once for the total. The totals are kept in the cluster subject's samples
for the tables and the reports (which read the plain target name), never alerted on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.health.alerts import AlertPlan, alert_event, firing_for
from bot.health.model import EventKind, Sample
from bot.health.rules import STORE_DOWN, RuleBook
from bot.shards import parent

GONE_DETAIL = "no longer a shard of the cluster (resharded or removed)"


@dataclass(frozen=True)
class SubjectSamples:
    """One reading of a target: a sample per subject (the target's own first).

    complete: the samples name every subject the target has now (a cluster's discovery
    answered). False: only the target's own sample, unreachable; shards not heard of
    are then not taken for gone.
    """

    samples: tuple[Sample, ...]
    complete: bool = True


def cluster_totals(name: str, at: datetime, shards: Sequence[Sample]) -> Sample:
    """The cluster subject's reachable sample: the shards' sums where every shard was read.

    maxmemory is 0 (no limit) when one shard has none; the fragmentation ratio is None
    (a ratio does not add up). A reading one shard lacks leaves that total None.
    """

    def total(field: str) -> int | None:
        values = [getattr(s, field) for s in shards]
        return None if not values or None in values else sum(values)

    maxmemory = total("maxmemory")
    if maxmemory is not None and any(s.maxmemory == 0 for s in shards):
        maxmemory = 0
    return Sample(
        target=name,
        at=at,
        reachable=True,
        used_memory=total("used_memory"),
        maxmemory=maxmemory,
        evicted_keys=total("evicted_keys"),
        expired_keys=total("expired_keys"),
        dbsize=total("dbsize"),
        connected_clients=total("connected_clients"),
        maxclients=total("maxclients"),
        rejected_connections=total("rejected_connections"),
    )


def cluster_rules(rules: RuleBook) -> RuleBook:
    """``rules`` as the cluster subject runs them: every rule but store-down disabled."""
    return RuleBook(
        tuple(
            r if r.id == STORE_DOWN.id else replace(r, config=replace(r.config, enabled=False))
            for r in rules.rules
        )
    )


def is_cluster_subject(mode: str, target: str, subject: str) -> bool:
    """``subject`` is a cluster target's own (not one of its shards)."""
    return mode == "cluster" and subject == target


def vanished(
    target: str,
    read: SubjectSamples,
    states: Mapping[str, Mapping[str, object]],
    open_subjects: Iterable[str],
) -> list[str]:
    """Subjects of ``target`` with a rule state or an open alert that the reading no longer
    names (a resharding renamed the shard, or it was removed); none when it is incomplete."""
    if not read.complete:
        return []
    known = {s for s, by_rule in states.items() if by_rule} | set(open_subjects)
    seen = {sample.target for sample in read.samples}
    return sorted(s for s in known if parent(s) == target and s not in seen)


def gone_sample(subject: str, at: datetime) -> Sample:
    """What a vanished subject is evaluated with: reachable, no reading, so every rule goes
    inactive (store-down sees it up, the others see no data) and its alerts resolve."""
    return Sample(subject, at, reachable=True)


def gone_plan(plan: AlertPlan, now: datetime) -> AlertPlan:
    """``plan`` with its resolutions saying why: the subject is gone (not "no reading")."""
    resolved = {c.alert.id for c in plan.changes if not c.alert.firing}
    changes = tuple(
        replace(c, alert=replace(c.alert, detail=GONE_DETAIL)) if c.alert.id in resolved else c
        for c in plan.changes
    )
    by_id = {c.alert.id: c.alert for c in changes}
    events = []
    for event in plan.events:
        alert = by_id.get(event.alert_id or "")
        if event.kind is EventKind.RESOLVED and alert is not None:
            event = alert_event(EventKind.RESOLVED, alert, now, extra=firing_for(alert, now))
        events.append(event)
    return replace(plan, changes=changes, events=tuple(events))
