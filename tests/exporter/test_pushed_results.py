"""Pushed results of remote dial-test agents: a JSON body at /push/<service>/<probe>, counted like a local run."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from slaprobe.exporter import store
from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.result import FailureReason, ProbeResult

TOKEN = "agent-t0ken-0123456789"
NOW = 1_790_000_000.0
CONFIG = f"""version: v1
global: {{location: dc1}}
services:
  shop:
    sla: {{latency: {{threshold: 500ms, target: 99}}}}
    probes:
      - name: mobile
        heartbeat: {{every: 1h, grace: 10m, token: "{TOKEN}"}}
"""
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def exporter_of(tmp_path: Path, text: str = CONFIG) -> Exporter:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "slaprobe.yaml"
    path.write_text(text)
    exporter = Exporter(Sources(config=str(path)), clock=lambda: NOW)
    assert exporter.reload().successful
    return exporter


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Exporter]]:
    exporter = exporter_of(tmp_path)
    server = TestServer(make_app(exporter), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}/push/shop/mobile", exporter
    await server.close()


async def push(url: str, body: Any, **kwargs: Any) -> tuple[int, str]:
    async with ClientSession() as session, session.post(url, json=body, headers=BEARER, **kwargs) as response:
        return response.status, await response.text()


def probe_lines(exporter: Exporter, location: str) -> list[str]:
    """The probe series of one location, its label taken out (to compare two locations' counts)."""
    text = exporter.store.render()
    return [
        line.replace(f',location="{location}"', "") for line in text.splitlines() if f'location="{location}"' in line
    ]


async def test_a_pushed_result_counts_exactly_like_the_same_run_made_here(served, tmp_path: Path) -> None:
    url, exporter = served
    phases = {"resolve": 0.01, "connect": 0.2, "tls": 0.3, "processing": 0.7, "transfer": 0.04}
    body = {
        "success": False,
        "duration": 1.25,
        "phases": phases,
        "reason": "timeout",
        "location": "branch-office",
        "msg": "no answer in 1.25 s",
    }
    assert await push(url, body) == (200, "OK\n")
    assert await push(url, {"success": True, "duration": 0.3, "location": "branch-office"}) == (200, "OK\n")

    local = exporter_of(tmp_path / "local")  # the same two runs, recorded as the scheduler records its own
    local.record(("shop", "mobile"), ProbeResult(False, 1.25, FailureReason.TIMEOUT, "x", phases=phases))
    local.record(("shop", "mobile"), ProbeResult(True, 0.3))
    assert probe_lines(exporter, "branch-office") == probe_lines(local, "dc1")
    assert 'slaprobe_probe_runs_total{service="shop",probe="mobile",location="branch-office"} 2' in (
        exporter.store.render()
    )
    assert 'slaprobe_probe_runs_total{service="shop",probe="mobile",location="dc1"} 0' in exporter.store.render()


async def test_a_push_without_location_is_a_run_here(served) -> None:
    url, exporter = served
    assert await push(url, {"success": True, "duration": 0.1}) == (200, "OK\n")
    series = exporter.store.get(("shop", "mobile"))
    assert series is not None and series.runs == 1 and series.within_sla == 1


async def test_a_pushed_run_inside_a_maintenance_window_is_a_maintenance_run(served) -> None:
    url, exporter = served
    exporter.adhoc.add("shop", NOW - 60, NOW + 3600, "carrier maintenance")
    assert await push(url, {"success": False, "reason": "connect", "location": "phone"}) == (200, "OK\n")
    series = exporter.store.located(("shop", "mobile"), "phone")
    assert series is not None and (series.runs, series.maintenance_runs) == (0, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([True], "the body must be a JSON object"),
        ({}, "success: required, true or false"),
        ({"success": "yes"}, "success: required, true or false"),
        ({"success": True, "duration": -1}, "duration: a finite, non-negative number of seconds"),
        ({"success": True, "duration": "1s"}, "duration: a finite, non-negative number of seconds"),
        ({"success": True, "phases": {"think": 1}}, "phases: unknown phase 'think'"),
        ({"success": True, "phases": [1]}, "phases: an object of seconds by phase"),
        ({"success": True, "phases": {"connect": None}}, "phases.connect: a finite"),
        ({"success": True, "reason": "timeout"}, "reason: only for success: false"),
        ({"success": False, "reason": "internal"}, "reason: one of dns, connect"),
        ({"success": False, "reason": "missed_heartbeat"}, "reason: one of"),
        ({"success": True, "location": "a b"}, "location: 1 to 64 of"),
        ({"success": True, "location": "x" * 65}, "location: 1 to 64 of"),
        ({"success": True, "msg": 5}, "msg: must be text"),
        ({"success": True, "steps": []}, "unknown field 'steps'"),
    ],
)
async def test_a_bad_pushed_result_is_a_400_naming_the_field(served, body: object, message: str) -> None:
    url, exporter = served
    status, text = await push(url, body)
    assert status == 400 and message in text, text
    series = exporter.store.get(("shop", "mobile"))
    assert series is not None and series.runs == 0


async def test_json_that_does_not_parse_query_and_body_together_and_a_big_body_are_refused(served) -> None:
    url, _ = served
    async with ClientSession() as session:
        headers = {**BEARER, "Content-Type": "application/json"}
        async with session.post(url, data=b"{nope", headers=headers) as response:
            assert response.status == 400 and "the body is not JSON" in await response.text()
        async with session.post(url, data=b'{"success": true}', params={"status": "up"}, headers=headers) as r:
            assert r.status == 400 and "not both" in await r.text()
        async with session.post(url, data=b" " * (70 * 1024), headers=headers) as response:
            assert response.status == 413
        async with session.post(url, json={"success": True}) as response:  # no token
            assert response.status == 401


async def test_a_probe_takes_a_bounded_number_of_locations(served, monkeypatch: pytest.MonkeyPatch) -> None:
    url, exporter = served
    monkeypatch.setattr(store, "MAX_REMOTE_LOCATIONS", 2)
    for location in ("a", "b", "dc1"):  # dc1 is the exporter's own: no new series
        assert await push(url, {"success": True, "location": location}) == (200, "OK\n")
    status, text = await push(url, {"success": True, "location": "c"})
    assert status == 400 and "as many locations as it may take" in text
    locations = set(re.findall(r'location="([^"]+)"', exporter.store.render()))
    assert locations == {"dc1", "a", "b"}


async def test_a_reload_keeps_the_remote_locations_counts(served, tmp_path: Path) -> None:
    url, exporter = served
    assert await push(url, {"success": True, "location": "phone"}) == (200, "OK\n")
    (tmp_path / "slaprobe.yaml").write_text(CONFIG.replace("every: 1h", "every: 2h"))
    assert exporter.reload().successful
    series = exporter.store.located(("shop", "mobile"), "phone")
    assert series is not None and series.runs == 1
    (tmp_path / "slaprobe.yaml").write_text("version: v1\n")
    assert exporter.reload().successful
    assert "phone" not in exporter.store.render()
