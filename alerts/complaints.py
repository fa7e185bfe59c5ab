"""Complaint spikes: tickets per service and category against their own baseline (``alerting.feedback.spike``).

A desk's volume has a daily shape (mornings busier than nights), so a fixed limit either
pages every morning or misses a spike at night. Each (source, service, category) is held
to two baselines of its own, both over the previous ``days`` and both leaving the current
hour out, so a spike does not raise the bar it is measured against:

- the same hour of each previous day (a day without data counts 0), which follows the
  daily shape: a morning peak that comes every morning matches it and does not fire;
- the moving hourly average, which keeps a quiet hour's baseline from being near zero.

A series without history (a new category) has baselines of 0: ``min_count`` alone holds it.

The warning fires when the tickets of the last hour exceed ``factor`` times both and are
at least ``min_count`` (no page for 2 tickets instead of 1), for ``for``. Its description
shows the current count and both baselines. Severity ticket; tier and priority from the
source's service.
"""

from __future__ import annotations

from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.policy import Concern, alert_annotations, alert_labels
from slaprobe.alerts.promql import number, selector
from slaprobe.config import ComplaintSpike, Config, FeedbackSource, FeedbackTrend
from slaprobe.units import format_duration

Rule = dict[str, Any]
KEY = (c.LABEL_SOURCE, c.LABEL_SERVICE, c.LABEL_CATEGORY)
HOUR = "1h"


def spike_records(source: FeedbackSource, spike: ComplaintSpike) -> list[Rule]:
    """The last hour's tickets and the two baselines of one feedback source."""
    src = {c.LABEL_SOURCE: source.name}
    by = ", ".join(KEY)
    current = selector(c.FEEDBACK_TICKETS_RATE, src)
    days = [f"({current} offset {d}d or {current} * 0)" for d in range(1, spike.days + 1)]
    return [
        {
            "record": c.FEEDBACK_TICKETS_RATE,
            "expr": f"sum by ({by}) (increase({selector(c.FEEDBACK_TICKETS, src)}[{HOUR}]))",
        },
        {
            "record": c.FEEDBACK_TICKETS_SAME_HOUR,
            "expr": "(\n  " + "\n  + ".join(days) + f"\n) / {spike.days}",
        },
        {
            "record": c.FEEDBACK_TICKETS_MOVING,
            "expr": f"sum by ({by}) (increase({selector(c.FEEDBACK_TICKETS, src)}[{spike.days}d] offset {HOUR}))"
            f" / {spike.days * 24}\nor\n{current} * 0",
        },
    ]


def spike_alert(cfg: Config, source: FeedbackSource, spike: ComplaintSpike, concern: Concern) -> Rule:
    """The spike warning of one source: the level-1 labels of ``concern`` but ``service`` (the tickets' own)."""
    labels = alert_labels(cfg, concern, c.ALERT_FEEDBACK_SPIKE, c.SEVERITY_TICKET)
    src = {c.LABEL_SOURCE: source.name}
    current = selector(c.FEEDBACK_TICKETS_RATE, src)
    factor = number(spike.factor)
    expr = (
        f"(\n  {current} > {factor} * {selector(c.FEEDBACK_TICKETS_SAME_HOUR, src)}\n)\n"
        f"and\n(\n  {current} > {factor} * {selector(c.FEEDBACK_TICKETS_MOVING, src)}\n)\n"
        f"and\n(\n  {current} >= {spike.min_count}\n)"
    )

    def baseline(record: str) -> str:
        query = f'{record}{{{c.LABEL_SOURCE}="%s",{c.LABEL_SERVICE}="%s",{c.LABEL_CATEGORY}="%s"}}'
        return (
            f"{{{{ with printf `{query}` $labels.{c.LABEL_SOURCE} $labels.{c.LABEL_SERVICE} "
            f"$labels.{c.LABEL_CATEGORY} | query }}}}{{{{ . | first | value | humanize }}}}{{{{ end }}}}"
        )

    notes = alert_annotations(
        f"{source.name}: {{{{ $value | humanize }}}} {{{{ $labels.{c.LABEL_CATEGORY} }}}} complaints about "
        f"{{{{ $labels.{c.LABEL_SERVICE} }}}} in the last hour",
        f"{{{{ $value | humanize }}}} tickets of category {{{{ $labels.{c.LABEL_CATEGORY} }}}} about "
        f"{{{{ $labels.{c.LABEL_SERVICE} }}}} in the last hour at {source.name}: more than {factor} times "
        f"the same hour of the previous {spike.days} days ({baseline(c.FEEDBACK_TICKETS_SAME_HOUR)}) and "
        f"its hourly average ({baseline(c.FEEDBACK_TICKETS_MOVING)}), and at least {spike.min_count}.",
        labels[c.LABEL_RUNBOOK_URL],
    )
    rule: Rule = {"alert": c.ALERT_FEEDBACK_SPIKE, "expr": expr}
    if spike.for_:
        rule["for"] = format_duration(spike.for_)
    rule["labels"] = {k: v for k, v in labels.items() if k != c.LABEL_SERVICE}
    rule["annotations"] = notes
    return rule


