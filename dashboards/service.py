"""Service detail board (on-call): what fails, where, since when, and how fast the budget burns."""

from __future__ import annotations

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards import slo
from slaprobe.dashboards.maintenance import maintenance_annotation, maintenance_panels
from slaprobe.dashboards.model import Annotation, Board, Link, Override, Panel, Query, Step
from slaprobe.dashboards.promql import (
    LOCATION_VAR,
    PROBE_VAR,
    SERVICE_VAR,
    availability,
    compliance,
    increase_sum,
    quantile,
    rate_sum,
    selector,
    share,
)
from slaprobe.units import format_duration

PROBES = (SERVICE_VAR, LOCATION_VAR, PROBE_VAR)
WHERE = "{{probe}} @ {{location}}"
DEFAULT_TLS_DAYS = 14.0  # warn below this many days when a probe sets no min_days_left


def _now(cfg: Config) -> list[Panel]:
    targets = p.availability_targets(cfg)
    compliance_targets = {name: p.compliance_target(s) for name, s in cfg.services.items()}
    failing = selector(c.PROBE_SUCCESS, *PROBES)
    return [
        p.row("Now"),
        Panel(
            "stat",
            "Availability (time range)",
            (p.q(availability("$__range", PROBES, ["service"]), "{{service}}", instant=True),),
            description="Share of scheduled probe runs that succeeded in the time range; red below the SLA.",
            unit="percentunit",
            decimals=3,
            overrides=p.per_service_targets(targets),
            options=p.stat_options(),
            width=5,
            height=4,
        ),
        Panel(
            "stat",
            "Compliance rate (time range)",
            (p.q(compliance("$__range", PROBES, ["service"]), "{{service}}", instant=True),),
            description="Runs that succeeded within the latency threshold, over all runs (达标率).",
            unit="percentunit",
            decimals=3,
            overrides=p.per_service_targets(compliance_targets),
            options=p.stat_options(),
            width=5,
            height=4,
        ),
        Panel(
            "stat",
            "Error budget remaining",
            (p.q(slo.budget_remaining(SERVICE_VAR), "{{service}} {{sloth_slo}}"),),
            description="Share of the SLA window's error budget still unspent, per SLO (from the recording rules).",
            unit="percentunit",
            decimals=1,
            steps=p.target_steps(0.25, warn=0.0),
            options=p.stat_options(),
            width=5,
            height=4,
        ),
        Panel(
            "stat",
            "Probes failing now",
            (
                p.q(
                    f"count by (service) ({failing} == 0) or sum by (service) ({failing}) * 0",
                    "{{service}}",
                ),
            ),
            description="Probes whose last run failed.",
            steps=p.ceiling_steps(1),
            options=p.stat_options(color_mode="background"),
            width=4,
            height=4,
        ),
        Panel(
            "stat",
            "Alerts firing",
            (p.q(f"count by (service) ({slo.firing(SERVICE_VAR)}) or vector(0)", "{{service}}"),),
            description="SLA alerts of this service firing now, every level.",
            steps=p.ceiling_steps(1),
            options=p.stat_options(color_mode="background"),
            links=(Link("Escalation and incidents", f"{p.board_url(p.INCIDENTS)}?${{service:queryparam}}"),),
            width=5,
            height=4,
        ),
    ]


def _stale_after(cfg: Config) -> float:
    """When a location's prober counts as stale on the board: the longest of the rules' no-data thresholds."""
    intervals = [cfg.interval_of(probe) for _, _, probe in cfg.probes()] or [0.0]
    return max(cfg.alerting.no_data_for, 3 * max(intervals))


