"""Pure parsing of /redis-mem arguments: every bad input is one clear line."""

from __future__ import annotations

import pytest

from bot.errors import UsageError
from bot.slack.parsing import (
    CapacityArgs,
    CommandLine,
    parse_capacity,
    parse_count,
    parse_no_args,
    parse_target,
    split_command,
)


def test_split_lowercases_the_subcommand_and_defaults_to_help() -> None:
    assert split_command("  Diagnose   prod ") == CommandLine(name="diagnose", args=("prod",))
    assert split_command("") == CommandLine(name="help", args=())


def test_target_is_optional_and_single() -> None:
    assert parse_target("keys", ()) is None
    assert parse_target("keys", ("prod",)) == "prod"
    with pytest.raises(
        UsageError, match=r"^keys: expected at most one target \(got extra 'a b'\)$"
    ):
        parse_target("keys", ("prod", "a", "b"))


def test_status_takes_no_arguments() -> None:
    with pytest.raises(UsageError, match=r"^status: takes no arguments"):
        parse_no_args("status", ("prod",))


def test_capacity_accepts_any_order_and_cli_spellings() -> None:
    args = parse_capacity(("size=1.5MB", "sessions-per-user=3", "users=10,000"))
    assert args == CapacityArgs(
        users=10_000, sessions_per_user=3, session_size=1_572_864, size_text="1.5MB"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("users=10", "sessions=2", "size=abc"),
            'capacity: size must look like 2KB, 1.5MB or 2048 (got "abc")',
        ),
        (
            ("users=ten", "sessions=2", "size=2KB"),
            'capacity: users must be a whole number of at least 1 (got "ten")',
        ),
        (
            ("users=10", "sessions=0", "size=2KB"),
            'capacity: sessions must be a whole number of at least 1 (got "0")',
        ),
        (
            ("users=10",),
            "capacity: missing sessions=, size= (usage: capacity users=N sessions=N size=SIZE)",
        ),
        (
            ("users=²", "sessions=2", "size=2KB"),  # isdigit() but not int(): was a 500
            'capacity: users must be a whole number of at least 1 (got "²")',
        ),
        (("users=10", "users=2", "sessions=1", "size=1"), "capacity: users= given twice"),
        (
            ("users=10", "bogus", "size=1"),
            "capacity: unexpected 'bogus' (usage: capacity users=N sessions=N size=SIZE)",
        ),
    ],
)
def test_capacity_errors_are_one_line(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_capacity(args)
    assert err.value.message == message


@pytest.mark.parametrize("word", ["0", "49", "abc", "²", "-1"])
def test_audit_count_errors_are_one_line(word: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_count("audit", (word,), default=10, maximum=48)
    assert err.value.message == f'audit: N must be a whole number from 1 to 48 (got "{word}")'
