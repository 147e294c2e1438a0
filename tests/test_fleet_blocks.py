"""A hundred targets in one status message; the status filter; labels and routes in the
targets file. Pure: synthetic diagnoses, real YAML files in tmp_path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings, Target
from bot.diagnosis.model import Severity
from bot.errors import ConfigError, UsageError
from bot.slack.blocks.common import MAX_BLOCKS, SECTION_TEXT_MAX
from bot.slack.blocks.report import report_message
from bot.slack.blocks.status import NOT_OK_CHARS, TargetStatus, status_message
from bot.slack.fleet_filter import parse_filter, select_targets
from bot.targets_file import load_targets
from tests.report_support import make_report
from tests.test_slack_blocks import make_diagnosis, serialised

MB = 1024**2


def ok(name: str, ratio: float, **labels: str) -> TargetStatus:
    d = make_diagnosis(
        target=name,
        severity=Severity.OK,
        usage_ratio=ratio,
        used_memory=int(ratio * 512 * MB),
        scenarios=(),
    )
    return TargetStatus(name=name, diagnosis=d, labels=labels)


def bad(name: str, severity: Severity, ratio: float) -> TargetStatus:
    d = make_diagnosis(target=name, severity=severity, usage_ratio=ratio)
    return TargetStatus(name=name, diagnosis=d, labels={"env": "prod", "team": "payments"})


def fleet() -> list[TargetStatus]:
    """100 targets: 60 ok in two envs, 10 ok by name prefix, 25 hung, 3 critical, 2 warning."""
    rows = [ok(f"svc-{i}", 0.31 + i / 100, env="prod") for i in range(40)]
    rows += [ok(f"stg-{i}", 0.2, env="stage") for i in range(20)]
    rows += [ok(f"cache-{i}", 0.5) for i in range(10)]
    rows += [TargetStatus(name=f"hung-{i}", error="no answer in 5s") for i in range(25)]
    rows += [bad(f"crit-{i}", Severity.CRITICAL, 0.91 + i / 100) for i in range(3)]
    rows += [bad(f"warn-{i}", Severity.WARNING, 0.82) for i in range(2)]
    return rows


def section_lines(blocks: list[dict[str, object]]) -> list[str]:
    return "\n".join(
        str(b["text"]["text"])  # type: ignore[index]
        for b in blocks
        if b["type"] == "section"
    ).splitlines()


def test_a_hundred_targets_fit_one_message_worst_first_healthy_grouped() -> None:
    message = status_message(fleet())
    blocks = serialised(message)

    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in blocks if b["type"] == "section")
    assert blocks[0]["text"]["text"] == "Redis memory — 100 targets"
    lines = section_lines(blocks)
    # critical (fullest first), then the 25 without an answer, then the warnings
    assert [line.split("*")[1] for line in lines[:3]] == ["crit-2", "crit-1", "crit-0"]
    assert all(line.startswith("⚫ *hung-") for line in lines[3:28])
    assert "no answer in 5s" in lines[3]
    assert lines[28].startswith("🟡 *warn-") and lines[28].endswith("env=prod team=payments")
    # one line per healthy group: env label, else the name's prefix; the largest first
    assert lines[30:] == [
        "🟢 40 ok in *prod*: 31-70% of maxmemory",
        "🟢 20 ok in *stage*: 20% of maxmemory",
        "🟢 10 ok in *cache*: 50% of maxmemory",
    ]
    assert blocks[-1]["elements"][0]["text"] == (
        "🔴 3 critical · ⚫ 25 unreachable · 🟡 2 warning · 🟢 70 ok"
    )
    assert len(message.text) <= 3000


def test_more_not_ok_than_fit_are_named_in_one_line() -> None:
    rows = [bad(f"payments-eu-west-{i:03d}", Severity.CRITICAL, 0.95) for i in range(300)]
    blocks = serialised(status_message(rows))

    assert len(blocks) <= MAX_BLOCKS
    lines = section_lines(blocks)
    full = [line for line in lines if line.startswith("🔴")]
    assert 50 < len(full) < 300
    assert sum(len(line) for line in full) <= NOT_OK_CHARS
    [more] = [line for line in lines if line.startswith("_and ")]
    assert more.startswith(f"_and {300 - len(full)} more not ok:_ payments-eu-west-")
    assert more.endswith(", …")  # as many names as one section holds


def test_many_groups_and_no_limit_targets() -> None:
    rows = [ok(f"g{i}-a", 0.4) for i in range(400)]
    rows.append(
        TargetStatus(
            name="nolimit-1",
            diagnosis=replace(
                make_diagnosis(), severity=Severity.OK, usage_ratio=None, maxmemory=0
            ),
        )
    )
    blocks = serialised(status_message(rows))

    assert len(blocks) <= MAX_BLOCKS
    text = "\n".join(section_lines(blocks))
    assert "🟢 1 ok in *g0*: 40% of maxmemory" in text
    assert text.endswith("more_")  # the groups beyond three sections are a count
    alone = status_message(rows[-1:])
    [line] = section_lines(serialised(alone))
    assert line == "🟢 1 ok in *nolimit*: 1 without a maxmemory limit (476.0 MB used)"


def test_filter_words_and_together() -> None:
    targets = {
        t.name: t
        for t in [
            Target(name="prod-a", labels={"env": "prod", "team": "payments"}),
            Target(name="prod-b", labels={"env": "prod"}),
            Target(name="stage-a", labels={"env": "stage", "team": "payments"}),
        ]
    }
    pick = lambda *words: [t.name for t in select_targets(parse_filter(words), targets)]  # noqa: E731
    assert pick() == ["prod-a", "prod-b", "stage-a"]
    assert pick("prod-*") == ["prod-a", "prod-b"]
    assert pick("team=payments") == ["prod-a", "stage-a"]
    assert pick("prod-*", "team=payments") == ["prod-a"]
    assert pick("*-[ab]", "env=stage") == ["stage-a"]
    with pytest.raises(UsageError) as err:
        pick("PROD-*")  # case-sensitive
    assert err.value.message == "status: no target matches PROD-*"


@pytest.mark.parametrize(
    "word",
    ["env=", "=prod", "Env=prod", "env=Prod", "prod/*", "a" * 129, "env=prod=x", "x:y"],
)
def test_bad_filter_words_are_one_line(word: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_filter((word,))
    assert "\n" not in err.value.message and err.value.message.startswith("status: ")
    assert "usage: status [glob | label=value ...]" in err.value.message


def targets_file(tmp_path: Path, text: str) -> dict[str, Target]:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets(Settings(targets_file=path))


def test_labels_and_routes_resolve_channels(tmp_path: Path) -> None:
    targets = targets_file(
        tmp_path,
        """
