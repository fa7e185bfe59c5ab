"""The running exporter: retries that do not hide failures, degraded runs, planned slots."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.status import render_status_page


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def flaky() -> AsyncIterator[str]:
    """/odd fails every other request; /slow answers after 120 ms."""
    count = 0

    async def odd(_request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        return web.Response(status=503 if count % 2 else 200, text="ok")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.12)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/odd", odd)
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def exporter_for(tmp_path: Path, body: str) -> Exporter:
    config = tmp_path / "slaprobe.yaml"
    config.write_text("version: v1\nglobal: {interval: 1s, timeout: 900ms}\n" + body)
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful, exporter.status.issues
    return exporter


async def test_a_retry_that_succeeds_still_counts_the_first_attempt_as_a_failure(tmp_path: Path, flaky: str) -> None:
    exporter = exporter_for(
        tmp_path,
        f"services:\n  shop:\n    probes:\n      - {{name: odd, retries: 1, http: {{url: '{flaky}/odd'}}}}\n",
    )
    scheduler = exporter.start_scheduler()
    task = asyncio.create_task(scheduler.run())
    series = exporter.store.get(("shop", "odd"))
    assert series is not None
    await until(lambda: series.runs >= 2)
    task.cancel()
    assert sum(series.failures.values()) == 0  # every run succeeded on its retry
    assert series.first_attempt_failures["http_status"] == series.runs  # and every first attempt failed
    text = exporter.store.render()
    assert (
        'slaprobe_probe_first_attempt_failures_total{service="shop",probe="odd",location="default",reason="http_status"}'
        in text
    )


async def test_a_slow_success_counts_as_degraded_and_shows_so_on_the_status_page(tmp_path: Path, flaky: str) -> None:
    exporter = exporter_for(
        tmp_path,
        "services:\n  shop:\n    sla: {availability: 99, compliance: 95}\n    probes:\n"
        f"      - {{name: slow, http: {{url: '{flaky}/slow', expect: {{degraded_duration: 100ms}}}}}}\n",
    )
    scheduler = exporter.start_scheduler()
    task = asyncio.create_task(scheduler.run())
    series = exporter.store.get(("shop", "slow"))
    assert series is not None
    await until(lambda: series.runs >= 1)
    task.cancel()
    assert series.degraded == series.runs and not series.failures
    assert 'slaprobe_probe_degraded_total{service="shop",probe="slow",location="default"} 1' in exporter.store.render()
    page = render_status_page(
        exporter.config, exporter.store.series(), exporter.status, now=time.time(), today=exporter.today()
    )
    assert "DEGRADED" in page
    assert "Compliance today: <b>100.00%</b> (1 of 1 runs within SLA)" in page
    assert "meets the 95% target" in page


async def test_every_slot_that_falls_due_is_a_planned_run(tmp_path: Path, flaky: str) -> None:
    exporter = exporter_for(
        tmp_path,
        f"services:\n  shop:\n    probes:\n      - {{name: odd, interval: 200ms, timeout: 100ms, http: {{url: '{flaky}/odd'}}}}\n",
    )
    scheduler = exporter.start_scheduler()
    task = asyncio.create_task(scheduler.run())
    series = exporter.store.get(("shop", "odd"))
    assert series is not None
    await until(lambda: series.planned >= 3)
    task.cancel()
    assert series.planned >= series.runs >= 2
    assert f'slaprobe_probe_planned_runs_total{{service="shop",probe="odd",location="default"}} {series.planned}' in (
        exporter.store.render()
    )


def test_a_probe_outside_its_window_is_not_scheduled(tmp_path: Path) -> None:
    exporter = exporter_for(
        tmp_path,
        "services:\n  shop:\n    probes:\n      - {name: p, during: [never], icmp: {host: 127.0.0.1}}\n"
        "time_intervals:\n  never: [{years: ['1999']}]\n",
    )
    job = exporter._jobs[0]
    assert job.schedule.next_due(time.time()) == float("inf")


def test_an_unknown_window_name_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        "version: v1\nservices:\n  shop:\n    probes:\n      - {name: p, during: [busines-hours], icmp: {host: x}}\n"
        "time_intervals:\n  business-hours: [{weekdays: ['monday:friday']}]\n"
    )
    status = Exporter(Sources(config=str(config))).reload()
    assert [str(i) for i in status.issues] == [
        "services.shop.probes[0].during: unknown time interval 'busines-hours' (did you mean 'business-hours'?) (line 5)"
    ]


async def test_a_reload_leaves_the_interpreter_switch_interval_as_it_found_it(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.json"
    probe = {"name": "home", "http": {"url": "http://127.0.0.1:9/"}}
    config.write_text(
        json.dumps({"version": "v1", "services": {"shop": {"tier": "low", "owner": "x", "probes": [probe]}}})
    )
    exporter = Exporter(Sources(config=str(config)))
    before = sys.getswitchinterval()
    status = await exporter.reload_async()
    assert status.successful
    assert sys.getswitchinterval() == before
