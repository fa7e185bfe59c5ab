"""Feedback and complaints board: tickets by category, urgency and channel; deadlines; backlog; quality share."""

from __future__ import annotations

from slaprobe import conventions as c
from slaprobe.config import Config, Deadlines, FeedbackSource
from slaprobe.dashboards import panels as p
from slaprobe.dashboards.desk import desk_panels
from slaprobe.dashboards.model import Board, Override, Panel, Variable
from slaprobe.dashboards.promql import increase_sum, quantile, selector, share
from slaprobe.units import format_duration

SOURCE_VAR = f'{c.LABEL_SOURCE}=~"$source"'
CATEGORY_VAR = f'{c.LABEL_CATEGORY}=~"$category"'
SERVICE_VAR_OR_NONE = f'{c.LABEL_SERVICE}=~"$service"'
TICKETS = (SOURCE_VAR, CATEGORY_VAR, SERVICE_VAR_OR_NONE)
PER_TICKET = (SOURCE_VAR, CATEGORY_VAR)
STAGES = (
    (c.STAGE_FIRST_RESPONSE, "First response", c.FEEDBACK_FIRST_RESPONSE),
    (c.STAGE_RESOLUTION, "Resolution", c.FEEDBACK_RESOLUTION),
)


def effective_deadline(source: FeedbackSource, category: str, urgency: str, stage: str) -> float | None:
    """The deadline a ticket is held to at ``stage``: the earlier of its category's and its urgency's."""
    tables: tuple[dict[str, Deadlines], ...] = (source.sla, source.urgency)
    found = [getattr(table[key], stage) for table, key in zip(tables, (category, urgency), strict=True) if key in table]
    values = [v for v in found if v]
    return min(values) if values else None


def deadline_overrides(cfg: Config, stage: str) -> tuple[Override, ...]:
    """Per (source, category, urgency) series: orange from 75% of its deadline, red from the deadline."""
    deadlines = {}
    for source in cfg.feedback:
        for category in sorted({*source.sla, *source.quality_categories}):
            for urgency in sorted(source.urgency):
                deadline = effective_deadline(source, category, urgency, stage)
                if deadline:
                    deadlines[f"{source.name} {category}/{urgency}"] = deadline
    return p.grouped(deadlines, " ", lambda limit: [("thresholds", p.ceiling_steps(limit, warn=limit * 0.75))])


def _variables() -> tuple[Variable, ...]:
    def values(label: str, *matchers: str) -> str:
        return f"label_values({selector(c.FEEDBACK_TICKETS, *matchers)}, {label})"

    return (
        p.datasource_variable(),
        Variable("source", "Source", "query", values(c.LABEL_SOURCE), multi=True, include_all=True, all_value=".*"),
        Variable(
            "service",
            "Service",
            "query",
            values(c.LABEL_SERVICE, SOURCE_VAR),
            multi=True,
            include_all=True,
            all_value=".*",
        ),
        Variable(
            "category",
            "Category",
            "query",
            values(c.LABEL_CATEGORY, SOURCE_VAR),
            multi=True,
            include_all=True,
            all_value=".*",
        ),
    )


def _tickets() -> list[Panel]:
    window = "$__range"
    pie = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"]},
        "pieType": "donut",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return [
        p.row("Tickets"),
        Panel(
            "piechart",
            "Tickets by category (time range)",
            (p.q(increase_sum(c.FEEDBACK_TICKETS, window, TICKETS, [c.LABEL_CATEGORY]), "{{category}}", instant=True),),
            decimals=0,
            options=pie,
            width=8,
        ),
        Panel(
            "piechart",
            "Tickets by urgency (time range)",
            (p.q(increase_sum(c.FEEDBACK_TICKETS, window, TICKETS, [c.LABEL_URGENCY]), "{{urgency}}", instant=True),),
            decimals=0,
            options=pie,
            width=8,
        ),
        Panel(
            "piechart",
            "Tickets by channel (time range)",
            (
                p.q(
                    increase_sum(c.FEEDBACK_TICKETS_BY_CHANNEL, window, (SOURCE_VAR,), [c.LABEL_CHANNEL]),
                    "{{channel}}",
                    instant=True,
                ),
            ),
            decimals=0,
            options=pie,
            width=8,
        ),
        Panel(
            "timeseries",
            "Tickets opened per hour by category",
            (p.q(increase_sum(c.FEEDBACK_TICKETS, "1h", TICKETS, [c.LABEL_CATEGORY]), "{{category}}"),),
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("sum"),
            width=16,
        ),
        Panel(
            "stat",
            "Product-quality complaint share (time range)",
            (
                p.q(
                    share(
                        increase_sum(
                            c.FEEDBACK_QUALITY_TICKETS, window, (SOURCE_VAR, SERVICE_VAR_OR_NONE), [c.LABEL_SOURCE]
                        ),
                        increase_sum(c.FEEDBACK_TICKETS, window, (SOURCE_VAR, SERVICE_VAR_OR_NONE), [c.LABEL_SOURCE]),
                    ),
                    "{{source}}",
                    instant=True,
                ),
            ),
            description=(
                "Tickets in the quality_categories of each source over all its tickets: complaints about the product."
            ),
            unit="percentunit",
            decimals=1,
            options=p.stat_options(),
            width=8,
        ),
    ]


