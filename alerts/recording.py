"""Sloth-shaped recording rules: error ratios per window, then the SLO metadata series."""

from __future__ import annotations

from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.complaints import spike_records, trend_records
from slaprobe.alerts.promql import number, selector
from slaprobe.alerts.slos import SLO
from slaprobe.burnrate import applicable_windows
from slaprobe.config import Config
from slaprobe.units import format_duration, parse_duration

Rule = dict[str, Any]
SLOTH_MODE = "cli-gen-prom"
SLOTH_SPEC = "prometheus/v1"
SLOTH_VERSION = "slaprobe"


def sli_rules(slo: SLO) -> list[Rule]:
    """``slo:sli_error:ratio_rate<W>`` for every recorded window and every window of its burn-rate
    pairs (rates), then over the SLA window
    (exact counts, not Sloth's average of 5m ratios: one window without runs made that NaN for
    the whole SLA window, and an average of ratios weighs quiet windows like busy ones)."""
    period = slo.period_window
    pairs = {w for pair, _ in applicable_windows(slo.period, slo.budget) for w in (pair.long, pair.short)}
    scaled = sorted(pairs - {*c.SLO_RATE_WINDOWS, period}, key=parse_duration)  # scaled windows: 1d SLAs
    windows = [*(w for w in c.SLO_RATE_WINDOWS if w != period), *scaled, period]
    return [
        {
            "record": c.slo_sli_error(window),
            "expr": slo.period_error_ratio() if window == period else slo.error_ratio_over(window),
            "labels": {**slo.labels(), c.LABEL_SLOTH_WINDOW: window},
        }
        for window in windows
    ]


def meta_rules(slo: SLO) -> list[Rule]:
    """Objective, budget, period, burn rates, budget remaining and ``sloth_slo_info`` of one SLO."""
    labels = slo.labels()
    on = f"on ({c.LABEL_SLOTH_ID}, {c.LABEL_SLOTH_SLO}, {c.LABEL_SLOTH_SERVICE}) group_left"
    budget = slo.selector(c.SLO_ERROR_BUDGET)
    return [
        {"record": c.SLO_OBJECTIVE, "expr": f"vector({number(slo.objective_ratio)})", "labels": labels},
        {"record": c.SLO_ERROR_BUDGET, "expr": f"vector({number(slo.budget)})", "labels": labels},
        {"record": c.SLO_TIME_PERIOD_DAYS, "expr": f"vector({number(slo.period / 86400)})", "labels": labels},
        {
            "record": c.SLO_CURRENT_BURN_RATE,
            "expr": f"{slo.selector(c.slo_sli_error(c.SLO_RATE_WINDOWS[0]))}\n/ {on}\n{budget}",
            "labels": labels,
        },
        {
            "record": c.SLO_PERIOD_BURN_RATE,
            "expr": f"{slo.selector(c.slo_sli_error(slo.period_window))}\n/ {on}\n{budget}",
            "labels": labels,
        },
        {
            "record": c.SLO_PERIOD_BUDGET_REMAINING,
            "expr": f"1 - {slo.selector(c.SLO_PERIOD_BURN_RATE)}",
            "labels": labels,
        },
        {
            "record": c.SLO_INFO,
            "expr": "vector(1)",
            "labels": {
                **labels,
                c.LABEL_SLOTH_MODE: SLOTH_MODE,
                c.LABEL_SLOTH_OBJECTIVE: number(slo.objective),
                c.LABEL_SLOTH_SPEC: SLOTH_SPEC,
                c.LABEL_SLOTH_VERSION: SLOTH_VERSION,
            },
        },
    ]


def feedback_rules(cfg: Config) -> list[Rule]:
    """Per feedback source: the share of tickets that missed each deadline, and the quality share."""
    rules: list[Rule] = []
    w = format_duration(cfg.alerting.feedback.window)
    for source in cfg.feedback:
        src = {c.LABEL_SOURCE: source.name}
        tickets = f"sum(increase({selector(c.FEEDBACK_TICKETS, src)}[{w}]))"
        for stage in (c.STAGE_FIRST_RESPONSE, c.STAGE_RESOLUTION):
            breaches = f"sum(increase({selector(c.FEEDBACK_SLA_BREACHES, {**src, c.LABEL_STAGE: stage})}[{w}]))"
            rules.append(
                {
                    "record": c.FEEDBACK_DEADLINE_BREACH_RATIO,
                    "expr": f"(\n  {breaches}\n  or 0 * {tickets}\n)\n/\n{tickets}",
                    "labels": {**src, c.LABEL_STAGE: stage},
                }
            )
        quality = f"sum(increase({selector(c.FEEDBACK_QUALITY_TICKETS, src)}[{w}]))"
        rules.append(
            {
                "record": c.FEEDBACK_QUALITY_SHARE_RATIO,
                "expr": f"(\n  {quality}\n  or 0 * {tickets}\n)\n/\n{tickets}",
                "labels": dict(src),
            }
        )
        if cfg.alerting.feedback.spike is not None:
            rules.extend(spike_records(source, cfg.alerting.feedback.spike))
        if cfg.alerting.feedback.trend is not None:
            rules.extend(trend_records(source, cfg.alerting.feedback.trend))
    return rules
