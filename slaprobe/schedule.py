"""When probes run: cron expressions and Alertmanager-style time intervals (pure, no I/O).

``CronExpression`` is the classic five fields (minute hour day-of-month month
day-of-week) with lists, ranges, steps and names; day-of-month and day-of-week combine
with OR when both are restricted, as in Vixie cron. ``TimeInterval`` matches the
``time_intervals`` entries of Alertmanager (times, weekdays, days_of_month, months,
years, location), so one ``business-hours`` definition serves both routing and probes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]  # fmt: skip
_WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_CRON_NAMES = {
    3: {m[:3]: i + 1 for i, m in enumerate(_MONTHS)},
    4: {d[:3]: i for i, d in enumerate(_WEEKDAYS)},
}
_CRON_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


UTC = ZoneInfo("UTC")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _cron_field(text: str, index: int) -> frozenset[int]:
    low, high = _CRON_BOUNDS[index]
    names = _CRON_NAMES.get(index, {})
    values: set[int] = set()

    def number(token: str) -> int:
        value = names.get(token.lower()) if not token.isdigit() else int(token)
        if value is None or not low <= value <= high:
            raise ValueError(f"{_CRON_FIELDS[index]}: {token!r} is not in {low}-{high}")
        return value

    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{_CRON_FIELDS[index]}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise ValueError(f"{_CRON_FIELDS[index]}: range {base!r} runs backwards")
        else:
            start = number(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:  # both 0 and 7 mean Sunday
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed five-field cron expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``*/5 9-17 * * mon-fri`` or a macro such as ``@hourly``; ValueError if invalid."""
        fields = _MACROS.get(text.strip(), text).split()
        if len(fields) != 5:
            raise ValueError(f"cron expression {text!r} needs 5 fields (minute hour day-of-month month day-of-week)")
        minutes, hours, days, months, weekdays = (_cron_field(f, i) for i, f in enumerate(fields))
        return cls(
            text, minutes, hours, days, months, weekdays,
            days_restricted=fields[2] != "*", weekdays_restricted=fields[4] != "*",
        )  # fmt: skip

    def matches(self, when: dt.datetime) -> bool:
        """Whether the minute of ``when`` (local time of its zone) is a firing time."""
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first firing time strictly after ``after`` (same zone), searching up to ~4 years."""
        when = (after + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        limit = when + dt.timedelta(days=366 * 4)
        while when < limit:
            if when.month not in self.months:
                year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
                when = when.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(when):
                when = (when + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if when.hour not in self.hours:
                when = (when + dt.timedelta(hours=1)).replace(minute=0)
                continue
            if when.minute in self.minutes:
                return when
            when += dt.timedelta(minutes=1)
        raise ValueError(f"cron expression {self.text!r} never fires")

    def _day_matches(self, when: dt.datetime) -> bool:
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _ranges(items: Iterable[str], names: Sequence[str] | None, what: str, low: int, high: int) -> list[tuple[int, int]]:
    """Alertmanager ranges: ``"monday:friday"``, ``"1:5"``, ``"-1"`` (negative days count from month end)."""
    out = []
    for item in items:
        first, _, last = str(item).partition(":")
        bounds = []
        for token in (first, last or first):
            token = token.strip().lower()
            if names is not None and token in names:
                bounds.append(names.index(token) + (1 if what == "months" else 0))
            else:
                try:
                    value = int(token)
                except ValueError:
                    raise ValueError(f"{what}: {item!r} is not a valid range") from None
                if not (low <= value <= high or (what == "days_of_month" and -31 <= value <= -1)):
                    raise ValueError(f"{what}: {item!r} is out of range")
                bounds.append(value)
        out.append((bounds[0], bounds[1]))
    return out


def _items(entry: Mapping[str, Any], key: str) -> list[Any]:
    """The list under ``key`` (empty when absent); ValueError naming ``key`` when it is not a list."""
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
    return value


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()) or not (0 <= int(hours) <= 24 and 0 <= int(minutes) < 60):
        raise ValueError(f"times: {text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if value > 24 * 60:
        raise ValueError(f"times: {text!r} is after 24:00")
    return value


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """One Alertmanager ``time_intervals`` entry; every given field must match."""

    times: tuple[tuple[int, int], ...]  # minutes of the day, [start, end)
    weekdays: tuple[tuple[int, int], ...]  # 0 = Sunday
    days_of_month: tuple[tuple[int, int], ...]
    months: tuple[tuple[int, int], ...]
    years: tuple[tuple[int, int], ...]
    tz: ZoneInfo

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> TimeInterval:
        """Parse an entry; ValueError naming the offending key."""
        known = {"times", "weekdays", "days_of_month", "months", "years", "location"}
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        times = []
        for span in _items(entry, "times"):
            if not isinstance(span, Mapping) or set(span) != {"start_time", "end_time"}:
                raise ValueError("times: each entry needs start_time and end_time")
            start, end = _minutes(str(span["start_time"])), _minutes(str(span["end_time"]))
            if start >= end:
                raise ValueError(f"times: start_time {span['start_time']} is not before end_time {span['end_time']}")
            times.append((start, end))
        return cls(
            times=tuple(times),
            weekdays=tuple(_ranges(_items(entry, "weekdays"), _WEEKDAYS, "weekdays", 0, 6)),
            days_of_month=tuple(_ranges(_items(entry, "days_of_month"), None, "days_of_month", 1, 31)),
            months=tuple(_ranges(_items(entry, "months"), _MONTHS, "months", 1, 12)),
            years=tuple(_ranges(_items(entry, "years"), None, "years", 1, 9999)),
            tz=zone(str(entry.get("location", "UTC"))),
        )

    def contains(self, timestamp: float) -> bool:
        """Whether the unix time ``timestamp`` falls inside this interval."""
        when = dt.datetime.fromtimestamp(timestamp, self.tz)
        minute = when.hour * 60 + when.minute
        if self.times and not any(start <= minute < end for start, end in self.times):
            return False
        return self._day_matches(when.date())

    def _day_matches(self, day: dt.date) -> bool:
        weekday = day.isoweekday() % 7
        if self.weekdays and not any(a <= weekday <= b for a, b in self.weekdays):
            return False
        if self.days_of_month:
            days_in_month = calendar.monthrange(day.year, day.month)[1]
            if not any(
                (a if a > 0 else days_in_month + a + 1) <= day.day <= (b if b > 0 else days_in_month + b + 1)
                for a, b in self.days_of_month
            ):
                return False
        if self.months and not any(a <= day.month <= b for a, b in self.months):
            return False
        return not (self.years and not any(a <= day.year <= b for a, b in self.years))

    def next_open(self, timestamp: float, limit: float) -> float:
        """The first unix time at or after ``timestamp`` inside this interval; inf if none by ``limit``.

        Computed on the calendar, a day, month or year at a time, not by trying every slot.
        The wall clock is a straight line of the unix time only while the UTC offset holds,
        so the search runs one offset at a time: the offset is sampled every
        ``_OFFSET_SAMPLE`` seconds and a change is found to the second by bisection.
        """
        wall_end = _wall(limit, self.tz) + _WALL_SLACK
        start = timestamp
        while start <= limit:
            local = dt.datetime.fromtimestamp(start, self.tz)
            offset = local.utcoffset()
            wall = local.replace(tzinfo=None)
            found = self._next_wall(wall, wall_end)
            if found is not None:
                # Exact for whole minutes: no float rounding between the opening and a slot on it.
                opening = start if found == wall else (found - _EPOCH).total_seconds() - _seconds(offset)
            elif self._next_wall(wall - _WALL_SLACK, wall_end) is None:
                return math.inf  # not even a clock turned back reaches an opening (e.g. a year in the past)
            else:
                opening = math.inf  # unless the clock is turned back before the limit
            change = _offset_change(self.tz, start, min(opening, limit), offset)
            if change is None:
                return opening if opening <= limit else math.inf
            start = change
        return math.inf

    def _next_wall(self, wall: dt.datetime, end: dt.datetime) -> dt.datetime | None:
        """The first naive wall-clock time at or after ``wall`` (and before ``end``) in this interval."""
        while wall < end:
            day = wall.date()
            if self.years and not any(a <= day.year <= b for a, b in self.years):
                later = [a for a, _ in self.years if a > day.year]
                if not later:
                    return None
                wall = dt.datetime(min(later), 1, 1)
                continue
            if self.months and not any(a <= day.month <= b for a, b in self.months):
                wall = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1)
                continue
            if not self._day_matches(day):
                wall = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
                continue
            if not self.times:
                return wall
            minute = wall.hour * 60 + wall.minute
            opens = [start for start, end in sorted(self.times) if minute < end]
            if opens:
                return (
                    wall if opens[0] <= minute else dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=opens[0])
                )
            wall = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        return None


_EPOCH = dt.datetime(1970, 1, 1)
_WALL_SLACK = dt.timedelta(days=2)  # more than any UTC offset ever moved at once
_OFFSET_SAMPLE = 6 * 3600.0
"""Seconds between looks at the UTC offset. Zones change offset at most a few times a year,
never twice within six hours, so one change between two looks is found by bisection."""


def _wall(timestamp: float, tz: ZoneInfo) -> dt.datetime:
    if timestamp == math.inf:
        return dt.datetime.max - _WALL_SLACK
    return dt.datetime.fromtimestamp(timestamp, tz).replace(tzinfo=None)


def _seconds(offset: dt.timedelta | None) -> float:
    return offset.total_seconds() if offset is not None else 0.0


def _offset_change(tz: ZoneInfo, start: float, end: float, offset: dt.timedelta | None) -> float | None:
    """The first whole second in (start, end] whose UTC offset differs from ``offset``, or None."""

    def differs(t: float) -> bool:
        return dt.datetime.fromtimestamp(t, tz).utcoffset() != offset

    low = start
    while low < end:
        high = min(low + _OFFSET_SAMPLE, end)
        if differs(high):
            lo, hi = math.floor(low), math.ceil(high)  # offsets change on whole seconds
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if differs(mid) else (mid, hi)
            return float(max(hi, start))
        low = high
    return None


def within(intervals: Sequence[TimeInterval], timestamp: float) -> bool:
    """Whether ``timestamp`` is inside any of ``intervals`` (an empty list means always)."""
    return not intervals or any(i.contains(timestamp) for i in intervals)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one probe is due: every ``interval`` at ``offset`` or at cron times, inside ``during``."""

    interval: float  # seconds; the grid step when there is no cron
    offset: float = 0.0  # seconds into each interval (spreads probes)
    cron: CronExpression | None = None
    tz: ZoneInfo = UTC
    during: tuple[TimeInterval, ...] = ()
    horizon: float = 400 * 86400.0  # give up looking for a slot after this many seconds

    def next_due(self, after: float) -> float:
        """The first slot at or after unix time ``after`` (cron: strictly after the minute before).

        Outside ``during`` it jumps to the next window opening rather than trying each slot:
        a window that never opens costs a calendar scan, not a 400-day walk of 30 s slots.
        """
        limit = after + self.horizon
        candidate = self._next_slot(after)
        while not within(self.during, candidate):
            opening = min(interval.next_open(candidate, limit) for interval in self.during)
            if opening > limit:
                return math.inf
            later = self._next_slot(max(opening, candidate + 1e-6))
            # A slot rounded down to just before the opening would be found again: step past it.
            candidate = later if later > candidate else self._next_slot(candidate + 1e-6)
            if candidate > limit:
                return math.inf
        return candidate

    def _next_slot(self, after: float) -> float:
        if self.cron is None:
            return self.offset + math.ceil((after - self.offset) / self.interval) * self.interval
        base = dt.datetime.fromtimestamp(after - self.offset, self.tz)
        floor = base.replace(second=0, microsecond=0)
        if floor == base and self.cron.matches(floor):
            return floor.timestamp() + self.offset
        return self.cron.next_after(floor).timestamp() + self.offset
