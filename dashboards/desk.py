"""Panels of the feedback board about the desk's quality: satisfaction, NPS, repeats, reopens, the closed loop.

Each figure is a ratio of exact counters over the board's time range (``$__range``) or a day:

- CSAT: satisfied ratings / ratings (``slaprobe.sli.satisfaction``, the SLO's own definition);
- NPS: (promoters - detractors) / ratings on the 0-10 scale, x 100; promoters rated 9-10
  (the count above the ``le="8"`` bucket), detractors 0-6 (the ``le="6"`` bucket);
- repeat rate: repeat tickets / tickets opened; reopen rate: reopens / tickets resolved;
- resolution rate: closings confirmed or auto-closed / all closings;
- closed-loop rate: closings that went received, classified, answered, resolved, closed / all closings;
- the funnel: tickets that reached each stage of the loop;
- with ``alerting.feedback.spike``: complaints of the last hour against their two baselines.
"""

from __future__ import annotations

from collections.abc import Sequence

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards.model import Panel, Step
from slaprobe.dashboards.promql import increase_sum, selector, share

HELD = f'{c.LABEL_OUTCOME}=~"{c.CLOSED_CONFIRMED}|{c.CLOSED_AUTO}"'
NPS_SCALE = f'{c.LABEL_SCALE}="10"'


def satisfaction_target(cfg: Config) -> float:
    """The lowest CSAT objective of the services (ratio), 0.9 when none has one."""
    targets = [s.sla.satisfaction for s in cfg.services.values() if s.sla.satisfaction is not None]
    return p.ratio(min(targets)) if targets else 0.9


def csat(window: str, scope: Sequence[str], labels: Sequence[str]) -> str:
    """Satisfied ratings over ratings in ``window``."""
    indicator = sli.satisfaction()
    assert indicator.good is not None
    return share(indicator.good.increase(window, scope, labels), indicator.total.increase(window, scope, labels))


def nps(window: str, scope: Sequence[str], labels: Sequence[str]) -> str:
    """The net promoter score (-100..100) of the 0-10 ratings in ``window``."""
    matchers = (*scope, NPS_SCALE)
    count = increase_sum(f"{c.FEEDBACK_RATING}_count", window, matchers, labels)
    passive_or_less = increase_sum(f"{c.FEEDBACK_RATING}_bucket", window, (*matchers, 'le="8"'), labels)
    detractors = increase_sum(f"{c.FEEDBACK_RATING}_bucket", window, (*matchers, 'le="6"'), labels)
    return f"100 * ({count} - {passive_or_less} - {detractors}) / {count}"


def _stat(
    title: str,
    expr: str,
    description: str,
    *,
    steps: tuple[Step, ...],
    unit: str = "percentunit",
    decimals: int = 1,
    low: float | None = None,
    high: float | None = None,
) -> Panel:
    return Panel(
        "stat",
        title,
        (p.q(expr, "{{source}}", instant=True),),
        description=description,
        unit=unit,
        decimals=decimals,
        min=low,
        max=high,
        steps=steps,
        options=p.stat_options(),
        width=6,
        height=5,
    )