def _locations(cfg: Config) -> list[Panel]:
    targets = p.availability_targets(cfg)
    # A share of the reporting locations has no fixed count: red from one failing location.
    quorums = {name: s.quorum if isinstance(s.quorum, int) else 1 for name, s in cfg.services.items()}
    stale_after = _stale_after(cfg)
    success = selector(c.PROBE_SUCCESS, *PROBES)
    failing = sli.failing_location_count(PROBES, stale_after)
    last_run = selector(c.PROBE_LAST_RUN, *PROBES)
    return [
        p.row("Locations"),
        Panel(
            "bargauge",
            "Availability by location (time range)",
            (p.q(availability("$__range", PROBES, ["service", c.LABEL_LOCATION]), "{{service}} @ {{location}}"),),
            description="Share of scheduled runs that succeeded in the time range, per location; red below the SLA.",
            unit="percentunit",
            decimals=3,
            overrides=p.grouped(targets, " @ ", lambda target: [("thresholds", p.target_steps(target))]),
            options=p.bargauge_options(),
            width=8,
        ),
        Panel(
            "stat",
            "Locations failing now vs quorum",
            (
                p.q(
                    f"{failing}\nor sum by (service, probe) ({success}) * 0",
                    "{{service}}/{{probe}}",
                ),
            ),
            description=(
                "Locations whose last run of each probe failed; red from the service's quorum (the locations that "
                "must fail at once to page), orange from one. Locations whose prober has not run for "
                f"{format_duration(stale_after)} are no data, not failures."
            ),
            decimals=0,
            steps=p.ceiling_steps(1),
            overrides=p.grouped(
                quorums,
                "/",
                lambda quorum: [("thresholds", p.ceiling_steps(quorum, warn=1 if quorum > 1 else None))],
            ),
            options=p.stat_options(color_mode="background"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Last run age by location (prober down?)",
            (p.q(f"max by (location) (time() - {last_run})", "{{location}}"),),
            description=(
                "Seconds since the last run of any probe of the service, per location: a location whose line climbs "
                f"past {format_duration(stale_after)} has its prober down (SLAProbeNoData), not an outage."
            ),
            unit="s",
            steps=p.ceiling_steps(stale_after),
            threshold_style="line",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
    ]


def _tls_overrides(cfg: Config) -> tuple[Override, ...]:
    """Per probe with ``min_days_left``: red below it, orange below twice it (series ``<service>/<probe> @ ...``)."""
    minimums = {}
    for service_name, _, probe in cfg.probes():
        spec = probe.tls if probe.tls is not None else (probe.http.tls if probe.http is not None else None)
        if spec is not None and spec.min_days_left:
            minimums[f"{service_name}/{probe.name}"] = spec.min_days_left
    return p.grouped(minimums, " @ ", lambda days: [("thresholds", p.target_steps(days * 2, warn=days))])


def _latency_overrides(cfg: Config, suffix: str) -> tuple[Override, ...]:
    """A red threshold line at each service's latency threshold, on series named ``<service> <suffix>...``."""
    limits = {name: s.sla.latency.threshold for name, s in cfg.services.items() if s.sla.latency is not None}
    return p.grouped(
        limits,
        f" {suffix}",
        lambda limit: [("thresholds", p.ceiling_steps(limit)), ("custom.thresholdsStyle", {"mode": "line"})],
    )


def _probes(cfg: Config) -> list[Panel]:
    window = "$__rate_interval"
    histograms = any(cfg.phase_histograms_of(service) for service in cfg.services.values())
    return [
        p.row("Probes"),
        Panel(
            "state-timeline",
            "Probe success by probe and location",
            (p.q(selector(c.PROBE_SUCCESS, *PROBES), WHERE),),
            description="Result of each run: green succeeded, red failed.",
            mappings=p.up_down_mappings(),
            steps=p.target_steps(1),
            options={"mergeValues": True, "showValue": "never", "rowHeight": 0.8, "legend": {"showLegend": False}},
            width=24,
            height=7,
        ),
        Panel(
            "timeseries",
            "Probe duration vs latency threshold",
            (
                p.q(quantile(0.5, c.PROBE_DURATION, window, PROBES, ["service"]), "{{service}} p50"),
                p.q(quantile(0.95, c.PROBE_DURATION, window, PROBES, ["service"]), "{{service}} p95"),
                p.q(quantile(0.99, c.PROBE_DURATION, window, PROBES, ["service"]), "{{service}} p99"),
            ),
            description="Percentiles of run duration from the histogram; the red line is the SLA latency threshold.",
            unit="s",
            overrides=_latency_overrides(cfg, "p"),
            options=p.legend_options("lastNotNull", "max"),
            width=12,
        ),
        Panel(
            "heatmap",
            "Run duration distribution",
            (
                Query(
                    f"sum by (le) (increase({selector(c.PROBE_DURATION + '_bucket', *PROBES)}[{window}]))",
                    "{{le}}",
                    format="heatmap",
                ),
            ),
            description="Runs per duration bucket (the SLA threshold is always a bucket bound).",
            options={
                "calculate": False,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange"},
                "yAxis": {"axisPlacement": "left", "unit": "s"},
                "rowsFrame": {"layout": "auto"},
                "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
                "legend": {"show": True},
                "filterValues": {"le": 1e-9},
            },
            width=12,
        ),
        Panel(
            "timeseries",
            "Duration by phase (last run)",
            (p.q(selector(c.PROBE_PHASE, *PROBES), "{{probe}} {{phase}}"),),
            description="Resolve, connect, TLS, processing and transfer time of each probe's last run.",
            unit="s",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("lastNotNull", "max", display="table", placement="right"),
            width=12,
        ),
        *(_phase_histogram_panel(window) if histograms else ()),
        Panel(
            "timeseries",
            "Failure reasons",
            (
                p.q(
                    increase_sum(c.PROBE_FAILURES, window, PROBES, ["probe", c.LABEL_REASON]),
                    "{{probe}}: {{reason}}",
                ),
            ),
            description="Failed runs by probe and reason (dns, connect, tls, timeout, http_status, assertion...).",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("sum", display="table", placement="right"),
            width=12,
        ),
        Panel(
            "bargauge",
            "TLS certificate days left",
            (
                p.q(
                    f"({selector(c.TLS_CERT_EXPIRY, *PROBES)} - time()) / 86400",
                    "{{service}}/{{probe}} @ {{location}}",
                    instant=True,
                ),
            ),
            description=(
                "Days until the leaf certificate seen by the last run expires. Red below the probe's "
                f"min_days_left (or {DEFAULT_TLS_DAYS:g} days where it sets none), orange below twice that."
            ),
            unit="d",
            decimals=1,
            steps=p.target_steps(DEFAULT_TLS_DAYS * 2, warn=DEFAULT_TLS_DAYS),
            overrides=_tls_overrides(cfg),
            options=p.bargauge_options(),
            width=8,
        ),
        Panel(
            "timeseries",
            "Flow step duration (last run)",
            (p.q(selector(c.FLOW_STEP_DURATION, *PROBES), "{{probe}}: {{step}}"),),
            description="Time each step of a multi-step business flow took in its last run.",
            unit="s",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        *(_step_histogram_panel(window) if histograms else ()),
        Panel(
            "timeseries",
            "ICMP loss and jitter",
            (
                p.q(selector(c.ICMP_LOSS_RATIO, *PROBES), "{{probe}} loss"),
                p.q(selector(c.ICMP_JITTER, *PROBES), "{{probe}} jitter"),
            ),
            description=(
                "Share of echo requests lost and round-trip jitter (mean difference of consecutive round trips) "
                "of each ICMP probe's last run."
            ),
            unit="percentunit",
            overrides=(p.by_regexp(".* jitter", ("unit", "s"), ("custom.axisPlacement", "right")),),
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "table",
            "Flow step failures (time range)",
            (
                p.q(
                    increase_sum(c.FLOW_STEP_FAILURES, "$__range", PROBES, ["probe", c.LABEL_STEP, c.LABEL_REASON]),
                    table=True,
                ),
            ),
            description="Failed flow steps by step and reason over the time range.",
            decimals=0,
            transformations=p.merge_table({"Value": "failures"}, ("probe", "step", "reason", "Value")),
            options={"sortBy": [{"displayName": "failures", "desc": True}]},
            width=8,
        ),
    ]


def _phase_histogram_panel(window: str) -> tuple[Panel]:
    """The phase-duration percentile panel (only when some service keeps phase histograms)."""
    return (
        Panel(
            "timeseries",
            "Phase duration p95",
            (
                p.q(
                    quantile(0.95, c.PROBE_PHASE_DURATION, window, PROBES, ["probe", c.LABEL_PHASE]),
                    "{{probe}} {{phase}}",
                ),
            ),
            description=(
                "95th percentile of each phase over every run, from the phase histogram (the SLA threshold is "
                "a bucket bound, so a phase near it is read exactly)."
            ),
            unit="s",
            options=p.legend_options("lastNotNull", "max", display="table", placement="right"),
            width=12,
        ),
    )


def _step_histogram_panel(window: str) -> tuple[Panel]:
    """The flow-step-duration percentile panel (only when some service keeps phase histograms)."""
    return (
        Panel(
            "timeseries",
            "Flow step duration p95",
            (
                p.q(
                    quantile(0.95, c.FLOW_STEP_RUN_DURATION, window, PROBES, ["probe", c.LABEL_STEP]),
                    "{{probe}}: {{step}} p95",
                ),
            ),
            description="95th percentile of each flow step over every run, from the step histogram.",
            unit="s",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
    )


def _plan() -> list[Panel]:
    """The dial-test plan: slots that fell due against runs done, and degraded runs (succeeded, slow)."""
    planned = increase_sum(c.PROBE_PLANNED_RUNS, "$__range", PROBES, ["service"])
    done = increase_sum(c.PROBE_RUNS, "$__range", PROBES, ["service"])
    degraded = increase_sum(c.PROBE_DEGRADED, "$__range", PROBES, ["service"])
    return [
        p.row("Dial-test plan"),
        Panel(
            "stat",
            "Dial tests done / planned (time range)",
            (p.q(share(done, planned), "{{service}}", instant=True),),
            description=(
                "Runs done over the schedule slots that fell due in the time range (a slot missed because "
                "the exporter was down or overloaded counts as planned, not done)."
            ),
            unit="percentunit",
            decimals=1,
            steps=p.target_steps(0.99, warn=0.95),
            options=p.stat_options(),
            width=8,
            height=4,
        ),
        Panel(
            "stat",
            "Dial tests planned (time range)",
            (p.q(planned, "{{service}}", instant=True),),
            description="Schedule slots of this service's probes that fell due in the time range.",
            decimals=0,
            options=p.stat_options(),
            width=8,
            height=4,
        ),
        Panel(
            "stat",
            "Degraded runs (time range)",
            (p.q(f"{degraded} or {done} * 0", "{{service}}", instant=True),),
            description="Runs that succeeded but took longer than the probe's expect.degraded_duration.",
            decimals=0,
            steps=p.ceiling_steps(1),
            options=p.stat_options(),
            width=8,
            height=4,
        ),
    ]


def _requests(cfg: Config) -> list[Panel]:
    service = (SERVICE_VAR,)
    errors = sli.log_availability()  # the log SLO's own errors, so the budget line drawn is the SLO's
    assert errors.bad is not None
    window = "$__rate_interval"
    return [
        p.row("Requests (access logs)"),
        Panel(
            "timeseries",
            "Request rate by status",
            (p.q(rate_sum(c.HTTP_REQUESTS, window, service, ["service", c.LABEL_CODE]), "{{service}} {{code}}"),),
            description="Requests per second seen in the service's access logs, by status code.",
            unit="reqps",
            custom={"fillOpacity": 20, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("lastNotNull"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Error ratio (5xx or no answer)",
            (
                p.q(
                    share(
                        rate_sum(errors.bad.metric, window, (*service, *errors.bad.matchers), ["service"]),
                        rate_sum(errors.total.metric, window, service, ["service"]),
                    ),
                    "{{service}}",
                ),
            ),
            description=(
                "Share of logged requests answered with a 5xx or not at all (code 0), as the log availability "
                "SLO counts them; the red line is the service's error budget."
            ),
            unit="percentunit",
            overrides=p.grouped(
                {name: p.budget(service.sla.availability) for name, service in cfg.services.items()},
                "$",
                lambda budget: [("thresholds", p.ceiling_steps(budget)), ("custom.thresholdsStyle", {"mode": "line"})],
            ),
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Request latency percentiles",
            (
                p.q(quantile(0.5, c.HTTP_REQUEST_DURATION, window, service, ["service"]), "{{service}} p50"),
                p.q(quantile(0.9, c.HTTP_REQUEST_DURATION, window, service, ["service"]), "{{service}} p90"),
                p.q(quantile(0.99, c.HTTP_REQUEST_DURATION, window, service, ["service"]), "{{service}} p99"),
            ),
            description="Request duration from the access logs; the red line is the SLA latency threshold.",
            unit="s",
            overrides=_latency_overrides(cfg, "p"),
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
    ]


def _burn_description(pairs: list[tuple[str, float]]) -> str:
    text = (
        "Error ratio over each window divided by the error budget, per SLO: "
        "1 spends the budget exactly over the SLA window."
    )
    if not pairs:
        return text + " No burn-rate alerts apply to these SLOs (every threshold would be 100% or more)."
    factors = ", ".join(f"{label}: {factor:g}x" for label, factor in pairs)
    return (
        f"{text} The dashed lines are the service's burn-rate alert thresholds; the windows scale with its SLA window "
        f"({factors} in this config). A window pair fires when both of its windows are above its line."
    )


def _budget(cfg: Config) -> list[Panel]:
    overrides = p.grouped(
        {name: slo.burn_steps(cfg.services[name]) for name in slo.services_with_burn_alerts(cfg)},
        " ",
        lambda steps: [("thresholds", steps)],
    )
    pairs = sorted(
        {(t.label, t.factor) for thresholds in slo.services_with_burn_alerts(cfg).values() for t in thresholds},
        key=lambda pair: (-pair[1], pair[0]),
    )
    return [
        p.row("Error budget"),
        Panel(
            "timeseries",
            "Burn rate by window",
            tuple(
                p.q(slo.burn_rate(window, SERVICE_VAR), f"{{{{service}}}} {{{{sloth_slo}}}} {window}")
                for window in slo.BURN_WINDOWS
            ),
            description=_burn_description(pairs),
            steps=(Step(None, "green"),),
            threshold_style="dashed",
            overrides=overrides,
            options=p.legend_options("lastNotNull", "max", display="table", placement="right"),
            width=14,
            height=9,
        ),
        Panel(
            "timeseries",
            "Error budget remaining",
            (p.q(slo.budget_remaining(SERVICE_VAR), "{{service}} {{sloth_slo}}"),),
            description="Share of the SLA window's error budget still unspent, per SLO; below 0 the SLA is broken.",
            unit="percentunit",
            steps=p.target_steps(0.25, warn=0.0),
            threshold_style="line",
            options=p.legend_options("lastNotNull", "min"),
            width=10,
            height=9,
        ),
    ]


def _services_text(cfg: Config) -> Panel:
    lines = [
        "| service | tier | owner | SLA window | availability | latency | runbook |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, service in cfg.services.items():
        sla = service.sla
        latency = f"{sla.latency.target:g}% ≤ {format_duration(sla.latency.threshold)}" if sla.latency else "-"
        runbook = f"[runbook]({service.runbook})" if service.runbook else "-"
        lines.append(
            f"| {name} | {service.tier} | {service.owner or '-'} | {format_duration(sla.window)} "
            f"| {sla.availability:g}% | {latency} | {runbook} |"
        )
    return Panel(
        "text", "Services, SLAs and runbooks", content="\n".join(lines) + "\n", width=24, height=3 + len(cfg.services)
    )


def service_detail_board(cfg: Config) -> Board:
    """The service detail board of a config (one service at a time, chosen by the variable)."""
    return Board(
        name=p.SERVICE_DETAIL,
        title="slaprobe / Service detail",
        uid=p.board_uid(p.SERVICE_DETAIL),
        description=(
            "On-call view of one service: probes by location, phases, latency, failures, TLS, flows, logs, burn."
        ),
        tags=(*p.TAGS, "on-call"),
        variables=(
            p.datasource_variable(),
            p.service_variable(multi=False),
            p.location_variable(),
            p.probe_variable(),
        ),
        panels=(
            *_now(cfg),
            *_locations(cfg),
            *_probes(cfg),
            *_plan(),
            *_requests(cfg),
            *_budget(cfg),
            *maintenance_panels(cfg),
            _services_text(cfg),
        ),
        links=(Link("SLA overview", p.board_url(p.OVERVIEW)),),
        annotations=(
            Annotation(
                "Firing SLA alerts",
                p.q(slo.firing(SERVICE_VAR)),
                title="{{alertname}} ({{priority}}, level {{escalation_level}})",
                text="{{service}}: {{alertname}} {{sloth_slo}} {{burnrate}} ({{severity}})",
            ),
            maintenance_annotation(),
        ),
        time_from="now-6h",
    )