targets:
  - {name: pay-1, labels: {env: prod, team: payments}}
  - {name: pay-2, labels: {env: prod, team: payments}, channel: C0OWN}
  - {name: search-1, labels: {env: prod, team: search}}
  - {name: plain}
routes:
  - match: {team: payments}
    channel: C0PAYMENTS
  - match: {env: prod}
    channel: "#prod-alerts"
""",
    )
    assert targets["pay-1"].labels == {"env": "prod", "team": "payments"}
    assert {name: t.channel for name, t in targets.items()} == {
        "pay-1": "C0PAYMENTS",  # first match wins
        "pay-2": "C0OWN",  # a channel of its own beats every route
        "search-1": "#prod-alerts",
        "plain": None,
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  - {name: a, labels: {Env: prod}}\n", "entry 1: labels: label names:"),
        ("  - {name: a, labels: {env: 1}}\n", "entry 1: labels: label env:"),
        ("  - {name: a, labels: [env]}\n", "entry 1: labels: must be a mapping"),
        (
            "  - {name: a, labels: {" + ", ".join(f"k{i}: v" for i in range(17)) + "}}\n",
            "entry 1: labels: at most 16 labels (got 17)",
        ),
        ("  - {name: a}\nroutes: {team: x}\n", "'routes' must be a list"),
        ("  - {name: a}\nroutes:\n  - {match: {}, channel: C0X}\n", "route 1: match: must name"),
        ("  - {name: a}\nroutes:\n  - {match: {team: x}}\n", "route 1: channel: Field required"),
        (
            "  - {name: a}\nroutes:\n  - {match: {team: x}, channel: 'not a channel'}\n",
            "route 1: channel: must be a Slack channel",
        ),
        (
            "  - {name: a}\nroutes:\n  - {match: {team: x}, channel: C0X, then: y}\n",
            "route 1: then: Extra inputs",
        ),
    ],
)
def test_bad_labels_and_routes_are_one_line(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        targets_file(tmp_path, "targets:\n" + body)
    assert "\n" not in err.value.message
    assert expected in err.value.message, err.value.message


def test_report_lines_carry_the_targets_labels() -> None:
    report = replace(
        make_report(20, prefix="pay"),
        labels={"pay-000": {"team": "payments", "env": "prod"}, "pay-019": {"env": "stage"}},
    )
    blocks = serialised(report_message(report))

    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert sections[0].splitlines()[0].endswith("*pay-000* — critical · env=prod team=payments")
    summary = [line for text in sections for line in text.splitlines() if "*pay-019*" in line]
    assert summary and summary[0].endswith(" · env=stage")
    assert not any(
        "env=" in line
        for text in sections[1:-2]
        for line in text.splitlines()
        if "*pay-005*" in line
    )


@pytest.mark.parametrize(
    "words",
    [
        ("--password", "hunter2"),
        ("password=hunter2",),
        ("token:hunter2",),
        ("env=prod", "--token", "hunter2"),
    ],
)
def test_a_secret_typed_as_a_filter_is_refused_unrepeated(words: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as err:
        parse_filter(words)
    assert "hunter2" not in err.value.message and "looks like a secret" in err.value.message


def test_a_labelled_target_is_still_hashable() -> None:
    one = Target(name="a", labels={"env": "prod"})
    assert {one, Target(name="a", labels={"env": "prod"})} == {one}