def desk_panels(cfg: Config, scope: Sequence[str]) -> list[Panel]:
    """The satisfaction and closed-loop row of the feedback board; ``scope`` are the board's matchers."""
    window = "$__range"
    source = [c.LABEL_SOURCE]
    target = satisfaction_target(cfg)
    resolved_stage = (*scope, f'{c.LABEL_STAGE}="{c.LOOP_RESOLVED}"')
    closed = increase_sum(c.FEEDBACK_CLOSED, window, scope, source)
    panels = [
        p.row("Satisfaction and the closed loop"),
        _stat(
            "CSAT (time range)",
            csat(window, scope, source),
            "Ratings at or above the satisfied minimum of their scale (4-5 of 5, 9-10 of 10, thumbs up) "
            "over all ratings.",
            steps=p.target_steps(target, warn=target - 0.05),
        ),
        _stat(
            "NPS, 0-10 ratings (time range)",
            nps(window, scope, source),
            "Promoters (9-10) minus detractors (0-6), in percent of the 0-10 ratings: -100 to 100.",
            unit="none",
            decimals=0,
            low=-100,
            high=100,
            steps=p.target_steps(30, warn=0),
        ),
        _stat(
            "Repeat rate (time range)",
            share(
                increase_sum(c.FEEDBACK_REPEATS, window, scope, source),
                increase_sum(c.FEEDBACK_TICKETS, window, scope, source),
            ),
            "Tickets of a customer who opened one about the same service and category within the repeat "
            "window, over tickets opened.",
            steps=p.ceiling_steps(0.1, warn=0.05),
        ),
        _stat(
            "Reopen rate (time range)",
            share(
                increase_sum(c.FEEDBACK_REOPENED, window, scope, source),
                increase_sum(c.FEEDBACK_LOOP_STAGE, window, resolved_stage, source),
            ),
            "Reopens over tickets resolved.",
            steps=p.ceiling_steps(0.1, warn=0.05),
        ),
        Panel(
            "timeseries",
            "CSAT by service and channel (1d)",
            (p.q(csat("1d", scope, [c.LABEL_SERVICE, c.LABEL_CHANNEL]), "{{service}} {{channel}}"),),
            description="Satisfied ratings over ratings in the day before each point.",
            unit="percentunit",
            min=0,
            max=1,
            steps=p.target_steps(target),
            threshold_style="dashed",
            options=p.legend_options("lastNotNull", "min"),
            width=12,
        ),
        Panel(
            "bargauge",
            "Closed-loop funnel (time range)",
            (
                p.q(
                    increase_sum(c.FEEDBACK_LOOP_STAGE, window, scope, [c.LABEL_STAGE]),
                    "{{stage}}",
                    instant=True,
                ),
            ),
            description="Tickets that reached each stage: received, classified, answered, resolved, closed "
            "(confirmed or auto-closed).",
            decimals=0,
            options=p.bargauge_options(),
            width=12,
        ),
        _stat(
            "Resolution rate (time range)",
            share(increase_sum(c.FEEDBACK_CLOSED, window, (*scope, HELD), source), closed),
            "Closings confirmed by the customer or not reopened within the reopen window, over all closings.",
            steps=p.target_steps(0.9, warn=0.8),
        ),
        _stat(
            "Closed-loop rate (time range)",
            share(increase_sum(c.FEEDBACK_CLOSED_LOOP, window, scope, source), closed),
            "Closings of tickets that went received, classified, answered, resolved, then confirmed or "
            "auto-closed, over all closings.",
            steps=p.target_steps(0.9, warn=0.8),
        ),
        Panel(
            "timeseries",
            "Repeat and reopen rates (1d)",
            (
                p.q(
                    share(
                        increase_sum(c.FEEDBACK_REPEATS, "1d", scope, source),
                        increase_sum(c.FEEDBACK_TICKETS, "1d", scope, source),
                    ),
                    "{{source}} repeats",
                ),
                p.q(
                    share(
                        increase_sum(c.FEEDBACK_REOPENED, "1d", scope, source),
                        increase_sum(c.FEEDBACK_LOOP_STAGE, "1d", resolved_stage, source),
                    ),
                    "{{source}} reopens",
                ),
            ),
            unit="percentunit",
            options=p.legend_options("lastNotNull", "max"),
            width=12,
        ),
    ]
    if cfg.alerting.feedback.spike is not None:
        key = f"{c.LABEL_SERVICE}, {c.LABEL_CATEGORY}"
        panels.append(
            Panel(
                "timeseries",
                "Complaints in the last hour vs their baselines",
                (
                    p.q(f"sum by ({key}) ({selector(c.FEEDBACK_TICKETS_RATE, *scope)})", "{{service}} {{category}}"),
                    p.q(
                        f"sum by ({key}) ({selector(c.FEEDBACK_TICKETS_SAME_HOUR, *scope)})",
                        "{{service}} {{category}} same hour, previous days",
                    ),
                    p.q(
                        f"sum by ({key}) ({selector(c.FEEDBACK_TICKETS_MOVING, *scope)})",
                        "{{service}} {{category}} hourly average",
                    ),
                ),
                description="The spike warning fires above factor x both baselines with at least min_count "
                "tickets (alerting.feedback.spike).",
                decimals=0,
                options=p.legend_options("lastNotNull", "max"),
                width=24,
            )
        )
    return panels
