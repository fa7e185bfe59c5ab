"""SLA overview board (managers): every service against its SLA, budgets, compliance, offenders."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards import slo
from slaprobe.dashboards.maintenance import maintenance_annotation, maintenance_panels
from slaprobe.dashboards.model import Board, Link, Override, Panel, Step
from slaprobe.dashboards.promql import (
    LOCATION_VAR,
    SERVICE_VAR,
    availability,
    compliance,
    equals,
    error_ratio,
    increase_sum,
    latency_sli,
    matches,
    quantile,
    selector,
    share,
    union,
)
from slaprobe.units import format_duration

PROBES = (SERVICE_VAR, LOCATION_VAR)
SERVICE_LINK = p.service_detail_link("${__field.labels.service}")


def per_window(cfg: Config, build: Callable[[str, Sequence[str]], str]) -> str:
    """One expression over each service's own SLA window: ``build(window, matchers)`` per window, or-ed."""
    return union(
        build(format_duration(window), (*PROBES, matches(c.LABEL_SERVICE, names)))
        for window, names in p.services_by_window(cfg).items()
    )


def availability_over_window(cfg: Config) -> str:
    """Availability of each service over its SLA window (exact, from the run counters)."""
    return per_window(cfg, lambda w, m: availability(w, m, [c.LABEL_SERVICE]))


def latency_over_window(cfg: Config) -> str:
    """Latency SLI of each service with a latency SLA: runs not slower than its threshold, over its window."""
    parts = []
    for name, service in cfg.services.items():
        latency = service.sla.latency
        if latency is not None:
            matchers = (*PROBES, equals(c.LABEL_SERVICE, name))
            parts.append(
                latency_sli(latency.threshold, format_duration(service.sla.window), matchers, [c.LABEL_SERVICE])
            )
    return union(parts)


def _with_service(expr: str) -> str:
    """A recording-rule series reduced to one per ``service``."""
    return f"max by ({c.LABEL_SERVICE}) ({expr})"


def _range_floor(targets: Sequence[float]) -> float:
    """A bar-gauge minimum that makes the gap between the lowest target and 100% visible."""
    lowest = min(targets, default=0.99)
    return max(0.0, round(lowest - 10 * (1 - lowest), 4))


