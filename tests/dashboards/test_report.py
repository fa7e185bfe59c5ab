"""The SLA report's pure parts: incidents from ALERTS, formatting, self-contained HTML and Markdown."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from slaprobe import conventions as c
from slaprobe.dashboards import promql as board_promql
from slaprobe.dashboards.report import (
    LABEL_GAP,
    CategoryFigures,
    ComplaintReport,
    Incident,
    Latency,
    PrometheusClient,
    Report,
    ReportError,
    ServiceReport,
    availability_chart,
    by_priority,
    incidents_from,
    md_text,
    parse_end,
    percent,
    period_counts,
    render_html,
    render_markdown,
    seconds_text,
    where,
)
from tests.alerts.conftest import run, tool
from tests.conftest import free_port
from tests.dashboards.test_live import EXTERNAL

T0 = 1_700_000_000.0


def _alert(name: str, priority: str, level: int = 1, **extra: str) -> dict[str, str]:
    labels = {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", "service": "shop"}
    return {**labels, "priority": priority, "escalation_level": str(level), "severity": "page", **extra}


def _points(*spans: tuple[int, int], step: int = 10) -> list[tuple[float, float]]:
    return [(T0 + t, 1.0) for first, last in spans for t in range(first, last + 1, step)]


def test_overlapping_alerts_of_one_service_and_priority_are_one_incident() -> None:
    series = [
        (_alert("SLAErrorBudgetBurn", "P1", sloth_slo="availability", burnrate="1h/5m"), _points((0, 100))),
        (_alert("SLAErrorBudgetBurn", "P1", sloth_slo="availability", burnrate="6h/30m"), _points((50, 200))),
        (_alert("SLAErrorBudgetBurn", "P1", 2, burnrate="1h/5m"), _points((60, 100))),
        (_alert("SLAProbeDown", "P1", probe="home"), _points((400, 450))),
        (_alert("SLAComplianceBelowTarget", "P3"), _points((0, 30))),
    ]
    incidents = incidents_from(series, 10, T0 + 1000)
    p1 = [i for i in incidents if i.priority == "P1"]
    assert [(i.start - T0, i.end - T0, i.max_level) for i in p1] == [(-10, 200, 2), (390, 450, 1)]
    assert p1[0].alerts == (
        "SLAErrorBudgetBurn (availability 1h/5m)",
        "SLAErrorBudgetBurn (availability 6h/30m)",
    )
    assert p1[1].alerts == ("SLAProbeDown (home)",)
    assert [i.priority for i in incidents] == ["P1", "P3", "P1"]  # by start time
    assert not any(i.ongoing for i in incidents)
    assert by_priority(incidents) == [("P1", 2, 270.0, 210.0, 2), ("P3", 1, 40.0, 40.0, 1)]


def test_a_gap_longer_than_a_step_and_a_half_splits_an_incident_and_the_last_one_is_ongoing() -> None:
    series = [(_alert("SLAProbeDown", "P2"), _points((0, 50), (80, 120)))]
    incidents = incidents_from(series, 10, T0 + 120)
    assert [(i.start - T0, i.end - T0) for i in incidents] == [(-10, 50), (70, 120)]
    assert [i.ongoing for i in incidents] == [False, True]


def test_escalation_levels_alone_make_no_incident() -> None:
    assert incidents_from([(_alert("X", "P1", 2), _points((0, 50)))], 10, T0 + 100) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-15T06:13:20+08:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no zone: UTC
    ],
)
def test_end_of_period_is_rfc3339_or_unix_seconds(text: str | None, expected: float | None) -> None:
    assert parse_end(text) == expected


def test_end_of_period_that_is_no_time_is_refused() -> None:
    with pytest.raises(ReportError, match="--end: not a time: 'yesterday'"):
        parse_end("yesterday")


def test_the_report_names_its_prometheus_without_scheme_or_credentials() -> None:
    assert where("https://user:secret@prom.example:9090/prometheus") == "prom.example:9090/prometheus"
    assert where("http://[::1]:9090") == "[::1]:9090"
    assert where("http://prometheus") == "prometheus"


def test_an_unreachable_prometheus_is_named_without_its_credentials() -> None:
    client = PrometheusClient(f"http://user:secret@127.0.0.1:{free_port()}")
    with pytest.raises(ReportError) as caught:
        client.query("up", T0)
    assert str(caught.value) == f"cannot reach Prometheus at {client.shown}: Connection refused"
    assert "secret" not in str(caught.value)


def test_numbers_are_written_for_people() -> None:
    assert percent(0.995123) == "99.512%"
    assert percent(0.995, 2) == "99.50%"
    assert percent(None) == "-"
    assert percent(float("inf")) == "∞"
    assert seconds_text(0.25) == "250 ms"
    assert seconds_text(1.5) == "1.5 s"
    assert seconds_text(3725) == "1h2m5s"
    assert seconds_text(None) == "-"


def _report() -> Report:
    incident = Incident("a<b>", "P1", "page", T0 + 60, T0 + 400, 2, False, ("SLAProbeDown (home)",))
    shop = ServiceReport(
        name="a<b>",
        tier="critical",
        owner='web "team"',
        objective=0.99,
        runs=1000,
        failures=25,
        compliance=0.97,
        compliance_target=0.99,
        latency=Latency(0.25, 0.9, 0.93, 0.01, 0.3, 0.45),
        incidents=(incident,),
        history=tuple((T0 + 60 * i, 1.0 if i % 4 else 0.9) for i in range(1, 31)),
        tickets=12,
    )
    quiet = ServiceReport("quiet", "low", "", 0.999, 0, 0, None, 0.999, None, (), (), None)
    complaints = ComplaintReport("tickets", "a<b>", 20, 2, 5, 4, 3, (CategoryFigures("technical", 8, 7200.0, 86400.0),))
    return Report(T0, T0 + 1800, "30m", "prometheus:9090", (shop, quiet), (complaints,), 1.0, generated=T0 + 1800)


def test_html_report_is_self_contained_escaped_and_its_charts_are_well_formed_svg() -> None:
    text = render_html(_report())
    assert not EXTERNAL.findall(text)
    assert "xmlns" not in text  # inline SVG in HTML needs no namespace URL
    assert "a<b>" not in text and "a&lt;b&gt;" in text
    assert "web &quot;team&quot;" in text
    charts = re.findall(r"<svg.*?</svg>", text, re.S)
    assert len(charts) == 2  # availability of a<b> and its incidents; quiet has neither
    for chart in charts:
        ET.fromstring(chart)
    assert text.index('id="summary"') < text.index('id="service-a&lt;b&gt;"') < text.index('id="complaints"')
    assert "97.500%" in text and "250.0%" in text  # availability, budget used (2.5% of a 1% budget)
    assert "No probe runs in the period." in text and "No alerts fired in the period." in text
    assert "first response within deadline 90.0%" in text


def test_markdown_report_has_the_same_tables() -> None:
    text = render_markdown(_report())
    assert text.startswith("# SLA report\n")
    assert (
        "| a&lt;b&gt; | critical | 99.00% | 97.500% | NO | 250.0% | 97.000% / 99.00% | 93.000% / 90.00% "
        "| P1: 1 (5m40s) | availability - → 97.50%, compliance - → 97.00% |" in text
    )
    assert "| quiet | low | 99.90% | - | - | - | - / 99.90% | - | none |" in text
    assert "| P1 | 1 | 5m40s | 5m40s | 2 |" in text
    assert "| tickets | 20 | 90.0% | 75.0% | 20.0% | 3 |" in text
    assert "| technical | 8 | 2h | 1d |" in text


def test_the_report_counts_runs_exactly_as_the_exporter_does(tmp_path: Path) -> None:
    """60 runs, 26 failed: 56.667%, although the failure series appears only at the first failure
    (``increase()`` extrapolates and misses that first count: it said 55.556%)."""
    promtool = tool("promtool")
    labels = 'service="shop", probe="home", location="dc1", instance="slaprobe:9799", job="slaprobe"'
    series = [
        (c.PROBE_RUNS, "1+1x59"),
        (c.PROBE_FIRST_ATTEMPT_FAILURES, "_x10 1+1x25 26x23", ', reason="connect"'),
        (c.PROBE_WITHIN_SLA, "1+1x9 10x25 11+1x23"),
    ]
    queries = period_counts("1h", ('service=~"shop"',))
    expected = {"runs": 60, "failures": 26, "within": 34}
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{metric}{{{labels}{extra[0] if extra else ''}}}", "values": values}
                    for metric, values, *extra in series
                ],
                "promql_expr_test": [
                    {
                        "expr": queries[key],
                        "eval_time": "59m",
                        "exp_samples": [{"labels": '{service="shop"}', "value": n}],
                    }
                    for key, n in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run([promtool, "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shop = ServiceReport("shop", "high", "", 0.995, 60, 26, 34 / 60, 0.995, None, (), (), None)
    assert percent(shop.availability) == "56.667%"


def test_markdown_from_ticket_logs_cannot_form_markup() -> None:
    hostile = "[click](http://evil.example) *x* `y` <img src=x> | # !"
    assert md_text(hostile) == ("\\[click\\](http://evil.example) \\*x\\* \\`y\\` &lt;img src=x&gt; \\| \\# \\!")
    assert md_text("line\nbreak") == "line break"


def test_the_report_compares_with_the_previous_period_of_the_same_length() -> None:
    shop = ServiceReport(
        "shop", "high", "", 0.995, 1000, 10, 0.9783, 0.995, None, (), (), None, previous=(1000, 30, 880.4)
    )
    assert shop.trend() == "availability 97.00% → 99.00%, compliance 88.04% → 97.83%"
    assert "compliance 88.04% → 97.83%" in render_markdown(_report_of(shop))
    assert "88.04% → 97.83%" in render_html(_report_of(shop))


def _report_of(service: ServiceReport) -> Report:
    return Report(T0, T0 + 86400, "1d", "prometheus:9090", (service,), (), 43.0, generated=T0)


def test_the_level_reached_counts_a_level_that_paged_within_the_bridge_after_level_1() -> None:
    series = [
        (_alert("SLAProbeDown", "P1"), _points((0, 100))),
        (_alert("SLAProbeDown", "P1", 2), _points((60, 160))),
        (_alert("SLAProbeDown", "P1", 3), _points((130, 170))),  # paged while the bridge held level 1
    ]
    assert [i.max_level for i in incidents_from(series, 10, T0 + 1000, bridge=300)] == [3]
    assert [i.max_level for i in incidents_from(series, 10, T0 + 1000)] == [2]


@pytest.mark.parametrize("objective", [0.995, 0.999, 0.9, 0.5])
def test_the_charts_axis_labels_never_overlap(objective: float) -> None:
    history = tuple((T0 + i * 60, 0.999 if i % 3 else 0.97) for i in range(30))
    shop = ServiceReport("shop", "high", "", objective, 60, 1, 0.99, 0.995, None, (), history, None)
    chart = availability_chart(shop)
    ys = sorted(float(y) for y in re.findall(r'<text x="2" y="([0-9.]+)"', chart))
    assert "SLA " in chart
    assert all(b - a >= LABEL_GAP for a, b in itertools.pairwise(ys)), ys


def test_the_report_counts_the_dial_test_plan_and_the_degraded_runs_exactly(tmp_path: Path) -> None:
    """65 slots fell due and 60 ran (5 missed); 3 runs succeeded but slowly."""
    labels = 'service="shop", probe="home", location="dc1", instance="slaprobe:9799", job="slaprobe"'
    queries = period_counts("1h", ('service=~"shop"',))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{c.PROBE_PLANNED_RUNS}{{{labels}}}", "values": "6+1x59"},
                    {"series": f"{c.PROBE_DEGRADED}{{{labels}}}", "values": "_x30 1+1x2 3x26"},
                ],
                "promql_expr_test": [
                    {
                        "expr": queries[key],
                        "eval_time": "59m",
                        "exp_samples": [{"labels": '{service="shop"}', "value": n}],
                    }
                    for key, n in {"planned": 65, "degraded": 3}.items()
                ],
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run([tool("promtool"), "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_report_shows_done_against_planned_dial_tests_and_degraded_runs() -> None:
    shop = ServiceReport("shop", "high", "", 0.995, 60, 2, 0.95, 0.995, None, (), (), None, planned=65, degraded=3)
    assert shop.plan_text() == "60 / 65 (92.3%)"
    assert shop.plan_done() is False
    assert "| 60 / 65 (92.3%) | 3 |" in render_markdown(_report_of(shop))
    assert "60 / 65 (92.3%)" in render_html(_report_of(shop))
    unplanned = ServiceReport("quiet", "low", "", 0.999, 0, 0, None, 0.999, None, (), (), None)
    assert unplanned.plan_text() == "-" and unplanned.plan_done() is None


def test_a_board_window_without_runs_reads_availability_1_and_error_ratio_0_not_nan(tmp_path: Path) -> None:
    """A cron probe ran 4 times, 1 failed, then stopped: over the last 10 minutes (no run) the
    boards' error ratio is 0 and availability 1, as the rules' guarded ratios say, not 0/0."""
    promtool = tool("promtool")
    labels = 'service="shop", probe="home", location="dc1", instance="slaprobe:9799", job="slaprobe"'
    scope = ('service=~"shop"',)
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{c.PROBE_RUNS}{{{labels}}}", "values": "1+1x3 4x20"},
                    {"series": f'{c.PROBE_FIRST_ATTEMPT_FAILURES}{{{labels}, reason="connect"}}', "values": "1x23"},
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "23m", "exp_samples": [{"labels": '{service="shop"}', "value": n}]}
                    for expr, n in [
                        (board_promql.error_ratio("10m", scope, ["service"]), 0),
                        (board_promql.availability("10m", scope, ["service"]), 1),
                    ]
                ],
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run([promtool, "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
