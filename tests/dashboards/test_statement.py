"""The monthly SLA statement: calendar months in the service's zone, maintenance excluded and listed, credits.

The check that matters: a month of runs recorded by the exporter on a fake clock, backfilled
into a real Prometheus on loopback, gives a statement equal to the raw counts minus the
runs inside the maintenance windows.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests
import yaml

from slaprobe.cli import main
from slaprobe.config import Config, load_config
from slaprobe.dashboards.report import (
    PrometheusClient,
    ReportError,
    ServiceReport,
    collect_report,
    render_html,
    render_markdown,
)
from slaprobe.dashboards.statement import (
    Month,
    ServiceMonth,
    Statement,
    collect_statement,
    render_statement_csv,
    render_statement_html,
    render_statement_markdown,
)
from slaprobe.dashboards.windows import AD_HOC, PLANNED, WindowSpan, adhoc_spans, openings
from slaprobe.exporter.maintenance import maintenance_text
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.maintenance import Calendar, MaintenanceWindow
from slaprobe.probes.result import FailureReason, ProbeResult
from slaprobe.schedule import zone
from tests.conftest import free_port

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
UTC = dt.UTC


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_a_month_is_the_calendar_month_in_the_services_zone() -> None:
    assert Month.parse("2026-11").bounds(zone("Asia/Shanghai")) == (ts("2026-10-31T16:00Z"), ts("2026-11-30T16:00Z"))
    start, end = Month.parse("2026-11").bounds(zone("America/New_York"))  # DST ends on 1 November
    assert end - start == 30 * 86400 + 3600
    start, end = Month.parse("2026-12").bounds(zone("UTC"))
    assert (start, end) == (ts("2026-12-01T00:00Z"), ts("2027-01-01T00:00Z"))


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "november", ""])
def test_a_month_that_is_no_month_is_refused(text: str) -> None:
    with pytest.raises(ReportError, match="--month: not a month"):
        Month.parse(text)


def test_a_recurring_window_opens_once_each_week_of_the_month() -> None:
    window = MaintenanceWindow.model_validate(
        {
            "name": "sunday",
            "time_intervals": [
                {"weekdays": ["sunday"], "times": [{"start_time": "02:00", "end_time": "04:00"}], "location": "UTC"}
            ],
        }
    )
    spans = openings(Calendar.of([window], {}), ts("2026-11-01T00:00Z"), ts("2026-12-01T00:00Z"))
    assert [dt.datetime.fromtimestamp(a, UTC).day for a, _ in spans] == [1, 8, 15, 22, 29]
    assert {b - a for a, b in spans} == {7200}


def test_a_one_off_window_is_clipped_to_the_month() -> None:
    window = MaintenanceWindow.model_validate(
        {"name": "move", "start": "2026-11-30T22:00:00Z", "end": "2026-12-01T02:00:00Z"}
    )
    assert openings(Calendar.of([window], {}), ts("2026-11-01T00:00Z"), ts("2026-12-01T00:00Z")) == [
        (ts("2026-11-30T22:00Z"), ts("2026-12-01T00:00Z"))
    ]


def test_the_credit_owed_is_the_highest_tier_the_availability_is_under() -> None:
    cfg = Config.model_validate(
        {
            "version": "v1",
            "services": {
                "shop": {"sla": {"credits": [{"below": 99.9, "percent": 10}, {"below": 99.0, "percent": 25}]}}
            },
        }
    )
    sla = cfg.services["shop"].sla
    assert [sla.credit_for(a) for a in (0.9995, 0.999, 0.995, 0.99, 0.9899, None)] == [0, 0, 10, 10, 25, 0]


def test_ad_hoc_maintenance_is_what_the_gauge_shows_outside_the_planned_windows() -> None:
    planned = [WindowSpan("night", PLANNED, 1000.0, 2000.0, ("shop",))]
    points = [(t, 1.0) for t in range(1100, 2001, 100)] + [(t, 1.0) for t in range(5100, 5601, 100)]
    spans = adhoc_spans({"shop": points}, planned, 100.0)
    assert [(w.kind, w.start, w.end, w.services) for w in spans] == [(AD_HOC, 5000.0, 5600.0, ("shop",))]


def _statement() -> Statement:
    figures = ServiceReport(
        "=shop", "high", "payments", 0.999, 8000, 40, 0.99, 0.999, None, (), (), None, maintenance_runs=48
    )
    month = Month(2026, 11)
    start, end = month.bounds(zone("Asia/Shanghai"))
    window = WindowSpan("db-upgrade", PLANNED, ts("2026-11-20T22:00Z"), ts("2026-11-21T02:00Z"), ("=shop",))
    service = ServiceMonth(figures, "Asia/Shanghai", start, end, 10.0, 2, 4 * 3600)
    return Statement(month, "prometheus:9090", (service,), (window,), 1296.0, 268.0, "Asia/Shanghai", generated=end)


def test_the_csv_has_one_row_per_service_with_the_billing_figures_and_no_formula() -> None:
    rows = list(csv.DictReader(io.StringIO(render_statement_csv(_statement()))))
    assert len(rows) == 1
    row = rows[0]
    assert row["service"] == "'=shop"  # a spreadsheet does not run it
    assert (row["availability_percent"], row["runs"], row["failed_runs"], row["maintenance_runs"]) == (
        "99.5",
        "8000",
        "40",
        "48",
    )
    assert (row["maintenance_windows"], row["maintenance_seconds"], row["credit_percent"]) == ("1", "14400", "10")
    assert row["start"] == "2026-11-01T00:00:00+08:00"


def test_html_and_markdown_list_the_windows_and_the_credit() -> None:
    page = render_statement_html(_statement())
    assert "<h2>Maintenance windows</h2>" in page
    assert "2026-11-21 06:00 CST" in page and "4h" in page and "db-upgrade" in page
    text = render_statement_markdown(_statement())
    assert "| db-upgrade | planned | 2026-11-21 06:00 CST | 2026-11-21 10:00 CST | 4h | =shop |" in text
    assert "| 99.500% | NO |" in text and "| 10% |" in text


# ---------------------------------------------------------------------------- against a real Prometheus

STEP = 300  # seconds between runs, and between scrapes
CONFIG = {
    "version": "v1",
    "global": {
        "location": "lab",
        "timezone": "UTC",
        "maintenance": [
            {
                "name": "sunday-patch",
                "time_intervals": [
                    {
                        "weekdays": ["sunday"],
                        "times": [{"start_time": "03:00", "end_time": "04:00"}],
                        "location": "Asia/Shanghai",
                    }
                ],
            }
        ],
    },
    "services": {
        "shop": {
            "timezone": "Asia/Shanghai",
            "sla": {
                "availability": 99.9,
                "credits": [{"below": 99.9, "percent": 10}, {"below": 99.0, "percent": 25}],
            },
            "maintenance": [{"name": "db-upgrade", "start": "2026-11-20T22:00:00Z", "end": "2026-11-21T02:00:00Z"}],
            "probes": [{"name": "home", "interval": "5m", "http": {"url": "http://127.0.0.1:9/"}}],
        }
    },
}


def _in_windows(t: float) -> bool:
    """The windows of CONFIG, written out by hand: the one-off range, and Sundays 03:00-04:00 in Shanghai."""
    if ts("2026-11-20T22:00Z") <= t < ts("2026-11-21T02:00Z"):
        return True
    local = dt.datetime.fromtimestamp(t, zone("Asia/Shanghai"))
    return local.weekday() == 6 and local.hour == 3


def _fails(index: int, t: float) -> bool:
    return _in_windows(t) or index % 50 == 0  # everything fails in the windows; 2% outside them


def _openmetrics(scrapes: Sequence[tuple[float, str]]) -> str:
    """Scrapes of the exporter's text exposition as one OpenMetrics file for ``promtool tsdb``."""
    families: dict[str, tuple[str, list[tuple[str, float, str]]]] = {}
    current = ""
    for at, text in scrapes:
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                current = name.removesuffix("_total") if kind == "counter" else name
                families.setdefault(current, (kind, []))
            elif line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                families[current][1].append((series, at, value))
    out = []
    for name, (kind, samples) in families.items():
        out.append(f"# TYPE {name} {kind}")
        out += [f"{series} {value} {at:.0f}" for series, at, value in sorted(samples)]
    return "\n".join(out) + "\n# EOF\n"


