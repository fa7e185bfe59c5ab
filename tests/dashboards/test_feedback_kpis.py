"""The report's satisfaction and feedback KPIs: exact counts, the previous period, HTML and Markdown."""

from __future__ import annotations

from pathlib import Path

import yaml

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import feedback_kpis as kpis
from slaprobe.dashboards.report import Report, render_html, render_markdown
from tests.alerts.conftest import run, tool

T0 = 1_700_000_000.0
CONFIG = {
    "version": "v1",
    "services": {"shop": {"tier": "critical", "sla": {"satisfaction": 90}}},
    "feedback": [{"name": "desk", "path": "/dev/null", "service": "shop"}],
}
NOW = {
    "tickets": 53,
    "quality": 8,
    "rated": 40,
    "satisfied": 34,
    "scored": 20,
    "not_promoters": 8,
    "detractors": 3,
    "repeats": 5,
    "reopened": 2,
    "resolved": 40,
    "closed": 38,
    "resolved_closed": 36,
    "closed_loop": 30,
}
BEFORE = {**NOW, "quality": 18, "tickets": 56, "satisfied": 28}


class FakePrometheus:
    """Answers each count query with the figures of NOW at T0 and of BEFORE at the period's start."""

    def __init__(self, cfg: Config) -> None:
        self.names = {expr: name for name, expr in kpis.queries("1d", cfg).items()}
        self.asked: list[tuple[str, float]] = []

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        name = self.names[expr]
        self.asked.append((name, at))
        table = NOW if at == T0 else BEFORE
        return [({c.LABEL_SOURCE: "desk", c.LABEL_SERVICE: "shop"}, float(table[name]))]


def _desk() -> tuple[kpis.DeskKpis, ...]:
    cfg = Config.model_validate(CONFIG)
    return kpis.collect(cfg, FakePrometheus(cfg), "1d", T0, T0 - 86400)


def test_each_kpi_is_a_ratio_of_exact_counts_of_this_period_and_the_one_before() -> None:
    (desk,) = _desk()
    assert (desk.source, desk.service, desk.satisfaction_target) == ("desk", "shop", 0.9)
    assert desk.value("CSAT") == 34 / 40
    assert desk.value("CSAT", previous=True) == 28 / 40
    assert desk.value("NPS") == 100 * ((20 - 8) - 3) / 20
    assert desk.value("repeat rate") == 5 / 53
    assert desk.value("reopen rate") == 2 / 40
    assert desk.value("resolution rate") == 36 / 38
    assert desk.value("closed-loop rate") == 30 / 38
    assert desk.value("quality-complaint share") == 8 / 53


def test_the_bulletin_reads_previous_period_then_this_one() -> None:
    (desk,) = _desk()
    assert "quality-complaint share 32.14% → 15.09%" in desk.bulletin()
    assert desk.bulletin().startswith("CSAT 70.00% → 85.00%, NPS +45.0 → +45.0, repeat rate ")


def test_a_period_without_ratings_shows_a_dash_not_zero() -> None:
    desk = kpis.DeskKpis("desk", "shop", {"tickets": 3}, {})
    assert desk.value("CSAT") is None and desk.value("NPS") is None
    assert desk.bulletin().startswith("CSAT - → -, NPS - → -, repeat rate - → 0.00%")


def test_the_report_shows_the_kpis_next_to_availability_in_html_and_markdown() -> None:
    report = Report(T0 - 86400, T0, "1d", "prometheus:9090", (), (), 43.0, generated=T0, feedback=_desk())
    text = render_markdown(report)
    assert "## Satisfaction and feedback" in text
    assert "| desk | shop | 70.00% → 85.00% (target 90.00%) | +45.0 → +45.0 |" in text
    assert "| 32.14% → 15.09% | 40 | 5 | 53 |" in text
    page = render_html(report)
    assert 'id="feedback-kpis"' in page and "32.14% → 15.09%" in page
    assert page.index('id="summary"') < page.index('id="feedback-kpis"')


def test_without_a_feedback_source_the_report_asks_nothing_and_shows_no_section() -> None:
    cfg = Config.model_validate({"version": "v1", "services": {"shop": {"tier": "low"}}})
    assert kpis.collect(cfg, FakePrometheus(Config.model_validate(CONFIG)), "1d", T0, T0 - 86400) == ()
    report = Report(T0 - 86400, T0, "1d", "prometheus:9090", (), (), 43.0, generated=T0)
    assert "Satisfaction and feedback" not in render_markdown(report) + render_html(report)


def test_the_count_queries_equal_the_exporter_counters_although_series_appear_late(tmp_path: Path) -> None:
    """A counter that first appears mid-window with 1 is counted from 0, not extrapolated."""
    cfg = Config.model_validate(CONFIG)
    queries = kpis.queries("1h", cfg)
    desk = 'source="desk", service="shop", category="technical", channel="sms", instance="x", job="slaprobe"'
    series = [
        (c.FEEDBACK_RATED, "", "1+1x59"),
        (c.FEEDBACK_SATISFIED, "", "_x10 1+1x40 41x8"),
        (c.FEEDBACK_REPEATS, "", "_x30 1+1x4 5x24"),
        (c.FEEDBACK_CLOSED, ', outcome="confirmed"', "1+1x59"),
        (c.FEEDBACK_CLOSED, ', outcome="unresolved"', "_x50 1+1x8"),
        (c.FEEDBACK_RATING + "_count", ', scale="10"', "1+1x59"),
        (c.FEEDBACK_RATING + "_bucket", ', scale="10", le="8"', "_x20 1+1x39"),
    ]
    expected = {"rated": 60, "satisfied": 41, "repeats": 5, "closed": 69, "resolved_closed": 60}
    expected |= {"scored": 60, "not_promoters": 40}
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{metric}{{{desk}{extra}}}", "values": values} for metric, extra, values in series
                ],
                "promql_expr_test": [
                    {
                        "expr": queries[name],
                        "eval_time": "59m",
                        "exp_samples": [{"labels": '{source="desk", service="shop"}', "value": n}],
                    }
                    for name, n in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run([tool("promtool"), "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
