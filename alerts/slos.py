"""The SLOs of each service and the PromQL of their error ratios (Sloth's SLI shape: errors / total).

Availability counts probe runs that failed, latency the runs slower than the threshold (from
the histogram bucket at the threshold, formatted as the exporter writes ``le``), compliance
the runs not within SLA. Services with access logs add the same two from their requests.
Counters that only exist once something happened (failures by reason, requests by code)
are guarded with ``or vector(0)``, so a service without failures reads 0, not "no data".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe.alerts.promql import budget, ratio, selector
from slaprobe.config import Config, Service
from slaprobe.units import format_duration, format_value

WINDOW = "$window"  # replaced by each recorded window in an SLI template
ACCESS_LOG_FORMATS = frozenset({"nginx_combined", "apache_combined", "envoy"})
SERVER_ERROR_CODES = "5..|0"  # a 5xx answer, or none at all (envoy logs 0)


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


def _rate(metric: str, service: str, **extra: str) -> str:
    regex = {k: v for k, v in extra.items() if k.endswith("_re")}
    equal = {c.LABEL_SERVICE: service, **{k: v for k, v in extra.items() if not k.endswith("_re")}}
    sel = selector(metric, equal, **{k.removesuffix("_re"): v for k, v in regex.items()})
    return f"sum(rate({sel}[{WINDOW}]))"


def failed_ratio(errors: str, total: str) -> str:
    """errors / total, with errors read as 0 when no error series exists yet."""
    return f"(\n  {errors}\n  or vector(0)\n)\n/\n{total}"


def good_ratio(good: str, total: str) -> str:
    """1 - good / total."""
    return f"1 - (\n  {good}\n  /\n  {total}\n)"


def has_access_logs(service: Service) -> bool:
    """Whether the service has an access log (the formats that yield requests and durations)."""
    return any(source.format in ACCESS_LOG_FORMATS for source in service.logs)


def service_slos(cfg: Config, name: str, service: Service) -> Iterator[SLO]:
    """The SLOs of a service, in a fixed order: probe-based, then log-based."""
    sla = service.sla
    latency = sla.latency
    le = format_value(latency.threshold) if latency else ""
    if service.probes:
        runs = _rate(c.PROBE_RUNS, name)
        yield SLO(
            name,
            c.SLO_AVAILABILITY,
            sla.availability,
            sla.window,
            failed_ratio(_rate(c.PROBE_FIRST_ATTEMPT_FAILURES, name), runs),  # what users saw: retries do not hide it
            "probe runs",
            "failed",
        )
        if latency:
            yield SLO(
                name,
                c.SLO_LATENCY,
                latency.target,
                sla.window,
                good_ratio(_rate(f"{c.PROBE_DURATION}_bucket", name, le=le), _rate(f"{c.PROBE_DURATION}_count", name)),
                "probe runs",
                f"took longer than {format_duration(latency.threshold)}",
            )
        yield SLO(
            name,
            c.SLO_COMPLIANCE,
            sla.compliance if sla.compliance is not None else sla.availability,
            sla.window,
            good_ratio(_rate(c.PROBE_WITHIN_SLA, name), runs),
            "probe runs",
            "were not within SLA",
        )
    if has_access_logs(service):
        yield SLO(
            name,
            c.SLO_LOG_AVAILABILITY,
            sla.availability,
            sla.window,
            failed_ratio(
                _rate(c.HTTP_REQUESTS, name, code_re=SERVER_ERROR_CODES),
                _rate(c.HTTP_REQUESTS, name),
            ),
            "logged requests",
            "were answered with 5xx or not at all",
        )
        if latency:
            yield SLO(
                name,
                c.SLO_LOG_LATENCY,
                latency.target,
                sla.window,
                good_ratio(
                    _rate(f"{c.HTTP_REQUEST_DURATION}_bucket", name, le=le),
                    _rate(f"{c.HTTP_REQUEST_DURATION}_count", name),
                ),
                "logged requests",
                f"took longer than {format_duration(latency.threshold)}",
            )


def all_slos(cfg: Config) -> list[SLO]:
    """Every SLO of every service, in config order."""
    return [slo for name, service in cfg.services.items() for slo in service_slos(cfg, name, service)]
