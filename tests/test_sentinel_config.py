"""Sentinel targets in the targets file: each mistake one line naming the field, no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, Target
from bot.errors import ConfigError
from bot.redisinfo.sentinel import node_url, target_url
from bot.targets_file import load_targets

SENTINEL_ENTRY = """targets:
  - name: prod
    mode: sentinel
    redis_url: rediss://app@ignored:1/2
    password_env: PROD_PW
    sentinels: [redis://127.0.0.1:26379, redis://10.0.0.2:26379]
    sentinel_password_env: SENTINEL_PW
    master_name: mymaster
"""


def load(tmp_path: Path, text: str) -> dict[str, Target]:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets(Settings(REDIS_MEM_TARGETS_FILE=str(path)))


def test_a_sentinel_target_reads_its_fields_and_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_PW", "data s3cret")
    monkeypatch.setenv("SENTINEL_PW", "sent/s3cret")
    target = load(tmp_path, SENTINEL_ENTRY)["prod"]
    assert (target.mode, target.master_name) == ("sentinel", "mymaster")
    assert target.sentinel_urls() == (
        "redis://:sent%2Fs3cret@127.0.0.1:26379",
        "redis://:sent%2Fs3cret@10.0.0.2:26379",
    )
    # The data nodes keep redis_url's scheme, user, db and password_env; only the address moves.
    assert node_url(target, "10.0.0.9:6380") == "rediss://app:data%20s3cret@10.0.0.9:6380/2"
    assert node_url(target, "::1:6380") == "rediss://app:data%20s3cret@[::1]:6380/2"


def test_a_standalone_target_is_unchanged() -> None:
    target = Target(name="plain", redis_url="redis://h:6379/1")
    assert target.mode == "standalone" and target.sentinels == ()
    assert target_url(target) == "redis://h:6379/1"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "mode: sentinel\n    master_name: m",
            "sentinels: mode sentinel needs 1-16 sentinel URLs (redis://host:26379)",
        ),
        (
            "mode: sentinel\n    sentinels: [redis://h:26379]",
            "master_name: mode sentinel needs master_name (as in 'sentinel monitor NAME')",
        ),
        (
            "sentinels: [redis://h:26379]",
            "sentinels: only a target with mode: sentinel has sentinels",
        ),
        ("master_name: m", "master_name: only a target with mode: sentinel has a master_name"),
        (
            "mode: sentinel\n    master_name: m\n    sentinels: ['http://:s3cret@h:1']",
            "sentinels: sentinel URL 1 must start with redis://, rediss:// or unix://",
        ),
        (
            "mode: sentinel\n    master_name: m\n    sentinels: ['redis://:s3cret@[h:1']",
            "sentinels: sentinel URL 1 has a host in brackets that is not an IPv6 address",
        ),
        (
            "mode: sentinel\n    master_name: m\n    sentinels: [" + "redis://h:1, " * 17 + "]",
            "sentinels: Tuple should have at most 16 items after validation, not 17",
        ),
        ("mode: sentinel\n    master_name: 'a b'\n    sentinels: [redis://h:1]", "master_name:"),
        ("mode: replicated", "mode: Input should be 'standalone', 'sentinel' or 'cluster'"),
    ],
)
def test_bad_sentinel_entries_are_one_line(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"targets:\n  - name: prod\n    {entry}\n")
    text = err.value.message
    assert message in text and "\n" not in text and "s3cret" not in text
    assert text.startswith(f"targets file {tmp_path / 'targets.yaml'}: entry 1: ")


def test_a_missing_sentinel_password_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTINEL_PW", raising=False)
    monkeypatch.setenv("PROD_PW", "x")
    target = load(tmp_path, SENTINEL_ENTRY)["prod"]
    with pytest.raises(ConfigError, match="environment variable SENTINEL_PW is not set"):
        target_url(target, timeout=1)
