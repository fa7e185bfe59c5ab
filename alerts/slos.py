"""The SLOs of each service and the PromQL of their error ratios (Sloth's SLI shape: errors / total).

What each SLI counts is ``slaprobe.sli``; this module gives it an objective and a window and
writes the recording rules' form of its error ratio. Services with access logs add
availability and latency from their requests.
Counters that only exist once something happened (failures by reason, requests by code)
are guarded with ``or vector(0)``, so a service without failures reads 0, not "no data";
a window without events reads 0, not NaN (``guarded_ratio``). The recorded windows are
rates; the SLA window is exact counts (``Events.count``), as the report's figures are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.config import Config, Service
from slaprobe.promql import budget, ratio, selector
from slaprobe.sli import SLI, Events
from slaprobe.units import format_duration


@dataclass(frozen=True, slots=True)
class SLO:
    """One objective of one service: an SLI (``slaprobe.sli``), its objective and its SLA window."""

    service: str
    sli: SLI
    objective: float  # percent
    period: float  # seconds: the SLA window

    @property
    def name(self) -> str:
        """The SLO's name, Sloth's ``sloth_slo`` (a conventions SLO_* value)."""
        return self.sli.name

    @property
    def events(self) -> str:
        """What is counted, for alert texts: ``probe runs``."""
        return self.sli.events

    @property
    def bad(self) -> str:
        """What makes an event an error, for alert texts: ``failed``."""
        return self.sli.bad_text

    @property
    def id(self) -> str:
        """Sloth's ``sloth_id``: ``<service>-<slo>``."""
        return f"{self.service}-{self.name}"

    @property
    def period_window(self) -> str:
        """The SLA window as a Prometheus duration (``30d``)."""
        return format_duration(self.period)

    @property
    def budget(self) -> float:
        """The error budget as a ratio (99.9% -> 0.001)."""
        return budget(self.objective)

    @property
    def objective_ratio(self) -> float:
        """The objective as a ratio (99.9% -> 0.999)."""
        return ratio(self.objective)

    def labels(self) -> dict[str, str]:
        """The labels of every series recorded for this SLO (Sloth's plus ``service``)."""
        return {
            c.LABEL_SLOTH_ID: self.id,
            c.LABEL_SLOTH_SERVICE: self.service,
            c.LABEL_SLOTH_SLO: self.name,
            c.LABEL_SERVICE: self.service,
        }

    def selector(self, metric: str) -> str:
        """``metric`` restricted to this SLO's series, as Sloth selects them."""
        return selector(
            metric,
            {
                c.LABEL_SLOTH_ID: self.id,
                c.LABEL_SLOTH_SERVICE: self.service,
                c.LABEL_SLOTH_SLO: self.name,
            },
        )

    @property
    def scope(self) -> dict[str, str]:
        """The matchers of this SLO's own events: its service."""
        return {c.LABEL_SERVICE: self.service}

    def error_ratio_over(self, window: str) -> str:
        """The error ratio over a recorded ``window``, from rates (0 in a window without events)."""
        return error_ratio(self.sli, lambda events: f"sum(rate({events.selector(self.scope)}[{window}]))")

    def location_error_ratio_over(self, window: str) -> str:
        """The error ratio over ``window`` of each location apart (``sum by (location)``), from rates."""
        return error_ratio(
            self.sli, lambda events: f"sum by ({c.LABEL_LOCATION}) (rate({events.selector(self.scope)}[{window}]))"
        )

    def period_error_ratio(self) -> str:
        """The error ratio over the SLA window, from exact counts (0 without events)."""
        return error_ratio(self.sli, lambda events: events.count(self.period_window, (self.scope,)))


def guarded_ratio(part: str, total: str, *, good: bool = False) -> str:
    """``part / total`` as an error ratio (``1 - part / total`` when ``part`` counts good events).

    An absent ``part`` series (no failure yet) counts as 0, and a window without any event
    (cron and ``during`` probes, long intervals, the first minutes) has an error ratio of 0,
    not NaN: a single NaN would poison every ratio summed over it for the whole SLA window.
    Without any ``total`` series at all the result is empty (no data), as before.
    """
    ratio = f"(\n  {part}\n  or vector(0)\n)\n/\n({total} > 0)"
    if good:
        ratio = f"1 - (\n{ratio}\n)"
    return f"(\n{ratio}\n)\nor\n{total} * 0"


def error_ratio(indicator: SLI, measure: Callable[[Events], str]) -> str:
    """The error ratio of an SLI with each of its events measured by ``measure`` (rates or counts)."""
    total = measure(indicator.total)
    if indicator.bad is not None:
        return guarded_ratio(measure(indicator.bad), total)
    assert indicator.good is not None
    return guarded_ratio(measure(indicator.good), total, good=True)


def service_slis(service: Service) -> Iterator[tuple[SLI, float]]:
    """The SLIs of a service with their objective (percent), in a fixed order: probe-based, then log-based."""
    sla = service.sla
    latency = sla.latency
    if service.probes:
        yield sli.availability(), sla.availability
        if latency:
            yield sli.latency(latency.threshold), latency.target
        yield sli.compliance(), sla.compliance_percent
    if sli.has_access_logs(service):
        yield sli.log_availability(), sla.availability
        if latency:
            yield sli.log_latency(latency.threshold), latency.target
    if sla.satisfaction is not None:
        yield sli.satisfaction(), sla.satisfaction


def service_slos(cfg: Config, name: str, service: Service) -> Iterator[SLO]:
    """The SLOs of a service, in a fixed order: probe-based, then log-based."""
    for indicator, objective in service_slis(service):
        yield SLO(name, indicator, objective, service.sla.window)


def all_slos(cfg: Config) -> list[SLO]:
    """Every SLO of every service, in config order."""
    return [slo for name, service in cfg.services.items() for slo in service_slos(cfg, name, service)]
