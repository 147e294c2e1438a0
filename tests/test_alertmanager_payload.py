"""Alertmanager's webhook payload (version 4) and the alert -> target mapping, in process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alertmanager.mapping import host_port, map_alert
from bot.alertmanager.model import PayloadError, group_hash, parse_payload, short
from bot.config import Settings, Target
from bot.errors import ConfigError

TARGETS = {
    "prod": Target(name="prod", redis_url="redis://redis-prod.example:6380/0"),
    "staging": Target(name="staging", redis_url="redis://:secret@10.0.0.7/1"),
    "local": Target(name="local", redis_url="unix:///run/redis.sock"),
}


def payload(**overrides: Any) -> dict[str, Any]:
    """A version-4 notification as Alertmanager 0.25 sends it."""
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="RedisHighMemoryUsage", redis_mem_target="prod"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "bot",
        "groupLabels": {"alertname": "RedisHighMemoryUsage"},
        "commonLabels": {"alertname": "RedisHighMemoryUsage", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "RedisHighMemoryUsage",
                    "severity": "warning",
                    "redis_mem_target": "prod",
                },
                "annotations": {"summary": "Redis memory above 80%"},
                "startsAt": "2026-12-01T20:00:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "2f4b1c0d9e8a7b6c",
                "newFieldFromALaterAlertmanager": True,
            }
        ],
    }
    body.update(overrides)
    return body


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_a_version_4_payload_is_read() -> None:
    parsed = parse_payload(encoded(payload()))
    [alert] = parsed.alerts
    assert parsed.status == "firing" and parsed.receiver == "bot"
    assert alert.name == "RedisHighMemoryUsage" and alert.severity == "warning"
    assert alert.summary == "Redis memory above 80%"
    assert alert.starts_at == datetime(2026, 12, 1, 20, 0, 0, 123000, tzinfo=UTC)
    assert alert.ends_at is not None and alert.ends_at.year == 1
    assert parsed.group_hash == group_hash(parsed.group_key) and len(short(parsed.group_hash)) == 16
    # What is stored reads back the same.
    assert parse_payload(encoded(parsed.stored())) == parsed


def test_the_description_stands_in_for_a_missing_summary() -> None:
    body = payload()
    body["alerts"][0]["annotations"] = {"description": "used_memory 850MB of 1GB"}
    assert parse_payload(encoded(body)).alerts[0].summary == "used_memory 850MB of 1GB"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"{", "body is not JSON"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"[" * 100_000, "body is not JSON"),
        (
            encoded(payload(version="3")),
            "unsupported webhook version '3' (this bot reads version 4)",
        ),
        (
            encoded(payload(version=4)),
            "unsupported webhook version 'int' (this bot reads version 4)",
        ),
        (encoded({"status": "firing"}), "no webhook version (this bot reads version 4)"),
        (encoded(payload(status="exploded")), "not an Alertmanager webhook payload: status: "),
        (encoded(payload(alerts=[])), "not an Alertmanager webhook payload: alerts: "),
        (encoded(payload(groupKey="")), "not an Alertmanager webhook payload: groupKey: "),
    ],
)
def test_bad_bodies_are_one_line(body: bytes, line: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_payload(body)
    assert str(err.value).startswith(line)
    assert "\n" not in str(err.value)


def test_a_bad_alert_names_the_field_never_the_value() -> None:
    body = payload()
    body["alerts"][0]["labels"] = {"password": ["hunter2-secret"]}
    with pytest.raises(PayloadError) as err:
        parse_payload(encoded(body))
    assert str(err.value).startswith(
        "not an Alertmanager webhook payload: alerts.0.labels.password"
    )
    assert "hunter2" not in str(err.value)


def test_a_long_version_is_not_echoed_whole() -> None:
    with pytest.raises(PayloadError) as err:
        parse_payload(encoded(payload(version="4" * 5000 + " token=abc")))
    assert len(str(err.value)) < 200 and "token" not in str(err.value)


# Mapping --------------------------------------------------------------------------------------


def test_the_target_label_wins() -> None:
    labels = {"redis_mem_target": "staging", "instance": "redis-prod.example:6380"}
    assert map_alert(labels, TARGETS).target == "staging"


def test_a_target_label_naming_no_target_is_unmapped_not_guessed() -> None:
    mapped = map_alert({"redis_mem_target": "nope"}, {"prod": TARGETS["prod"]})
    assert mapped.target is None and mapped.why == "redis_mem_target=nope names no target"


@pytest.mark.parametrize(
    ("instance", "target"),
    [
        ("redis-prod.example:6380", "prod"),
        ("REDIS-PROD.example:6380", "prod"),
        ("redis://redis-prod.example:6380", "prod"),
        ("10.0.0.7:6379", "staging"),
        ("10.0.0.7", "staging"),  # no port: Redis's own
        ("redis-prod.example:6379", None),
        ("10.0.0.8:6379", None),
        ("not a host:port:x", None),
    ],
)
def test_the_instance_label_matches_a_targets_redis(instance: str, target: str | None) -> None:
    mapped = map_alert({"instance": instance}, TARGETS)
    assert mapped.target == target
    if target is None:
        assert mapped.why


def test_the_only_target_takes_an_alert_without_labels() -> None:
    only = {"prod": TARGETS["prod"]}
    assert map_alert({}, only).target == "prod"
    assert map_alert({"instance": "elsewhere:9121"}, only).target == "prod"
    unmapped = map_alert({}, TARGETS)
    assert unmapped.target is None and unmapped.why == "no redis_mem_target or instance label"


def test_two_targets_on_one_redis_are_ambiguous() -> None:
    twins = {
        "a": Target(name="a", redis_url="redis://h:6379/0"),
        "b": Target(name="b", redis_url="redis://h:6379/1"),
    }
    mapped = map_alert({"instance": "h:6379"}, twins)
    assert mapped.target is None and "several targets" in mapped.why


def test_host_port_shapes() -> None:
    assert host_port("[::1]:7000") == ("::1", 7000)
    assert host_port("redis://:pw@Host/0") == ("host", 6379)
    assert host_port(":6379") is None
    assert host_port("h:port") is None


def test_the_webhook_token_is_read_and_kept_out_of_the_settings_repr() -> None:
    settings = Settings.model_validate({"REDIS_MEM_WEBHOOK_TOKEN": "s3cret-token-value"})
    assert settings.webhook_token == "s3cret-token-value"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


@pytest.mark.parametrize("value", ["short", "sixteen chars ok", "tab\tinside-a-long-token"])
def test_a_weak_or_odd_webhook_token_is_one_line_at_start_up(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_MEM_WEBHOOK_TOKEN", value)  # the process environment, read once
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value) == (
        "invalid configuration: REDIS_MEM_WEBHOOK_TOKEN: "
        "(hidden) must be one word of at least 16 printable characters"
    )
    assert value not in str(err.value)


def test_an_empty_webhook_token_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MEM_WEBHOOK_TOKEN", "  ")
    assert Settings.load().webhook_token is None
