"""Settings, the targets file and URL redaction: bad input is one line, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, Target, redact_url
from bot.errors import ConfigError, TargetNotFound
from bot.targets_file import load_targets, pick_target


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:s3cret@h:6380/2", "rediss://user:***@h:6380/2"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://:s3cret@[::1", "redis://:***@[::1"),  # malformed: still redacted
        ("redis://h:6379/0?password=s3cret", "redis://h:6379/0?password=***"),  # redis-py reads it
        ("redis://:ab#cd/s3cret@h:6379/0", "redis://:***@h:6379/0"),  # unencoded # and /
        ("redis://h/0?db=1&Password=s3cret&ssl=1", "redis://h/0?db=1&Password=***&ssl=1"),
    ],
)
def test_redact_url_hides_passwords_even_in_malformed_urls(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_default_target_comes_from_redis_url() -> None:
    settings = Settings(REDIS_URL="redis://cache:6379/3", REDIS_MEM_SESSION_PATTERN="sess:*")
    [target] = load_targets(settings).values()
    assert (target.name, target.redis_url, target.session_pattern) == (
        "default",
        "redis://cache:6379/3",
        "sess:*",
    )
    assert target.kubernetes.namespace == "langgraph-agent"
    assert target.kubernetes.redis_configmap == "redis-session-config"


def test_targets_file_with_runbook_defaults_and_password_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        "  - name: prod\n"
        "    redis_url: rediss://redis.prod:6380/0\n"
        "    password_env: PROD_PW\n"
        "    kubernetes: {namespace: sessions}\n"
        "  - name: staging\n"
        "    redis_url: redis://redis.staging:6379/1\n"
    )
    targets = load_targets(Settings(REDIS_MEM_TARGETS_FILE=path))
    assert list(targets) == ["prod", "staging"]
    prod = targets["prod"]
    assert prod.kubernetes.namespace == "sessions"
    assert prod.kubernetes.app_deployment == "langgraph-agent"
    monkeypatch.setenv("PROD_PW", "p@ss/word")  # the environment, not our code, is set here
    assert prod.connection_url() == "rediss://:p%40ss%2Fword@redis.prod:6380/0"
    assert "p@ss" not in prod.safe_url and "p@ss" not in repr(prod)
    assert pick_target(targets, None).name == "prod"
    with pytest.raises(TargetNotFound, match=r"unknown target 'qa' \(known: prod, staging\)"):
        pick_target(targets, "qa")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("targets: [", "not valid YAML"),
        ("targets: []", "non-empty list"),
        ("targets: [42]", "entry 1 is not a mapping"),
        ("targets: [{name: a, redis_url: 'http://x'}]", "entry 1: redis_url"),
        ("targets: [{name: a}, {name: a}]", "duplicate target name 'a'"),
        ("targets: [{name: a, colour: red}]", "entry 1: colour"),
        ("targets: [{name: 'bad name'}]", "entry 1: name"),
    ],
)
def test_bad_targets_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_targets(Settings(REDIS_MEM_TARGETS_FILE=path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_password_variable_names_it() -> None:
    target = Target(name="prod", redis_url="redis://h:6379/0", password_env="NO_SUCH_VAR_X1")
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_X1 is not set"):
        target.connection_url()


def test_a_thresholds_value_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MEM_THRESHOLDS", "{bad")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert str(caught.value).startswith("invalid configuration: ")
    assert "thresholds" in str(caught.value) and "\n" not in str(caught.value)


def test_a_binary_targets_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text$"):
        load_targets(Settings(REDIS_MEM_TARGETS_FILE=path))


@pytest.mark.parametrize(
    ("value", "channel"),
    [("#redis-oncall", "#redis-oncall"), ("C0123ABCD", "C0123ABCD"), ("", None), ("  ", None)],
)
def test_alert_channels_are_ids_or_names_and_empty_is_unset(
    value: str, channel: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_MEM_CHANNEL", value)
    assert Settings.load().channel == channel
    assert Target(name="prod", channel=value).channel == channel


@pytest.mark.parametrize("value", ["#ops <!channel>", "Ops Team", "#" + "a" * 81])
def test_a_bad_alert_channel_is_one_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MEM_CHANNEL", value)
    with pytest.raises(ConfigError, match="REDIS_MEM_CHANNEL: must be a Slack channel id"):
        Settings.load()


def test_a_bad_target_channel_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "targets.yml"
    path.write_text("targets:\n  - {name: prod, channel: 'on call'}\n")
    with pytest.raises(ConfigError, match=r"entry 1: channel: must be a Slack channel id"):
        load_targets(Settings(REDIS_MEM_TARGETS_FILE=str(path)))