@contextlib.contextmanager
def _prometheus(tsdb: Path, log: Path) -> Iterator[str]:
    port = free_port()
    (tsdb.parent / "prometheus.yml").write_text("global: {}\n")
    args = [
        str(PROMETHEUS),
        f"--config.file={tsdb.parent / 'prometheus.yml'}",
        f"--storage.tsdb.path={tsdb}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()[-2000:]
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.skipif(not (PROMETHEUS and PROMTOOL), reason="needs prometheus and promtool")
def test_the_months_statement_is_the_raw_counts_minus_the_maintenance_windows(tmp_path: Path) -> None:
    path = tmp_path / "slaprobe.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    now = [0.0]
    exporter = Exporter(Sources(config=str(path)), clock=lambda: now[0])
    assert exporter.reload().successful
    start, end = ts("2026-10-31T16:00Z"), ts("2026-11-30T16:00Z")  # November in Shanghai
    raw_runs = raw_failures = window_runs = window_failures = 0
    scrapes = []
    first, last = int(start - 86400), int(end + 86400)
    for index, grid in enumerate(range(first, last, STEP)):
        now[0] = grid
        scrapes.append((grid, exporter.store.render() + maintenance_text(exporter.calendars, grid)))
        now[0] = t = grid + 30  # the run, after the scrape
        failed = _fails(index, t)
        result = ProbeResult(False, 0.2, FailureReason.CONNECT, "refused") if failed else ProbeResult(True, 0.05)
        exporter.record(("shop", "home"), result, first_attempt=result.reason)
        if start <= t < end:
            raw_runs, raw_failures = raw_runs + 1, raw_failures + failed
            if _in_windows(t):
                window_runs, window_failures = window_runs + 1, window_failures + failed
    (tmp_path / "data.om").write_text(_openmetrics(scrapes))
    tsdb = tmp_path / "tsdb"
    made = subprocess.run(
        [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=768h", "data.om", str(tsdb)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    cfg = load_config(path)

    with _prometheus(tsdb, tmp_path / "prometheus.log") as url:
        statement = collect_statement(cfg, PrometheusClient(url), Month(2026, 11))
        rolling = collect_report(cfg, PrometheusClient(url), "30d", end=end)
        common = ["report", "--config", str(path), "--prometheus", url, "--month", "2026-11"]
        assert main([*common, "--format", "csv", "--out", str(tmp_path / "statement.csv")]) == 0
        assert main([*common, "--out", str(tmp_path / "statement.html")]) == 0

    (shop,) = statement.services
    runs, failures = raw_runs - window_runs, raw_failures - window_failures
    assert window_runs == 48 + 5 * 12  # the 4 h upgrade, five Sunday hours
    assert (shop.figures.runs, shop.figures.failures, shop.figures.maintenance_runs) == (runs, failures, window_runs)
    assert shop.figures.availability == pytest.approx(1 - failures / runs)
    assert shop.figures.compliance == pytest.approx(1 - failures / runs)
    assert shop.credit == 25.0  # 98% is under 99.0: the higher tier
    planned = [(w.name, w.start, w.end) for w in statement.windows if w.kind == PLANNED]
    assert ("db-upgrade", ts("2026-11-20T22:00Z"), ts("2026-11-21T02:00Z")) in planned
    assert sum(1 for name, _, _ in planned if name == "sunday-patch") == 5
    assert [w for w in statement.windows if w.kind == AD_HOC] == []
    assert shop.maintenance_seconds == 4 * 3600 + 5 * 3600
    assert [(w.name, w.start) for w in rolling.windows] == [(w.name, w.start) for w in statement.windows]
    assert rolling.services[0].maintenance_runs == window_runs
    page = render_html(rolling)
    assert '<section id="maintenance"><h2>Maintenance windows</h2>' in page and "db-upgrade" in page
    assert "| db-upgrade | planned | 2026-11-20 22:00:00 UTC | 2026-11-21 02:00:00 UTC | 4h | shop |" in (
        render_markdown(rolling)
    )
    assert (tmp_path / "statement.csv").read_bytes().decode() == render_statement_csv(statement)
    assert "<h2>Maintenance windows</h2>" in (tmp_path / "statement.html").read_text()
    row = next(csv.DictReader(io.StringIO(render_statement_csv(statement))))
    assert (row["runs"], row["failed_runs"], row["maintenance_runs"]) == (str(runs), str(failures), str(window_runs))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--month", "2026-11", "--period", "7d"], "--month is a calendar month: give it without --period and --end"),
        (["--format", "csv"], "--format csv is the monthly statement's: give --month YYYY-MM"),
    ],
)
def test_report_refuses_a_month_with_a_period_and_csv_without_a_month(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    path = tmp_path / "slaprobe.yaml"
    path.write_text("version: v1\n")
    args = ["report", "--config", str(path), "--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path / "x")]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err
