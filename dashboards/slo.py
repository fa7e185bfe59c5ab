"""Queries on the generated recording rules (Sloth's names, plus ``service``) and on ``ALERTS``."""

from __future__ import annotations

from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe import promql
from slaprobe.burnrate import applicable_windows
from slaprobe.config import Config, Service
from slaprobe.dashboards.model import Step
from slaprobe.dashboards.promql import selector

# Windows whose error ratio the rules record, shortest first (each SLA window is recorded too).
BURN_WINDOWS: tuple[str, ...] = c.SLO_RATE_WINDOWS

# Colours of the burn-rate alert thresholds, fastest first.
_BURN_COLORS = ("red", "orange", "yellow", "blue")


@dataclass(frozen=True, slots=True)
class BurnThreshold:
    """One burn-rate alert of a service: its window pair, factor and severity."""

    long: str
    short: str
    factor: float
    severity: str

    @property
    def label(self) -> str:
        """The ``burnrate`` label value of the alert (``1h/5m``)."""
        return f"{self.long}/{self.short}"


def burn_thresholds(service: Service) -> list[BurnThreshold]:
    """The burn-rate alerts the rules generate for a service, fastest first: the same choice
    of window pairs (``slaprobe.burnrate.applicable_windows``), so every threshold drawn is
    an alert that exists."""
    budget = promql.budget(service.sla.availability)
    return [
        BurnThreshold(window.long, window.short, factor, window.severity)
        for window, factor in applicable_windows(service.sla.window, budget)
    ]


def burn_steps(service: Service) -> tuple[Step, ...]:
    """Threshold steps at a service's burn-rate alert factors (lines on a burn-rate graph)."""
    factors = sorted({t.factor for t in burn_thresholds(service)})
    colors = list(reversed(_BURN_COLORS[: len(factors)]))
    return (Step(None, "green"), *(Step(f, color) for f, color in zip(factors, colors, strict=True)))


def burn_rate(window: str, *matchers: str) -> str:
    """Error ratio over ``window`` divided by the error budget, per SLO (``service`` and ``sloth_slo`` kept)."""
    ratio = selector(c.slo_sli_error(window), *matchers)
    budget = selector(c.SLO_ERROR_BUDGET, *matchers)
    on = f"on ({c.LABEL_SLOTH_ID}) group_left ()"
    return f"{ratio} / {on} {budget}"


def budget_remaining(*matchers: str) -> str:
    """Share of the SLA window's error budget left, per SLO (Sloth's record)."""
    return selector(c.SLO_PERIOD_BUDGET_REMAINING, *matchers)


def objective(*matchers: str) -> str:
    """The objective of each SLO as a ratio (Sloth's record)."""
    return selector(c.SLO_OBJECTIVE, *matchers)


def slo_is(name: str) -> str:
    """Matcher for one SLO of each service (``sloth_slo="availability"``)."""
    return f'{c.LABEL_SLOTH_SLO}="{name}"'


def firing(*matchers: str) -> str:
    """``ALERTS`` series of firing alerts."""
    return selector(c.ALERTS_SERIES, f'{c.LABEL_ALERTSTATE}="{c.ALERT_FIRING}"', *matchers)


def services_with_burn_alerts(cfg: Config) -> dict[str, list[BurnThreshold]]:
    """Each service's burn-rate alerts (services without any left out)."""
    found = {name: burn_thresholds(s) for name, s in cfg.services.items()}
    return {name: t for name, t in found.items() if t}
