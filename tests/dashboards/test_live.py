"""Every panel query of every board, and the SLA report, against real Prometheus scraping real ``slaprobe serve``.

Grafana is not installed here, so the boards are proven the way Grafana would use them:
each query, with the template variables substituted as Grafana would, goes through
Prometheus's query API and must parse and return at least one series with a value. A
query that returns nothing is a defect in the board or in the exporter, with one
exception reported (not skipped): series an exporter part not written yet would emit
(``AWAITED``) — such a query is listed in a warning as long as Prometheus has no series
of that metric at all; once the metric exists, the query must return data.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from slaprobe import conventions as c
from slaprobe.config import Config, load_config
from slaprobe.dashboards import build_boards
from slaprobe.dashboards.model import Query
from slaprobe.dashboards.report import ReportError, collect_report, percent, render_markdown
from tests.dashboards import stack as st
from tests.support.certs import Authority

pytestmark = pytest.mark.skipif(st.PROMETHEUS is None, reason="needs prometheus (Debian package prometheus)")

# Series of exporter parts still being written, and who writes them. A query on one of them
# may come back empty only while Prometheus has no series of that metric at all.
_INCIDENTS = (
    "rules issue (5): exporter/incidents.py (silence poller, /alertmanager/webhook) is not wired into serve yet"
)
AWAITED: dict[str, str] = {
    c.ALERT_ACKNOWLEDGED: _INCIDENTS,
    c.INCIDENT_TIME_TO_ACKNOWLEDGE: _INCIDENTS,
    c.INCIDENT_TIME_TO_RESOLVE: _INCIDENTS,
    c.INCIDENTS_OPEN: _INCIDENTS,
    c.ALERTMANAGER_POLL_SUCCESS: _INCIDENTS,
    c.ALERTMANAGER_NOTIFICATIONS: _INCIDENTS,
}

# Template variables as Grafana fills them for a user looking at the test's service.
VARIABLES = {
    "$__rate_interval": "10s",  # Grafana: max(4 x scrape interval, step + scrape interval)
    "$__interval": "2s",
    "$__range": "10m",
    "$service": st.SERVICE,
    "$location": st.LOCATION,
    "$probe": ".*",
    "$priority": ".*",
    "$source": st.FEEDBACK_SOURCE,
    "$category": ".*",
    "$job": st.JOB,
    "$instance": ".*",
}
PERIOD = "10m"


# A query of the range before the one shown ("offset $__range": the previous period of a
# KPI) has no data in a stack younger than two ranges: it is checked over a range the stack
# has lived through twice (a user looking at the last 15 s).
PREVIOUS_RANGE = "15s"


def substitute(expr: str) -> str:
    """A board query with its template variables filled in."""
    if "offset $__range" in expr:
        expr = expr.replace("$__range", PREVIOUS_RANGE)
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr.replace("$1", ""), f"unsubstituted variable in {expr}"
    return expr


def _has_series(stack: st.Stack, metric: str) -> bool:
    names = (metric, f"{metric}_bucket")
    return any(stack.client.query(f'count({{__name__="{name}"}})', time.time()) for name in names)


def _post_incident_notifications(stack: st.Stack) -> None:
    """What Alertmanager sends slaprobe's webhook: a P1 incident acknowledged, then resolved."""
    now = dt.datetime.now(dt.UTC)
    labels = {
        c.LABEL_ALERTNAME: st.ACKED_ALERT,
        c.LABEL_SERVICE: st.SERVICE,
        c.LABEL_PRIORITY: "P1",
        c.LABEL_SEVERITY: c.SEVERITY_PAGE,
        c.LABEL_ESCALATION_LEVEL: "1",
    }
    url = f"{stack.serve_url}/alertmanager/webhook"
    started = now - dt.timedelta(seconds=20)
    for payload in (
        st.webhook("firing", labels, started),
        st.webhook("firing", {**labels, c.LABEL_ESCALATION_LEVEL: "2"}, started),
        st.webhook("resolved", labels, started, now),
        st.webhook("resolved", {**labels, c.LABEL_ESCALATION_LEVEL: "2"}, started, now),  # the incident ends
        st.webhook("firing", {**labels, c.LABEL_ALERTNAME: "SLAProbeDown"}, now),
    ):
        requests.post(url, json=payload, timeout=5, headers={"Authorization": f"Bearer {st.WEBHOOK_TOKEN}"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[st.Stack]:
    """The running stack, once the data every board needs has arrived."""
    with st.running_stack(tmp_path_factory.mktemp("stack"), authority) as running:
        now = time.time

        def ready(expr: str) -> bool:
            return bool(running.client.query(expr, now()))

        st.wait_for(lambda: ready("up == 1"), 30, "Prometheus scraping slaprobe", running)
        _post_incident_notifications(running)
        for what, expr in (
            ("runs over 10s windows", f"count_over_time({c.PROBE_RUNS}[10s]) >= 5"),
            ("failed flow steps", c.FLOW_STEP_FAILURES),
            ("TLS expiry", c.TLS_CERT_EXPIRY),
            ("recorded burn rates", c.SLO_PERIOD_BUDGET_REMAINING),
            ("a firing level-2 escalation", f'{c.ALERTS_SERIES}{{alertstate="firing", escalation_level="2"}}'),
            ("access-log requests counted", f"increase({c.HTTP_REQUESTS}[10s]) > 0"),
            ("tickets counted", f"increase({c.FEEDBACK_TICKETS}[10s]) > 0"),
        ):
            st.wait_for(functools.partial(ready, expr), 45, what, running)
        yield running


def _evaluate(stack: st.Stack, query: Query, at: float) -> int:
    """Series with at least one value that the query returns (instant, or over the last minute)."""
    expr = substitute(query.expr)
    if query.instant:
        return len(stack.client.query(expr, at))
    series = stack.client.query_range(expr, at - 60, at, 2)
    return sum(1 for _, points in series if points)


def test_every_panel_query_parses_and_returns_data(stack: st.Stack) -> None:
    cfg = load_config(stack.config)
    at = time.time()
    broken: list[str] = []
    awaited: list[str] = []
    checked = 0
    for board_name, board in build_boards(cfg).items():
        for title, query in board.queries():
            checked += 1
            where = f"{board_name} / {title}: {substitute(query.expr)}"
            try:
                found = _evaluate(stack, query, at)
            except ReportError as exc:
                broken.append(f"does not parse: {where}\n    {exc}")
                continue
            deadline = time.monotonic() + 60
            while not found and "offset $__range" in query.expr and time.monotonic() < deadline:
                time.sleep(2)  # the stack has not lived through two PREVIOUS_RANGEs yet
                found = _evaluate(stack, query, time.time())
            if found:
                continue
            missing = [m for m in AWAITED if re.search(rf"\b{re.escape(m)}(_bucket)?\b", query.expr)]
            absent = [m for m in missing if not _has_series(stack, m)]
            if absent:
                awaited.append(f"{where}\n    waits for {', '.join(absent)}: {AWAITED[absent[0]]}")
            else:
                broken.append(f"returns nothing: {where}")
    assert checked > 80
    if awaited:
        warnings.warn(
            f"{len(awaited)} of {checked} panel queries return nothing yet, because the exporter does not "
            "export their series yet:\n" + "\n".join(awaited),
            stacklevel=1,
        )
    assert not broken, f"{len(broken)} of {checked} panel queries are defects:\n" + "\n".join(broken) + stack.logs()


def test_annotations_and_variables_return_data(stack: st.Stack) -> None:
    cfg = load_config(stack.config)
    at = time.time()
    for board in build_boards(cfg).values():
        for variable in board.variables:
            if variable.kind != "query":
                continue
            match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable.query)
            assert match, variable.query
            selector, label = match.groups()
            values = {s.get(label) for s, _ in stack.client.query(substitute(selector), at)}
            if not values - {None}:
                assert any(m in selector for m in AWAITED), (board.name, variable.name, selector)
                continue
            expected = {"service": st.SERVICE, "location": st.LOCATION, "job": st.JOB}.get(variable.name)
            assert expected is None or expected in values, (board.name, variable.name, values)


# ---------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def report_end(stack: st.Stack) -> float:
    """The end of the report period: now, fixed so direct queries can use the same instant."""
    return round(time.time(), 3)


@pytest.fixture(scope="module")
def report_html(stack: st.Stack, report_end: float, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``slaprobe report`` run as a user would run it."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    args = ["--prometheus", stack.prometheus_url, "--period", PERIOD, "--end", str(report_end), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "slaprobe", "report", "--config", str(stack.config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text()


def _direct(stack: st.Stack, expr: str, at: float) -> float:
    samples = stack.client.query(expr, at)
    assert len(samples) == 1, (expr, samples)
    return samples[0][1]


def test_report_has_every_section_for_every_service(stack: st.Stack, report_html: str) -> None:
    cfg: Config = load_config(stack.config)
    summary = report_html.index('id="summary"')
    for name in cfg.services:
        section = report_html.index(f'id="service-{name}"')
        assert section > summary, "the summary table comes first"
        body = report_html[section : report_html.find("</section>", section)]
        for heading in ("Availability vs SLA", "Latency", "Incidents by priority", "Complaints"):
            assert f"<h3>{heading}</h3>" in body, (name, heading)
    assert 'id="complaints"' in report_html and "Complaint response compliance" in report_html
    assert report_html.count("<svg") >= len(cfg.services)


def test_report_numbers_match_direct_prometheus_queries(stack: st.Stack, report_html: str, report_end: float) -> None:
    cfg = load_config(stack.config)
    report = collect_report(cfg, stack.client, PERIOD, end=report_end)
    assert report.end == report_end
    shop = next(s for s in report.services if s.name == st.SERVICE)
    sel = f'{{service="{st.SERVICE}"}}'

    def increase(metric: str, selector: str = sel) -> str:
        # The exporter's own counters: the stack started within the period and never restarted,
        # so each counter's last value is its count over the period (increase() extrapolates).
        return f"sum(last_over_time({metric}{selector}[{PERIOD}]))"

    availability = _direct(
        stack, f"1 - {increase(c.PROBE_FIRST_ATTEMPT_FAILURES)} / {increase(c.PROBE_RUNS)}", report_end
    )
    assert shop.availability is not None and math.isclose(shop.availability, availability, rel_tol=1e-9)
    assert percent(shop.availability) in report_html
    assert shop.met is False and shop.budget_used is not None and shop.budget_used > 1
    assert math.isclose(shop.budget_used, (1 - availability) / 0.01, rel_tol=1e-9)
    assert percent(shop.budget_used, 1) in report_html
    compliance = _direct(stack, f"{increase(c.PROBE_WITHIN_SLA)} / {increase(c.PROBE_RUNS)}", report_end)
    assert shop.compliance is not None and math.isclose(shop.compliance, compliance, rel_tol=1e-9)
    assert percent(shop.compliance) in report_html
    within = f'{{service="{st.SERVICE}", le="0.25"}}'
    latency = _direct(
        stack,
        f"{increase(c.PROBE_DURATION + '_bucket', within)} / {increase(c.PROBE_DURATION + '_count')}",
        report_end,
    )
    assert shop.latency is not None and shop.latency.sli is not None
    assert math.isclose(shop.latency.sli, latency, rel_tol=1e-9)
    assert percent(shop.latency.sli) in report_html
    p95 = _direct(
        stack,
        f"histogram_quantile(0.95, sum by (le) (increase({c.PROBE_DURATION}_bucket{sel}[{PERIOD}])))",
        report_end,
    )
    assert shop.latency.p95 is not None and math.isclose(shop.latency.p95, p95, rel_tol=1e-9)
    billing = next(s for s in report.services if s.name == st.OTHER_SERVICE)
    assert billing.availability == 1.0 and billing.met is True and not billing.incidents


def test_report_incidents_match_the_alerts_prometheus_recorded(stack: st.Stack, report_end: float) -> None:
    cfg = load_config(stack.config)
    report = collect_report(cfg, stack.client, PERIOD, end=report_end)
    shop = next(s for s in report.services if s.name == st.SERVICE)
    firing = f'ALERTS{{alertstate="firing", service="{st.SERVICE}", escalation_level="1"}}'
    priorities = {
        s["priority"]
        for s, _ in stack.client.query(f"max by (priority) (max_over_time({firing}[{PERIOD}]))", report_end)
    }
    assert {i.priority for i in shop.incidents} == priorities
    p1 = [i for i in shop.incidents if i.priority == "P1"]
    assert p1 and max(i.max_level for i in p1) >= 2, "the P1 incident escalated to level 2 (after 3s)"
    assert all(0 < i.duration <= 600 + report.incident_step for i in shop.incidents)
    first_firing = _direct(stack, f"min(min_over_time(timestamp({firing})[{PERIOD}:1s]))", report_end)
    assert abs(min(i.start for i in shop.incidents) - first_firing) <= 2 * report.incident_step + 1


def test_report_complaint_figures_match_direct_queries(stack: st.Stack, report_end: float) -> None:
    cfg = load_config(stack.config)
    report = collect_report(cfg, stack.client, PERIOD, end=report_end)
    (tickets,) = report.complaints
    src = f'{{source="{st.FEEDBACK_SOURCE}"}}'
    direct = stack.client.query(f"sum(increase({c.FEEDBACK_TICKETS}{src}[{PERIOD}]))", report_end)
    assert direct and direct[0][1] > 0
    assert math.isclose(tickets.tickets, direct[0][1], rel_tol=1e-9)
    breaches = stack.client.query(
        f'sum(increase({c.FEEDBACK_SLA_BREACHES}{{source="{st.FEEDBACK_SOURCE}", stage="first_response"}}[{PERIOD}]))',
        report_end,
    )
    expected = 1 - (breaches[0][1] if breaches else 0.0) / direct[0][1]
    assert tickets.first_response_compliance is not None
    assert math.isclose(tickets.first_response_compliance, expected, rel_tol=1e-9)


def test_report_satisfaction_and_repeat_figures_equal_the_exporters_raw_counters(
    stack: st.Stack, report_end: float
) -> None:
    """The stack is younger than the period: each exact count is the counter's own last scraped value."""
    cfg = load_config(stack.config)
    report = collect_report(cfg, stack.client, PERIOD, end=report_end)
    desks = {(k.source, k.service): k for k in report.feedback}
    desk = desks[(st.FEEDBACK_SOURCE, st.SERVICE)]
    scope = f'{{source="{st.FEEDBACK_SOURCE}", service="{st.SERVICE}"}}'
    raw = {
        name: _direct(stack, f"sum({metric}{scope})", report_end)
        for name, metric in (
            ("rated", c.FEEDBACK_RATED),
            ("satisfied", c.FEEDBACK_SATISFIED),
            ("repeats", c.FEEDBACK_REPEATS),
            ("tickets", c.FEEDBACK_TICKETS),
            ("closed", c.FEEDBACK_CLOSED),
        )
    }
    assert raw["rated"] > 0 and raw["repeats"] > 0
    assert {name: desk.counts[name] for name in raw} == raw
    assert desk.value("CSAT") == raw["satisfied"] / raw["rated"]
    assert desk.value("repeat rate") == raw["repeats"] / raw["tickets"]
    assert "## Satisfaction and feedback" in render_markdown(report)


EXTERNAL = re.compile(
    r"(?i)(?:\b(?:https?|ftp|file|wss?):|(?<![\w/])//[\w.-]|\burl\(|@import|<script|<link|<iframe|<img)"
)


def test_report_html_is_self_contained(report_html: str) -> None:
    assert report_html.startswith("<!DOCTYPE html>")
    assert not EXTERNAL.findall(report_html), EXTERNAL.findall(report_html)[:5]
    for attribute in re.findall(r'(?i)\b(?:href|src|xlink:href|action)\s*=\s*"([^"]*)"', report_html):
        assert attribute.startswith("#"), attribute
    assert "<style>" in report_html and "<svg" in report_html


def test_report_as_markdown(stack: st.Stack, report_end: float) -> None:
    cfg = load_config(stack.config)
    text = render_markdown(collect_report(cfg, stack.client, PERIOD, end=report_end))
    assert text.startswith("# SLA report")
    assert text.index("## Summary") < text.index(f"## {st.SERVICE} (critical)")
    assert "| service | tier | SLA | availability |" in text
    assert "### Incidents by priority" in text and "## Complaint response compliance" in text
    assert "<" not in text.replace("<br>", "")


def test_report_refuses_an_unreachable_prometheus(stack: st.Stack, tmp_path: Path) -> None:
    from tests.conftest import free_port

    args = ["--prometheus", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path / "r.html")]
    done = subprocess.run(
        [sys.executable, "-m", "slaprobe", "report", "--config", str(stack.config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: report: cannot reach Prometheus at http://127.0.0.1:")
    assert not (tmp_path / "r.html").exists()