# ---------------------------------------------------------------------------- trends

# Trends (``alerting.feedback.trend``): the quality-complaint share and the repeat rate of each
# feedback source over ``window`` (a week by default), against the same figure ``compare`` earlier
# (week over week). A slow rise never crosses the fixed quality-share limit until it is too late,
# and a repeat rate has no fixed limit at all; comparing a figure with its own past catches both.
#
# The warning fires when the figure is above ``factor`` times its earlier value and at least
# ``min_rise`` percentage points above it (a share going from 0.1% to 0.3% is no trend), with at
# least ``min_tickets`` tickets in the window, for ``for``. Without an earlier value (a source
# younger than ``compare``) there is no trend. Its description shows the current value and the
# earlier one. Severity ticket; tier and priority from the source's service.

TRENDS = (
    (c.TREND_QUALITY_SHARE, c.FEEDBACK_TREND_QUALITY, "quality-complaint share", c.FEEDBACK_QUALITY_TICKETS),
    (c.TREND_REPEAT_RATE, c.FEEDBACK_TREND_REPEATS, "repeat rate", c.FEEDBACK_REPEATS),
)


def trend_records(source: FeedbackSource, trend: FeedbackTrend) -> list[Rule]:
    """Tickets over the trend window and the two figures of one feedback source."""
    src = {c.LABEL_SOURCE: source.name}
    w = format_duration(trend.window)
    tickets = f"sum(increase({selector(c.FEEDBACK_TICKETS, src)}[{w}]))"
    rules: list[Rule] = [{"record": c.FEEDBACK_TREND_TICKETS, "expr": tickets, "labels": dict(src)}]
    for name, record, _, metric in TRENDS:
        if name == c.TREND_QUALITY_SHARE and not source.quality_categories:
            continue
        part = f"sum(increase({selector(metric, src)}[{w}]))"
        rules.append(
            {
                "record": record,
                "expr": f"(\n  {part}\n  or 0 * {tickets}\n)\n/\n({tickets} > 0)",
                "labels": dict(src),
            }
        )
    return rules


def trend_alerts(cfg: Config, source: FeedbackSource, trend: FeedbackTrend, concern: Concern) -> list[Rule]:
    """The trend warnings of one source, one per figure, with the level-1 labels of ``concern``."""
    src = {c.LABEL_SOURCE: source.name}
    w, earlier = format_duration(trend.window), format_duration(trend.compare)
    factor, rise = number(trend.factor), number(trend.min_rise / 100)
    rules: list[Rule] = []
    for name, record, text, _ in TRENDS:
        if name == c.TREND_QUALITY_SHARE and not source.quality_categories:
            continue
        labels = alert_labels(
            cfg,
            concern,
            c.ALERT_FEEDBACK_TREND,
            c.SEVERITY_TICKET,
            **{c.LABEL_TREND: name, c.LABEL_SLOTH_SLO: "feedback"},
        )
        now, before = selector(record, src), f"{selector(record, src)} offset {earlier}"
        expr = (
            f"(\n  {now} > {factor} * {before}\n)\n"
            f"and\n(\n  {now} - {before} >= {rise}\n)\n"
            f"and on ({c.LABEL_SOURCE})\n(\n  {selector(c.FEEDBACK_TREND_TICKETS, src)} >= {trend.min_tickets}\n)"
        )
        baseline = (
            f'{{{{ with printf `{record}{{{c.LABEL_SOURCE}="%s"}} offset {earlier}` $labels.{c.LABEL_SOURCE} '
            f"| query }}}}{{{{ . | first | value | humanizePercentage }}}}{{{{ end }}}}"
        )
        notes = alert_annotations(
            f"{source.name}: the {text} rose to {{{{ $value | humanizePercentage }}}} ({baseline} {earlier} before)",
            f"Over the last {w} the {text} of {source.name} is {{{{ $value | humanizePercentage }}}}; over the "
            f"{w} ending {earlier} before it was {baseline}: more than {factor} times as much and at least "
            f"{number(trend.min_rise)} percentage points higher, with at least {trend.min_tickets} tickets.",
            labels[c.LABEL_RUNBOOK_URL],
        )
        rule: Rule = {"alert": c.ALERT_FEEDBACK_TREND, "expr": expr}
        if trend.for_:
            rule["for"] = format_duration(trend.for_)
        rule["labels"] = labels
        rule["annotations"] = notes
        rules.append(rule)
    return rules
