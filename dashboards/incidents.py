"""Escalation and incidents board: what fires, at which priority and level, who acknowledged, how fast."""

from __future__ import annotations

import re

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards import slo
from slaprobe.dashboards.model import Board, Link, Panel, Variable
from slaprobe.dashboards.promql import SERVICE_VAR, increase_sum, quantile, selector
from slaprobe.units import format_duration

PRIORITY_VAR = f'{c.LABEL_PRIORITY}=~"$priority"'
ALERTS = (SERVICE_VAR, PRIORITY_VAR)
ACKED = f"({selector(c.ALERT_ACKNOWLEDGED, SERVICE_VAR)} == 1)"
ACK_MATCH = f"on ({c.LABEL_SERVICE}, {c.LABEL_ALERTNAME})"


def priorities(cfg: Config) -> list[str]:
    """Every priority of the tier x urgency table and the escalation policy, most urgent first (P2 before P10)."""
    names = {prio for m in cfg.priorities.values() for prio in (m.page, m.ticket)} | set(cfg.escalation)
    return sorted(
        names, key=lambda name: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", name)]
    )


def _now() -> list[Panel]:
    firing = slo.firing(*ALERTS)
    unacked = f"{firing} unless {ACK_MATCH} {ACKED}"
    acked = f"{firing} and {ACK_MATCH} {ACKED}"
    return [
        p.row("Firing now"),
        Panel(
            "stat",
            "Firing alerts by priority",
            (p.q(f"count by ({c.LABEL_PRIORITY}) ({firing})", "{{priority}}"),),
            description="SLA alerts firing now, every escalation level counted.",
            steps=p.ceiling_steps(1),
            options=p.stat_options(color_mode="background"),
            width=8,
            height=5,
        ),
        Panel(
            "stat",
            "Firing by escalation level",
            (p.q(f"count by ({c.LABEL_ESCALATION_LEVEL}) ({firing})", "level {{escalation_level}}"),),
            description="Level 1 is the alert itself; level N fires once it has kept firing for that level's delay.",
            steps=p.ceiling_steps(1),
            options=p.stat_options(color_mode="background"),
            width=8,
            height=5,
        ),
        Panel(
            "stat",
            "Acknowledged vs not",
            (
                p.q(f"count by ({c.LABEL_PRIORITY}) ({acked})", "{{priority}} acknowledged"),
                p.q(f"count by ({c.LABEL_PRIORITY}) ({unacked})", "{{priority}} not acknowledged"),
            ),
            description=(
                "Firing alerts whose service and alert name an Alertmanager silence covers (acknowledged: "
                "further escalation levels are withheld), and the rest."
            ),
            overrides=(
                p.by_regexp(" acknowledged$", ("color", {"mode": "fixed", "fixedColor": "green"})),
                p.by_regexp(" not acknowledged$", ("color", {"mode": "fixed", "fixedColor": "red"})),
            ),
            options=p.stat_options(color_mode="background"),
            width=8,
            height=5,
        ),
        Panel(
            "table",
            "Firing alerts",
            (
                p.q(
                    f"time() - ({selector(c.ALERTS_FOR_STATE_SERIES, *ALERTS)} "
                    f"and ignoring ({c.LABEL_ALERTSTATE}) {firing})",
                    table=True,
                ),
            ),
            description="Every firing alert with its labels and how long it has been active.",
            overrides=(
                p.by_name("active for", ("unit", "s")),
                p.by_name("service", ("links", (p.service_detail_link("${__value.raw}"),))),
            ),
            transformations=p.merge_table(
                {"Value": "active for"},
                (
                    c.LABEL_ALERTNAME,
                    c.LABEL_SERVICE,
                    c.LABEL_PRIORITY,
                    c.LABEL_SEVERITY,
                    c.LABEL_ESCALATION_LEVEL,
                    c.LABEL_SLOTH_SLO,
                    c.LABEL_BURNRATE,
                    "Value",
                ),
                hide=("Time", "__name__", c.LABEL_RUNBOOK_URL, "job", "instance"),
            ),
            options={"showHeader": True, "sortBy": [{"displayName": "active for", "desc": True}]},
            width=24,
            height=8,
        ),
    ]


