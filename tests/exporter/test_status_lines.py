"""The status page's per-service lines, rendered in-process: availability counts what the
SLI counts, and the runs planned today follow the schedule across cached page views."""

from __future__ import annotations

import datetime as dt
import re

from slaprobe.config import Service
from slaprobe.dashboards.panels import compliance_target
from slaprobe.exporter.status import _PLANNED, _availability_line, _compliance_line, planned_today
from slaprobe.exporter.store import ProbeMeta, ProbeSeries
from slaprobe.model import SLA
from slaprobe.probes.result import FailureReason, ProbeResult
from slaprobe.schedule import CronExpression, Schedule

OK = ProbeResult(success=True, duration=0.05)
DOWN = ProbeResult(success=False, duration=0.05, reason=FailureReason.HTTP_STATUS)


def series() -> ProbeSeries:
    return ProbeSeries(
        ProbeMeta(
            service="shop", probe="home", kind="http", target="http://127.0.0.1/", location="lab",
            interval=30.0, timeout=10.0, buckets=(0.1, 1.0), latency_threshold=1.0,
        )
    )  # fmt: skip


def test_availability_counts_a_run_that_passed_only_on_retry_as_failed_like_the_sli() -> None:
    home = series()
    for _ in range(98):
        home.record(OK, 1.0)
    home.record(OK, 2.0, first_attempt=FailureReason.HTTP_STATUS)  # a user saw this one fail
    home.record(DOWN, 3.0)
    line = _availability_line([home], Service(sla=SLA(availability=98.5)), since=0.0, now=10.0)
    assert "<b>98.000%</b> (98 of 100 runs)" in line
    assert re.search(r'class="down">target 98\.5%', line), "the SLO burns, so the page must not show green"
    assert "1 passed only on retry" in line


def test_the_page_and_the_dashboards_read_one_compliance_target_in_their_own_unit() -> None:
    home = series()
    home.record(OK, 1.0, day=7)
    for sla, percent in ((SLA(availability=99.5), 99.5), (SLA(availability=99.5, compliance=98.0), 98.0)):
        service = Service(sla=sla)
        assert sla.compliance_percent == percent
        assert f"meets the {percent:g}% target" in _compliance_line([home], service, today=7)
        assert compliance_target(service) == percent / 100  # the dashboards' thresholds are ratios


def test_runs_planned_today_stay_right_across_a_remembered_count_and_a_new_day() -> None:
    midnight = dt.datetime(2026, 12, 4, tzinfo=dt.UTC).timestamp()
    every_minute = Schedule(interval=60.0, cron=CronExpression.parse("* * * * *"))
    in_hours = Schedule(interval=60.0, cron=CronExpression.parse("*/10 9-17 * * *"))
    _PLANNED.clear()
    assert planned_today(every_minute, since=0.0, now=midnight + 2.5 * 3600) == 151  # 00:00 .. 02:30
    assert every_minute in _PLANNED  # remembered for the next page view
    assert planned_today(every_minute, since=0.0, now=midnight + 2.5 * 3600 + 599) == 160  # extended to 02:39
    assert planned_today(every_minute, since=0.0, now=midnight + 2.5 * 3600 + 600) == 161  # 02:40 itself
    assert planned_today(every_minute, since=0.0, now=midnight + 2.5 * 3600 + 300) == 156  # clock back: afresh
    assert planned_today(every_minute, since=midnight + 3600, now=midnight + 2.5 * 3600) == 91  # a new start
    assert planned_today(every_minute, since=0.0, now=midnight + 86400 + 300) == 6  # the next day: 00:00 .. 00:05
    assert planned_today(in_hours, since=0.0, now=midnight + 12 * 3600) == 19  # 09:00 .. 12:00
    assert planned_today(in_hours, since=0.0, now=midnight + 86399) == 54  # 09:00 .. 17:50
    for now in (midnight + 2.5 * 3600 + 600, midnight + 86400 + 300, midnight + 86399):
        remembered = planned_today(every_minute, since=0.0, now=now)
        _PLANNED.clear()
        assert planned_today(every_minute, since=0.0, now=now) == remembered
