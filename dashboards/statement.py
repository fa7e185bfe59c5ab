"""The monthly SLA statement: one calendar month per service, maintenance excluded and listed, credits owed.

``slaprobe report --month 2026-11`` is what a manager sends a customer. Each service's month
runs from midnight on the 1st to midnight on the 1st of the next month *in the service's
time zone* (``services.<s>.timezone``, else ``global.timezone``), so a month is 28 to 31
days, give or take the hour of a DST change. Its figures are those of the SLA report
(``slaprobe.dashboards.report.collect_period``) over exactly that span: exact counts, and
the runs inside maintenance windows are in none of them (the exporter counts them apart in
``slaprobe_probe_maintenance_runs_total``; ``slaprobe.maintenance`` says why), so the
statement needs no subtraction and shows the maintenance runs beside the others.

Maintenance windows are listed twice over: the planned ones from the config (each opening
within the month, with its start, end, duration and the services it covers), and ad hoc
ones from the exporter's ``slaprobe_maintenance_active``: stretches in which it was 1 for a
service outside every planned window (``POST /-/maintenance``), to the step of that range
query, which the statement states.

Credits come from each SLA's ``credits`` table: the highest ``percent`` whose ``below`` the
month's availability is under (``SLA.credit_for``). Renderers: HTML (self-contained, like the
report), Markdown, and CSV with one row per service for billing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from slaprobe.config import Config
from slaprobe.dashboards.report import (
    _CSS,
    NOTES,
    PrometheusClient,
    Report,
    ReportError,
    ServiceReport,
    _e,
    _figure,
    _md_table,
    _table,
    by_priority,
    collect_period,
    md_text,
    percent,
    seconds_text,
    where,
)
from slaprobe.dashboards.windows import WindowSpan, merged, windows_in
from slaprobe.schedule import zone

# ---------------------------------------------------------------------------- the month


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, ``2026-11``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``; ReportError otherwise."""
        found = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not found or not 1 <= int(found.group(2)) <= 12:
            raise ReportError(f"--month: not a month: {text!r} (use YYYY-MM, e.g. 2026-11)")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def bounds(self, tz: ZoneInfo) -> tuple[float, float]:
        """Unix seconds of midnight on the 1st and on the 1st of the next month, in ``tz``."""
        following = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        start = dt.datetime(self.year, self.month, 1, tzinfo=tz)
        end = dt.datetime(*following, 1, tzinfo=tz)
        return start.timestamp(), end.timestamp()


# ---------------------------------------------------------------------------- the numbers


@dataclass(frozen=True, slots=True)
class ServiceMonth:
    """One service's month: the report's figures over it, and the credit owed."""

    figures: ServiceReport
    timezone: str
    start: float
    end: float
    credit: float  # percent of the month's fee
    credit_tiers: int  # how many tiers the SLA's credit table has (0: no credits agreed)
    maintenance_seconds: float  # time the service spent in maintenance windows in the month


@dataclass(frozen=True, slots=True)
class Statement:
    """Everything the monthly statement shows."""

    month: Month
    source: str
    services: tuple[ServiceMonth, ...]
    windows: tuple[WindowSpan, ...]
    incident_step: float
    adhoc_step: float
    timezone: str  # the zone times are shown in: the services' one, or UTC when they differ
    generated: float = field(default_factory=time.time)


def collect_statement(cfg: Config, client: PrometheusClient, month: Month) -> Statement:
    """Ask Prometheus for every service's figures over its calendar month ``month``."""
    zones = {name: cfg.timezone_of(s) for name, s in cfg.services.items()}
    periods = {name: month.bounds(zone(tz)) for name, tz in zones.items()}
    groups: dict[tuple[float, float], list[str]] = {}
    for name, span in periods.items():
        groups.setdefault(span, []).append(name)
    figures: dict[str, ServiceReport] = {}
    steps = [1.0]
    for (start, end), names in sorted(groups.items()):
        report: Report = collect_period(cfg, client, start, end, services=names)
        figures.update((s.name, s) for s in report.services)
        steps.append(report.incident_step)
    found, adhoc_step = windows_in(cfg, client, periods)
    windows = tuple(found)
    services = []
    for name, service in cfg.services.items():
        start, end = periods[name]
        spent = merged((w.start, w.end) for w in windows if name in w.services)
        figure = figures[name]
        services.append(
            ServiceMonth(
                figures=figure,
                timezone=zones[name],
                start=start,
                end=end,
                credit=service.sla.credit_for(figure.availability),
                credit_tiers=len(service.sla.credits),
                maintenance_seconds=sum(b - a for a, b in spent),
            )
        )
    shown = next(iter(zones.values())) if len(set(zones.values())) == 1 else "UTC"
    return Statement(month, where(client.url), tuple(services), windows, max(steps), adhoc_step, shown)


