"""The report schedule: cron's own weekday numbering, zones, DST, catch-up, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.runtime.cron import CronSlots, ScheduleError, cron_weekdays

TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def next_days(expression: str, count: int = 7) -> list[str]:
    """The weekdays of the next ``count`` slots after Tuesday noon."""
    slots = CronSlots.parse(expression, "UTC")
    days, at = [], TUESDAY_NOON
    for _ in range(count):
        nxt = slots.next_slot(at)
        assert nxt is not None
        days.append(nxt.strftime("%a"))
        at = nxt
    return days


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 9 * * 0", ["Sun"]),  # cron's 0 is Sunday (APScheduler's own 0 is Monday)
        ("0 9 * * 7", ["Sun"]),
        ("0 9 * * 1", ["Mon"]),
        ("0 9 * * 1-5", ["Wed", "Thu", "Fri", "Mon", "Tue"]),
        ("0 9 * * 5-7", ["Fri", "Sat", "Sun"]),
        ("0 9 * * */2", ["Thu", "Sat", "Sun", "Tue"]),  # 0,2,4,6 = Sun, Tue, Thu, Sat
        ("0 9 * * sun,wed", ["Wed", "Sun"]),
    ],
)
def test_weekdays_are_read_as_cron_reads_them(expression: str, days: list[str]) -> None:
    seen = next_days(expression, count=len(days))
    assert seen == days


def test_weekday_field_translation() -> None:
    assert cron_weekdays("*") == "*"
    assert cron_weekdays("0,7") == "sun"
    assert cron_weekdays("1/2") == "mon,wed,fri"


def test_a_slot_is_nine_local_time_on_both_sides_of_a_dst_change() -> None:
    slots = CronSlots.parse("0 9 * * *", "Europe/Paris")
    before = slots.next_slot(datetime(2026, 3, 27, 12, tzinfo=UTC))  # CET, UTC+1
    after = slots.next_slot(datetime(2026, 3, 29, 12, tzinfo=UTC))  # CEST, UTC+2
    assert before is not None and after is not None
    assert before.astimezone(UTC).hour == 8
    assert after.astimezone(UTC).hour == 7
    paris = ZoneInfo("Europe/Paris")
    assert before.astimezone(paris).hour == after.astimezone(paris).hour == 9


def test_the_due_slot_is_the_newest_within_the_catch_up() -> None:
    slots = CronSlots.parse("0 9 * * *", "UTC", catch_up=timedelta(hours=1))
    nine = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert slots.due_slot(nine - timedelta(seconds=1)) is None
    assert slots.due_slot(nine) == nine
    assert slots.due_slot(nine + timedelta(seconds=30)) == nine  # a restart at 09:00:30
    assert slots.due_slot(nine + timedelta(minutes=59)) == nine
    assert slots.due_slot(nine + timedelta(hours=2)) is None  # missed by too much: tomorrow
    every_minute = CronSlots.parse("* * * * *", "UTC")
    now = datetime(2026, 12, 1, 9, 7, 42, tzinfo=UTC)
    assert every_minute.due_slot(now) == datetime(2026, 12, 1, 9, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "says"),
    [
        ("0 9 * *", "UTC", "five cron fields"),
        ("0 9 * * * *", "UTC", "five cron fields"),
        ("61 9 * * *", "UTC", "61"),
        ("0 9 * * 8", "UTC", "weekday '8'"),
        ("0 9 * * funday", "UTC", "weekday"),
        ("*/0 * * * *", "UTC", "Increment"),
        ("0 9 * * *", "Mars/Olympus", "unknown time zone"),
        ("0 9 * * *", "../../etc/passwd", "unknown time zone"),
    ],
)
def test_a_bad_schedule_is_one_line(expression: str, zone: str, says: str) -> None:
    with pytest.raises(ScheduleError) as err:
        CronSlots.parse(expression, zone)
    assert says in str(err.value)
    assert "\n" not in str(err.value)
