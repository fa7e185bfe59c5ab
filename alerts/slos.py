"""The SLOs of each service and the PromQL of their error ratios (Sloth's SLI shape: errors / total).

What each SLI counts is ``slaprobe.sli``; this module gives it an objective and a window and
writes the recording rules' form of its error ratio. Services with access logs add
availability and latency from their requests.
Counters that only exist once something happened (failures by reason, requests by code)
are guarded with ``or vector(0)``, so a service without failures reads 0, not "no data".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.config import Config, Service
from slaprobe.promql import budget, ratio, selector
from slaprobe.sli import SLI, Events
from slaprobe.units import format_duration

WINDOW = "$window"  # replaced by each recorded window in an SLI template


@dataclass(frozen=True, slots=True)
class SLO:
    """One objective of one service, with the PromQL template of its error ratio."""

    service: str
    name: str  # a conventions SLO_* value
    objective: float  # percent
    period: float  # seconds: the SLA window
    error_ratio: str  # PromQL with WINDOW where the range goes
    events: str  # what is counted, for alert texts: "probe runs"
    bad: str  # what makes an event an error: "failed"

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

    def error_ratio_over(self, window: str) -> str:
        """The error-ratio PromQL over ``window``."""
        return self.error_ratio.replace(WINDOW, window)


def _rate(events: Events, service: str) -> str:
    return f"sum(rate({events.selector({c.LABEL_SERVICE: service})}[{WINDOW}]))"


def failed_ratio(errors: str, total: str) -> str:
    """errors / total, with errors read as 0 when no error series exists yet."""
    return f"(\n  {errors}\n  or vector(0)\n)\n/\n{total}"


def good_ratio(good: str, total: str) -> str:
    """1 - good / total."""
    return f"1 - (\n  {good}\n  /\n  {total}\n)"


def error_ratio(sli: SLI, service: str) -> str:
    """The PromQL template (``WINDOW`` where the range goes) of an SLI's error ratio for one service."""
    total = _rate(sli.total, service)
    if sli.bad is not None:
        return failed_ratio(_rate(sli.bad, service), total)
    assert sli.good is not None
    return good_ratio(_rate(sli.good, service), total)


def _slo(name: str, sli: SLI, objective: float, period: float) -> SLO:
    return SLO(name, sli.name, objective, period, error_ratio(sli, name), sli.events, sli.bad_text)


def service_slis(service: Service) -> Iterator[tuple[SLI, float]]:
    """The SLIs of a service with their objective (percent), in a fixed order: probe-based, then log-based."""
    sla = service.sla
    latency = sla.latency
    if service.probes:
        yield sli.availability(), sla.availability
        if latency:
            yield sli.latency(latency.threshold), latency.target
        yield sli.compliance(), sla.compliance if sla.compliance is not None else sla.availability
    if sli.has_access_logs(service):
        yield sli.log_availability(), sla.availability
        if latency:
            yield sli.log_latency(latency.threshold), latency.target


def service_slos(cfg: Config, name: str, service: Service) -> Iterator[SLO]:
    """The SLOs of a service, in a fixed order: probe-based, then log-based."""
    for indicator, objective in service_slis(service):
        yield _slo(name, indicator, objective, service.sla.window)


def all_slos(cfg: Config) -> list[SLO]:
    """Every SLO of every service, in config order."""
    return [slo for name, service in cfg.services.items() for slo in service_slos(cfg, name, service)]
