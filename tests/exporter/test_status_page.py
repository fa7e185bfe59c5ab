"""The status page as a real ``serve`` answers it over loopback: availability since start,
the day's dial-test progress, runs that passed only on retry, the log and ticket sources,
auto-refresh, and every target-controlled text escaped."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from slaprobe.exporter.status import planned_today, readable_span
from slaprobe.schedule import CronExpression, Schedule
from tests.conftest import free_port

SECRET = "st4tus-page-s3cret"


class _Target(http.server.BaseHTTPRequestHandler):
    """/ok answers 200; /flaky fails every other request (a retry passes); /broken answers 503 with markup."""

    calls = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path.startswith("/flaky"):
            with _Target.lock:
                _Target.calls += 1
                failing = _Target.calls % 2 == 1
            self._answer(503 if failing else 200, b"busy" if failing else b"ok")
        elif self.path.startswith("/broken"):
            self._answer(503, b"<script>alert(1)</script>")
        else:
            self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def nginx(status: int) -> str:
    return f'10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" {status} 512 "-" "curl/8.5" 0.120\n'


@pytest.fixture
def page(tmp_path: Path, target: str) -> dict[str, str]:
    """The status page (default, ``?refresh=0``, ``?refresh=5``) of a serve that probed and read its sources."""
    access = tmp_path / "access.log"
    tickets = tmp_path / "tickets.jsonl"
    access.write_text(nginx(200) + nginx(500) + "garbage <b>line</b>\n")
    opened = {"id": "T-1", "event": "opened", "category": "technical", "time": time.time() - 3 * 86400}
    tickets.write_text(json.dumps(opened) + "\n")  # 3 days old: both deadlines passed
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        f"""version: v1
global: {{interval: 1s, timeout: 500ms, location: lab}}
services:
  shop:
    tier: critical
    sla: {{window: 30d, availability: 99.9}}
    probes:
      - {{name: home, http: {{url: '{target}/ok?key=${{env:PAGE_SECRET}}'}}}}
      - {{name: flaky, retries: 1, http: {{url: '{target}/flaky'}}}}
      - {{name: broken, http: {{url: '{target}/broken'}}}}
    logs:
      - {{path: '{access}', format: nginx_combined, start: beginning}}
feedback:
  - name: desk
    path: '{tickets}'
    service: shop
    sla: {{technical: {{first_response: 24h, resolution: 48h}}}}
