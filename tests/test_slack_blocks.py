"""Block Kit presenters: content, and Slack's limits held even for absurd input."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot.diagnosis.capacity import plan_capacity
from bot.diagnosis.model import (
    ACTION_IDS,
    CHECK_IDS,
    Check,
    Diagnosis,
    Finding,
    IdleStats,
    Scenario,
    Severity,
    SizeStats,
    TtlStats,
)
from bot.remediation.catalogue import CATALOGUE, get_action
from bot.slack.blocks.capacity import capacity_message
from bot.slack.blocks.common import Message, gauge
from bot.slack.blocks.diagnosis import BUTTON_LABELS, diagnosis_message, request_button
from bot.slack.blocks.help import help_message
from bot.slack.blocks.keys import keys_message
from bot.slack.blocks.status import TargetStatus, status_message

MB = 1024**2


def make_diagnosis(**changes: Any) -> Diagnosis:
    """A critical diagnosis with one ttl-leak scenario; ``changes`` override fields."""
    diagnosis = Diagnosis(
        target="prod",
        checked_at=datetime(2026, 11, 29, 3, 0, tzinfo=UTC),
        severity=Severity.CRITICAL,
        used_memory=476 * MB,
        maxmemory=512 * MB,
        usage_ratio=476 / 512,
        evicted_keys=1204,
        mem_fragmentation_ratio=1.1,
        dbsize=120_000,
        maxmemory_policy="allkeys-lru",
        session_keys=118_000,
        sample_mode="sampled",
        ttl=TtlStats(
            sampled=1000,
            without_ttl=400,
            without_ttl_ratio=0.4,
            histogram={"none": 400, "<1h": 300, "1h-24h": 300},
            long_ttl=0,
        ),
        sizes=SizeStats(
            sampled=1000,
            mean_bytes=4096.0,
            p95_bytes=8192,
            max_bytes=65536,
            top_keys=(("session:<b>&big", 65536),),
        ),
        idle=IdleStats(
            sampled=1000,
            measure="idletime",
            stale=100,
            stale_ratio=0.1,
            p50_idle_seconds=600,
            max_idle_seconds=90_000,
        ),
        checks=tuple(
            Check(id=cid, step=i + 1, title=cid, status=Severity.OK, summary="fine")
            for i, cid in enumerate(CHECK_IDS)
        ),
        scenarios=(
            Scenario(
                id="ttl-leak",
                title="Sessions without TTL",
                runbook="Scenario 2: Memory Leak",
                evidence=("40% of sampled session keys have no TTL",),
                recommended_actions=("expire-keys-without-ttl",),
            ),
        ),
        findings=(),
        recommended_actions=("expire-keys-without-ttl", "restart-redis"),
    )
    return replace(diagnosis, **changes)


def serialised(message: Message) -> list[dict[str, Any]]:
    """The blocks as Slack receives them (``to_dict`` runs slack_sdk's limit checks)."""
    blocks = [block.to_dict() for block in message.blocks]
    assert [Block.parse(b).to_dict() for b in blocks] == blocks  # type: ignore[union-attr]
    assert len(blocks) <= 50
    return blocks


def test_diagnosis_header_gauge_checks_and_buttons() -> None:
    blocks = serialised(diagnosis_message(make_diagnosis()))

    assert blocks[0]["text"]["text"] == "🔴 CRITICAL — prod: Redis memory 93% of 512.0 MB"
    assert blocks[1]["text"]["text"].startswith("`▓▓▓▓▓▓▓▓▓░ 93%`  476.0 MB / 512.0 MB")
    assert "evicted keys: *1,204*" in blocks[1]["text"]["text"]
    checks = blocks[3]["text"]["text"].splitlines()
    assert checks[0] == "*Checks*" and len(checks) == 7
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("redis_mem.request.expire-keys-without-ttl", "prod", None),
        ("redis_mem.request.restart-redis", "prod", "danger"),
    ]


