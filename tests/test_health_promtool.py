"""Our rule engine against ``promtool test rules``: same firing and resolution times, same values.

Each scenario is built to sit on an edge: exactly at a threshold, one evaluation
short of ``for``, gaps inside the lookback and beyond it, counter resets,
``keep_firing_for`` around a value that dances on the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.health.rules import RuleBook
from tests.health_support import book
from tests.promtool_oracle import Check, promtool_available, run_promtool

UP = Check(used=50)
DOWN = Check(up=False)


@pytest.fixture(autouse=True)
def _needs_promtool() -> None:
    if not promtool_available():
        pytest.fail("promtool is not installed; the suite needs it (apt-get install prometheus)")


def assert_same_as_prometheus(
    tmp_path: Path, checks: Sequence[Check | None], rules: RuleBook, *, extra: int = 0
) -> dict[int, dict[str, float | None]]:
    proc, expected = run_promtool(tmp_path, checks, rules, extra_minutes=extra)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "SUCCESS" in proc.stdout
    return expected


def fired_at(expected: dict[int, dict[str, float | None]], rule: str) -> list[int]:
    """The minutes at which ``rule`` went from not firing to firing."""
    minutes = sorted(expected)
    return [m for m in minutes if rule in expected[m] and (m == 0 or rule not in expected[m - 1])]


def resolved_at(expected: dict[int, dict[str, float | None]], rule: str) -> list[int]:
    """The minutes at which ``rule`` stopped firing."""
    minutes = sorted(expected)
    return [m for m in minutes if m > 0 and rule in expected[m - 1] and rule not in expected[m]]


def test_memory_edges_threshold_for_and_lookback(tmp_path: Path) -> None:
    checks: list[Check | None] = [
        *[Check(used=80)] * 12,  # exactly 80%: not above, never pending
        *[Check(used=81)] * 10,  # above for 10 evaluations: 9 minutes held, one short of for
        Check(used=79),  # reset
        *[Check(used=85)] * 3,
        DOWN,  # unreachable: the memory series has a gap, the lookback keeps 85%
        DOWN,
        *[Check(used=85)] * 8,  # for: 10m counted from before the gap
        *[DOWN] * 6,  # six minutes without a memory reading: past the 5m lookback
        *[Check(used=95)] * 7,  # critical after exactly 5m, warning pending again
        *[Check(used=70)] * 2,
    ]
    expected = assert_same_as_prometheus(tmp_path, checks, RuleBook.defaults())
    assert fired_at(expected, "memory-warning") == [33]  # 23 + 10 minutes, across the gap
    assert resolved_at(expected, "memory-warning") == [41]  # 5m after the last reading at 35
    assert fired_at(expected, "memory-critical") == [47]
    assert fired_at(expected, "store-down") == [27, 37]


def test_keep_firing_for_holds_through_a_dance_around_the_threshold(tmp_path: Path) -> None:
    rules = book(**{"memory-warning": {"for_seconds": 180, "keep_firing_for_seconds": 120}})
    used = [70, 81, 81, 81, 81, 79, 81, 79, 79, 81, 79, 79, 79, 79, 81, 81, 81, 81, 70, 70, 70]
    expected = assert_same_as_prometheus(tmp_path, [Check(used=u) for u in used], rules, extra=3)
    assert fired_at(expected, "memory-warning") == [4, 17]
    assert resolved_at(expected, "memory-warning") == [12, 20]


def test_eviction_rate_edges_counter_reset_and_missed_checks(tmp_path: Path) -> None:
    evicted, checks = 0, []
    for minute in range(40):
        if minute < 12:
            evicted += 600  # exactly 10/s: not above
        elif minute == 20:
            evicted = 300  # restart: the counter starts again
        elif 24 <= minute < 26:
            checks.append(None)  # the bot missed two checks
            continue
        else:
            evicted += 660  # 11/s
        checks.append(Check(used=50, evicted=evicted))
    expected = assert_same_as_prometheus(tmp_path, checks, RuleBook.defaults(), extra=6)
    assert fired_at(expected, "eviction-rate") == [17, 35]  # 11/s from 12, + for 5m; again
    assert resolved_at(expected, "eviction-rate") == [20, 41]  # the restart; the series' end
    assert not any("eviction-rate" in expected[m] for m in range(12))


def test_store_down_for_one_minute_and_beyond_the_lookback(tmp_path: Path) -> None:
    checks: list[Check | None] = [UP, UP, DOWN, UP, UP, DOWN, DOWN, DOWN, UP, DOWN, DOWN]
    checks += [None] * 7 + [UP, UP]  # no check at all for 7 minutes: up goes stale
    expected = assert_same_as_prometheus(tmp_path, checks, RuleBook.defaults())
    assert fired_at(expected, "store-down") == [6, 10]
    assert resolved_at(expected, "store-down") == [8, 16]


def test_connections_ratio_and_rejections(tmp_path: Path) -> None:
    rules = book(**{"connections-exhausted": {"for_seconds": 120}})
    clients = [90] * 5 + [91] * 4 + [50] * 3 + [50] * 6
    rejected = [0] * 12 + [3, 5, 9, 9, 2, 2]  # grows three times, then a restart resets it
    checks = [Check(used=50, clients=c, rejected=r) for c, r in zip(clients, rejected, strict=True)]
    expected = assert_same_as_prometheus(tmp_path, checks, rules, extra=2)
    assert fired_at(expected, "connections-exhausted") == [7, 14]
    assert resolved_at(expected, "connections-exhausted") == [9, 15]


def test_forecast_linear_growth_flat_and_decline(tmp_path: Path) -> None:
    used = [10 + minute for minute in range(40)] + [49] * 30 + [49 - m for m in range(20)]
    checks = [Check(used=u, maxmemory=200) for u in used]
    expected = assert_same_as_prometheus(tmp_path, checks, RuleBook.defaults())
    assert fired_at(expected, "memory-forecast") == [16]  # rising from the start, + for 15m
    assert resolved_at(expected, "memory-forecast") == [75]  # once the hour's fit turns down


def test_no_maxmemory_never_fires_the_ratio_rules(tmp_path: Path) -> None:
    checks = [Check(used=10 + 5 * m, maxmemory=0) for m in range(30)]
    expected = assert_same_as_prometheus(tmp_path, checks, RuleBook.defaults())
    assert not any(expected.values())


def test_promtool_rejects_an_engine_that_fires_one_minute_early(tmp_path: Path) -> None:
    """The oracle can fail: shift one firing a minute earlier and promtool must object."""
    checks = [Check(used=u) for u in [70] + [85] * 12]
    proc, expected = run_promtool(tmp_path, checks, RuleBook.defaults())
    assert proc.returncode == 0
    first = fired_at(expected, "memory-warning")[0]
    wrong = {**expected, first - 1: {"memory-warning": 0.85}}
    failed, _ = run_promtool(tmp_path, checks, RuleBook.defaults(), expected=wrong)
    assert failed.returncode != 0
    assert "memory-warning" in failed.stdout + failed.stderr
