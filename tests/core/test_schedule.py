"""Schedules: cron expressions and time windows, checked on a fixed clock (no sleeps)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaprobe.config import ConfigError, parse_config
from slaprobe.schedule import CronExpression, Schedule, TimeInterval, within, zone

SHANGHAI = zone("Asia/Shanghai")
BUSINESS_HOURS = {
    "weekdays": ["monday:friday"],
    "times": [{"start_time": "09:00", "end_time": "18:00"}],
    "location": "Asia/Shanghai",
}


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


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


def test_a_window_that_never_opens_is_found_on_the_calendar_not_by_walking_each_slot() -> None:
    # 400 days of 1 s slots: stepping through them would never finish within the test timeout.
    past = TimeInterval.parse({"years": ["1999"]})
    no_such_day = TimeInterval.parse({"months": ["february"], "days_of_month": ["30"]})
    for never in (past, no_such_day):
        assert Schedule(interval=1, during=(never,)).next_due(at(2026, 11, 23, 0, 0).timestamp()) == float("inf")


def test_the_next_slot_inside_a_window_months_away_is_found_at_the_window_opening() -> None:
    december = TimeInterval.parse(
        {"months": ["december"], "times": [{"start_time": "09:00", "end_time": "10:00"}], "location": "Asia/Shanghai"}
    )
    schedule = Schedule(interval=1, during=(december,))
    assert schedule.next_due(at(2026, 1, 5, 12, 0).timestamp()) == at(2026, 12, 1, 9, 0).timestamp()


def test_a_window_in_local_time_opens_at_its_local_hour_on_both_sides_of_a_dst_change() -> None:
    berlin = zone("Europe/Berlin")
    morning = TimeInterval.parse({"times": [{"start_time": "09:00", "end_time": "09:30"}], "location": "Europe/Berlin"})
    schedule = Schedule(interval=60, during=(morning,))
    before = dt.datetime(2026, 3, 28, 12, 0, tzinfo=berlin).timestamp()  # the clocks go forward that night
    assert schedule.next_due(before) == dt.datetime(2026, 3, 29, 9, 0, tzinfo=berlin).timestamp()
    autumn = dt.datetime(2026, 10, 24, 12, 0, tzinfo=berlin).timestamp()  # and back again
    assert schedule.next_due(autumn) == dt.datetime(2026, 10, 25, 9, 0, tzinfo=berlin).timestamp()


def stepping_next_due(schedule: Schedule, after: float) -> float:
    """The reference model: the first slot inside the windows, trying every slot in turn."""
    limit = after + schedule.horizon
    candidate = schedule._next_slot(after)
    while not within(schedule.during, candidate):
        candidate = schedule._next_slot(candidate + 1e-6)
        if candidate > limit:
            return math.inf
    return candidate


ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
# Days around the 2026 clock changes of those zones, where wall clock and unix time part ways.
DST_DAYS = [(3, 8), (3, 29), (4, 5), (9, 6), (10, 4), (10, 25), (11, 1)]
HOURS = [f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(0, 24 * 60 + 1, 30)]


@st.composite
def time_interval_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"location": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        start, end = sorted(draw(st.lists(st.sampled_from(HOURS), min_size=2, max_size=2, unique=True)))
        entry["times"] = [{"start_time": start, "end_time": end}]
    if draw(st.booleans()):
        first, last = sorted(draw(st.lists(st.integers(0, 6), min_size=2, max_size=2)))
        entry["weekdays"] = [f"{first}:{last}"]
    if draw(st.booleans()):
        entry["days_of_month"] = [draw(st.sampled_from(["1:7", "-1", "15", "29:31", "-7:-1", "30"]))]
    if draw(st.booleans()):
        entry["months"] = [draw(st.sampled_from(["february", "march:april", "10:12", "june"]))]
    if draw(st.booleans()):
        entry["years"] = [draw(st.sampled_from(["2026", "2025:2026", "2027", "1999"]))]
    return entry


@st.composite
def starts(draw: st.DrawFn) -> float:
    if draw(st.booleans()):
        month, day = draw(st.sampled_from(DST_DAYS))
        base = dt.datetime(2026, month, day, tzinfo=dt.UTC).timestamp()
        return base + draw(st.integers(-2 * 86400, 2 * 86400))
    return draw(
        st.floats(
            dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp(), dt.datetime(2027, 6, 1, tzinfo=dt.UTC).timestamp()
        )
    )


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    interval = draw(st.sampled_from([300, 900, 1800, 3600, 5400, 86400]))
    offset = draw(st.sampled_from([0.0, 59.5, interval / 3, interval - 1.0]))
    cron = draw(st.sampled_from([None, None, "*/15 9-17 * * mon-fri", "30 3 * * *", "0 12 1 * fri", "*/30 * * * *"]))
    return Schedule(
        interval=interval,
        offset=offset if cron is None else min(offset, 59.0),
        cron=CronExpression.parse(cron) if cron else None,
        tz=zone(draw(st.sampled_from(ZONES))),
        during=tuple(TimeInterval.parse(e) for e in draw(st.lists(time_interval_entries(), min_size=1, max_size=2))),
        horizon=draw(st.sampled_from([2 * 86400.0, 9 * 86400.0])),
    )


@settings(max_examples=300, deadline=None)
@given(schedule=schedules(), after=starts())
def test_jumping_to_the_window_opening_finds_the_same_slot_as_trying_every_slot(
    schedule: Schedule, after: float
) -> None:
    assert schedule.next_due(after) == stepping_next_due(schedule, after)


def test_a_window_in_the_hour_that_repeats_when_the_clocks_go_back_opens_on_its_second_pass() -> None:
    berlin = zone("Europe/Berlin")
    once = {"times": [{"start_time": "02:00", "end_time": "02:30"}], "days_of_month": ["25"], "months": ["october"]}
    window = TimeInterval.parse({**once, "years": ["2026"], "location": "Europe/Berlin"})
    schedule = Schedule(interval=300, during=(window,), horizon=86400)
    first_pass_over = dt.datetime(2026, 10, 25, 2, 45, tzinfo=berlin)  # summer time, before the clocks go back
    second_pass = dt.datetime(2026, 10, 25, 2, 0, fold=1, tzinfo=berlin)
    assert (
        schedule.next_due(first_pass_over.timestamp())
        == second_pass.timestamp()
        == stepping_next_due(schedule, first_pass_over.timestamp())
    )