def _summary(cfg: Config) -> list[Panel]:
    availability_slo = slo.slo_is(c.SLO_AVAILABILITY)
    window_text = ", ".join(
        f"{format_duration(w)} ({', '.join(names)})" for w, names in p.services_by_window(cfg).items()
    )
    queries = (
        p.q(f"max by (service, tier, owner) ({selector(c.SERVICE_INFO, SERVICE_VAR)})", table=True),
        p.q(availability_over_window(cfg), table=True),
        p.q(_with_service(slo.objective(SERVICE_VAR, availability_slo)), table=True),
        p.q(
            f"({availability_over_window(cfg)}) - on (service) "
            f"{_with_service(slo.objective(SERVICE_VAR, availability_slo))}",
            table=True,
        ),
        p.q(_with_service(slo.budget_remaining(SERVICE_VAR, availability_slo)), table=True),
        p.q(per_window(cfg, lambda w, m: compliance(w, m, [c.LABEL_SERVICE])), table=True),
        p.q(latency_over_window(cfg), table=True),
    )
    columns = {
        "Value #B": "availability",
        "Value #C": "SLA",
        "Value #D": "margin",
        "Value #E": "budget left",
        "Value #F": "compliance",
        "Value #G": "latency SLI",
    }
    percent = ("unit", "percentunit")
    overrides: tuple[Override, ...] = (
        p.by_name("service", ("links", (p.service_detail_link("${__value.raw}"),))),
        p.by_name("tier", ("custom.cellOptions", {"type": "color-background"})),
        p.by_name("availability", percent, ("decimals", 3)),
        p.by_name("SLA", percent, ("decimals", 2)),
        p.by_name(
            "margin",
            percent,
            ("decimals", 3),
            ("thresholds", p.target_steps(0.0)),
            ("custom.cellOptions", {"type": "color-text"}),
        ),
        p.by_name(
            "budget left",
            percent,
            ("decimals", 1),
            ("thresholds", p.target_steps(0.25, warn=0.0)),
            ("custom.cellOptions", {"type": "color-background"}),
        ),
        p.by_name("compliance", percent, ("decimals", 3)),
        p.by_name("latency SLI", percent, ("decimals", 3)),
    )
    return [
        p.row("Services against their SLA"),
        Panel(
            "table",
            "SLA summary",
            queries,
            description=(
                "Each service over its own SLA window (" + window_text + "): availability of the scheduled "
                "probes, the SLA, the margin (availability minus SLA: red when the SLA is broken), error "
                "budget left, dial-test compliance rate and latency SLI. Click a service for its detail board."
            ),
            mappings=p.tier_mappings(),
            overrides=overrides,
            transformations=p.merge_table(
                columns,
                ("service", "tier", "owner", *columns.values()),
                hide=("Time", "Value #A"),
            ),
            options={"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": "margin", "desc": False}]},
            width=24,
            height=4 + len(cfg.services),
        ),
        Panel(
            "bargauge",
            "Availability over the SLA window",
            (p.q(availability_over_window(cfg), "{{service}}", instant=True),),
            description="Share of probe runs that succeeded over each service's SLA window; red below its SLA.",
            unit="percentunit",
            decimals=3,
            min=_range_floor(list(p.availability_targets(cfg).values())),
            max=1,
            overrides=p.per_service_targets(p.availability_targets(cfg)),
            field_links=(SERVICE_LINK,),
            options=p.bargauge_options(),
            width=12,
            height=max(6, 2 + 2 * len(cfg.services)),
        ),
        Panel(
            "bargauge",
            "Error budget remaining",
            (p.q(_with_service(slo.budget_remaining(SERVICE_VAR, availability_slo)), "{{service}}", instant=True),),
            description=(
                "Share of the availability error budget of the SLA window still unspent "
                "(1 - period burn rate, from the recording rules). Below 0 the SLA is broken."
            ),
            unit="percentunit",
            decimals=1,
            min=-1,
            max=1,
            steps=p.target_steps(0.25, warn=0.0),
            field_links=(SERVICE_LINK,),
            options=p.bargauge_options(),
            width=12,
            height=max(6, 2 + 2 * len(cfg.services)),
        ),
        Panel(
            "bargauge",
            "Availability by location (time range)",
            (
                p.q(
                    availability("$__range", PROBES, ["service", c.LABEL_LOCATION]),
                    "{{service}} @ {{location}}",
                    instant=True,
                ),
            ),
            description=(
                "Share of probe runs that succeeded in the time range, per service and location; red below the "
                "service's SLA. One location low and the others green is a local problem (or its prober's)."
            ),
            unit="percentunit",
            decimals=3,
            min=_range_floor(list(p.availability_targets(cfg).values())),
            max=1,
            overrides=p.grouped(
                p.availability_targets(cfg), " @ ", lambda target: [("thresholds", p.target_steps(target))]
            ),
            options=p.bargauge_options(),
            width=24,
            height=max(6, 2 + 2 * len(cfg.services)),
        ),
    ]


def _compliance(cfg: Config) -> list[Panel]:
    targets = {name: p.compliance_target(s) for name, s in cfg.services.items()}
    periods: tuple[tuple[str, str | None, str], ...] = (
        ("Compliance rate today", "now/d", "$__range"),
        ("Compliance rate, 7 days", None, "7d"),
        ("Compliance rate, 30 days", None, "30d"),
    )
    panels = [p.row("Dial-test compliance rate (达标率)")]
    for title, time_from, window in periods:
        panels.append(
            Panel(
                "bargauge",
                title,
                (p.q(compliance(window, PROBES, [c.LABEL_SERVICE]), "{{service}}", instant=True),),
                description=(
                    "Runs that succeeded within the service's latency threshold, over all runs; "
                    "red below the service's compliance target (its availability SLA unless set). "
                    f"Today starts at midnight {cfg.global_.timezone} (global.timezone)."
                ),
                unit="percentunit",
                decimals=2,
                min=_range_floor(list(targets.values())),
                max=1,
                overrides=p.per_service_targets(targets),
                field_links=(SERVICE_LINK,),
                time_from=time_from,
                options=p.bargauge_options(),
                width=8,
                height=max(6, 2 + 2 * len(cfg.services)),
            )
        )
    return panels


def _latency(cfg: Config) -> list[Panel]:
    targets = {n: p.ratio(s.sla.latency.target) for n, s in cfg.services.items() if s.sla.latency is not None}
    thresholds = p.grouped(
        {n: s.sla.latency.threshold for n, s in cfg.services.items() if s.sla.latency is not None},
        " p95",
        lambda limit: [("thresholds", p.ceiling_steps(limit)), ("custom.thresholdsStyle", {"mode": "dashed"})],
    )
    panels = [p.row("Latency")]
    if targets:
        panels.append(
            Panel(
                "bargauge",
                "Latency SLI over the SLA window",
                (p.q(latency_over_window(cfg), "{{service}}", instant=True),),
                description="Share of runs not slower than the service's latency threshold; red below its target.",
                unit="percentunit",
                decimals=2,
                min=_range_floor(list(targets.values())),
                max=1,
                overrides=p.per_service_targets(targets),
                field_links=(SERVICE_LINK,),
                options=p.bargauge_options(),
                width=10,
            )
        )
    panels.append(
        Panel(
            "timeseries",
            "Probe duration p95 by service",
            (p.q(quantile(0.95, c.PROBE_DURATION, "$__rate_interval", PROBES, [c.LABEL_SERVICE]), "{{service}} p95"),),
            description="95th percentile of run duration; dashed lines at each service's latency threshold.",
            unit="s",
            overrides=thresholds,
            field_links=(SERVICE_LINK,),
            options=p.legend_options("lastNotNull", "max"),
            width=14 if targets else 24,
        )
    )
    return panels


