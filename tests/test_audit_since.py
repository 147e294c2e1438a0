"""``--since`` parsing: ISO 8601 or a relative age; bad or absurd values are one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.audit.since import parse_since
from bot.errors import UsageError


def test_iso_values_become_aware_utc() -> None:
    assert parse_since("2026-01-31T12:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_since(" 2026-01-31T12:00 ") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_since("2026-01-31T14:00+02:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "age"),
    [("30s", timedelta(seconds=30)), ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)),
     ("2D", timedelta(days=2)), (" 3 w ", timedelta(weeks=3))],
)  # fmt: skip
def test_relative_ages_count_back_from_now(text: str, age: timedelta) -> None:
    before = datetime.now(UTC)
    when = parse_since(text)
    after = datetime.now(UTC)
    assert before - age <= when <= after - age and when.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "", "1y", "-1h", "2026-13-01"])
def test_malformed_values_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--since .*: expected an ISO date/time"):
        parse_since(text)


@pytest.mark.parametrize("text", ["99999999999d", "999999w", "3000000d", "9" * 30 + "s"])
def test_ages_beyond_the_calendar_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--since '\d+[dws]': too far back$"):
        parse_since(text)