def test_every_catalogue_action_renders_a_button_red_when_high_risk() -> None:
    blocks = serialised(diagnosis_message(make_diagnosis(recommended_actions=tuple(CATALOGUE))))
    [actions] = [b for b in blocks if b["type"] == "actions"]
    rendered = {e["action_id"].removeprefix("redis_mem.request."): e for e in actions["elements"]}
    assert list(rendered) == list(CATALOGUE)
    for action_id, button in rendered.items():
        action = get_action(action_id)
        assert button["text"]["text"] and button["value"] == "prod"
        assert button.get("style") == ("danger" if action.risk == "high" else None)


def test_a_button_without_a_short_label_shows_the_action_title() -> None:
    assert "shorten-session-ttl" in BUTTON_LABELS  # the short label wins when there is one
    assert request_button("shorten-session-ttl", target="p").text.text == "Shorten session TTL"
    unlabelled = [a for a in CATALOGUE.values() if a.id not in BUTTON_LABELS]
    assert [a.id for a in unlabelled] == ["raise-maxmemory"]
    for action in unlabelled:
        assert request_button(action.id, target="p").text.text == action.title
    assert request_button("not-in-catalogue", target="p").text.text == "not-in-catalogue"


def test_no_maxmemory_and_no_scenario() -> None:
    message = diagnosis_message(
        make_diagnosis(
            maxmemory=0,
            usage_ratio=None,
            scenarios=(),
            recommended_actions=(),
            severity=Severity.OK,
        )
    )
    blocks = serialised(message)

    assert (
        blocks[0]["text"]["text"] == "🟢 OK — prod: Redis memory 476.0 MB used (no maxmemory limit)"
    )
    assert not [b for b in blocks if b["type"] == "actions"]
    assert "No runbook scenario matches" in str(blocks)
    assert gauge(None) == "no maxmemory limit"


def test_absurd_diagnosis_is_truncated_within_slack_limits() -> None:
    huge = Scenario(
        id="stale-sessions",
        title="T" * 500,
        runbook="R" * 200,
        evidence=tuple("e" * 900 for _ in range(100)),
        recommended_actions=ACTION_IDS,
    )
    diagnosis = make_diagnosis(
        target="p" * 300,
        scenarios=(huge,) * 60,
        recommended_actions=tuple(f"action-{i}-" + "x" * 100 for i in range(40)),
        findings=tuple(
            Finding(id="f", severity=Severity.WARNING, message="m" * 3000) for _ in range(30)
        ),
    )

    blocks = serialised(diagnosis_message(diagnosis))

    assert len(blocks) == 50
    assert len(blocks[0]["text"]["text"]) <= 150
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert len(actions["elements"]) == 25
    assert all(len(e["text"]["text"]) <= 75 for e in actions["elements"])
    assert blocks[-1]["type"] == "context"  # the footer survived the cut
    assert "more blocks left out" in str(blocks)
    assert "…and 94 more" in str(blocks)


def test_keys_escapes_key_names() -> None:
    blocks = serialised(keys_message(make_diagnosis()))

    text = str(blocks)
    assert "`session:&lt;b&gt;&amp;big` 64.0 KB" in text
    assert "without TTL: *400* (40%)" in text


def test_status_line_per_target() -> None:
    rows = [
        TargetStatus(name="prod", diagnosis=make_diagnosis()),
        TargetStatus(name="cache", error="connection refused"),
    ]
    message = status_message(rows)
    blocks = serialised(message)

    lines = blocks[1]["text"]["text"].splitlines()
    assert lines[0].startswith("🔴 *prod* `▓▓▓▓▓▓▓▓▓░ 93%` 476.0 MB / 512.0 MB")
    assert lines[1] == "⚫ *cache* unreachable: connection refused"
    assert message.text == "Redis memory: prod critical (93% of 512.0 MB); cache unreachable"


def test_capacity_plan_follows_the_runbook_example() -> None:
    plan = plan_capacity(users=10_000, sessions_per_user=3, session_size=2048)
    blocks = serialised(capacity_message(plan))

    text = str(blocks)
    assert "sessions = *30,000*" in text
    assert f"maxmemory {plan.maxmemory_directive}" in text
    assert plan.pod_memory_limit in text


def test_help_lists_usages_and_targets() -> None:
    message = help_message(usages=[("status", "all targets")], targets=["prod", "stage"], note="x")
    text = str(serialised(message))
    assert "`/redis-mem status` — all targets" in text and "`stage`" in text
