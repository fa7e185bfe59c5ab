"""Reload storms: 100 reloads in a row, good and bad alternating, while probes run."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.scheduler import Job, Scheduler
from slaprobe.schedule import Schedule
from tests.support.faults import FaultServer

RELOADS = 100
SERIES = re.compile(r'^(slaprobe_probe_\w+)\{service="(\w+)",probe="([\w-]+)",location="[^"]*"\} (\S+)$', re.M)


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def good_config(faults: FaultServer, variant: str) -> str:
    """Variant a has a probe that b lacks; ``edited`` differs between them; ``steady`` never changes."""
    extra = f"      - {{name: only-in-a, http: {{url: '{faults.url('ok')}'}}}}\n" if variant == "a" else ""
    return (
        "version: v1\nglobal: {interval: 300ms, timeout: 250ms, location: storm}\n"
        "services:\n  shop:\n    probes:\n"
        f"      - {{name: steady, http: {{url: '{faults.url('ok')}'}}}}\n"
        f"      - {{name: failing, http: {{url: '{faults.url('status', code='503')}'}}}}\n"
        f"      - {{name: edited, http: {{url: '{faults.url('ok', variant=variant)}'}}}}\n" + extra
    )


BAD_CONFIGS = (
    "version: v1\nservices: [",  # not YAML
    "version: v1\nservices:\n  shop:\n    tier: none\n",  # not a tier
    "version: v2\n",  # unknown version
    "version: v1\nglobal: {interval: soon}\n",  # not a duration
)


def counters(text: str) -> dict[tuple[str, str, str], float]:
    """(metric, service, probe) -> value of every unlabelled-beyond-the-key probe series."""
    return {(m, s, p): float(v) for m, s, p, v in SERIES.findall(text)}


@pytest.fixture
async def storm(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Exporter, Path, FaultServer]]:
    async with FaultServer(tls=False, dns=False) as faults:
        config = tmp_path / "slaprobe.yaml"
        config.write_text(good_config(faults, "a"))
        exporter = Exporter(Sources(config=str(config)))
        assert exporter.reload().successful
        client = TestClient(TestServer(make_app(exporter, reload_interval=0), host="127.0.0.1"))
        await client.start_server()
        try:
            yield client, exporter, config, faults
        finally:
            await client.close()


async def test_a_hundred_reloads_alternating_good_and_bad_lose_no_counter_and_leave_no_stale_series(storm) -> None:
    client, exporter, config, faults = storm
    await until(lambda: all(s.runs >= 1 for s in exporter.store.series()))
    last: dict[tuple[str, str, str], float] = {}
    last_good = "a"
    for i in range(RELOADS):
        good = i % 2 == 0
        if good:
            last_good = "b" if (i // 2) % 2 == 0 else "a"
            config.write_text(good_config(faults, last_good))
        else:
            config.write_text(BAD_CONFIGS[(i // 2) % len(BAD_CONFIGS)])
        response = await client.post("/-/reload")
        assert response.status == (200 if good else 500), await response.text()
        text = await (await client.get("/metrics")).text()
        now = counters(text)
        # No stale series: the probe only variant a has is there exactly while a runs.
        assert ('probe="only-in-a"' in text) == (last_good == "a"), (i, last_good)
        assert f"slaprobe_config_last_reload_successful {int(good)}" in text
        # No lost counters: what an unchanged probe counted never goes down.
        for key in ("slaprobe_probe_runs_total", "slaprobe_probe_planned_runs_total"):
            for probe in ("steady", "failing"):
                series = (key, "shop", probe)
                assert now.get(series, 0) >= last.get(series, 0), (i, series, now.get(series), last.get(series))
                last[series] = now[series]
        if i % 10 == 9:  # let the probes run between bursts of reloads
            runs = exporter.store.get(("shop", "steady")).runs
            await until(lambda: exporter.store.get(("shop", "steady")).runs > runs)  # noqa: B023 (awaited at once)

    # The last good config (variant a: the hundredth reload was bad) is the one running.
    assert last_good == "a" and not exporter.status.successful
    assert [s.meta.probe for s in exporter.store.series()] == ["steady", "failing", "edited", "only-in-a"]
    edited = exporter.store.get(("shop", "edited"))
    assert edited is not None and "variant=a" in edited.meta.target
    # Probes keep running on schedule after the storm: no run missed, none duplicated.
    steady = exporter.store.get(("shop", "steady"))
    assert steady is not None
    runs = steady.runs
    await until(lambda: steady.runs >= runs + 3)
    scheduler = exporter.scheduler
    assert scheduler is not None
    assert scheduler.stats.missed == 0, scheduler.stats
    # Every slot ran once: planned slots are the runs plus at most the one in flight.
    assert 0 <= steady.planned - steady.runs <= 1, (steady.planned, steady.runs)
    failing = exporter.store.get(("shop", "failing"))
    assert failing is not None and failing.failures["http_status"] == failing.runs


async def test_an_edit_reverted_before_the_next_slot_does_not_run_the_job_twice_per_slot() -> None:
    slots = runs = 0

    def on_slot() -> None:
        nonlocal slots
        slots += 1

    async def run() -> None:
        nonlocal runs
        runs += 1

    scheduler = Scheduler(8)
    original = Job("probe", Schedule(0.2, 0.0), run, version=1, on_slot=on_slot)
    edited = Job("probe", Schedule(0.2, 0.0), run, version=2, on_slot=on_slot)
    scheduler.set_jobs([original])
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(5):  # edit and revert, all within one interval
            scheduler.set_jobs([edited])
            scheduler.set_jobs([original])
        await until(lambda: slots >= 5)
        await until(lambda: scheduler.running() == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert scheduler.stats.missed_overrun == 0
    assert runs == slots
