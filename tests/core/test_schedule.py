"""Schedules: cron expressions and time windows, checked on a fixed clock (no sleeps)."""

from __future__ import annotations

import datetime as dt

import pytest

from slaprobe.config import ConfigError, parse_config
from slaprobe.schedule import CronExpression, Schedule, TimeInterval, zone

SHANGHAI = zone("Asia/Shanghai")
BUSINESS_HOURS = {
    "weekdays": ["monday:friday"],
    "times": [{"start_time": "09:00", "end_time": "18:00"}],
    "location": "Asia/Shanghai",
}


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


def slots(schedule: Schedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out = []
    due = schedule.next_due(start.timestamp())
    while due < end.timestamp():
        out.append(dt.datetime.fromtimestamp(due, SHANGHAI))
        due = schedule.next_due(due + 1e-3)
    return out


def test_a_business_hours_cron_fires_every_quarter_hour_on_weekdays_only() -> None:
    cron = CronExpression.parse("*/15 9-17 * * mon-fri")
    saturday_noon = at(2026, 11, 21, 12, 0)
    assert cron.next_after(saturday_noon) == at(2026, 11, 23, 9, 0)
    assert cron.next_after(at(2026, 11, 23, 17, 45)) == at(2026, 11, 24, 9, 0)
    schedule = Schedule(interval=900, cron=cron, tz=SHANGHAI)
    assert len(slots(schedule, at(2026, 11, 23, 0, 0), at(2026, 11, 24, 0, 0))) == 9 * 4


def test_day_of_month_and_day_of_week_combine_with_or_as_in_vixie_cron() -> None:
    cron = CronExpression.parse("0 12 1 * fri")
    assert cron.matches(at(2026, 12, 1, 12, 0))  # the 1st, a Tuesday
    assert cron.matches(at(2026, 11, 27, 12, 0))  # a Friday
    assert not cron.matches(at(2026, 11, 26, 12, 0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * *", "cron expression '* * *' needs 5 fields (minute hour day-of-month month day-of-week)"),
        ("61 * * * *", "minute: '61' is not in 0-59"),
        ("*/0 * * * *", "minute: bad step '0'"),
        ("0 18-9 * * *", "hour: range '18-9' runs backwards"),
        ("0 9 * * funday", "day of week: 'funday' is not in 0-7"),
    ],
)
def test_an_invalid_cron_expression_is_rejected_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        CronExpression.parse(text)
    assert str(caught.value) == message


def test_macros_and_names_are_understood() -> None:
    assert CronExpression.parse("@hourly").next_after(at(2026, 1, 1, 10, 5)) == at(2026, 1, 1, 11, 0)
    assert CronExpression.parse("0 0 1 jan,jul *").next_after(at(2026, 2, 1, 0, 0)) == at(2026, 7, 1, 0, 0)


def test_a_time_interval_matches_alertmanager_business_hours_in_its_own_zone() -> None:
    window = TimeInterval.parse(BUSINESS_HOURS)
    assert window.contains(at(2026, 11, 23, 9, 0).timestamp())
    assert not window.contains(at(2026, 11, 23, 18, 0).timestamp())  # end is exclusive
    assert not window.contains(at(2026, 11, 22, 10, 0).timestamp())  # Sunday
    assert window.contains(dt.datetime(2026, 11, 23, 9, 59, tzinfo=dt.UTC).timestamp())  # 17:59 in Shanghai
    assert not window.contains(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp())  # 18:00 in Shanghai


def test_negative_days_of_month_count_from_the_end() -> None:
    window = TimeInterval.parse({"days_of_month": ["-1"]})
    assert window.contains(dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC).timestamp())
    assert not window.contains(dt.datetime(2026, 2, 27, 12, tzinfo=dt.UTC).timestamp())


def test_an_interval_schedule_inside_a_window_plans_only_the_slots_in_the_window() -> None:
    schedule = Schedule(interval=1800, offset=0, during=(TimeInterval.parse(BUSINESS_HOURS),))
    monday = slots(schedule, at(2026, 11, 23, 0, 0), at(2026, 11, 24, 0, 0))
    assert len(monday) == 18 and monday[0] == at(2026, 11, 23, 9, 0) and monday[-1] == at(2026, 11, 23, 17, 30)
    assert slots(schedule, at(2026, 11, 22, 0, 0), at(2026, 11, 23, 0, 0)) == []  # Sunday


def test_a_window_that_never_opens_has_no_slot() -> None:
    never = TimeInterval.parse({"years": ["1999"]})
    assert Schedule(interval=60, during=(never,), horizon=7 * 86400).next_due(0) == float("inf")


def test_invalid_time_intervals_name_the_key() -> None:
    with pytest.raises(ValueError, match="times: start_time 18:00 is not before end_time 09:00"):
        TimeInterval.parse({"times": [{"start_time": "18:00", "end_time": "09:00"}]})
    with pytest.raises(ValueError, match="weekdays: 'someday' is not a valid range"):
        TimeInterval.parse({"weekdays": ["someday"]})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"weekdays": 5}, "weekdays: expected a list, got int 5"),
        ({"times": True}, "times: expected a list, got bool True"),
        ({"months": "may"}, "months: expected a list, got str 'may'"),
        ({"years": {"from": 2020}}, "years: expected a list, got dict"),
    ],
)
def test_a_scalar_where_alertmanager_wants_a_list_is_a_value_error_naming_the_key(
    entry: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TimeInterval.parse(entry)


def test_a_scalar_time_interval_field_is_a_config_error_with_its_path() -> None:
    text = "version: v1\ntime_intervals:\n  office:\n    - weekdays: 5\nservices: {}\n"
    with pytest.raises(ConfigError, match=r"time_intervals\.office\[0\].*weekdays: expected a list"):
        parse_config(text, "t.yaml")