def build_statement(cfg: Config, prometheus: str, month: str, *, fmt: str = "html") -> str:
    """The month's statement as HTML, Markdown or CSV text."""
    statement = collect_statement(cfg, PrometheusClient(prometheus), Month.parse(month))
    return RENDERERS[fmt](statement)


# ---------------------------------------------------------------------------- formatting


def local(timestamp: float, tz: str) -> str:
    """A unix time in ``tz``: ``2026-11-21 06:00 CST``."""
    return dt.datetime.fromtimestamp(timestamp, zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


def _met(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


def _credit(s: ServiceMonth) -> str:
    if not s.credit_tiers:
        return "-"
    return f"{s.credit:g}%"


STATEMENT_NOTES = (
    "Runs that started inside a maintenance window are shown as maintenance runs and excluded from "
    "availability, compliance and credits."
)

SUMMARY_HEADER = [
    "service",
    "month",
    "SLA",
    "availability",
    "SLA met",
    "compliance / target",
    "runs / failed",
    "maintenance runs",
    "in maintenance",
    "incidents",
    "credit owed",
]


def _summary_rows(statement: Statement) -> list[list[str]]:
    rows = []
    for s in statement.services:
        f = s.figures
        rows.append(
            [
                f.name,
                f"{local(s.start, s.timezone)} to {local(s.end, s.timezone)}",
                percent(f.objective, 2),
                percent(f.availability),
                _met(f.met),
                f"{percent(f.compliance)} / {percent(f.compliance_target, 2)}",
                f"{f.runs:.0f} / {f.failures:.0f}",
                f"{f.maintenance_runs:.0f}",
                seconds_text(s.maintenance_seconds) if s.maintenance_seconds else "-",
                str(len(f.incidents)),
                _credit(s),
            ]
        )
    return rows


WINDOW_HEADER = ["window", "kind", "start", "end", "duration", "services"]


def _window_rows(statement: Statement) -> list[list[str]]:
    tz = statement.timezone
    return [
        [w.name, w.kind, local(w.start, tz), local(w.end, tz), seconds_text(w.duration), ", ".join(w.services)]
        for w in statement.windows
    ]


INCIDENT_HEADER = ["service", "start", "duration", "priority", "severity", "level reached", "alerts"]


def _incident_rows(statement: Statement) -> list[list[str]]:
    tz = statement.timezone
    return [
        [
            s.figures.name,
            local(i.start, tz),
            seconds_text(i.duration) + (" (ongoing)" if i.ongoing else ""),
            i.priority,
            i.severity,
            str(i.max_level),
            ", ".join(i.alerts),
        ]
        for s in statement.services
        for i in s.figures.incidents
    ]


def _intro(statement: Statement) -> str:
    return (
        f"Month {statement.month}, each service's calendar month in its time zone; times below in "
        f"{statement.timezone}. Data from Prometheus at {statement.source}; generated "
        f"{local(statement.generated, 'UTC')}. {NOTES} {STATEMENT_NOTES} Incident times are accurate to "
        f"{seconds_text(statement.incident_step)}, ad hoc maintenance to {seconds_text(statement.adhoc_step)}."
    )


def render_statement_html(statement: Statement) -> str:
    """The statement as one self-contained HTML document."""
    title = f"SLA statement {statement.month}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p class='meta'>{_e(_intro(statement))}</p>",
        '<section id="summary"><h2>Summary</h2>',
        _table(SUMMARY_HEADER, _summary_rows(statement), numeric=(2, 3, 6, 7, 8, 9, 10)),
        "</section>",
        '<section id="maintenance"><h2>Maintenance windows</h2>',
    ]
    if statement.windows:
        parts.append(_table(WINDOW_HEADER, _window_rows(statement), numeric=(4,)))
    else:
        parts.append("<p>No maintenance in the month.</p>")
    parts.append("</section>")
    for s in statement.services:
        f = s.figures
        parts += [
            f'<section id="service-{_e(f.name)}"><h2>{_e(f.name)} <small class="tier-{_e(f.tier)}">'
            f"{_e(f.tier)}</small></h2>",
            f'<p class="meta">Owner: {_e(f.owner or "-")}. Month {_e(local(s.start, s.timezone))} to '
            f"{_e(local(s.end, s.timezone))}.</p>",
            '<div class="figures">',
            _figure("availability", percent(f.availability), f.met),
            _figure("SLA", percent(f.objective, 2)),
            _figure(
                "compliance rate (target " + percent(f.compliance_target, 2) + ")",
                percent(f.compliance),
                None if f.compliance is None else f.compliance >= f.compliance_target - 1e-12,
            ),
            _figure("probe runs / failed", f"{f.runs:.0f} / {f.failures:.0f}"),
            _figure("dial tests done / planned", f.plan_text(), f.plan_done()),
            _figure("maintenance runs (not counted)", f"{f.maintenance_runs:.0f}"),
            _figure("credit owed", _credit(s), None if not s.credit_tiers else s.credit == 0),
            "</div>",
        ]
        rows = by_priority(f.incidents)
        if rows:
            parts.append(
                _table(
                    ["priority", "incidents", "total duration", "longest", "highest escalation level"],
                    [[p, str(n), seconds_text(t), seconds_text(lg), str(lv)] for p, n, t, lg, lv in rows],
                    numeric=(1, 2, 3, 4),
                )
            )
        else:
            parts.append("<p>No incidents in the month.</p>")
        parts.append("</section>")
    incidents = _incident_rows(statement)
    if incidents:
        parts += ['<section id="incidents"><h2>Incidents</h2>', _table(INCIDENT_HEADER, incidents), "</section>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_statement_markdown(statement: Statement) -> str:
    """The statement as Markdown: the same tables."""
    out = [f"# SLA statement {statement.month}", "", md_text(_intro(statement)), "", "## Summary", ""]
    out.append(_md_table(SUMMARY_HEADER, _summary_rows(statement)))
    out += ["", "## Maintenance windows", ""]
    out.append(
        _md_table(WINDOW_HEADER, _window_rows(statement)) if statement.windows else "No maintenance in the month."
    )
    out += ["", "## Incidents", ""]
    incidents = _incident_rows(statement)
    out.append(_md_table(INCIDENT_HEADER, incidents) if incidents else "No incidents in the month.")
    return "\n".join(out) + "\n"


CSV_HEADER = [
    "month",
    "service",
    "tier",
    "owner",
    "timezone",
    "start",
    "end",
    "sla_availability_percent",
    "availability_percent",
    "sla_met",
    "runs",
    "failed_runs",
    "compliance_percent",
    "compliance_target_percent",
    "dial_tests_planned",
    "maintenance_runs",
    "maintenance_windows",
    "maintenance_seconds",
    "incidents",
    "incident_seconds",
    "credit_percent",
]


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"


def _iso(timestamp: float, tz: str) -> str:
    return dt.datetime.fromtimestamp(timestamp, zone(tz)).isoformat()


def render_statement_csv(statement: Statement) -> str:
    """One row per service: the month's figures for billing (RFC 4180, a header row first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for s in statement.services:
        f = s.figures
        writer.writerow(
            [
                str(statement.month),
                _cell(f.name),
                f.tier,
                _cell(f.owner),
                s.timezone,
                _iso(s.start, s.timezone),
                _iso(s.end, s.timezone),
                _number(f.objective * 100),
                _number(None if f.availability is None else f.availability * 100),
                {True: "yes", False: "no", None: ""}[f.met],
                _number(f.runs, 0),
                _number(f.failures, 0),
                _number(None if f.compliance is None else f.compliance * 100),
                _number(f.compliance_target * 100),
                _number(f.planned, 0),
                _number(f.maintenance_runs, 0),
                str(sum(1 for w in statement.windows if f.name in w.services)),
                _number(s.maintenance_seconds, 0),
                str(len(f.incidents)),
                _number(sum(i.duration for i in f.incidents), 0),
                _number(s.credit, 2) if s.credit_tiers else "",
            ]
        )
    return buffer.getvalue()


def _cell(text: str) -> str:
    """Text from the config as a CSV cell that a spreadsheet does not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


RENDERERS = {"html": render_statement_html, "markdown": render_statement_markdown, "csv": render_statement_csv}
