"""The Alertmanager group's Slack message: the alert, then the diagnosis and its fix buttons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.alertmanager.model import payload_from
from bot.alertmanager.ports import GroupView, MappedAlert
from bot.alertmanager.slack import group_message
from bot.diagnosis.model import Finding, Scenario, Severity
from tests.test_alertmanager_payload import payload
from tests.test_slack_blocks import make_diagnosis, serialised

AT = datetime(2026, 12, 1, 20, 5, tzinfo=UTC)


def view(body: dict[str, Any] | None = None, **changes: Any) -> GroupView:
    parsed = payload_from(body or payload())
    fields: dict[str, Any] = {
        "group_hash": parsed.group_hash,
        "status": parsed.status,
        "alerts": tuple(MappedAlert(alert=a, target="prod") for a in parsed.alerts),
        "target": "prod",
        "diagnosis": make_diagnosis(),
        "diagnosis_error": None,
        "received_at": AT,
        "truncated_alerts": parsed.truncated_alerts,
    }
    fields.update(changes)
    return GroupView(**fields)


def test_the_alert_then_the_diagnosis_and_its_fix_buttons() -> None:
    message = group_message(view())
    blocks = serialised(message)
    assert blocks[0]["text"]["text"] == "🟡 FIRING (warning) — prod: RedisHighMemoryUsage"
    alert = blocks[1]["text"]["text"]
    assert alert.startswith("*RedisHighMemoryUsage* · `warning` · firing since 2026-12-01 20:00:00")
    assert "Redis memory above 80%" in alert and "`redis_mem_target=prod`" in alert
    text = json.dumps(blocks, ensure_ascii=False)
    assert "*Diagnosis* — 🔴 CRITICAL — prod: Redis memory 93% of 512.0 MB" in text
    [actions] = [b for b in blocks if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["redis_mem.request.expire-keys-without-ttl", "redis_mem.request.restart-redis"]
    assert all(e["value"] == "prod" for e in actions["elements"])
    assert blocks[-1]["type"] == "context" and "Alertmanager group `" in str(blocks[-1])
    assert (
        message.text == "🟡 FIRING (warning) — prod: RedisHighMemoryUsage: Redis memory above 80%"
    )


def test_resolved_drops_the_diagnosis_and_the_buttons() -> None:
    body = payload(status="resolved")
    body["alerts"][0].update(status="resolved", endsAt="2026-12-01T20:04:00Z")
    blocks = serialised(group_message(view(body, diagnosis=None)))
    assert blocks[0]["text"]["text"] == "✅ RESOLVED — prod: RedisHighMemoryUsage"
    assert "· resolved at 2026-12-01 20:04:00 UTC" in blocks[1]["text"]["text"]
    assert not [b for b in blocks if b["type"] == "actions"]
    assert "/redis-mem diagnose prod" in json.dumps(blocks)


def test_a_failed_diagnosis_and_an_unmapped_alert_say_so() -> None:
    parsed = payload_from(payload())
    unmapped = MappedAlert(alert=parsed.alerts[0], target=None, why="no redis_mem_target label")
    blocks = serialised(
        group_message(view(alerts=(unmapped,), target=None, diagnosis=None, diagnosis_error=None))
    )
    assert blocks[0]["text"]["text"].endswith("— no target: RedisHighMemoryUsage")
    assert "⚠ Not mapped to a target: no redis_mem_target label" in blocks[1]["text"]["text"]
    failed = serialised(group_message(view(diagnosis=None, diagnosis_error="Redis refused")))
    assert "*Diagnosis*\\n⚠ Redis refused" in json.dumps(failed, ensure_ascii=False)


def test_what_alertmanager_sends_is_escaped() -> None:
    body = payload()
    body["alerts"][0]["labels"]["team"] = "<!channel> & <https://evil|click>"
    body["alerts"][0]["annotations"]["summary"] = "<!here> memory"
    message = group_message(view(body))
    text = json.dumps(serialised(message), ensure_ascii=False)
    assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; " in text
    assert "<!here>" not in message.text


def test_a_huge_group_and_diagnosis_stay_within_slack_limits() -> None:
    body = payload()
    many = {f"label{i}": "v" * 500 for i in range(40)}
    body["alerts"] = [
        {**body["alerts"][0], "labels": {**many, "alertname": f"A{i}" * 50}} for i in range(200)
    ]
    body["truncatedAlerts"] = 7
    huge = Scenario(
        id="stale-sessions",
        title="T" * 500,
        runbook="R" * 200,
        evidence=tuple("e" * 900 for _ in range(100)),
        recommended_actions=("expire-keys-without-ttl",),
    )
    diagnosis = make_diagnosis(
        scenarios=(huge,) * 60,
        findings=tuple(
            Finding(id="f", severity=Severity.WARNING, message="m" * 3000) for _ in range(30)
        ),
    )
    blocks = serialised(group_message(view(body, diagnosis=diagnosis)))
    assert len(blocks) == 50 and len(blocks[0]["text"]["text"]) <= 150
    assert [b for b in blocks if b["type"] == "actions"]  # the buttons survived the cut
    assert blocks[-1]["type"] == "context"
    assert "…and 197 more alerts in this group" in json.dumps(blocks, ensure_ascii=False)
