"""The SLA report for managers: every service against its SLA over a period, from Prometheus.

``collect_report`` asks Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``)
for the period's numbers; ``render_html`` and ``render_markdown`` turn them into one
self-contained document (inline CSS and SVG, no external asset, no link out). Unlike the
board generators this module does I/O, through ``requests``.

Numbers come from counters over the whole period (their growth from the period's start to
its end, ``slaprobe.sli.Events.count``, not ``increase()``, which extrapolates), so they equal
the exporter's own counters to the run whatever the scrape interval; incident durations are accurate to the step of
the ``ALERTS`` range query (about period / 2000, at least 1 s), which the report states.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.config import Config, FeedbackSource
from slaprobe.dashboards import feedback_kpis
from slaprobe.dashboards import windows as windows_mod
from slaprobe.dashboards.promql import equals, increase_sum, matches, share
from slaprobe.units import format_duration, format_value, parse_duration

HISTORY_POINTS = 30  # bars in each availability chart
INCIDENT_STEPS = 2000  # resolution of the ALERTS range query over the period
TIMEOUT = 30.0  # seconds per request to Prometheus
PRIORITY_COLORS = ("#c4162a", "#ff7f00", "#e0b400", "#1f78c1", "#8f3bb8")


class ReportError(Exception):
    """The report cannot be made: Prometheus unreachable, a query refused, a bad period."""


# ---------------------------------------------------------------------------- Prometheus


Labels = Mapping[str, str]


class PrometheusClient:
    """The two calls of Prometheus's HTTP API the report needs."""

    def __init__(self, url: str, *, session: requests.Session | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.shown = f"{urlsplit(self.url).scheme}://{where(self.url)}"  # for messages: no credentials
        self.session = session or requests.Session()
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            response = self.session.post(f"{self.url}{path}", data=params, timeout=self.timeout)
        except requests.RequestException as exc:
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
            reason = errno.group(1) if errno else type(exc).__name__
            raise ReportError(f"cannot reach Prometheus at {self.shown}: {reason}") from None
        try:
            body = response.json()
        except ValueError:
            raise ReportError(f"{self.shown}{path}: HTTP {response.status_code}, not a Prometheus API answer") from None
        if body.get("status") != "success":
            raise ReportError(f"query refused ({body.get('errorType')}: {body.get('error')}): {params.get('query')}")
        return body["data"]

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each series; NaN values dropped."""
        data = self._get("/api/v1/query", {"query": expr, "time": format_value(at)})
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        found = [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
        return [(labels, value) for labels, value in found if not math.isnan(value)]

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query: (labels, [(time, value)...]) of each series; NaN points dropped."""
        params = {"query": expr, "start": format_value(start), "end": format_value(end), "step": format_value(step)}
        data = self._get("/api/v1/query_range", params)
        result = []
        for item in data["result"]:
            points = [(float(t), float(v)) for t, v in item["values"] if not math.isnan(float(v))]
            result.append((dict(item["metric"]), points))
        return result


# ---------------------------------------------------------------------------- the numbers


@dataclass(frozen=True, slots=True)
class Latency:
    """A service's latency SLA and how the period went."""

    threshold: float  # seconds
    target: float  # ratio of runs that must not be slower
    sli: float | None  # ratio of runs not slower than the threshold
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class Incident:
    """A period in which level-1 alerts of one priority fired for a service without a break.

    Alerts of the same service and priority that overlap (several burn-rate windows, a
    probe down during a budget burn) are one incident for a manager; ``alerts`` names them.
    """

    service: str
    priority: str
    severity: str  # page when any of its alerts paged
    start: float
    end: float
    max_level: int  # highest escalation level any of its alerts reached
    ongoing: bool
    alerts: tuple[str, ...]

    @property
    def duration(self) -> float:
        """Seconds from the first to the end of the last firing step."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ServiceReport:
    """One service over the period."""

    name: str
    tier: str
    owner: str
    objective: float  # availability objective, ratio
    runs: float
    failures: float
    compliance: float | None
    compliance_target: float
    latency: Latency | None
    incidents: tuple[Incident, ...]
    history: tuple[tuple[float, float], ...]  # (end of step, availability over the step)
    tickets: float | None  # tickets naming this service
    previous: tuple[float, float, float] | None = None  # runs, failed, within SLA in the period before
    planned: float | None = None  # schedule slots that fell due in the period (run or missed)
    degraded: float = 0.0  # runs that succeeded but slower than expect.degraded_duration
    maintenance_runs: float = 0.0  # runs inside maintenance windows: shown, in no figure above

    @property
    def previous_availability(self) -> float | None:
        """Availability in the previous period of the same length, or None without runs."""
        if not self.previous or self.previous[0] <= 0:
            return None
        return 1 - self.previous[1] / self.previous[0]

    @property
    def previous_compliance(self) -> float | None:
        """The compliance rate in the previous period of the same length, or None without runs."""
        if not self.previous or self.previous[0] <= 0:
            return None
        return self.previous[2] / self.previous[0]

    def trend(self) -> str:
        """The KPI bulletin's comparison: ``availability 99.10% → 99.80%, compliance 88.04% → 97.83%``."""
        return (
            f"availability {percent(self.previous_availability, 2)} → {percent(self.availability, 2)}, "
            f"compliance {percent(self.previous_compliance, 2)} → {percent(self.compliance, 2)}"
        )

    def plan_done(self) -> bool | None:
        """Whether every planned dial test ran (None when the plan is unknown)."""
        return None if self.planned is None else self.runs >= self.planned

    def plan_text(self) -> str:
        """``done / planned (share)`` of the dial-test plan, ``-`` when no plan was recorded."""
        if not self.planned:
            return "-"
        return f"{self.runs:.0f} / {self.planned:.0f} ({percent(min(1.0, self.runs / self.planned), 1)})"

    @property
    def availability(self) -> float | None:
        """Share of runs that succeeded, or None without runs."""
        return 1 - self.failures / self.runs if self.runs > 0 else None

    @property
    def budget_used(self) -> float | None:
        """Share of the period's error budget spent (above 1: the SLA is broken)."""
        availability = self.availability
        if availability is None:
            return None
        budget = 1 - self.objective
        return (1 - availability) / budget if budget > 0 else math.inf

    @property
    def met(self) -> bool | None:
        """Whether availability reached the objective."""
        availability = self.availability
        return None if availability is None else availability >= self.objective - 1e-12


@dataclass(frozen=True, slots=True)
class CategoryFigures:
    """Tickets of one category of a feedback source and their first response time."""

    category: str
    tickets: float
    first_response_p90: float | None
    deadline: float | None


@dataclass(frozen=True, slots=True)
class ComplaintReport:
    """One feedback source over the period."""

    source: str
    service: str | None
    tickets: float
    first_response_breaches: float
    resolution_breaches: float
    quality_tickets: float
    open_tickets: float | None
    categories: tuple[CategoryFigures, ...]

    def within(self, breaches: float) -> float | None:
        """1 - breaches / tickets, or None without tickets."""
        return 1 - breaches / self.tickets if self.tickets > 0 else None

    @property
    def first_response_compliance(self) -> float | None:
        """Tickets answered within their first-response deadline, over tickets opened."""
        return self.within(self.first_response_breaches)

    @property
    def resolution_compliance(self) -> float | None:
        """Tickets resolved within their resolution deadline, over tickets opened."""
        return self.within(self.resolution_breaches)

    @property
    def quality_share(self) -> float | None:
        """Tickets in the quality categories over all tickets."""
        return self.quality_tickets / self.tickets if self.tickets > 0 else None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report shows."""

    start: float
    end: float
    period: str
    source: str  # where the data came from (host:port, no scheme)
    services: tuple[ServiceReport, ...]
    complaints: tuple[ComplaintReport, ...]
    incident_step: float
    generated: float = field(default_factory=time.time)
    feedback: tuple[feedback_kpis.DeskKpis, ...] = ()  # satisfaction and feedback KPIs (feedback_kpis)
    windows: tuple[windows_mod.WindowSpan, ...] = ()  # maintenance in the period (planned and ad hoc)


# ---------------------------------------------------------------------------- collecting


def parse_end(text: str | None) -> float | None:
    """``--end``: RFC 3339 time (``2024-04-01T00:00:00Z``) or unix seconds; None for now."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"--end: not a time: {text!r} (use RFC 3339 or unix seconds)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _by(samples: Iterable[tuple[dict[str, str], float]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.get(label, "") for label in labels): v for s, v in samples}


def _one(samples: Sequence[tuple[dict[str, str], float]]) -> float | None:
    return samples[0][1] if samples else None


def _latencies(
    client: PrometheusClient, cfg: Config, window: str, everyone: Sequence[str], at: float
) -> dict[str, Latency]:
    """Latency SLI and percentiles of every service with a latency SLA, in a few queries whatever their number."""
    slas = {name: s.sla.latency for name, s in cfg.services.items() if s.sla.latency is not None}
    if not slas:
        return {}
    buckets = increase_sum(c.PROBE_DURATION + "_bucket", window, everyone, [c.LABEL_SERVICE, "le"])
    quantiles = {
        q: _by(client.query(f"histogram_quantile({format_value(q)}, {buckets})", at), c.LABEL_SERVICE)
        for q in (0.5, 0.95, 0.99)
    }
    by_threshold: dict[float, list[str]] = {}
    for name, sla in slas.items():
        by_threshold.setdefault(sla.threshold, []).append(name)
    found: dict[tuple[str, ...], float] = {}
    for threshold, names in sorted(by_threshold.items()):
        group = (matches(c.LABEL_SERVICE, names),)
        indicator = sli.latency(threshold)
        assert indicator.good is not None
        faster = indicator.good.count(window, group, [c.LABEL_SERVICE])
        runs = indicator.total.count(window, group, [c.LABEL_SERVICE])
        found.update(_by(client.query(f"{faster} / {runs}", at), "service"))
    return {
        name: Latency(
            sla.threshold,
            sla.target / 100,
            found.get((name,)),
            quantiles[0.5].get((name,)),
            quantiles[0.95].get((name,)),
            quantiles[0.99].get((name,)),
        )
        for name, sla in slas.items()
    }


def _histories(
    client: PrometheusClient, everyone: Sequence[str], start: float, end: float
) -> dict[str, tuple[tuple[float, float], ...]]:
    """Availability of every service per step (about ``HISTORY_POINTS`` steps over the period), in one query."""
    step = max(1.0, round((end - start) / HISTORY_POINTS))
    window = format_duration(step)
    indicator = sli.availability()
    assert indicator.bad is not None
    failures = indicator.bad.count(window, everyone, [c.LABEL_SERVICE])
    runs = indicator.total.count(window, everyone, [c.LABEL_SERVICE])
    series = client.query_range(f"1 - {share(failures, runs)}", start + step, end, step)
    return {labels.get(c.LABEL_SERVICE, ""): tuple(points) for labels, points in series}


def _alert_text(labels: Mapping[str, str]) -> str:
    detail = [labels[k] for k in (c.LABEL_SLOTH_SLO, c.LABEL_BURNRATE, c.LABEL_PROBE) if labels.get(k)]
    name = labels.get(c.LABEL_ALERTNAME, "?")
    return f"{name} ({' '.join(detail)})" if detail else name


def _runs(times: Sequence[float], gap: float) -> list[tuple[float, float]]:
    """Consecutive timestamps (no hole longer than ``gap``) as (first, last) pairs."""
    runs: list[list[float]] = []
    for t in times:
        if runs and t - runs[-1][1] <= gap:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return [(a, b) for a, b in runs]


def incidents_from(
    series: Iterable[tuple[dict[str, str], list[tuple[float, float]]]], step: float, end: float, bridge: float = 0.0
) -> list[Incident]:
    """Incidents from an ``ALERTS`` firing range query: level-1 firing periods merged per (service, priority).

    An incident's level is the highest level that fired from its start until a ``bridge``
    (``alerting.escalation_bridge``) after its end: a level-N alert that paged during that
    bridge was sent, so it counts as reached.
    """
    gap = step * 1.5
    periods: dict[tuple[str, str], list[tuple[float, float, dict[str, str]]]] = {}
    levels: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for labels, points in series:
        key = (labels.get(c.LABEL_SERVICE, ""), labels.get(c.LABEL_PRIORITY, ""))
        times = sorted(t for t, v in points if v > 0)
        level = int(labels.get(c.LABEL_ESCALATION_LEVEL) or 1)
        levels.setdefault(key, []).extend((t, level) for t in times)
        if level == 1:
            periods.setdefault(key, []).extend((first - step, last, labels) for first, last in _runs(times, gap))
    incidents = []
    for (service, priority), found in periods.items():
        found.sort(key=lambda period: period[0])
        merged: list[tuple[float, float, list[dict[str, str]]]] = []
        for first, last, labels in found:
            if merged and first <= merged[-1][1] + gap:
                start, stop, members = merged[-1]
                merged[-1] = (start, max(stop, last), [*members, labels])
            else:
                merged.append((first, last, [labels]))
        for first, last, members in merged:
            reached = [lv for t, lv in levels[(service, priority)] if first <= t <= last + step + bridge]
            severities = {m.get(c.LABEL_SEVERITY, "") for m in members}
            incidents.append(
                Incident(
                    service=service,
                    priority=priority,
                    severity=c.SEVERITY_PAGE if c.SEVERITY_PAGE in severities else min(severities),
                    start=first,
                    end=last,
                    max_level=max(reached, default=1),
                    ongoing=last >= end - step,
                    alerts=tuple(sorted({_alert_text(m) for m in members})),
                )
            )
    return sorted(incidents, key=lambda i: (i.start, i.service, _natural(i.priority)))


def _complaints(client: PrometheusClient, source: FeedbackSource, window: str, at: float) -> ComplaintReport:
    src = (equals(c.LABEL_SOURCE, source.name),)

    def total(metric: str, *extra: str) -> float:
        return _one(client.query(increase_sum(metric, window, (*src, *extra), []), at)) or 0.0

    def stage(name: str) -> str:
        return equals(c.LABEL_STAGE, name)

    by_category = increase_sum(c.FEEDBACK_TICKETS, window, src, [c.LABEL_CATEGORY])
    tickets_by_category = _by(client.query(by_category, at), "category")
    p90 = _by(
        client.query(
            f"histogram_quantile(0.9, "
            f"{increase_sum(c.FEEDBACK_FIRST_RESPONSE + '_bucket', window, src, [c.LABEL_CATEGORY, 'le'])})",
            at,
        ),
        "category",
    )
    categories = tuple(
        CategoryFigures(
            category=cat,
            tickets=tickets_by_category.get((cat,), 0.0),
            first_response_p90=p90.get((cat,)),
            deadline=source.sla[cat].first_response if cat in source.sla else None,
        )
        for cat in sorted({*source.sla, *(k[0] for k in tickets_by_category)})
    )
    open_now = _one(client.query(f"sum({c.FEEDBACK_OPEN_TICKETS}{{{src[0]}}})", at))
    return ComplaintReport(
        source=source.name,
        service=source.service,
        tickets=total(c.FEEDBACK_TICKETS),
        first_response_breaches=total(c.FEEDBACK_SLA_BREACHES, stage(c.STAGE_FIRST_RESPONSE)),
        resolution_breaches=total(c.FEEDBACK_SLA_BREACHES, stage(c.STAGE_RESOLUTION)),
        quality_tickets=total(c.FEEDBACK_QUALITY_TICKETS),
        open_tickets=open_now,
        categories=categories,
    )


def period_counts(window: str, everyone: Sequence[str]) -> dict[str, str]:
    """The queries of each service's runs, failed runs, runs within SLA, planned runs (the
    dial-test plan: schedule slots that fell due), degraded runs and maintenance runs (in no other
    counter: the SLIs exclude them) over ``window``: exact
    counts (``slaprobe.sli.Events.count``), so the report's figures equal the exporter's counters."""
    available, compliant = sli.availability(), sli.compliance()
    assert available.bad is not None and compliant.good is not None
    per_service = [c.LABEL_SERVICE]
    return {
        "runs": available.total.count(window, everyone, per_service),
        "failures": available.bad.count(window, everyone, per_service),
        "within": compliant.good.count(window, everyone, per_service),
        "planned": sli.Events(c.PROBE_PLANNED_RUNS).count(window, everyone, per_service),
        "degraded": sli.Events(c.PROBE_DEGRADED).count(window, everyone, per_service),
        "maintenance": sli.Events(c.PROBE_MAINTENANCE_RUNS).count(window, everyone, per_service),
    }


def collect_report(cfg: Config, client: PrometheusClient, period: str, *, end: float | None = None) -> Report:
    """Ask Prometheus for every number of the report over ``period`` ending at ``end`` (default now)."""
    try:
        seconds = parse_duration(period)
    except ValueError as exc:
        raise ReportError(f"--period: {exc}") from None
    if seconds <= 0:
        raise ReportError("--period must be longer than 0s")
    at = time.time() if end is None else end
    return collect_period(cfg, client, at - seconds, at)


def collect_period(
    cfg: Config, client: PrometheusClient, start: float, at: float, *, services: Sequence[str] | None = None
) -> Report:
    """Every number of the report from ``start`` to ``at`` (unix seconds, a whole number of seconds
    apart), for ``services`` (default: every service of the config)."""
    seconds = at - start
    window = format_duration(seconds)
    names = list(cfg.services) if services is None else list(services)
    everyone = (matches(c.LABEL_SERVICE, names),) if names else ()
    queries = period_counts(window, everyone)
    counts = {key: _by(client.query(expr, at), "service") for key, expr in queries.items()}
    runs, failures, within = counts["runs"], counts["failures"], counts["within"]
    before = {key: _by(client.query(expr, start), "service") for key, expr in queries.items()}  # same length
    tickets = _by(client.query(increase_sum(c.FEEDBACK_TICKETS, window, everyone, [c.LABEL_SERVICE]), at), "service")
    step = max(1.0, round(seconds / INCIDENT_STEPS))
    firing = f'{c.ALERTS_SERIES}{{{c.LABEL_ALERTSTATE}="{c.ALERT_FIRING}"}}'
    # max_over_time catches alerts shorter than a step; the bare series (staleness ends it at
    # resolution) covers steps whose window missed an evaluation by jitter.
    alerts = client.query_range(f"max_over_time({firing}[{format_duration(step)}]) or {firing}", start + step, at, step)
    incidents = incidents_from(alerts, step, at, cfg.alerting.escalation_bridge)
    latencies = _latencies(client, cfg, window, everyone, at)
    histories = _histories(client, everyone, start, at)
    found = []
    for name in names:
        service = cfg.services[name]
        key = (name,)
        run_count = runs.get(key, 0.0)
        target = service.sla.compliance_percent
        found.append(
            ServiceReport(
                name=name,
                tier=service.tier,
                owner=service.owner,
                objective=service.sla.availability / 100,
                runs=run_count,
                failures=failures.get(key, 0.0),
                compliance=within.get(key, 0.0) / run_count if run_count > 0 else None,
                compliance_target=target / 100,
                latency=latencies.get(name),
                incidents=tuple(i for i in incidents if i.service == name),
                history=histories.get(name, ()),
                tickets=tickets.get(key),
                previous=(
                    before["runs"].get(key, 0.0),
                    before["failures"].get(key, 0.0),
                    before["within"].get(key, 0.0),
                ),
                planned=counts["planned"].get(key),
                degraded=counts["degraded"].get(key, 0.0),
                maintenance_runs=counts["maintenance"].get(key, 0.0),
            )
        )
    if services is not None:  # a part of the services (the monthly statement): no desk-wide figures
        return Report(start, at, window, where(client.url), tuple(found), (), step)
    complaints = tuple(_complaints(client, source, window, at) for source in cfg.feedback)
    desk = feedback_kpis.collect(cfg, client, window, at, start)
    spans, _ = windows_mod.windows_in(cfg, client, {name: (start, at) for name in names})
    return Report(
        start, at, window, where(client.url), tuple(found), complaints, step, feedback=desk, windows=tuple(spans)
    )


def where(url: str) -> str:
    """Where the data came from, for the report: host, port and path, no scheme and no credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}{parts.path}" if parts.port else f"{host}{parts.path}"


def build_report(cfg: Config, prometheus: str, period: str, *, fmt: str = "html", end: float | None = None) -> str:
    """The whole report as HTML or Markdown text."""
    report = collect_report(cfg, PrometheusClient(prometheus), period, end=end)
    return render_markdown(report) if fmt == "markdown" else render_html(report)


# ---------------------------------------------------------------------------- formatting


def percent(value: float | None, digits: int = 3) -> str:
    """``0.99512`` -> ``99.512%``; ``-`` for no value."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    return f"{value * 100:.{digits}f}%"


def seconds_text(value: float | None) -> str:
    """Seconds as a short duration (``1.234 s``, ``250 ms``, ``2h5m``); ``-`` for no value."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.3g} s"
    return format_duration(round(value))


def when(timestamp: float) -> str:
    """A unix time as ``2024-04-01 12:00:00 UTC``."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", name))


