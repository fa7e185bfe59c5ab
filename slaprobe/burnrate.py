"""Which multi-window burn-rate alerts apply to an SLA: one answer for the rules and the boards.

The rows are the SRE workbook's table (``conventions.BURN_RATE_TABLE``): alert when a share
of the SLA window's error budget is spent within a long window, confirmed by a short one.
``alerts/`` writes the alerts from ``applicable_windows``; ``dashboards/`` draws the same
thresholds, so a line on a burn-rate graph is always an alert that exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe.units import parse_duration


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


def applicable_windows(period: float, budget: float) -> list[tuple[BurnWindow, float]]:
    """The window pairs that apply to an SLA window of ``period`` seconds and an error budget
    ratio ``budget`` (99.9% -> 0.001), fastest first, each with its burn-rate factor.

    Left out: a pair whose long window exceeds the SLA window; one whose factor is below 1
    (short SLA windows: it would alert on spending less than the budget); one whose
    threshold (factor x budget) is 100% or more (an objective too low for it: it could
    never fire).
    """
    found = []
    for window in BURN_WINDOWS:
        factor = window.factor(period)
        if parse_duration(window.long) <= period and factor >= 1 and factor * budget < 1:
            found.append((window, factor))
    return found