def _complaints(cfg: Config) -> list[Panel]:
    if not cfg.feedback:
        return []
    first = f'{c.LABEL_STAGE}="{c.STAGE_FIRST_RESPONSE}"'
    breaches = increase_sum(c.FEEDBACK_SLA_BREACHES, "$__range", (first,), [c.LABEL_SOURCE])
    tickets = increase_sum(c.FEEDBACK_TICKETS, "$__range", (), [c.LABEL_SOURCE])
    quality = increase_sum(c.FEEDBACK_QUALITY_TICKETS, "$__range", (), [c.LABEL_SOURCE])
    return [
        p.row("Complaints"),
        Panel(
            "stat",
            "First-response compliance (time range)",
            (p.q(f"1 - {share(breaches, tickets)}", "{{source}}", instant=True),),
            description="Tickets answered within their first-response deadline, over tickets opened, per source.",
            unit="percentunit",
            decimals=1,
            steps=p.target_steps(0.95, warn=0.9),
            options=p.stat_options(),
            links=(Link("Feedback and complaints", p.board_url(p.FEEDBACK)),),
            width=8,
            height=5,
        ),
        Panel(
            "stat",
            "Open tickets",
            (p.q(f"sum by ({c.LABEL_SOURCE}) ({c.FEEDBACK_OPEN_TICKETS})", "{{source}}"),),
            options=p.stat_options(),
            width=8,
            height=5,
        ),
        Panel(
            "stat",
            "Product-quality complaint share (time range)",
            (p.q(share(quality, tickets), "{{source}}", instant=True),),
            description="Tickets in the quality categories of each source (quality_categories), over all tickets.",
            unit="percentunit",
            decimals=1,
            options=p.stat_options(),
            width=8,
            height=5,
        ),
    ]


_NAN_AS_DASH = {"type": "special", "options": {"match": "nan", "result": {"text": "-", "index": 0}}}


def _over(metric: str, matchers: Sequence[str], *, previous: bool) -> str:
    """Per source, the growth of ``metric`` over the time range, or over the range before it."""
    shift = " offset $__range" if previous else ""
    return f"sum by ({c.LABEL_SOURCE}) (increase({selector(metric, *matchers)}[$__range]{shift}))"


def _desk_kpis(*, previous: bool) -> list[tuple[str, str, str, str]]:
    """(title, expression, unit, description) of each satisfaction and feedback KPI, as in the report."""

    def n(metric: str, *matchers: str) -> str:
        return _over(metric, matchers, previous=previous)

    scale10 = equals(c.LABEL_SCALE, "10")
    scored = n(c.FEEDBACK_RATING + "_count", scale10)
    not_promoters = n(c.FEEDBACK_RATING + "_bucket", scale10, equals("le", "8"))
    detractors = n(c.FEEDBACK_RATING + "_bucket", scale10, equals("le", "6"))
    good_close = matches(c.LABEL_OUTCOME, (c.CLOSED_CONFIRMED, c.CLOSED_AUTO))
    resolved = equals(c.LABEL_STAGE, c.LOOP_RESOLVED)
    tickets, closed = n(c.FEEDBACK_TICKETS), n(c.FEEDBACK_CLOSED)
    return [
        ("CSAT", share(n(c.FEEDBACK_SATISFIED), n(c.FEEDBACK_RATED)), "percentunit", "satisfied ratings / ratings"),
        (
            "NPS",
            f"100 * {share(f'({scored} - {not_promoters} - {detractors})', scored)}",
            "none",
            "(promoters 9-10 - detractors 0-6) / ratings on the 0-10 scale, in points",
        ),
        ("Repeat rate", share(n(c.FEEDBACK_REPEATS), tickets), "percentunit", "repeat tickets / tickets"),
        (
            "Reopen rate",
            share(n(c.FEEDBACK_REOPENED), n(c.FEEDBACK_LOOP_STAGE, resolved)),
            "percentunit",
            "reopens / tickets resolved",
        ),
        (
            "Resolution rate",
            share(n(c.FEEDBACK_CLOSED, good_close), closed),
            "percentunit",
            "closings confirmed or auto-closed / closings",
        ),
        (
            "Closed-loop rate",
            share(n(c.FEEDBACK_CLOSED_LOOP), closed),
            "percentunit",
            "tickets closed through every stage / closings",
        ),
        (
            "Quality-complaint share",
            share(n(c.FEEDBACK_QUALITY_TICKETS), tickets),
            "percentunit",
            "tickets in a quality category / tickets",
        ),
    ]


