"""The feedback desk's KPIs in the SLA report: satisfaction, NPS, repeats, reopens, resolution, the loop.

Each KPI is a ratio of two exact counts over the report's period (``slaprobe.sli.Events.count``:
a counter's growth, not ``increase()``), per feedback source and service, and the same ratio
over the period before it (of the same length), so a bulletin reads "quality-complaint share
32.14% → 15.09%". The counts are kept next to the ratios: the report's figures equal the
exporter's own counters.

- CSAT: satisfied ratings / ratings (``slaprobe_feedback_satisfied_total`` / ``_rated_total``);
- NPS: (promoters - detractors) / ratings on the 0-10 scale, in points from -100 to 100
  (promoters rate 9-10: count - ``le="8"``; detractors 0-6: ``le="6"``);
- repeat rate: repeat tickets / tickets opened;
- reopen rate: reopens / tickets resolved (the ``resolved`` stage of the loop);
- resolution rate: closings confirmed or auto-closed / all closings;
- closed-loop rate: tickets closed through every stage / all closings;
- quality-complaint share: tickets in ``quality_categories`` / tickets opened.

``collect`` does I/O through the report's client; ``render_html`` and ``render_markdown``
are pure. The report (``slaprobe.dashboards.report``) calls the three.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.promql import equals, matches
from slaprobe.sli import Events

Samples = list[tuple[dict[str, str], float]]
Key = tuple[str, str]  # (source, service)


class Querier(Protocol):
    """What ``collect`` needs of the report's Prometheus client."""

    def query(self, expr: str, at: float) -> Samples: ...


_SCALE_10 = equals(c.LABEL_SCALE, "10")
_GOOD_CLOSE = matches(c.LABEL_OUTCOME, (c.CLOSED_CONFIRMED, c.CLOSED_AUTO))

# The counts every KPI is made of, by name.
COUNTS: Mapping[str, Events] = {
    "tickets": Events(c.FEEDBACK_TICKETS),
    "quality": Events(c.FEEDBACK_QUALITY_TICKETS),
    "rated": Events(c.FEEDBACK_RATED),
    "satisfied": Events(c.FEEDBACK_SATISFIED),
    "scored": Events(c.FEEDBACK_RATING + "_count", (_SCALE_10,)),
    "not_promoters": Events(c.FEEDBACK_RATING + "_bucket", (_SCALE_10, equals("le", "8"))),
    "detractors": Events(c.FEEDBACK_RATING + "_bucket", (_SCALE_10, equals("le", "6"))),
    "repeats": Events(c.FEEDBACK_REPEATS),
    "reopened": Events(c.FEEDBACK_REOPENED),
    "resolved": Events(c.FEEDBACK_LOOP_STAGE, (equals(c.LABEL_STAGE, c.LOOP_RESOLVED),)),
    "closed": Events(c.FEEDBACK_CLOSED),
    "resolved_closed": Events(c.FEEDBACK_CLOSED, (_GOOD_CLOSE,)),
    "closed_loop": Events(c.FEEDBACK_CLOSED_LOOP),
}
KEY_LABELS = (c.LABEL_SOURCE, c.LABEL_SERVICE)

Counts = Mapping[str, float]


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def csat(n: Counts) -> float | None:
    """Satisfied ratings over all ratings."""
    return _ratio(n.get("satisfied", 0.0), n.get("rated", 0.0))


def nps(n: Counts) -> float | None:
    """(promoters - detractors) / ratings on the 0-10 scale, in points (-100 to 100)."""
    scored = n.get("scored", 0.0)
    if scored <= 0:
        return None
    promoters = scored - n.get("not_promoters", 0.0)
    return 100.0 * (promoters - n.get("detractors", 0.0)) / scored


def repeat_rate(n: Counts) -> float | None:
    """Repeat tickets over tickets opened."""
    return _ratio(n.get("repeats", 0.0), n.get("tickets", 0.0))


def reopen_rate(n: Counts) -> float | None:
    """Reopens over tickets resolved."""
    return _ratio(n.get("reopened", 0.0), n.get("resolved", 0.0))


def resolution_rate(n: Counts) -> float | None:
    """Closings confirmed or auto-closed over all closings."""
    return _ratio(n.get("resolved_closed", 0.0), n.get("closed", 0.0))


def closed_loop_rate(n: Counts) -> float | None:
    """Tickets closed through every stage of the loop over all closings."""
    return _ratio(n.get("closed_loop", 0.0), n.get("closed", 0.0))


def quality_share(n: Counts) -> float | None:
    """Tickets in a quality category over tickets opened."""
    return _ratio(n.get("quality", 0.0), n.get("tickets", 0.0))


# (name in the report, function, a percentage (True) or NPS points (False))
KPIS: tuple[tuple[str, object, bool], ...] = (
    ("CSAT", csat, True),
    ("NPS", nps, False),
    ("repeat rate", repeat_rate, True),
    ("reopen rate", reopen_rate, True),
    ("resolution rate", resolution_rate, True),
    ("closed-loop rate", closed_loop_rate, True),
    ("quality-complaint share", quality_share, True),
)


