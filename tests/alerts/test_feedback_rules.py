"""promtool runs the feedback desk's rules: the complaint-spike warning and the satisfaction SLO."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.alerts import RULES_FILE, generate_rules
from slaprobe.alerts.rules import group_names
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config, parse_config
from tests.alerts.conftest import run, tool

CONFIG = """\
version: v1
services:
  shop:
    tier: high
    sla: {satisfaction: 90}
feedback:
  - {name: desk, path: /tmp/tickets.jsonl, service: shop}
alerting:
  feedback: {spike: {factor: 3, min_count: 10, days: 7, for: 0s}}
"""
STEP = 15  # minutes between samples and evaluations
PER_HOUR = 60 // STEP
DAYS = 7
SERIES = {"source": "desk", "service": "shop", "instance": "slaprobe:9799", "job": "slaprobe"}
TICKETS = {**SERIES, "category": "technical", "urgency": "general"}
KEY = {"source": "desk", "service": "shop", "category": "technical"}


def config() -> Config:
    return parse_config(CONFIG)


def series(metric: str, labels: dict[str, str], per_hour: list[float]) -> dict[str, str]:
    """A counter growing by ``per_hour[i]`` tickets in hour i, sampled every STEP minutes."""
    total, values = 0.0, ["0"]
    for count in per_hour:
        for _ in range(PER_HOUR):
            total += count / PER_HOUR
            values.append(f"{total:g}")
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{body}}}", "values": " ".join(values)}


def hours(days: int, every_hour: float, last_hour: float, peak: float | None = None, peak_at: int = 10) -> list[float]:
    """``days`` of ``every_hour`` tickets an hour (``peak`` at hour ``peak_at`` of each day), then one last hour."""
    counts = [peak if peak is not None and h % 24 == peak_at else every_hour for h in range(days * 24)]
    return [*counts, last_hour]


def alerts_after(history: list[float], alertname: str, **labels: str) -> dict[str, Any]:
    """A promql_expr_test: how many ``alertname`` alerts fire at the end of ``history`` (none: no sample)."""
    matchers = ",".join([f'alertname="{alertname}"', 'alertstate="firing"', *(f'{k}="{v}"' for k, v in labels.items())])
    return {"expr": f"count(ALERTS{{{matchers}}}) or vector(0)", "eval_time": f"{len(history) * 60}m"}


def promtool_test(tmp_path: Path, tests: list[dict[str, Any]], *, feedback_only: bool = False) -> None:
    """promtool on the generated rules (``feedback_only``: the feedback groups, for days of data).

    promtool runs one file's tests in turn on one core: each test runs in its own process,
    side by side, one per usable core; every one must pass.
    """
    rules = generate_rules(config())
    if feedback_only:
        rules = {**rules, "groups": [g for g in rules["groups"] if g["name"].startswith("slaprobe-feedback")]}
    promtool = tool("promtool")

    def one(number: int, test: dict[str, Any]) -> str:
        directory = tmp_path / f"case-{number}"
        directory.mkdir()
        (directory / RULES_FILE).write_text(dump_yaml(rules))
        document = {
            "rule_files": [RULES_FILE],
            "evaluation_interval": f"{STEP}m",
            "group_eval_order": group_names(rules),  # recordings first: a 15m-old one is past the 5m lookback
            "tests": [test],
        }
        (directory / "tests.yaml").write_text(dump_yaml(document))
        result = run([promtool, "test", "rules", "tests.yaml"], directory)
        return "" if result.returncode == 0 else result.stdout + result.stderr

    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        failures = [text for text in pool.map(one, range(len(tests)), tests) if text]
    assert not failures, "\n".join(failures)


def spike_case(name: str, history: list[float], fires: bool) -> dict[str, Any]:
    check = alerts_after(history, c.ALERT_FEEDBACK_SPIKE, **KEY)
    check["exp_samples"] = [{"labels": "{}", "value": 1 if fires else 0}]
    return {
        "name": name,
        "interval": f"{STEP}m",
        "input_series": [series(c.FEEDBACK_TICKETS, TICKETS, history)],
        "promql_expr_test": [check],
    }


def test_the_spike_warning_fires_on_a_real_spike_and_not_below_the_minimum_or_on_a_daily_peak(
    tmp_path: Path,
) -> None:
    promtool_test(
        tmp_path,
        [
            spike_case("8 tickets after 1 an hour: 8 times the baseline, below 10", hours(DAYS + 1, 1, 8), False),
            spike_case(
                "40 at 10:00 as on every day before: the same hour's baseline",
                hours(DAYS + 1, 2, 40, peak=40, peak_at=0),  # the last hour is hour 0 of its day
                False,
            ),
            spike_case("40 tickets after 2 an hour: a spike", hours(DAYS + 1, 2, 40), True),
            spike_case("40 tickets on the first day: no baseline yet, still a spike", hours(0, 2, 40), True),
        ],
        feedback_only=True,
    )


def test_the_spike_warning_shows_the_current_count_and_both_baselines() -> None:
    rules = generate_rules(config())
    (spike,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == c.ALERT_FEEDBACK_SPIKE]
    description = spike["annotations"][c.ANNOTATION_DESCRIPTION]
    assert "{{ $value | humanize }}" in description
    assert c.FEEDBACK_TICKETS_SAME_HOUR in description and c.FEEDBACK_TICKETS_MOVING in description
    assert spike["labels"][c.LABEL_SEVERITY] == c.SEVERITY_TICKET and c.LABEL_SERVICE not in spike["labels"]


def test_a_spike_warning_is_only_generated_when_configured() -> None:
    rules = generate_rules(
        parse_config(
            CONFIG.replace("  feedback: {spike: {factor: 3, min_count: 10, days: 7, for: 0s}}", "  feedback: {}")
        )
    )
    names = {r.get("alert") or r.get("record") for g in rules["groups"] for r in g["rules"]}
    assert c.ALERT_FEEDBACK_SPIKE not in names and c.FEEDBACK_TICKETS_RATE not in names


def ratings(unsatisfied_share: float, hours_of_ratings: int) -> list[dict[str, str]]:
    per_hour = [20.0] * hours_of_ratings
    satisfied = [n * (1 - unsatisfied_share) for n in per_hour]
    return [
        series(c.FEEDBACK_RATED, {**KEY, "channel": "app", **SERIES}, per_hour),
        series(c.FEEDBACK_SATISFIED, {**KEY, "channel": "app", **SERIES}, satisfied),
    ]


@pytest.mark.parametrize(("share", "fires"), [(0.0, False), (1.0, True)])
def test_the_satisfaction_slo_records_its_error_ratio_and_burns_its_budget(
    tmp_path: Path, share: float, fires: bool
) -> None:
    history = [20.0] * 7
    check = alerts_after(history, c.ALERT_BURN_RATE, **{c.LABEL_SLOTH_SLO: c.SLO_SATISFACTION, "burnrate": "6h/30m"})
    check["exp_samples"] = [{"labels": "{}", "value": 1 if fires else 0}]
    ratio = {
        "expr": f'{c.slo_sli_error("1h")}{{sloth_slo="{c.SLO_SATISFACTION}"}}',
        "eval_time": "6h",
        "exp_samples": [
            {
                "labels": f'{c.slo_sli_error("1h")}{{service="shop",sloth_id="shop-{c.SLO_SATISFACTION}",'
                f'sloth_service="shop",sloth_slo="{c.SLO_SATISFACTION}",sloth_window="1h"}}',
                "value": share,
            }
        ],
    }
    promtool_test(
        tmp_path,
        [
            {
                "name": f"{share:.0%} of the ratings unsatisfied",
                "interval": f"{STEP}m",
                "input_series": ratings(share, len(history)),
                "promql_expr_test": [ratio, check],
            }
        ],
    )


def test_complaint_spikes_stay_off_the_incidents_webhook_route_but_reach_their_receivers() -> None:
    from slaprobe.alerts import generate_alertmanager

    hook = (
        "alertmanager: {url: 'http://127.0.0.1:9', webhook_url: 'http://127.0.0.1:9799/alertmanager/webhook',\n"
        "               webhook_auth: {bearer_token: t}}\n"
    )
    routes = generate_alertmanager(parse_config(CONFIG + hook))["route"]["routes"]
    assert routes[0]["receiver"] == c.RECEIVER_INCIDENTS
    assert f'alertname!="{c.ALERT_FEEDBACK_SPIKE}"' in routes[0]["matchers"]
    assert all("alertname" not in m for route in routes[1:] for m in route.get("matchers", []))
    without_spike = CONFIG.replace(
        "  feedback: {spike: {factor: 3, min_count: 10, days: 7, for: 0s}}", "  feedback: {}"
    )
    routes = generate_alertmanager(parse_config(without_spike + hook))["route"]["routes"]
    assert routes[0]["matchers"] == ['escalation_level=~".+"']


TREND_CONFIG = CONFIG.replace(
    "feedback:\n  - {name: desk, path: /tmp/tickets.jsonl, service: shop}",
    "feedback:\n  - {name: desk, path: /tmp/tickets.jsonl, service: shop, quality_categories: [technical]}",
).replace(
    "  feedback: {spike: {factor: 3, min_count: 10, days: 7, for: 0s}}",
    "  feedback: {trend: {window: 7d, compare: 7d, factor: 1.5, min_rise: 5, min_tickets: 50, for: 0s}}",
)
TREND_STEP = 60  # minutes between samples and evaluations: two weeks of data
WEEK = 7 * 24 * 60 // TREND_STEP  # samples in a week


def weekly(metric: str, labels: dict[str, str], first_week: int, second_week: int) -> dict[str, str]:
    """A counter growing by ``first_week`` per sample for a week, then ``second_week`` per sample for a week."""
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    values = f"0+{first_week}x{WEEK} {first_week * WEEK + second_week}+{second_week}x{WEEK - 1}"
    return {"series": f"{metric}{{{body}}}", "values": values}


def trend_case(name: str, quality: tuple[int, int], repeats: tuple[int, int], tickets: int, fires: list[str]) -> Any:
    """Two weeks of ``tickets`` per sample, ``quality`` and ``repeats`` per sample in each week."""
    desk = {**KEY, "channel": "app", **SERIES}
    checks = []
    for trend in (c.TREND_QUALITY_SHARE, c.TREND_REPEAT_RATE):
        check = alerts_after([0.0] * (2 * WEEK * TREND_STEP // 60), c.ALERT_FEEDBACK_TREND, **{c.LABEL_TREND: trend})
        check["exp_samples"] = [{"labels": "{}", "value": 1 if trend in fires else 0}]
        checks.append(check)
    return {
        "name": name,
        "interval": f"{TREND_STEP}m",
        "input_series": [
            weekly(c.FEEDBACK_TICKETS, TICKETS, tickets, tickets),
            weekly(c.FEEDBACK_QUALITY_TICKETS, SERIES, *quality),
            weekly(c.FEEDBACK_REPEATS, desk, *repeats),
        ],
        "promql_expr_test": checks,
    }


def trend_test(tmp_path: Path, tests: list[dict[str, Any]], config_text: str = TREND_CONFIG) -> None:
    """promtool on the feedback groups alone (two weeks of every other rule would take minutes)."""
    rules = generate_rules(parse_config(config_text))
    rules = {**rules, "groups": [g for g in rules["groups"] if g["name"].startswith("slaprobe-feedback")]}
    (tmp_path / RULES_FILE).write_text(dump_yaml(rules))
    document = {
        "rule_files": [RULES_FILE],
        "evaluation_interval": f"{TREND_STEP}m",
        "group_eval_order": group_names(rules),
        "tests": tests,
    }
    (tmp_path / "tests.yaml").write_text(dump_yaml(document))
    result = run([tool("promtool"), "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_trend_warning_fires_on_a_rise_week_over_week_and_not_on_a_flat_or_small_one(tmp_path: Path) -> None:
    trend_test(
        tmp_path,
        [
            trend_case("quality share 10% then 30%: a trend", (1, 3), (1, 1), 10, [c.TREND_QUALITY_SHARE]),
            trend_case("repeat rate 5% then 20%: a trend", (1, 1), (1, 4), 20, [c.TREND_REPEAT_RATE]),
            trend_case("both flat at 10%", (1, 1), (1, 1), 10, []),
            trend_case("quality share 1% then 3%: three times, but 2 points", (1, 3), (0, 0), 100, []),
        ],
    )


def test_the_trend_warning_needs_enough_tickets_in_the_window(tmp_path: Path) -> None:
    few = TREND_CONFIG.replace("min_tickets: 50", "min_tickets: 2000")
    trend_test(tmp_path, [trend_case("10% then 30% of 1680 tickets a week: too few", (1, 3), (1, 1), 10, [])], few)


def test_the_trend_warning_shows_the_current_value_and_the_baseline_with_the_services_priority() -> None:
    rules = generate_rules(parse_config(TREND_CONFIG))
    trends = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == c.ALERT_FEEDBACK_TREND]
    assert [r["labels"][c.LABEL_TREND] for r in trends] == [c.TREND_QUALITY_SHARE, c.TREND_REPEAT_RATE]
    for rule in trends:
        notes = rule["annotations"]
        assert "{{ $value | humanizePercentage }}" in notes[c.ANNOTATION_DESCRIPTION]
        assert "offset 7d` $labels.source | query" in notes[c.ANNOTATION_DESCRIPTION]
        assert "offset 7d` $labels.source | query" in notes[c.ANNOTATION_SUMMARY]
        assert notes[c.ANNOTATION_RUNBOOK_URL]
        labels = rule["labels"]
        assert (labels[c.LABEL_SERVICE], labels[c.LABEL_TIER], labels[c.LABEL_PRIORITY]) == ("shop", "high", "P3")
        assert labels[c.LABEL_SEVERITY] == c.SEVERITY_TICKET


def test_without_quality_categories_only_the_repeat_rate_is_watched_and_nothing_without_trend() -> None:
    no_quality = TREND_CONFIG.replace(", quality_categories: [technical]", "")
    rules = generate_rules(parse_config(no_quality))
    trends = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == c.ALERT_FEEDBACK_TREND]
    assert [r["labels"][c.LABEL_TREND] for r in trends] == [c.TREND_REPEAT_RATE]
    names = {r.get("alert") or r.get("record") for g in generate_rules(config())["groups"] for r in g["rules"]}
    assert c.ALERT_FEEDBACK_TREND not in names and c.FEEDBACK_TREND_TICKETS not in names