def _history() -> list[Panel]:
    firing = slo.firing(*ALERTS)
    bars = {"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}}
    return [
        p.row("Over time"),
        Panel(
            "timeseries",
            "Firing alerts by priority",
            (p.q(f"count by ({c.LABEL_PRIORITY}) ({firing})", "{{priority}}"),),
            custom=bars,
            options=p.legend_options("max"),
            width=12,
        ),
        Panel(
            "timeseries",
            "Firing alerts by escalation level",
            (p.q(f"count by ({c.LABEL_ESCALATION_LEVEL}) ({firing})", "level {{escalation_level}}"),),
            custom=bars,
            options=p.legend_options("max"),
            width=12,
        ),
    ]


def _incidents() -> list[Panel]:
    by_priority = [c.LABEL_PRIORITY]
    window = "$__range"
    return [
        p.row("Incidents (from Alertmanager notifications)"),
        Panel(
            "bargauge",
            "Time to acknowledge (time range)",
            (
                p.q(
                    quantile(0.5, c.INCIDENT_TIME_TO_ACKNOWLEDGE, window, (PRIORITY_VAR,), by_priority),
                    "{{priority}} p50",
                    instant=True,
                ),
                p.q(
                    quantile(0.9, c.INCIDENT_TIME_TO_ACKNOWLEDGE, window, (PRIORITY_VAR,), by_priority),
                    "{{priority}} p90",
                    instant=True,
                ),
            ),
            description="From an incident's first notification to its acknowledgement (a silence), by priority.",
            unit="s",
            options=p.bargauge_options(),
            width=8,
        ),
        Panel(
            "bargauge",
            "Time to resolve (time range)",
            (
                p.q(
                    quantile(0.5, c.INCIDENT_TIME_TO_RESOLVE, window, (PRIORITY_VAR,), by_priority),
                    "{{priority}} p50",
                    instant=True,
                ),
                p.q(
                    quantile(0.9, c.INCIDENT_TIME_TO_RESOLVE, window, (PRIORITY_VAR,), by_priority),
                    "{{priority}} p90",
                    instant=True,
                ),
            ),
            description="From an incident's first notification to its resolved notification, by priority.",
            unit="s",
            options=p.bargauge_options(),
            width=8,
        ),
        Panel(
            "timeseries",
            "Open incidents by priority and level",
            (
                p.q(
                    f"sum by ({c.LABEL_PRIORITY}, {c.LABEL_ESCALATION_LEVEL}) "
                    f"({selector(c.INCIDENTS_OPEN, PRIORITY_VAR)})",
                    "{{priority}} level {{escalation_level}}",
                ),
            ),
            description="Incidents notified and not resolved, as slaprobe's webhook receiver sees them.",
            custom={"drawStyle": "line", "fillOpacity": 30, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Notifications received",
            (p.q(increase_sum(c.ALERTMANAGER_NOTIFICATIONS, "$__rate_interval", (), ["status"]), "{{status}}"),),
            description="Alertmanager webhook calls to slaprobe's /alertmanager/webhook, by alert status.",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("sum"),
            width=12,
        ),
        Panel(
            "stat",
            "Acknowledgements readable",
            (p.q(c.ALERTMANAGER_POLL_SUCCESS, "{{instance}}"),),
            description="1 when the last poll of Alertmanager's silences (the acknowledgements) worked.",
            mappings=p.up_down_mappings("OK", "FAILED"),
            steps=p.target_steps(1),
            options=p.stat_options(color_mode="background"),
            width=12,
        ),
    ]


def _policy(cfg: Config) -> Panel:
    lines = ["| priority | level | after | notify | during |", "|---|---|---|---|---|"]
    for priority in priorities(cfg):
        for level, step in enumerate(cfg.escalation.get(priority, []), start=1):
            lines.append(
                f"| {priority} | {level} | {format_duration(step.after)} | {step.notify} | {step.during or 'always'} |"
            )
    tiers = ", ".join(f"{tier}: page {m.page} / ticket {m.ticket}" for tier, m in cfg.priorities.items())
    content = f"Priorities by tier: {tiers}.\n\n" + "\n".join(lines) + "\n"
    return Panel("text", "Escalation policy", content=content, width=24, height=4 + len(lines))


def incidents_board(cfg: Config) -> Board:
    """The escalation and incidents board of a config."""
    priority = Variable(
        "priority",
        "Priority",
        "custom",
        ",".join(priorities(cfg)),
        multi=True,
        include_all=True,
        all_value=".*",
    )
    return Board(
        name=p.INCIDENTS,
        title="slaprobe / Escalation and incidents",
        uid=p.board_uid(p.INCIDENTS),
        description="Firing alerts by priority and escalation level, acknowledgements, time to acknowledge/resolve.",
        tags=(*p.TAGS, "incidents"),
        variables=(p.datasource_variable(), p.service_variable(), priority),
        panels=(*_now(), *_history(), *_incidents(), _policy(cfg)),
        links=(Link("SLA overview", p.board_url(p.OVERVIEW)),),
        time_from="now-24h",
    )
