"""Parameter parsing and validation: every bad value is one clear line."""

from __future__ import annotations

import pytest

from bot.diagnosis.model import ACTION_IDS
from bot.errors import UsageError
from bot.remediation.catalogue import CATALOGUE, get_action
from bot.remediation.model import Change, Preview, RemediationLimits
from bot.remediation.params import (
    ParamSpec,
    format_quantity,
    parse_params,
    parse_quantity,
    parse_seconds,
)

TTL = ParamSpec("ttl_seconds", "seconds", "TTL", min=60, max=2_592_000)


def test_catalogue_has_exactly_the_design_ids() -> None:
    assert tuple(CATALOGUE) == ACTION_IDS
    for action_id, action in CATALOGUE.items():
        assert action.id == action_id
        assert action.title and action.runbook
        assert action.risk in ("low", "medium", "high")


def test_unknown_action_is_one_line() -> None:
    with pytest.raises(UsageError, match=r"^unknown action 'drop-all' \(known: raise-maxmemory,"):
        get_action("drop-all")


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("86400", 86400), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2_592_000)],
)
def test_durations(raw: str, seconds: int) -> None:
    assert TTL.parse(raw) == seconds


def test_ttl_below_the_minimum_is_refused() -> None:
    with pytest.raises(UsageError) as err:
        TTL.parse("30")
    assert str(err.value) == "ttl_seconds must be between 60 and 2592000 (got 30)"


def test_ttl_above_thirty_days_is_refused() -> None:
    with pytest.raises(UsageError, match=r"between 60 and 2592000 \(got 2678400\)"):
        TTL.parse("31d")


def test_garbage_duration() -> None:
    with pytest.raises(UsageError, match="must be a duration like"):
        parse_seconds("soon", name="ttl_seconds")


def test_sizes_bools_choices_ints() -> None:
    assert ParamSpec("m", "size", "M").parse("1024mb") == 1024**3
    assert ParamSpec("m", "size", "M").parse("1.5Gi") == 1536 * 1024**2
    assert ParamSpec("b", "bool", "B").parse("yes") is True
    with pytest.raises(UsageError, match="b must be true or false"):
        ParamSpec("b", "bool", "B").parse("maybe")
    policy = ParamSpec("policy", "choice", "P", choices=("allkeys-lru", "volatile-lru"))
    assert policy.parse("AllKeys-LRU") == "allkeys-lru"
    with pytest.raises(
        UsageError, match=r"policy must be one of allkeys-lru, volatile-lru \(got lru\)"
    ):
        policy.parse("lru")
    count = ParamSpec("count", "int", "N", min=1, max=100)
    assert count.parse("1,00") == 100
    with pytest.raises(UsageError, match="count must be a whole number"):
        count.parse("ten")
    with pytest.raises(UsageError, match=r"count must be between 1 and 100 \(got 0\)"):
        count.parse("0")
    with pytest.raises(UsageError, match="count needs a value"):
        count.parse("  ")


def test_unknown_parameter_names_the_known_ones() -> None:
    with pytest.raises(UsageError) as err:
        parse_params((TTL,), {"ttl": "60"}, action_id="expire-keys-without-ttl")
    assert str(err.value) == (
        "unknown parameter 'ttl' for expire-keys-without-ttl (known: ttl_seconds)"
    )
    assert parse_params((TTL,), {"TTL-Seconds": "1h"}, action_id="x") == {"ttl_seconds": 3600}


def test_kubernetes_quantities() -> None:
    assert parse_quantity("768Mi") == 768 * 1024**2
    assert parse_quantity("1.5Gi") == 1536 * 1024**2
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("805306368") == 805306368
    assert parse_quantity("lots") is None
    assert format_quantity(1536 * 1024**2) == "1536Mi"
    assert format_quantity(1000) == "1000"


def test_limits_drive_the_bounds() -> None:
    limits = RemediationLimits(max_keys=500, min_ttl_seconds=300)
    (ttl,) = get_action("expire-keys-without-ttl").specs(limits)
    assert (ttl.min, ttl.max) == (300, 30 * 86400)
    (count,) = get_action("evict-idle-sessions").specs(limits)
    assert count.max == 500


def test_preview_round_trips_through_json() -> None:
    preview = Preview(
        action_id="raise-maxmemory",
        title="Raise maxmemory",
        runbook="Scenario 1, option A",
        risk="medium",
        params={"maxmemory": 1024**3, "pod_memory_limit": 1536 * 1024**2},
        changes=(Change("live CONFIG SET maxmemory", "536870912", "1073741824"),),
        warnings=("w",),
        facts={"configmap_resource_version": "1001"},
    )
    again = Preview.from_dict(preview.to_dict())
    assert again == preview
    assert again.fingerprint == preview.fingerprint
    assert preview.changes[0].line() == "live CONFIG SET maxmemory: 536870912 -> 1073741824"
