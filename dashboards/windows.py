"""Maintenance windows over a period, for the SLA report and the monthly statement.

Planned ones from the config (each opening of a one-off range or a recurring interval within
the period, with the services it covers), and ad hoc ones from the exporter's
``slaprobe_maintenance_active``: stretches in which it was 1 for a service outside every
planned window of that service (``POST /-/maintenance``), to the step of that range query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards.promql import matches
from slaprobe.maintenance import Calendar, MaintenanceWindow
from slaprobe.units import format_duration

if TYPE_CHECKING:
    from slaprobe.dashboards.report import PrometheusClient

ADHOC_POINTS = 10_000  # steps of the slaprobe_maintenance_active range query (Prometheus allows 11,000)
PLANNED = "planned"
AD_HOC = "ad hoc"


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """One stretch of maintenance: a planned window's opening, or an ad hoc one seen on the exporter."""

    name: str
    kind: str  # PLANNED | AD_HOC
    start: float  # unix seconds
    end: float  # unix seconds, excluded
    services: tuple[str, ...]

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start


def openings(calendar: Calendar, start: float, end: float) -> list[tuple[float, float]]:
    """The stretches ``[a, b)`` in which ``calendar`` is open between ``start`` and ``end`` (clipped).

    One-off ranges are exact; recurring intervals (Alertmanager's, to the minute) are found by
    jumping to each opening (``TimeInterval.next_open``) and walking it minute by minute.
    """
    spans = [(max(a, start), min(b, end)) for a, b in calendar.ranges if a < end and b > start]
    t = start
    while calendar.intervals and t < end:
        if not any(i.contains(t) for i in calendar.intervals):
            t = min(i.next_open(t, end) for i in calendar.intervals)
            if not t < end:
                break
        opened = t
        t = (math.floor(t / 60) + 1) * 60
        while t < end and any(i.contains(t) for i in calendar.intervals):
            t += 60
        spans.append((opened, min(t, end)))
    return merged(spans)


def merged(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def planned_spans(cfg: Config, periods: Mapping[str, tuple[float, float]]) -> list[WindowSpan]:
    """Each opening of each configured window within the month of the services it covers."""
    scopes: list[tuple[MaintenanceWindow, tuple[str, ...]]] = [
        (w, tuple(name for name in cfg.services if name in periods)) for w in cfg.global_.maintenance
    ]
    scopes += [(w, (name,)) for name, s in cfg.services.items() if name in periods for w in s.maintenance]
    found: dict[tuple[str, float, float], list[str]] = {}
    for window, names in scopes:
        calendar = Calendar.of([window], cfg.time_intervals)
        for name in names:
            start, end = periods[name]
            for a, b in openings(calendar, start, end):
                found.setdefault((window.name, a, b), []).append(name)
    return sorted(
        (WindowSpan(n, PLANNED, a, b, tuple(dict.fromkeys(s))) for (n, a, b), s in found.items()),
        key=lambda w: (w.start, w.name),
    )


def adhoc_spans(
    active: Mapping[str, Sequence[tuple[float, float]]],
    planned: Sequence[WindowSpan],
    step: float,
) -> list[WindowSpan]:
    """Stretches in which ``slaprobe_maintenance_active`` was 1 for a service outside its planned windows.

    ``active``: per service, the (time, value) points of a range query with ``step``; a
    point stands for the step that ends at it.
    """
    spans: list[WindowSpan] = []
    for service, points in sorted(active.items()):
        own = [(w.start, w.end) for w in planned if service in w.services]
        stretches = merged((t - step, t) for t, v in points if v > 0)
        for a, b in stretches:
            for x, y in _outside(a, b, own, slack=step):
                spans.append(WindowSpan(AD_HOC, AD_HOC, x, y, (service,)))
    return sorted(spans, key=lambda w: (w.start, w.services))


def _outside(a: float, b: float, covered: Sequence[tuple[float, float]], slack: float) -> list[tuple[float, float]]:
    """``[a, b)`` minus ``covered`` (each widened by ``slack``, the step's blur); pieces of at least a step."""
    pieces = [(a, b)]
    for x, y in covered:
        x, y = x - slack, y + slack
        pieces = [p for lo, hi in pieces for p in ((lo, min(hi, x)), (max(lo, y), hi)) if p[1] > p[0]]
    return [(lo, hi) for lo, hi in pieces if hi - lo >= slack - 1e-9]


def active_points(
    client: PrometheusClient, names: Sequence[str], start: float, end: float
) -> tuple[dict[str, list[tuple[float, float]]], float]:
    step = max(60.0, math.ceil((end - start) / ADHOC_POINTS))
    window = format_duration(step)
    active = f"{c.MAINTENANCE_ACTIVE}{{{matches(c.LABEL_SERVICE, names)}}}"
    expr = f"max by ({c.LABEL_SERVICE}) (max_over_time({active}[{window}]))"
    series = client.query_range(expr, start + step, end, step)
    return {labels.get(c.LABEL_SERVICE, ""): points for labels, points in series}, step


def windows_in(
    cfg: Config, client: PrometheusClient, periods: Mapping[str, tuple[float, float]]
) -> tuple[list[WindowSpan], float]:
    """Every window (planned, then ad hoc from the exporter) within each service's period, and the ad hoc step."""
    planned = planned_spans(cfg, periods)
    groups: dict[tuple[float, float], list[str]] = {}
    for name, span in periods.items():
        groups.setdefault(span, []).append(name)
    adhoc: list[WindowSpan] = []
    step = 60.0
    for (start, end), names in sorted(groups.items()):
        active, step = active_points(client, names, start, end)
        adhoc += adhoc_spans(active, planned, step)
    return sorted([*planned, *adhoc], key=lambda w: (w.start, w.kind, w.services)), step