"""
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PAGE_SECRET": SECRET, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    pages: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 60
        text = ""
        while True:  # every probe ran twice, the flaky one passed on its retry, the sources were read
            try:
                text = requests.get(f"{base}/", timeout=5).text
                runs = re.findall(r"% of (\d+)(?:<br>|</td>)", text)
                if "UP on retry" in text and "1 open" in text and len(runs) == 3 and all(int(n) >= 2 for n in runs):
                    break
            except requests.RequestException:  # not up yet, or slow to answer on a busy machine
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (
                f"serve did not show every probe twice: {text[-3000:]}"
            )
            time.sleep(0.1)
        pages["default"] = requests.get(f"{base}/", timeout=5).text
        pages["off"] = requests.get(f"{base}/", params={"refresh": "0"}, timeout=5).text
        pages["five"] = requests.get(f"{base}/", params={"refresh": "5"}, timeout=5).text
        pages["junk"] = requests.get(f"{base}/", params={"refresh": '"><script>'}, timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    return pages


def test_the_page_refreshes_itself_every_30_seconds_unless_told_otherwise(page: dict[str, str]) -> None:
    assert '<meta http-equiv="refresh" content="30">' in page["default"]
    assert 'http-equiv="refresh"' not in page["off"] and "Auto-refresh off" in page["off"]
    assert '<meta http-equiv="refresh" content="5">' in page["five"]
    assert '<meta http-equiv="refresh" content="30">' in page["junk"] and "<script>" not in page["junk"]


def test_availability_is_given_from_the_exporters_own_counters_since_start(page: dict[str, str]) -> None:
    text = page["default"]
    assert "Availability: <b>" in text
    assert "the exporter's own counters since it started" in text
    assert "of the 30d SLA window" in text
    assert "target 99.9%" in text
    assert "availability since start" in text


def test_a_run_that_passed_only_on_retry_is_shown_as_such(page: dict[str, str]) -> None:
    text = page["default"]
    assert "UP on retry" in text and "first attempt failed: <code>http_status</code>" in text
    assert 'class="retry"' in text and "ok on retry (first attempt: http_status)" in text
    assert re.search(r"\d+ passed on retry", text)
    assert re.search(r"\d+ passed only on retry", text)


def test_the_days_dial_test_progress_counts_planned_against_done(page: dict[str, str]) -> None:
    match = re.search(r"Dial tests today: <b class=\"\w+\">(\d+) of (\d+)</b> planned runs done", page["default"])
    assert match is not None
    done, planned = int(match[1]), int(match[2])
    assert done >= 6 and planned >= 3
    assert "planned from the schedule" in page["default"]


def test_the_log_and_ticket_sources_show_their_lines_lag_and_open_tickets(page: dict[str, str]) -> None:
    text = page["default"]
    assert "<h2>Log and ticket sources</h2>" in text
    row = re.search(r"<tr><td><code>[^<]*access[^<]*</code></td><td>log</td><td>shop</td>.*?</tr>", text)
    assert row is not None
    assert '<td>2</td><td class="behind">1 (33.3%)</td><td>caught up</td>' in row[0]
    desk = re.search(r"<tr><td><code>desk</code></td><td>tickets</td><td>shop</td>.*?</tr>", text)
    assert desk is not None and "1 open, 2 deadline breaches" in desk[0]


def test_target_text_is_escaped_and_secrets_never_shown(page: dict[str, str]) -> None:
    for text in page.values():
        assert "<script>" not in text and "<b>line</b>" not in text
        assert SECRET not in text


def test_runs_planned_today_follow_the_schedule_from_midnight_or_the_start() -> None:
    midnight = dt.datetime(2026, 12, 4, tzinfo=dt.UTC).timestamp()
    every_minute = Schedule(interval=60.0, offset=0.0)
    assert planned_today(every_minute, since=0.0, now=midnight + 3600) == 61  # 00:00 .. 01:00 inclusive
    assert planned_today(every_minute, since=midnight + 1800, now=midnight + 3600) == 31  # started at 00:30
    assert planned_today(every_minute, since=midnight + 7200, now=midnight + 3600) == 0
    hourly_cron = Schedule(interval=60.0, cron=CronExpression.parse("0 * * * *"))
    assert planned_today(hourly_cron, since=0.0, now=midnight + 3 * 3600 + 5) == 4  # 00:00, 01:00, 02:00, 03:00


def test_the_share_of_the_window_covered_reads_in_the_largest_fitting_unit() -> None:
    assert [readable_span(s) for s in (7, 90, 5400, 86400, 30 * 86400)] == ["7s", "2m", "1.5h", "1d", "30d"]


def test_each_service_shows_its_sla_window_today_and_budget_left_from_the_exporters_counters(
    page: dict[str, str],
) -> None:
    text = page["default"]
    assert "availability, 30d SLA window" in text and "availability today" in text
    assert "error budget left" in text and "target 99.9%" in text
    assert re.search(r"\d+[smh] of 30d counted", text)  # the exporter ran for a moment of the window


def test_the_last_24_hours_show_as_a_strip_of_hourly_cells(page: dict[str, str]) -> None:
    strip = re.search(r'<div class="strip"[^>]*>(.*?)</div>', page["default"])
    assert strip is not None
    cells = re.findall(r'<span class="(h-\w+)" title="([^"]*)"', strip[1])
    assert len(cells) == 24
    assert cells[-1][0] in ("h-ok", "h-warn", "h-bad") and "runs" in cells[-1][1]  # this hour has runs
    assert all(css == "h-none" for css, _ in cells[:-2])  # before the exporter started: nothing


def _rendered(now: float, *, maintained: bool) -> str:
    from slaprobe.config import parse_config
    from slaprobe.exporter.hours import Hours
    from slaprobe.exporter.runtime import ReloadStatus
    from slaprobe.exporter.status import render_status_page
    from slaprobe.exporter.store import ProbeMeta, ResultStore
    from slaprobe.probes.result import FailureReason, ProbeResult

    cfg = parse_config(
        "version: v1\nservices:\n  shop:\n    sla: {window: 1d, availability: 99}\n"
        "    probes: [{name: home, http: {url: 'http://127.0.0.1:1/'}}]\n"
    )
    store = ResultStore()
    store.sync([ProbeMeta("shop", "home", "http", "http://127.0.0.1:1/", "default", 30, 10, (1.0,), None)])
    hours = Hours()
    hours.sync([("shop", 86400.0)])
    for i in range(100):  # over the last 4 hours: 100 runs, 2 failed
        when = now - 4 * 3600 + i * 144
        ok = i not in (10, 90)
        store.record(("shop", "home"), ProbeResult(ok, 0.1, None if ok else FailureReason.CONNECT), now=when)
        hours.record("shop", not ok, when, day=1)
    return render_status_page(
        cfg,
        store.series(),
        ReloadStatus(successful=True, last_success=now),
        now=now,
        today=1,
        started=now - 4 * 3600,
        hours=hours,
        in_maintenance=lambda service, _now: maintained and service == "shop",
    )


def test_the_budget_left_is_the_share_of_allowed_failures_not_yet_spent() -> None:
    text = _rendered(1_800_000_000.0, maintained=False)
    assert '<b class="down">98.00%</b><small>4h of 1d counted</small>' in text  # below the 99% target
    assert '<small>error budget left</small><b class="down">-100%</b>' in text  # 2% failed of 1% allowed
    assert "Maintenance window open" not in text


def test_an_open_maintenance_window_shows_a_banner_over_the_service() -> None:
    text = _rendered(1_800_000_000.0, maintained=True)
    assert '<div class="banner" role="status"><b>Maintenance window open.</b>' in text
    assert "left out of every availability, budget and compliance figure" in text


def test_the_plan_counter_counts_todays_slots_off_the_request_path() -> None:
    from slaprobe.exporter import status

    midnight = dt.datetime(2026, 12, 5, tzinfo=dt.UTC).timestamp()
    cron = Schedule(interval=60.0, cron=CronExpression.parse("*/5 * * * *"))
    asyncio.run(status.count_plans({("shop", "home"): cron}, since=0.0, now=midnight + 3600))
    remembered = status._PLANNED[cron]
    assert (remembered.start, remembered.now, remembered.count) == (midnight, midnight + 3600, 13)
    # The page, a minute later, walks on from there: the same count as a walk from midnight.
    assert planned_today(cron, since=0.0, now=midnight + 3660) == 13
    assert status._PLANNED[cron].now == midnight + 3660


def test_runs_pushed_from_another_location_show_as_their_own_row_named_after_the_probe() -> None:
    from slaprobe.config import parse_config
    from slaprobe.exporter.runtime import ReloadStatus
    from slaprobe.exporter.status import render_status_page
    from slaprobe.exporter.store import ProbeMeta, ResultStore
    from slaprobe.probes.result import FailureReason, ProbeResult

    cfg = parse_config(
        "version: v1\nservices:\n  shop:\n    sla: {window: 1d, availability: 99}\n"
        "    probes: [{name: app, http: {url: 'http://127.0.0.1:1/'}}]\n"
    )
    store = ResultStore()
    store.sync([ProbeMeta("shop", "app", "http", "http://127.0.0.1:1/", "default", 60, 10, (1.0,), None)])
    store.record(("shop", "app"), ProbeResult(True, 0.2), now=1000)
    branch = store.located(("shop", "app"), "branch-office")
    assert branch is not None
    branch.record(ProbeResult(False, 0.4, FailureReason.REPORTED_DOWN, detail="<b>no signal</b>"), now=1010)
    text = render_status_page(
        cfg, store.series(), ReloadStatus(successful=True), now=1020, remote=store.remote_series()
    )
    local_row, remote_row = re.findall(r'<tr class="probe">.*?</tr>', text)
    assert '<span class="muted">@' not in local_row and 'class="up">UP' in local_row
    assert '<td>app <span class="muted">@ branch-office</span></td>' in remote_row
    assert 'class="down">DOWN' in remote_row and "&lt;b&gt;no signal&lt;/b&gt;" in remote_row
