"""A five-field cron schedule in a time zone, read as slots: "which run is due now?".

APScheduler's ``CronTrigger`` does the calendar (months, DST), with one correction:
its ``day_of_week`` numbers start at Monday (0 = Monday), while cron's start at Sunday
(0 and 7 = Sunday). ``0 9 * * 0`` handed over as is would report on Mondays, so the
day-of-week field is read here in cron's numbering and handed over as day names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

# A slot missed by at most this much (a restart, a deploy) is still run, once.
CATCH_UP = timedelta(hours=1)
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_ITEM = re.compile(r"^(\*|[0-9a-z]{1,3})(?:-([0-9a-z]{1,3}))?(?:/([0-9]{1,2}))?$")


class ScheduleError(ValueError):
    """A cron expression or zone that cannot be used (its message is one line)."""


@dataclass(frozen=True)
class CronSlots:
    """The slots of a cron expression in a zone (a ``SlotClock``)."""

    expression: str
    zone: str
    trigger: CronTrigger
    catch_up: timedelta = CATCH_UP

    @classmethod
    def parse(cls, expression: str, zone: str, *, catch_up: timedelta = CATCH_UP) -> CronSlots:
        """``0 9 * * *`` in ``Europe/Paris``; ScheduleError (one line) for a bad one."""
        fields = expression.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"must be five cron fields (minute hour day month weekday), got {len(fields)}"
            )
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {zone[:60]!r}") from None
        minute, hour, day, month, weekday = fields
        try:
            trigger = CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=cron_weekdays(weekday),
                timezone=tz,
            )
        except ValueError as err:
            raise ScheduleError(str(err).splitlines()[0][:200]) from None
        return cls(expression=expression, zone=zone, trigger=trigger, catch_up=catch_up)

    def next_slot(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after``."""
        nxt = self.trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        return nxt if isinstance(nxt, datetime) else None

    def due_slot(self, now: datetime) -> datetime | None:
        """The newest slot in (now - catch_up, now], or None."""
        due = None
        slot = self.next_slot(now - self.catch_up)
        while slot is not None and slot <= now:
            due = slot
            slot = self.next_slot(slot)
        return due


def cron_weekdays(field: str) -> str:
    """Cron's day-of-week field (0 or 7 = Sunday, names, ranges, steps) as APScheduler's."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        days |= _weekday_item(item)
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _weekday_item(item: str) -> set[int]:
    match = _DAY_ITEM.fullmatch(item)
    if match is None:
        raise ScheduleError(f"weekday field: cannot read {item[:20]!r}")
    start, end, step = match.groups()
    lo, hi = (0, 6) if start == "*" else (_day(start), _day(end if end else start))
    if start != "*" and end is None and step is not None:
        hi = 6  # "1/2": from Monday, every second day
    if start != "*" and end is not None and hi == 0:
        hi = 7  # "5-7" and "5-0" end on Sunday
    stride = int(step) if step else 1
    if stride < 1 or lo > hi:
        raise ScheduleError(f"weekday field: {item[:20]!r} is an empty range")
    return {d % 7 for d in range(lo, hi + 1, stride)}


def _day(word: str) -> int:
    if word.isdigit():
        if int(word) > 7:
            raise ScheduleError(f"weekday {word!r} is not 0-7 (0 and 7 are Sunday)")
        return int(word)
    if word not in _DAY_NAMES:
        raise ScheduleError(f"weekday {word!r} is not a day (sun, mon, ... sat)")
    return _DAY_NAMES.index(word)
