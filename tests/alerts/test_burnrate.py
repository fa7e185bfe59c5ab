"""Which burn-rate pairs each SLA window gets: all four, scaled to windows other than 28d/30d."""

from __future__ import annotations

import pytest

from slaprobe.alerts import generate_rules
from slaprobe.burnrate import applicable_windows, describe_windows, windows_for
from slaprobe.config import load_config
from slaprobe.units import parse_duration
from tests.alerts.conftest import CONFIGS

DAY = 86400.0


@pytest.mark.parametrize("days", [1, 7, 28, 30, 90])
def test_every_sla_window_gets_all_four_pairs(days: int) -> None:
    pairs = applicable_windows(days * DAY, 0.001)
    assert [w.severity for w, _ in pairs] == ["page", "page", "ticket", "ticket"]
    assert all(w.long != w.short for w, _ in pairs)


def test_a_30d_window_keeps_the_workbook_table() -> None:
    pairs = applicable_windows(30 * DAY, 0.001)
    assert [(w.label, f) for w, f in pairs] == [("1h/5m", 14.4), ("6h/30m", 6), ("1d/2h", 3), ("3d/6h", 1)]


def test_a_28d_window_keeps_the_3d_pair_as_sloth_does() -> None:
    assert [w.label for w, _ in applicable_windows(28 * DAY, 0.001)] == ["1h/5m", "6h/30m", "1d/2h", "3d/6h"]


def test_a_1d_window_gets_the_table_scaled_with_the_workbook_factors() -> None:
    pairs = applicable_windows(DAY, 0.005)
    assert [(w.label, f) for w, f in pairs] == [("2m/1m", 14.4), ("12m/1m", 6), ("48m/4m", 3), ("2h24m/12m", 1)]


def test_scaled_windows_are_never_shorter_than_a_minute() -> None:
    for days in (1, 7):
        assert min(parse_duration(w.short) for w in windows_for(days * DAY)) >= 60


def test_a_pair_that_could_never_fire_is_left_out_and_named() -> None:
    text = describe_windows(DAY, 0.1)  # 90%: 14.4 x 10% is above 100%
    assert text.startswith("SLA window 1d: burn-rate pairs 12m/1m x6 page")
    assert text.endswith("(left out: 2m/1m, threshold 100% or more)")


def test_a_1d_service_gets_burn_rate_alerts_and_records_their_windows() -> None:
    cfg = load_config(CONFIGS / "odd.yaml")
    rules = generate_rules(cfg)
    flat = [r for g in rules["groups"] for r in g["rules"]]
    burns = {
        r["labels"]["burnrate"]
        for r in flat
        if r.get("alert") == "SLAErrorBudgetBurn" and r["labels"].get("service") == "batch"
    }
    assert burns == {"12m/1m", "48m/4m", "2h24m/12m"}
    recorded = {
        r.get("labels", {}).get("sloth_window")
        for r in flat
        if r.get("record") and r.get("labels", {}).get("service") == "batch"
    }
    assert {"1m", "4m", "12m", "48m", "2h24m"} <= recorded


def test_a_1h_window_names_each_pair_it_leaves_out_with_its_reason() -> None:
    text = describe_windows(3600.0, 0.001)
    assert text.endswith("(left out: 2m/1m, factor below 1; 2m/1m, the windows of a faster pair)")
