"""Per-service tallies by hour and day for the status page: the strip, the SLA window, today."""

from __future__ import annotations

from slaprobe.exporter.hours import HOUR, Hours, ServiceHours, Tally


def test_the_strip_holds_the_last_24_hours_oldest_first_with_the_current_hour_last() -> None:
    hours = ServiceHours(24)
    now = 1_800_000_000.0
    hours.record(False, now - 2 * HOUR, day=1)
    hours.record(True, now - 2 * HOUR, day=1)
    hours.record(False, now, day=1)
    strip = hours.strip(now)
    assert len(strip) == 24
    assert strip[-1][1] == Tally(1, 0) and strip[-3][1] == Tally(2, 1)
    assert strip[-3][1].availability == 0.5 and strip[0][1].availability is None


def test_an_hour_a_whole_ring_ago_does_not_leak_into_the_same_slot() -> None:
    hours = ServiceHours(24)
    now = 1_800_000_000.0
    hours.record(True, now - 24 * HOUR, day=1)  # a failure, in the same slot of the ring as now
    hours.record(False, now, day=2)
    assert hours.hour(int(now // HOUR)) == Tally(1, 0)
    assert hours.over(24 * HOUR, now) == Tally(1, 0)  # the older hour fell out of the window


def test_the_sla_window_sums_its_hours_and_today_starts_afresh_each_day() -> None:
    hours = Hours()
    hours.sync([("shop", 7 * 86400.0)])
    now = 1_800_000_000.0
    for h in reversed(range(100)):  # from 100 hours back to now, one run an hour, every tenth failed
        hours.record("shop", h % 10 == 0, now - h * HOUR, day=1 if h else 2)
    shop = hours.get("shop")
    assert shop is not None and shop.size == 7 * 24
    assert shop.over(7 * 86400.0, now) == Tally(100, 10)
    assert shop.over(10 * HOUR, now) == Tally(10, 1)
    assert shop.today(2) == Tally(1, 1) and shop.today(3) == Tally()


def test_a_reload_keeps_the_tallies_of_a_service_whose_window_is_unchanged() -> None:
    hours = Hours()
    hours.sync([("shop", 86400.0), ("gone", 86400.0)])
    hours.record("shop", False, 1_800_000_000.0, day=1)
    kept = hours.get("shop")
    hours.sync([("shop", 86400.0)])
    assert hours.get("shop") is kept and hours.get("gone") is None
    hours.sync([("shop", 30 * 86400.0)])
    longer = hours.get("shop")
    assert longer is not None and longer is not kept and longer.size == 30 * 24
