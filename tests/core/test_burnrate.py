"""Which burn-rate window pairs apply to an SLA (the one choice the rules and the boards share)."""

from __future__ import annotations

from slaprobe.burnrate import applicable_windows

DAY = 86400.0


def pairs(period: float, budget: float) -> list[str]:
    return [f"{window.label} {factor:g} {window.severity}" for window, factor in applicable_windows(period, budget)]


def test_a_30_day_999_sla_gets_the_four_workbook_pairs_fastest_first() -> None:
    assert pairs(30 * DAY, 0.001) == ["1h/5m 14.4 page", "6h/30m 6 page", "1d/2h 3 ticket", "3d/6h 1 ticket"]


def test_a_7_day_window_gets_the_four_pairs_scaled_with_the_workbook_factors() -> None:
    assert pairs(7 * DAY, 0.001) == [
        "14m/1m10s 14.4 page",
        "1h24m/7m 6 page",
        "5h36m/28m 3 ticket",
        "16h48m/1h24m 1 ticket",
    ]


def test_a_1_day_window_gets_the_four_pairs_scaled_to_minutes() -> None:
    assert pairs(DAY, 0.001) == ["2m/1m 14.4 page", "12m/1m 6 page", "48m/4m 3 ticket", "2h24m/12m 1 ticket"]


def test_a_low_objective_drops_the_pairs_that_could_never_fire() -> None:
    # 90%: a budget of 0.1, and 14.4 x 0.1 is more than every request failing.
    assert pairs(30 * DAY, 0.1) == ["6h/30m 6 page", "1d/2h 3 ticket", "3d/6h 1 ticket"]


def test_a_1_hour_window_keeps_only_pairs_that_can_spend_the_budget_each_label_once() -> None:
    # The one-minute floor bends the scale: 2m/1m would come three times (factors 0.6, 1.5, 3).
    assert pairs(3600.0, 0.001) == ["2m/1m 1.5 page", "6m/1m 1 ticket"]


def test_every_window_length_gives_each_burnrate_label_at_most_once() -> None:
    for minutes in range(1, 60 * 24 * 40, 37):
        labels = [line.split()[0] for line in pairs(minutes * 60.0, 0.001)]
        assert len(labels) == len(set(labels)), (minutes, labels)
