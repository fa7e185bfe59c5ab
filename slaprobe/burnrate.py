"""Which multi-window burn-rate alerts apply to an SLA: one answer for the rules and the boards.

The rows are the SRE workbook's table (``conventions.BURN_RATE_TABLE``): alert when a share
of the SLA window's error budget is spent within a long window, confirmed by a short one.
``alerts/`` writes the alerts (and records the windows) from ``applicable_windows``;
``dashboards/`` draws the same thresholds, so a line on a burn-rate graph is always an alert
that exists. Every SLA window gets every pair: a 1d window scales them (``windows_for``).
"""

from __future__ import annotations

from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.units import format_duration, format_value, parse_duration


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One row of the table: ``budget_share`` of the budget spent within ``long``."""

    budget_share: float
    long: str  # Prometheus duration, e.g. "1h"
    short: str
    severity: str

    @property
    def label(self) -> str:
        """The stable ``burnrate`` label value: ``1h/5m``."""
        return f"{self.long}/{self.short}"

    def factor(self, period: float) -> float:
        """The burn rate that spends ``budget_share`` of a ``period``-second budget within ``long``."""
        return round(self.budget_share * period / parse_duration(self.long), 6)


BURN_WINDOWS = tuple(BurnWindow(*row) for row in c.BURN_RATE_TABLE)

# The SLA windows the workbook's table is written for: its windows are used as they are (as Sloth
# ships them for both). Other SLA windows get the table scaled to their length, as Pyrra does.
REFERENCE_PERIOD = 30 * 86400.0
UNSCALED_PERIODS = (28 * 86400.0, REFERENCE_PERIOD)
MIN_WINDOW = 60.0  # seconds: a rate needs two samples; shorter scaled windows are raised to this


def _scaled(seconds: float) -> float:
    """A scaled window rounded to whole minutes (whole seconds below two minutes), at least ``MIN_WINDOW``."""
    unit = 60.0 if seconds >= 120 else 1.0
    return max(MIN_WINDOW, round(seconds / unit) * unit)


def windows_for(period: float) -> tuple[BurnWindow, ...]:
    """The table's window pairs for an SLA window of ``period`` seconds.

    28d and 30d get the workbook's windows (1h/5m, 6h/30m, 1d/2h, 3d/6h); any other window
    gets them scaled by ``period / 30d`` (a 1d window: 2m/1m, 12m/1m, 48m/4m, 2h24m/12m), so
    its burn-rate factors stay the workbook's 14.4, 6, 3 and 1 and each pair still spends the
    same share of the budget. A scaled short window is at least ``MIN_WINDOW`` and the long
    one at least twice the short one.
    """
    if period in UNSCALED_PERIODS:
        return BURN_WINDOWS
    scale = period / REFERENCE_PERIOD
    found = []
    for window in BURN_WINDOWS:
        short = _scaled(parse_duration(window.short) * scale)
        long = max(_scaled(parse_duration(window.long) * scale), 2 * short)
        found.append(BurnWindow(window.budget_share, format_duration(long), format_duration(short), window.severity))
    return tuple(found)


def _left_out_because(
    window: BurnWindow, factor: float, period: float, budget: float, kept: list[tuple[BurnWindow, float]]
) -> str | None:
    """Why a pair does not apply, or None when it does (see ``applicable_windows``)."""
    if factor * budget >= 1:
        return "threshold 100% or more"
    if period not in UNSCALED_PERIODS and factor < 1:  # 28d keeps Sloth's 0.93 on 3d/6h
        return "factor below 1"
    if any(window.label == other.label for other, _ in kept):
        return "the windows of a faster pair"
    return None


def _sorted_out(period: float, budget: float) -> tuple[list[tuple[BurnWindow, float]], list[tuple[BurnWindow, str]]]:
    kept: list[tuple[BurnWindow, float]] = []
    dropped: list[tuple[BurnWindow, str]] = []
    for window in windows_for(period):
        factor = window.factor(period)
        reason = _left_out_because(window, factor, period, budget, kept)
        if reason is None:
            kept.append((window, factor))
        else:
            dropped.append((window, reason))
    return kept, dropped


def applicable_windows(period: float, budget: float) -> list[tuple[BurnWindow, float]]:
    """The window pairs that apply to an SLA window of ``period`` seconds and an error budget
    ratio ``budget`` (99.9% -> 0.001), fastest first, each with its burn-rate factor.

    Every SLA window gets all four pairs (``windows_for``). Left out only: a pair whose
    threshold (factor x budget) is 100% or more (an objective too low for it: it could never
    fire); and, for SLA windows so short that the one-minute floor of ``windows_for`` bends
    the scale (under about two days), a pair whose factor fell below 1 (it would alert on a
    burn that cannot spend the budget) or whose windows equal a faster pair's (the same
    ``burnrate`` label twice would be one alert written twice). ``describe_windows`` says
    which pairs a window gets, and why any is left out, for ``check``.
    """
    return _sorted_out(period, budget)[0]


def describe_windows(period: float, budget: float) -> str:
    """One line for ``check``: the burn-rate pairs an SLA window gets, and those left out with the reason."""
    kept, dropped = _sorted_out(period, budget)
    parts = [f"{w.label} x{format_value(f)} {w.severity}" for w, f in kept]
    text = f"SLA window {format_duration(period)}: burn-rate pairs " + (", ".join(parts) or "none")
    if dropped:
        text += " (left out: " + "; ".join(f"{w.label}, {why}" for w, why in dropped) + ")"
    return text


def describe_config(cfg: Config) -> list[str]:
    """``describe_windows`` for each SLA window and availability objective of a config, naming its services."""
    groups: dict[tuple[float, float], list[str]] = {}
    for name, service in cfg.services.items():
        key = (service.sla.window, round((100 - service.sla.availability) / 100, 12))
        groups.setdefault(key, []).append(name)
    lines = []
    for (period, budget), names in sorted(groups.items()):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{describe_windows(period, budget)} [{format_value(100 - budget * 100)}%: {shown}]")
    return lines