def _deadlines(cfg: Config) -> list[Panel]:
    window = "$__range"
    keep = [c.LABEL_SOURCE, c.LABEL_CATEGORY, c.LABEL_URGENCY]
    panels = [p.row("Deadlines")]
    for stage, title, metric in STAGES:
        panels.append(
            Panel(
                "bargauge",
                f"{title} time p50 / p90 vs deadline (time range)",
                (
                    p.q(
                        quantile(0.5, metric, window, PER_TICKET, keep),
                        "{{source}} {{category}}/{{urgency}} p50",
                        instant=True,
                    ),
                    p.q(
                        quantile(0.9, metric, window, PER_TICKET, keep),
                        "{{source}} {{category}}/{{urgency}} p90",
                        instant=True,
                    ),
                ),
                description=(
                    f"{title} time by category and urgency; orange from 75% of the deadline, red from the deadline "
                    "(the earlier of the category's and the urgency's)."
                ),
                unit="s",
                overrides=deadline_overrides(cfg, stage),
                options=p.bargauge_options(),
                width=12,
                height=10,
            )
        )
    tickets = increase_sum(c.FEEDBACK_TICKETS, window, PER_TICKET, [c.LABEL_SOURCE])
    for stage, title, _ in STAGES:
        breaches = increase_sum(
            c.FEEDBACK_SLA_BREACHES, window, (*PER_TICKET, f'{c.LABEL_STAGE}="{stage}"'), [c.LABEL_SOURCE]
        )
        panels.append(
            Panel(
                "stat",
                f"{title} within deadline (time range)",
                (p.q(f"1 - {share(breaches, tickets)}", "{{source}}", instant=True),),
                description=f"1 - {title.lower()} deadline breaches / tickets opened.",
                unit="percentunit",
                decimals=1,
                steps=p.target_steps(0.95, warn=0.9),
                options=p.stat_options(),
                width=6,
                height=5,
            )
        )
    panels.append(
        Panel(
            "table",
            "Deadline breaches (time range)",
            (
                p.q(
                    increase_sum(c.FEEDBACK_SLA_BREACHES, window, PER_TICKET, [*keep, c.LABEL_STAGE]),
                    table=True,
                ),
            ),
            description="Tickets that missed a deadline, counted when the deadline passed (also while still open).",
            decimals=0,
            transformations=p.merge_table({"Value": "breaches"}, (*keep, c.LABEL_STAGE, "Value")),
            options={"showHeader": True, "sortBy": [{"displayName": "breaches", "desc": True}]},
            width=12,
            height=5,
        )
    )
    return panels


def _backlog(cfg: Config) -> list[Panel]:
    longest = [
        d
        for s in cfg.feedback
        for table in (s.sla, s.urgency)
        for deadlines in table.values()
        if (d := deadlines.resolution)
    ]
    shortest = [
        d
        for s in cfg.feedback
        for table in (s.sla, s.urgency)
        for deadlines in table.values()
        if (d := deadlines.first_response)
    ]
    age_steps = p.ceiling_steps(max(longest), warn=min(shortest)) if longest and shortest else p.ceiling_steps(86400)
    text = (
        f"orange past the shortest first-response deadline ({format_duration(min(shortest))}), "
        f"red past the longest resolution deadline ({format_duration(max(longest))})"
        if longest and shortest
        else "red past a day"
    )
    return [
        p.row("Backlog"),
        Panel(
            "stat",
            "Open tickets",
            (p.q(f"sum by ({c.LABEL_SOURCE}) ({selector(c.FEEDBACK_OPEN_TICKETS, *PER_TICKET)})", "{{source}}"),),
            options=p.stat_options(),
            width=6,
            height=6,
        ),
        Panel(
            "stat",
            "Oldest open ticket",
            (p.q(f"max by ({c.LABEL_SOURCE}) ({selector(c.FEEDBACK_OLDEST_OPEN_AGE, SOURCE_VAR)})", "{{source}}"),),
            description=f"Age of the oldest ticket not resolved yet; {text}.",
            unit="s",
            steps=age_steps,
            options=p.stat_options(color_mode="background"),
            width=6,
            height=6,
        ),
        Panel(
            "timeseries",
            "Open tickets by category",
            (
                p.q(
                    f"sum by ({c.LABEL_SOURCE}, {c.LABEL_CATEGORY}) ({selector(c.FEEDBACK_OPEN_TICKETS, *PER_TICKET)})",
                    "{{source}} {{category}}",
                ),
            ),
            custom={"fillOpacity": 20, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("lastNotNull", "max"),
            width=12,
            height=6,
        ),
    ]


def feedback_board(cfg: Config) -> Board:
    """The feedback and complaints board of a config."""
    return Board(
        name=p.FEEDBACK,
        title="slaprobe / Feedback and complaints",
        uid=p.board_uid(p.FEEDBACK),
        description="Tickets by category, urgency and channel; response and resolution times vs deadlines; backlog.",
        tags=(*p.TAGS, "feedback"),
        variables=_variables(),
        panels=(*_tickets(), *_deadlines(cfg), *_backlog(cfg), *desk_panels(cfg, TICKETS)),
        time_from="now-7d",
        refresh="5m",
    )