def by_priority(incidents: Iterable[Incident]) -> list[tuple[str, int, float, float, int]]:
    """(priority, count, total seconds, longest seconds, highest level) per priority, most urgent first."""
    groups: dict[str, list[Incident]] = {}
    for incident in incidents:
        groups.setdefault(incident.priority or "-", []).append(incident)
    return [
        (
            prio,
            len(items),
            sum(i.duration for i in items),
            max(i.duration for i in items),
            max(i.max_level for i in items),
        )
        for prio, items in sorted(groups.items(), key=lambda kv: _natural(kv[0]))
    ]


def _incident_summary(service: ServiceReport) -> str:
    rows = by_priority(service.incidents)
    if not rows:
        return "none"
    return ", ".join(f"{prio}: {count} ({format_duration(round(total))})" for prio, count, total, _, _ in rows)


def _summary_rows(report: Report) -> list[list[str]]:
    rows = []
    for s in report.services:
        met = {True: "yes", False: "NO", None: "-"}[s.met]
        latency = s.latency
        rows.append(
            [
                s.name,
                s.tier,
                percent(s.objective, 2),
                percent(s.availability),
                met,
                percent(s.budget_used, 1),
                f"{percent(s.compliance)} / {percent(s.compliance_target, 2)}",
                f"{percent(latency.sli)} / {percent(latency.target, 2)}" if latency else "-",
                _incident_summary(s),
                s.trend(),
            ]
        )
    return rows