@dataclass(frozen=True, slots=True)
class DeskKpis:
    """The counts of one (feedback source, service) over the period and the period before."""

    source: str
    service: str
    counts: Mapping[str, float]
    previous: Mapping[str, float]
    satisfaction_target: float | None = None  # the service's sla.satisfaction, as a ratio

    def value(self, name: str, *, previous: bool = False) -> float | None:
        """The KPI called ``name`` (see ``KPIS``) of this period or the previous one."""
        for kpi, function, _ in KPIS:
            if kpi == name:
                return function(self.previous if previous else self.counts)  # type: ignore[operator]
        raise KeyError(name)

    def bulletin(self) -> str:
        """``CSAT 80.00% → 85.00%, NPS +10.0 → +20.0, ...``: the previous period, then this one."""
        return ", ".join(
            f"{name} {_show(self.value(name, previous=True), pct)} → {_show(self.value(name), pct)}"
            for name, _, pct in KPIS
        )


def _show(value: float | None, pct: bool) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value * 100:.2f}%" if pct else f"{value:+.1f}"


def queries(window: str, cfg: Config) -> dict[str, str]:
    """The query of each count over ``window``, summed by source and service."""
    sources = [s.name for s in cfg.feedback]
    scope = (matches(c.LABEL_SOURCE, sources),) if sources else ()
    return {name: events.count(window, scope, KEY_LABELS) for name, events in COUNTS.items()}


def _by_key(samples: Iterable[tuple[dict[str, str], float]]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for labels, value in samples:
        key = (labels.get(c.LABEL_SOURCE, ""), labels.get(c.LABEL_SERVICE, ""))
        out[key] = out.get(key, 0.0) + value
    return out


def collect(cfg: Config, client: Querier, window: str, at: float, start: float) -> tuple[DeskKpis, ...]:
    """The KPIs of every (source, service) with tickets or ratings in this period or the one before."""
    if not cfg.feedback:
        return ()
    exprs = queries(window, cfg)
    now = {name: _by_key(client.query(expr, at)) for name, expr in exprs.items()}
    before = {name: _by_key(client.query(expr, start)) for name, expr in exprs.items()}
    keys = sorted({key for table in (*now.values(), *before.values()) for key in table})
    out = []
    for key in keys:
        counts = {name: now[name].get(key, 0.0) for name in COUNTS}
        previous = {name: before[name].get(key, 0.0) for name in COUNTS}
        if not any(counts.values()) and not any(previous.values()):
            continue
        service = cfg.services.get(key[1])
        target = service.sla.satisfaction if service is not None else None
        out.append(DeskKpis(key[0], key[1], counts, previous, None if target is None else target / 100))
    return tuple(out)


# ---------------------------------------------------------------------------- rendering

TITLE = "Satisfaction and feedback"
NOTE = (
    "Each figure is the previous period → this one, from exact counts. CSAT: satisfied ratings / ratings. "
    "NPS: (promoters 9-10 - detractors 0-6) / ratings on the 0-10 scale. Repeat rate: repeat tickets / tickets. "
    "Reopen rate: reopens / tickets resolved. Resolution rate: closings confirmed or auto-closed / closings. "
    "Closed-loop rate: tickets closed through every stage / closings. Quality-complaint share: tickets in a "
    "quality category / tickets."
)
HEADER = ["source", "service", *(name for name, _, _ in KPIS), "ratings", "repeats", "tickets"]


def rows(kpis: Sequence[DeskKpis]) -> list[list[str]]:
    """One row per (source, service): each KPI as ``previous → now``, then this period's counts."""
    out = []
    for k in kpis:
        cells = [k.source, k.service or "-"]
        for name, _, pct in KPIS:
            text = f"{_show(k.value(name, previous=True), pct)} → {_show(k.value(name), pct)}"
            if name == "CSAT" and k.satisfaction_target is not None:
                text += f" (target {k.satisfaction_target * 100:.2f}%)"
            cells.append(text)
        cells += [f"{k.counts['rated']:.0f}", f"{k.counts['repeats']:.0f}", f"{k.counts['tickets']:.0f}"]
        out.append(cells)
    return out


def render_html(kpis: Sequence[DeskKpis]) -> str:
    """The report's section of feedback KPIs as HTML ("" without any feedback source)."""
    if not kpis:
        return ""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{e(v)}</td>' if i > 1 else f"<td>{e(v)}</td>" for i, v in enumerate(r))
        + "</tr>"
        for r in rows(kpis)
    )
    return (
        f'<section id="feedback-kpis"><h2>{e(TITLE)}</h2><p class="meta">{e(NOTE)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


_MD_SPECIAL = frozenset("\\`*_[]|~#!")


def _md(value: str) -> str:
    text = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in value)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")


def render_markdown(kpis: Sequence[DeskKpis]) -> list[str]:
    """The report's section of feedback KPIs as Markdown lines ([] without any feedback source)."""
    if not kpis:
        return []
    lines = ["", f"## {TITLE}", "", NOTE, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_md(v) for v in r) + " |" for r in rows(kpis)]
    return lines
