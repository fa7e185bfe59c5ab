"""Which burn-rate window pairs apply to an SLA (the one choice the rules and the boards share)."""

from __future__ import annotations

from slaprobe.burnrate import applicable_windows

DAY = 86400.0


def pairs(period: float, budget: float) -> list[str]:
    return [f"{window.label} {factor:g} {window.severity}" for window, factor in applicable_windows(period, budget)]


def test_a_30_day_999_sla_gets_the_four_workbook_pairs_fastest_first() -> None:
    assert pairs(30 * DAY, 0.001) == ["1h/5m 14.4 page", "6h/30m 6 page", "1d/2h 3 ticket", "3d/6h 1 ticket"]


def test_a_7_day_window_drops_the_pairs_that_would_alert_below_the_budget() -> None:
    assert pairs(7 * DAY, 0.001) == ["1h/5m 3.36 page", "6h/30m 1.4 page"]


def test_a_low_objective_drops_the_pairs_that_could_never_fire() -> None:
    # 90%: a budget of 0.1, and 14.4 x 0.1 is more than every request failing.
    assert pairs(30 * DAY, 0.1) == ["6h/30m 6 page", "1d/2h 3 ticket", "3d/6h 1 ticket"]


def test_a_window_shorter_than_the_long_window_gets_no_pair_longer_than_itself() -> None:
    assert pairs(3600.0, 0.001) == []  # 1h: the 1h pair's factor is 0.02, below 1