WINDOW_HEADER = ["window", "kind", "start", "end", "duration", "services"]
MAINTENANCE_NOTE = (
    "Runs that started in these windows are counted apart (maintenance runs) and excluded from every figure."
)


def window_rows(windows: Iterable[windows_mod.WindowSpan]) -> list[list[str]]:
    """The rows of the maintenance windows table, times in UTC."""
    return [
        [w.name, w.kind, when(w.start), when(w.end), seconds_text(w.duration), ", ".join(w.services)] for w in windows
    ]


NOTES = (
    "Availability (runs that succeeded) and the compliance rate (runs that succeeded within the latency "
    "threshold) are exact: counters over the whole period. Budget used is the period's failed runs over the "
    "failed runs the SLA allows in it: up to 100% the SLA is met. An incident is a stretch in which alerts of "
    "one priority fired for a service."
)

SUMMARY_HEADER = [
    "service",
    "tier",
    "SLA",
    "availability",
    "SLA met",
    "budget used",
    "compliance / target",
    "latency SLI / target",
    "incidents by priority",
    "previous period → this one",
]


# ---------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Noto Sans","PingFang SC",sans-serif;margin:2em auto;
max-width:1100px;color:#1d2330;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #dde1e7;padding-bottom:.2em}
h3{margin-top:1.4em}.meta{color:#5b6472}table{border-collapse:collapse;margin:.6em 0;width:100%}
th,td{border:1px solid #dde1e7;padding:.35em .6em;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f3f5f8}td.num{text-align:right}.ok{color:#1a7f37;font-weight:600}
.bad{color:#c4162a;font-weight:600}.figures{display:flex;flex-wrap:wrap;gap:1em;margin:.6em 0}
.figure{border:1px solid #dde1e7;border-radius:6px;padding:.5em .9em;min-width:10em}
.figure .v{font-size:1.4em;font-weight:600}.figure .l{color:#5b6472;font-size:.85em}
svg text{font-size:11px;fill:#5b6472}.tier-critical{color:#c4162a}.tier-high{color:#d45f00}
.tier-medium{color:#9a7b00}.tier-low{color:#1f5fa8}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    right = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)

    def cell(i: int, value: str) -> str:
        return f'<td class="num">{_e(value)}</td>' if i in right else f"<td>{_e(value)}</td>"

    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(label: str, value: str, good: bool | None = None) -> str:
    css = "v" if good is None else ("v ok" if good else "v bad")
    return f'<div class="figure"><div class="{css}">{_e(value)}</div><div class="l">{_e(label)}</div></div>'


def availability_chart(service: ServiceReport, width: int = 1000, height: int = 160) -> str:
    """Inline SVG: availability per step as bars (red below the SLA), the SLA as a dashed line."""
    points = service.history
    if not points:
        return "<p>No probe runs in the period.</p>"
    low = min(min(v for _, v in points), service.objective)
    floor = max(0.0, low - (1 - low) * 0.25 - 1e-9)
    pad_left, pad_bottom = 56, 18
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - 6

    def y(value: float) -> float:
        return 6 + plot_h * (1 - (value - floor) / (1 - floor)) if floor < 1 else 6

    bar_w = plot_w / len(points)
    parts = [
        f'<svg role="img" aria-label="availability of {_e(service.name)}" viewBox="0 0 {width} {height}" '
        f'width="100%" height="{height}">'
    ]
    for i, (t, value) in enumerate(points):
        x = pad_left + i * bar_w
        top = y(min(max(value, floor), 1.0))
        color = "#2ea043" if value >= service.objective - 1e-12 else "#c4162a"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{6 + plot_h - top:.1f}" '
            f'fill="{color}"><title>{_e(when(t))}: {_e(percent(value))}</title></rect>'
        )
    sla = y(service.objective)
    parts.append(
        f'<line x1="{pad_left}" x2="{width - 4}" y1="{sla:.1f}" y2="{sla:.1f}" stroke="#1d2330" '
        'stroke-dasharray="6 4" stroke-width="1.5"/>'
    )
    for label, at in axis_labels(sla + 4, 6 + plot_h, service.objective, floor):
        parts.append(f'<text x="2" y="{at:.1f}">{_e(label)}</text>')
    parts.append(f'<text x="{pad_left}" y="{height - 3}">{_e(when(points[0][0]))}</text>')
    parts.append(f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">{_e(when(points[-1][0]))}</text>')
    parts.append("</svg>")
    return "".join(parts)


LABEL_GAP = 12.0  # px between two axis labels' baselines (11px text)


def axis_labels(sla_y: float, bottom_y: float, objective: float, floor: float) -> list[tuple[str, float]]:
    """The availability chart's axis labels (text, baseline y): 100% at the top, the SLA at its
    line, the floor at the bottom; a label that would overlap the SLA's is left out (the SLA's
    line matters more), so "100%" and "SLA 99.50%" never print over each other."""
    sla = (f"SLA {percent(objective, 2)}", sla_y)
    found = [sla]
    for label in ((percent(1.0, 0), 12.0), (percent(floor, 2), bottom_y)):
        if abs(label[1] - sla_y) >= LABEL_GAP:
            found.append(label)
    return found


def incident_chart(report: Report, service: ServiceReport, width: int = 1000) -> str:
    """Inline SVG: one lane per priority, a bar for each incident over the period."""
    lanes = [prio for prio, *_ in by_priority(service.incidents)]
    if not lanes:
        return ""
    lane_h, pad_left = 18, 56
    height = lane_h * len(lanes) + 22
    span = max(report.end - report.start, 1.0)
    plot_w = width - pad_left - 4
    parts = [
        f'<svg role="img" aria-label="incidents of {_e(service.name)}" viewBox="0 0 {width} {height}" '
        f'width="100%" height="{height}">'
    ]
    for row, prio in enumerate(lanes):
        y = 4 + row * lane_h
        color = PRIORITY_COLORS[min(row, len(PRIORITY_COLORS) - 1)]
        parts.append(f'<text x="2" y="{y + 12}">{_e(prio)}</text>')
        parts.append(f'<rect x="{pad_left}" y="{y}" width="{plot_w}" height="{lane_h - 4}" fill="#f3f5f8"/>')
        for incident in (i for i in service.incidents if (i.priority or "-") == prio):
            x = pad_left + plot_w * (max(incident.start, report.start) - report.start) / span
            w = max(plot_w * incident.duration / span, 2)
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 4}" fill="{color}">'
                f"<title>{_e(', '.join(incident.alerts))} {_e(when(incident.start))}, "
                f"{_e(seconds_text(incident.duration))}</title></rect>"
            )
    parts.append(f'<text x="{pad_left}" y="{height - 3}">{_e(when(report.start))}</text>')
    parts.append(f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">{_e(when(report.end))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _service_html(report: Report, s: ServiceReport) -> str:
    latency = s.latency
    figures = [
        _figure("availability", percent(s.availability), s.met),
        _figure("SLA", percent(s.objective, 2)),
        _figure("error budget used", percent(s.budget_used, 1), None if s.budget_used is None else s.budget_used <= 1),
        _figure(
            "compliance rate (target " + percent(s.compliance_target, 2) + ")",
            percent(s.compliance),
            None if s.compliance is None else s.compliance >= s.compliance_target - 1e-12,
        ),
        _figure("probe runs / failed", f"{s.runs:.0f} / {s.failures:.0f}"),
        _figure("dial tests done / planned", s.plan_text(), s.plan_done()),
        _figure("degraded runs (succeeded, slow)", f"{s.degraded:.0f}", s.degraded == 0),
        _figure("maintenance runs (not counted)", f"{s.maintenance_runs:.0f}"),
        _figure(
            "compliance, previous period → this one",
            f"{percent(s.previous_compliance, 2)} → {percent(s.compliance, 2)}",
        ),
    ]
    parts = [
        f'<section id="service-{_e(s.name)}"><h2>{_e(s.name)} '
        f'<small class="tier-{_e(s.tier)}">{_e(s.tier)}</small></h2>',
        f'<p class="meta">Owner: {_e(s.owner or "-")}</p>',
        "<h3>Availability vs SLA</h3>",
        '<div class="figures">' + "".join(figures) + "</div>",
        availability_chart(s),
        "<h3>Latency</h3>",
    ]
    if latency is None:
        parts.append("<p>No latency SLA.</p>")
    else:
        parts.append(
            _table(
                ["threshold", "target", "runs within", "p50", "p95", "p99"],
                [
                    [
                        seconds_text(latency.threshold),
                        percent(latency.target, 2),
                        percent(latency.sli),
                        seconds_text(latency.p50),
                        seconds_text(latency.p95),
                        seconds_text(latency.p99),
                    ]
                ],
                numeric=range(6),
            )
        )
    parts.append("<h3>Incidents by priority</h3>")
    rows = by_priority(s.incidents)
    if not rows:
        parts.append("<p>No alerts fired in the period.</p>")
    else:
        parts.append(
            _table(
                ["priority", "incidents", "total duration", "longest", "highest escalation level"],
                [[p, str(n), seconds_text(total), seconds_text(longest), str(lv)] for p, n, total, longest, lv in rows],
                numeric=(1, 2, 3, 4),
            )
        )
        parts.append(incident_chart(report, s))
        parts.append(
            _table(
                ["start", "duration", "priority", "severity", "level reached", "alerts"],
                [
                    [
                        when(i.start),
                        seconds_text(i.duration) + (" (ongoing)" if i.ongoing else ""),
                        i.priority,
                        i.severity,
                        str(i.max_level),
                        ", ".join(i.alerts),
                    ]
                    for i in s.incidents
                ],
            )
        )
    parts.append("<h3>Complaints</h3>")
    parts.append(_complaints_for_service_html(report, s))
    parts.append("</section>")
    return "".join(parts)


def _complaints_for_service_html(report: Report, s: ServiceReport) -> str:
    own = [r for r in report.complaints if r.service == s.name]
    text = f"Tickets naming {_e(s.name)}: {s.tickets:.0f}." if s.tickets is not None else "No tickets name it."
    if own:
        text += " " + " ".join(
            f"Source {_e(r.source)}: first response within deadline {_e(percent(r.first_response_compliance, 1))}, "
            f"resolution within deadline {_e(percent(r.resolution_compliance, 1))}."
            for r in own
        )
    return f"<p>{text}</p>"


def _complaints_rows(report: Report) -> list[list[str]]:
    return [
        [
            r.source,
            f"{r.tickets:.0f}",
            percent(r.first_response_compliance, 1),
            percent(r.resolution_compliance, 1),
            percent(r.quality_share, 1),
            "-" if r.open_tickets is None else f"{r.open_tickets:.0f}",
        ]
        for r in report.complaints
    ]


COMPLAINTS_HEADER = [
    "source",
    "tickets",
    "first response within deadline",
    "resolution within deadline",
    "product-quality share",
    "open at the end",
]


CATEGORY_HEADER = ["category", "tickets", "first response p90", "deadline"]


def _category_rows(r: ComplaintReport) -> list[list[str]]:
    return [
        [k.category, f"{k.tickets:.0f}", seconds_text(k.first_response_p90), seconds_text(k.deadline)]
        for k in r.categories
    ]


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document: inline CSS and SVG, nothing fetched."""
    title = f"SLA report, {when(report.start)} to {when(report.end)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>SLA report</h1><p class='meta'>Period {_e(report.period)}: {_e(when(report.start))} to "
        f"{_e(when(report.end))}. Data from Prometheus at {_e(report.source)}; generated {_e(when(report.generated))}. "
        f"{_e(NOTES)} Incident durations are accurate to {_e(seconds_text(report.incident_step))}.</p>",
        '<section id="summary"><h2>Summary</h2>',
        _table(SUMMARY_HEADER, _summary_rows(report), numeric=(2, 3, 5)),
        "</section>",
        feedback_kpis.render_html(report.feedback),
    ]
    if report.windows:
        parts.append('<section id="maintenance"><h2>Maintenance windows</h2>')
        parts.append(f"<p>{_e(MAINTENANCE_NOTE)}</p>")
        parts.append(_table(WINDOW_HEADER, window_rows(report.windows), numeric=(4,)))
        parts.append("</section>")
    parts.extend(_service_html(report, s) for s in report.services)
    if report.complaints:
        parts.append('<section id="complaints"><h2>Complaint response compliance</h2>')
        parts.append(_table(COMPLAINTS_HEADER, _complaints_rows(report), numeric=range(1, 6)))
        for r in report.complaints:
            parts.append(f"<h3>{_e(r.source)}: first response by category</h3>")
            parts.append(_table(CATEGORY_HEADER, _category_rows(r), (1, 2, 3)))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------- Markdown


_MD_SPECIAL = frozenset("\\`*_[]|~#!")


def md_text(value: object) -> str:
    """Text from outside (service, source and category names, owners, ticket logs) as literal
    Markdown: emphasis, links, code, tables and HTML tags cannot be formed from it."""
    text = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(value))
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")


def _md_cell(value: str) -> str:
    return md_text(value)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The report as Markdown (the same tables; availability per step as a table instead of a chart)."""
    out = [
        "# SLA report",
        "",
        f"Period {report.period}: {when(report.start)} to {when(report.end)}. Data from Prometheus at "
        f"{report.source}; generated {when(report.generated)}. {NOTES} Incident durations are accurate to "
        f"{seconds_text(report.incident_step)}.",
        "",
        "## Summary",
        "",
        _md_table(SUMMARY_HEADER, _summary_rows(report)),
        *feedback_kpis.render_markdown(report.feedback),
    ]
    if report.windows:
        out += ["", "## Maintenance windows", "", MAINTENANCE_NOTE, ""]
        out.append(_md_table(WINDOW_HEADER, window_rows(report.windows)))
    for s in report.services:
        out += ["", f"## {md_text(s.name)} ({md_text(s.tier)})", "", f"Owner: {md_text(s.owner or '-')}", ""]
        out += [f"Previous period → this one: {s.trend()}", "", "### Availability vs SLA", ""]
        out.append(
            _md_table(
                [
                    "availability",
                    "SLA",
                    "SLA met",
                    "budget used",
                    "compliance",
                    "compliance target",
                    "runs",
                    "failed",
                    "done / planned",
                    "degraded",
                ],
                [
                    [
                        percent(s.availability),
                        percent(s.objective, 2),
                        {True: "yes", False: "NO", None: "-"}[s.met],
                        percent(s.budget_used, 1),
                        percent(s.compliance),
                        percent(s.compliance_target, 2),
                        f"{s.runs:.0f}",
                        f"{s.failures:.0f}",
                        s.plan_text(),
                        f"{s.degraded:.0f}",
                    ]
                ],
            )
        )
        out += ["", "### Latency", ""]
        latency = s.latency
        if latency is None:
            out.append("No latency SLA.")
        else:
            out.append(
                _md_table(
                    ["threshold", "target", "runs within", "p50", "p95", "p99"],
                    [
                        [
                            seconds_text(latency.threshold),
                            percent(latency.target, 2),
                            percent(latency.sli),
                            seconds_text(latency.p50),
                            seconds_text(latency.p95),
                            seconds_text(latency.p99),
                        ]
                    ],
                )
            )
        out += ["", "### Incidents by priority", ""]
        rows = by_priority(s.incidents)
        if not rows:
            out.append("No alerts fired in the period.")
        else:
            out.append(
                _md_table(
                    ["priority", "incidents", "total duration", "longest", "highest escalation level"],
                    [[p, str(n), seconds_text(t), seconds_text(lg), str(lv)] for p, n, t, lg, lv in rows],
                )
            )
        complaints = md_text(re.sub(r"<[^>]+>", "", html.unescape(_complaints_for_service_html(report, s))))
        out += ["", "### Complaints", "", complaints]
    if report.complaints:
        out += ["", "## Complaint response compliance", "", _md_table(COMPLAINTS_HEADER, _complaints_rows(report))]
        for r in report.complaints:
            out += ["", f"### {md_text(r.source)}: first response by category", ""]
            out.append(_md_table(CATEGORY_HEADER, _category_rows(r)))
    return "\n".join(out) + "\n"