def _desk(cfg: Config) -> list[Panel]:
    """The report's satisfaction and feedback KPIs, each with the range before it (no data there: -)."""
    if not cfg.feedback:
        return []
    panels = [p.row("Satisfaction and feedback (the time range before → the time range)")]
    for (title, now, unit, what), (_, before, _, _) in zip(
        _desk_kpis(previous=False), _desk_kpis(previous=True), strict=True
    ):
        panels.append(
            Panel(
                "stat",
                title,
                (
                    p.q(f"{before}\nor\n({now}) * NaN", "{{source}} before", instant=True),
                    p.q(now, "{{source}}", instant=True),
                ),
                description=f"{what}, per feedback source: over the time range before the one shown, then over it.",
                unit=unit,
                decimals=1 if unit == "none" else 2,
                mappings=(_NAN_AS_DASH,),
                options=p.stat_options(),
                links=(Link("Feedback and complaints", p.board_url(p.FEEDBACK)),),
                width=6,
                height=5,
            )
        )
    return panels


def _offenders(cfg: Config) -> list[Panel]:
    by_probe = [c.LABEL_SERVICE, c.LABEL_PROBE, c.LABEL_LOCATION]
    burn_panels = []
    if slo.services_with_burn_alerts(cfg):
        burn_panels.append(
            Panel(
                "bargauge",
                "Fastest-burning SLOs (1h)",
                (p.q(f"topk(5, {slo.burn_rate('1h', SERVICE_VAR)})", "{{service}} {{sloth_slo}}", instant=True),),
                description=(
                    "Error ratio of the last hour over the error budget: 1 spends the budget just over the SLA "
                    "window. Coloured at each service's burn-rate alert thresholds (yellow from 1x)."
                ),
                decimals=1,
                steps=(Step(None, "green"), Step(1, "yellow")),
                overrides=p.grouped(
                    {name: slo.burn_steps(cfg.services[name]) for name in slo.services_with_burn_alerts(cfg)},
                    " ",
                    lambda steps: [("thresholds", steps)],
                ),
                field_links=(SERVICE_LINK,),
                options=p.bargauge_options(),
                width=10,
            )
        )
    return [
        p.row("Worst offenders"),
        Panel(
            "table",
            "Worst probes (time range)",
            (p.q(f"topk(10, {error_ratio('$__range', PROBES, by_probe)})", table=True),),
            description="Probes with the highest share of failed runs in the time range.",
            overrides=(
                p.by_name("service", ("links", (p.service_detail_link("${__value.raw}"),))),
                p.by_name(
                    "failed runs",
                    ("unit", "percentunit"),
                    ("decimals", 2),
                    ("custom.cellOptions", {"type": "color-background"}),
                    ("thresholds", p.ceiling_steps(0.01, warn=0.001)),
                ),
            ),
            transformations=p.merge_table({"Value": "failed runs"}, (*by_probe, "Value")),
            options={"showHeader": True, "sortBy": [{"displayName": "failed runs", "desc": True}]},
            width=14 if burn_panels else 24,
        ),
        *burn_panels,
    ]


def overview_board(cfg: Config) -> Board:
    """The SLA overview board of a config."""
    return Board(
        name=p.OVERVIEW,
        title="slaprobe / SLA overview",
        uid=p.board_uid(p.OVERVIEW),
        description="Every service against its SLA: availability, error budget, compliance rate, latency, complaints, "
        "satisfaction and feedback KPIs.",
        tags=(*p.TAGS, "overview"),
        variables=(p.datasource_variable(), p.service_variable(), p.location_variable()),
        panels=(
            *_summary(cfg),
            *_compliance(cfg),
            *_latency(cfg),
            *_complaints(cfg),
            *_desk(cfg),
            *_offenders(cfg),
            *maintenance_panels(cfg),
        ),
        annotations=(maintenance_annotation(),),
        time_from="now-7d",
        refresh="5m",
        # "today" starts at midnight where the status page's does; Grafana spells UTC "utc".
        timezone="utc" if cfg.global_.timezone.upper() == "UTC" else cfg.global_.timezone,
    )
