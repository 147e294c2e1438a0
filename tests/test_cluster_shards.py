"""A cluster's diagnosis on hand-built readings: the skew thresholds, severity, and the faces."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.console import Console

from bot.cluster_reading import ClusterReading, ShardReading
from bot.config import Thresholds
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Severity
from bot.diagnosis.serialize import diagnosis_to_dict
from bot.diagnosis.shards import SKEW_MIN_BYTES, SKEW_MIN_KEYS, ShardLoad, dominant_tag, shard_skew
from bot.presenters.terminal import render_diagnosis
from bot.redisinfo.snapshot import Snapshot
from bot.shards import SLOTS, Shard, Topology
from bot.slack.blocks.diagnosis import diagnosis_message
from tests.test_diagnosis import MB, sessions, snap
from tests.test_slack_blocks import serialised


def load(mb: float, keys: int = 0, name: str = "s") -> ShardLoad:
    return ShardLoad(name, round(mb * MB), keys)


@pytest.mark.parametrize(
    ("loads", "skewed"),
    [
        ([load(30), load(10), load(20)], True),  # exactly 1.5x the mean, 10 MB above it
        ([load(29), load(10), load(20)], False),  # 1.47x
        ([load(3), load(1), load(1)], False),  # 1.8x, but 1.3 MB above the mean: a tiny cluster
        ([load(1, 1600), load(1), load(1)], True),  # 3x the mean keys, 1,067 above it
        ([load(1, 1400), load(1), load(1)], False),  # 3x, but 933 keys above: under the floor
        ([load(500)], False),  # one shard has no mean to differ from
        ([load(0), load(0)], False),  # an empty cluster
    ],
)
def test_the_skew_needs_the_ratio_and_the_floor(loads: list[ShardLoad], skewed: bool) -> None:
    assert bool(shard_skew(loads)) is skewed
    assert SKEW_MIN_BYTES == 8 * MB and SKEW_MIN_KEYS == 1000  # what the cases above straddle


def test_the_skew_names_the_shard_the_ratios_and_the_tag() -> None:
    hot = ShardLoad("5461-10922 (127.0.0.1:7002)", 60 * MB, 9000, "hot", 0.98)
    [finding] = shard_skew([hot, load(10, 500, "a"), load(11, 500, "b")])
    assert finding.id == "shard-skew" and finding.severity is Severity.WARNING
    assert finding.message == (
        "shard 5461-10922 (127.0.0.1:7002) holds 2.2x the shards' mean used_memory "
        "(60.0 MB vs 27.0 MB) and 2.7x the shards' mean session keys (9,000 vs 3,333): "
        "hot slot or hash-tag abuse: keys like session:{tag}:* land on one slot; "
        "98.0% of its sampled session keys share the hash tag {hot}"
    )


def test_the_dominant_hash_tag_follows_redis_rules() -> None:
    assert dominant_tag(["s:{a}:1", "s:{a}:2", "s:{b}:3"]) == ("a", 2 / 3)
    assert dominant_tag(["s:{}:1", "s:{a}:2", "s:3", "s:4"]) == (None, 0.25)  # {} is no tag
    assert dominant_tag(["s:1"]) == (None, 0.0)


def cluster_snapshot(
    shards: list[tuple[Snapshot | None, str | None]], state: str = "ok"
) -> Snapshot:
    """A cluster's reading of hand-built shard snapshots (None and an error: unreadable),
    merged as the probe merges them."""
    from bot.redisinfo.cluster_probe import merge

    width = SLOTS // len(shards)
    topo_shards = tuple(
        Shard(f"10.0.0.{i}:6379", ((i * width, (i + 1) * width - 1),)) for i in range(len(shards))
    )
    topology = Topology(state=state, seed="10.0.0.0:6379", shards=topo_shards)
    readings = tuple(
        ShardReading(shard, snapshot=s, error=e)
        for shard, (s, e) in zip(topo_shards, shards, strict=True)
    )
    return merge("sessions", ClusterReading(topology, readings))


def test_the_whole_sample_keeps_every_shard_in_proportion() -> None:
    hot = snap(keys=sessions(500, ttl=-1, prefix="session:{hot}:"), estimate=5000)
    small = snap(keys=sessions(100))  # every one of its 100 keys measured
    whole = cluster_snapshot([(hot, None), (small, None)])
    # 10% of each shard's keys: all 500 of the hot shard's, 10 of the small one's.
    assert len(whole.sample.keys) == 510 and whole.sample.session_keys_estimate == 5100
    assert sum(1 for k in whole.sample.keys if k.ttl == -1) == 500
    full = cluster_snapshot([(replace(hot, sample=replace(hot.sample, mode="full")), None)] * 2)
    assert full.sample.mode == "full" and len(full.sample.keys) == 1000


def test_a_shard_at_92_percent_is_critical_while_the_total_is_not() -> None:
    full = snap(used=92 * MB, maxmemory=100 * MB)
    calm = snap(used=40 * MB, maxmemory=100 * MB)
    result = diagnose(cluster_snapshot([(calm, None), (full, None), (calm, None)]), Thresholds())
    assert result.usage_ratio == pytest.approx(172 / 300)
    assert result.severity is Severity.CRITICAL
    assert result.shards[0].shard.primary == "10.0.0.1:6379"
    assert result.shards[0].severity is Severity.CRITICAL
    assert [s.severity for s in result.shards[1:]] == [Severity.OK, Severity.OK]
    assert result.used_memory == 172 * MB and result.maxmemory == 300 * MB


def test_an_unreadable_shard_and_a_failed_cluster_are_critical_findings() -> None:
    calm = snap(used=10 * MB, keys=sessions(50, ttl=-1))  # a TTL leak on every shard
    result = diagnose(
        cluster_snapshot(
            [(calm, None), (None, "cannot reach Redis: refused"), (calm, None)], "fail"
        ),
        Thresholds(),
    )
    assert result.severity is Severity.CRITICAL
    assert result.shards[0].error == "cannot reach Redis: refused"
    found = {f.id: f.message for f in result.findings}
    assert found["shard-down"].startswith("shard 5461-10921 (10.0.0.1:6379) unreadable: ")
    assert found["cluster-state"].startswith("cluster: cluster_state is fail")
    leak = next(s for s in result.scenarios if s.id == "ttl-leak")
    assert leak.evidence[-1] == "on shard 0-5460 (10.0.0.0:6379), 10922-16382 (10.0.0.2:6379)"
    doc = diagnosis_to_dict(result)["cluster"]
    assert (doc["state"], doc["seed"]) == ("fail", "10.0.0.0:6379")
    assert doc["shards"][0] == {
        "name": "5461-10921",
        "primary": "10.0.0.1:6379",
        "slots": 5461,
        "used_memory": None,
        "maxmemory": None,
        "usage_ratio": None,
        "session_keys": None,
        "severity": "critical",
        "scenarios": [],
        "error": "cannot reach Redis: refused",
    }


def test_a_scenario_of_one_shard_only_is_titled_with_it() -> None:
    leaky = snap(used=10 * MB, keys=sessions(50, ttl=-1))
    tidy = snap(used=10 * MB, keys=sessions(5000))
    result = diagnose(cluster_snapshot([(tidy, None), (leaky, None), (tidy, None)]), Thresholds())
    [leak] = [s for s in result.scenarios if s.id == "ttl-leak"]
    assert leak.title.endswith(" on shard 5461-10921 (10.0.0.1:6379)")
    assert leak.evidence[-1] == "seen on shard 5461-10921 (10.0.0.1:6379) only"
    assert "expire-keys-without-ttl" in result.recommended_actions


def test_a_cluster_is_never_offered_a_fix_it_refuses() -> None:
    # Sessions filling a shard: a standalone store would be offered raise-maxmemory first.
    full = snap(used=93 * MB, keys=sessions(500), estimate=80_000, evicted=1200)
    alone = diagnose(full, Thresholds())
    assert "raise-maxmemory" in alone.recommended_actions
    result = diagnose(cluster_snapshot([(full, None), (full, None)]), Thresholds())
    assert "raise-maxmemory" not in result.recommended_actions
    assert result.recommended_actions  # the other fixes are still offered
    scenario = next(s for s in result.scenarios if s.id == "too-many-sessions")
    assert "raise-maxmemory" not in scenario.recommended_actions
    assert any(
        e.startswith("raise-maxmemory is not offered on a cluster: ") for e in scenario.evidence
    )


def test_a_standalone_diagnosis_has_no_cluster_key_value() -> None:
    result = diagnose(snap(), Thresholds())
    assert diagnosis_to_dict(result)["cluster"] is None and result.shards == ()


def test_a_hundred_shards_stay_within_slacks_limits() -> None:
    shards: list[tuple[Snapshot | None, str | None]] = [
        (replace(snap(used=(i % 97 + 1) * MB, maxmemory=100 * MB), target=f"s{i}"), None)
        for i in range(97)
    ]
    shards += [(None, "e" * 2000)] * 3  # unreadable, with absurdly long reasons
    result = diagnose(cluster_snapshot(shards), Thresholds())
    # 24 shards hold >= 1.5x the mean: the three most skewed told, the rest in one line.
    skews = [f.message for f in result.findings if f.id == "shard-skew"]
    assert len(skews) == 4 and skews[0].startswith("shard 15648-15810 (10.0.0.96:6379) holds 2.0x")
    assert skews[3].startswith("21 more shards hold 1.5x the shards' mean or more: ")
    blocks = serialised(diagnosis_message(result))
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)
    [section] = [b for b in blocks if "Shards (worst first)" in str(b)]
    text = section["text"]["text"]
    assert text.count("\n") == 11  # the title, ten shards, the summary
    assert "…and 90 more shards: 🔴" in text and "🟢" in text
    assert text.index("unreadable") < text.index("97%")  # the worst first
    console = Console(record=True, width=200)
    console.print(render_diagnosis(result))
    table = console.export_text()
    assert "Shards (worst first)" in table and "unreadable:" in table
    assert table.index("unreadable") < table.index("10.0.0.96:6379")  # the worst first
