"""Maintenance windows: runs inside are shown and counted apart, never in the SLI counters."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from slaprobe.config import ConfigError, parse_config
from slaprobe.exporter.maintenance import maintenance_text
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.status import render_status_page
from slaprobe.probes.result import FailureReason, ProbeResult
from tests.conftest import free_port

NOW = dt.datetime(2026, 12, 6, 2, 30, tzinfo=dt.UTC)  # a Sunday


def rfc3339(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def config_with(windows: str, *, port: int = 9, global_windows: str = "[]") -> str:
    """A config whose service ``shop`` has these maintenance windows and one TCP probe."""
    return f"""version: v1
global: {{maintenance: {global_windows}}}
time_intervals:
  sunday-night: [{{weekdays: [sunday], times: [{{start_time: "02:00", end_time: "04:00"}}]}}]
services:
  shop:
    maintenance: {windows}
    probes:
      - {{name: db, timeout: 2s, tcp: {{address: "127.0.0.1:{port}"}}}}
  other:
    probes:
      - {{name: db, timeout: 2s, tcp: {{address: "127.0.0.1:{port}"}}}}
"""


def exporter_at(text: str, now: dt.datetime = NOW) -> Exporter:
    exporter = Exporter(Sources(), clock=lambda: now.timestamp())
    exporter.apply(parse_config(text))
    return exporter


def one_off(start: dt.timedelta, end: dt.timedelta) -> str:
    return f"[{{name: upgrade, start: {rfc3339(NOW + start)}, end: '{rfc3339(NOW + end)}'}}]"


HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("windows", "open_now"),
    [
        (one_off(-2 * HOUR, -HOUR), False),  # in the past
        (one_off(-HOUR, HOUR), True),  # now
        (one_off(HOUR, 2 * HOUR), False),  # in the future
        (one_off(-HOUR, dt.timedelta(0)), False),  # ended just now: the end is not inside
        ("[{name: weekly, time_intervals: [sunday-night]}]", True),
        ("[{name: weekly, time_intervals: [{weekdays: [monday]}]}]", False),
    ],
)
def test_a_window_is_open_only_between_its_start_and_end(windows: str, open_now: bool) -> None:
    exporter = exporter_at(config_with(windows))
    assert exporter.in_maintenance("shop") is open_now
    assert not exporter.in_maintenance("other")
    assert maintenance_text(exporter.calendars, NOW.timestamp()).endswith(
        f'slaprobe_maintenance_active{{service="shop"}} {int(open_now)}\n'
    )


def test_global_windows_hold_for_every_service() -> None:
    exporter = exporter_at(config_with("[]", global_windows=one_off(-HOUR, HOUR)))
    assert exporter.in_maintenance("shop") and exporter.in_maintenance("other")


async def test_a_probe_failing_inside_a_window_does_not_move_the_availability_counters() -> None:
    exporter = exporter_at(config_with(one_off(-HOUR, HOUR), port=free_port()))  # nothing listens there
    for job in exporter._jobs:
        job.on_slot()  # type: ignore[misc]
        await job.run()
    inside, outside = exporter.store.get(("shop", "db")), exporter.store.get(("other", "db"))
    assert inside is not None and outside is not None
    assert inside.last is not None and inside.last.reason is FailureReason.CONNECT  # it ran, and is shown
    assert [e.maintenance for e in inside.history] == [True]
    assert (inside.runs, sum(inside.failures.values()), inside.within_sla, inside.planned) == (0, 0, 0, 0)
    assert (inside.durations.count, inside.maintenance_runs) == (0, 1)
    assert (outside.runs, outside.failures["connect"], outside.planned, outside.maintenance_runs) == (1, 1, 1, 0)
    metrics = exporter.store.render()
    assert 'slaprobe_probe_maintenance_runs_total{service="shop",probe="db",location="default"} 1\n' in metrics
    assert 'slaprobe_probe_maintenance_runs_total{service="other"' not in metrics  # it has no windows
    page = render_status_page(exporter.config, exporter.store.series(), exporter.status, now=NOW.timestamp())
    assert "in maintenance (1 runs not counted)" in page and 'class="fail in-maintenance"' in page


def test_pushed_runs_in_a_window_are_maintenance_runs_and_outside_it_are_runs() -> None:
    exporter = exporter_at(config_with(one_off(-HOUR, HOUR)))
    exporter.record(("shop", "db"), ProbeResult(False, 0.0, FailureReason.MISSED_HEARTBEAT, "no ping"))
    later = exporter_at(config_with(one_off(-2 * HOUR, -HOUR)))
    later.record(("shop", "db"), ProbeResult(False, 0.0, FailureReason.MISSED_HEARTBEAT, "no ping"))
    inside, outside = exporter.store.get(("shop", "db")), later.store.get(("shop", "db"))
    assert inside is not None and outside is not None
    assert (inside.runs, inside.maintenance_runs, outside.runs, outside.maintenance_runs) == (0, 1, 1, 0)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        (
            "[{name: w, start: 2026-12-04T02:00:00Z, end: 2026-12-04T01:00:00Z}]",
            "services.shop.maintenance[0]: end (2026-12-04T01:00:00+00:00) must be after start "
            "(2026-12-04T02:00:00+00:00) (line 7)",
        ),
        (
            "[{name: w, start: '2026-12-04T02:00:00', end: 2026-12-04T03:00:00Z}]",
            "services.shop.maintenance[0].start: not an RFC 3339 time with a UTC offset: '2026-12-04T02:00:00' "
            "(e.g. 2026-11-20T22:00:00Z) (line 7)",
        ),
        (
            "[{name: w, start: 2026-12-04T02:00:00Z}]",
            "services.shop.maintenance[0]: a one-off maintenance window needs both start and end (line 7)",
        ),
        (
            "[{name: w}]",
            "services.shop.maintenance[0]: a maintenance window needs start and end (RFC 3339), "
            "or time_intervals (line 7)",
        ),
        (
            "[{name: w, time_intervals: [sunday-nite]}]",
            "services.shop.maintenance[0].time_intervals[0]: unknown time interval 'sunday-nite' "
            "(did you mean 'sunday-night'?) (line 7)",
        ),
        (
            "[{name: w, time_intervals: [{weekdays: [funday]}]}]",
            "services.shop.maintenance[0].time_intervals[0]: weekdays: 'funday' is not a valid range (line 7)",
        ),
        (
            "[{name: w, time_intervals: [sunday-night]}, {name: w, time_intervals: [sunday-night]}]",
            "services.shop.maintenance[1].name: duplicate maintenance window name 'w' (line 7)",
        ),
    ],
)
def test_a_bad_window_gives_exactly_this_message(windows: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(windows))
    assert [str(issue) for issue in caught.value.issues] == [message]


def test_a_window_written_as_an_unquoted_yaml_timestamp_is_read_with_its_offset() -> None:
    exporter = exporter_at(config_with("[{name: w, start: 2026-12-06T03:00:00+01:00, end: 2026-12-06T04:00:00+01:00}]"))
    assert exporter.in_maintenance("shop")
    assert re.search(r"maintenance_active\{service=\"shop\"\} 1", maintenance_text(exporter.calendars, NOW.timestamp()))
