"""Ad hoc maintenance: POST /-/maintenance opens a window that counts like a planned one, on a fake clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.result import FailureReason, ProbeResult

TOKEN = "maintenance-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = (
    f"version: v1\nglobal: {{maintenance_auth: {{bearer_token: {TOKEN}}}}}\n"
    "services:\n  shop:\n    probes: [{name: db, tcp: {address: '127.0.0.1:9'}}]\n"
)
NOW = dt.datetime(2026, 11, 20, 22, 0, tzinfo=dt.UTC).timestamp()
GAUGE = 'slaprobe_maintenance_active{service="shop"}'


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def exporter_of(tmp_path: Path, clock: Clock, text: str = CONFIG) -> Exporter:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(text)
    exporter = Exporter(Sources(config=str(config)), clock=clock, state_dir=str(tmp_path / "state"))
    assert exporter.reload().successful
    return exporter


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Exporter, Clock]]:
    clock = Clock()
    exporter = exporter_of(tmp_path, clock)
    server = TestServer(make_app(exporter, allowed_hosts=["slaprobe.example"]), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", exporter, clock
    await server.close()


async def gauge(session: ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    return next((line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(GAUGE)), "absent")


async def test_a_posted_window_mutes_the_service_counts_its_runs_apart_and_ends_when_deleted(served) -> None:
    base, exporter, _ = served
    async with ClientSession(headers=AUTH) as session:
        assert await gauge(session, base) == "absent"
        body = {"service": "shop", "duration": "2h", "reason": "db failover"}
        async with session.post(f"{base}/-/maintenance", json=body) as response:
            assert response.status == 201, await response.text()
            window = await response.json()
        assert (window["start"], window["end"], window["reason"]) == (
            "2026-11-20T22:00:00Z",
            "2026-11-21T00:00:00Z",
            "db failover",
        )
        assert await gauge(session, base) == "1"
        exporter.record(("shop", "db"), ProbeResult(False, 0.1, FailureReason.CONNECT, "refused"))
        series = exporter.store.get(("shop", "db"))
        assert series is not None and (series.runs, series.maintenance_runs) == (0, 1)

        async with session.get(f"{base}/-/maintenance") as response:
            listed = await response.json()
        assert [w["id"] for w in listed["windows"]] == [window["id"]]

        async with session.delete(f"{base}/-/maintenance/{window['id']}") as response:
            assert response.status == 204
        assert await gauge(session, base) == "0"
        exporter.record(("shop", "db"), ProbeResult(False, 0.1, FailureReason.CONNECT, "refused"))
        assert (series.runs, series.maintenance_runs) == (1, 1)
        async with session.delete(f"{base}/-/maintenance/{window['id']}") as response:
            assert response.status == 404


async def test_a_window_ends_by_itself_at_its_end(served) -> None:
    base, _, clock = served
    async with ClientSession(headers=AUTH) as session:
        body = {"service": "shop", "start": NOW + 600, "end": "2026-11-20T23:00:00+00:00"}
        async with session.post(f"{base}/-/maintenance", json=body) as response:
            assert response.status == 201
        assert await gauge(session, base) == "0"  # not yet open
        clock.now = NOW + 601
        assert await gauge(session, base) == "1"
        clock.now = NOW + 3600
        assert await gauge(session, base) == "0"
        async with session.get(f"{base}/-/maintenance") as response:
            assert (await response.json())["windows"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "the body must be a JSON object"),
        ({"duration": "1h"}, "service: required"),
        ({"service": "shopp", "duration": "1h"}, "service: no service 'shopp' in the config"),
        ({"service": "shop"}, "give end or duration (one of them)"),
        ({"service": "shop", "duration": "1h", "end": NOW + 60}, "give end or duration (one of them)"),
        ({"service": "shop", "duration": "soon"}, "duration: not a duration: 'soon'"),
        ({"service": "shop", "duration": "0s"}, "duration: must be longer than 0s"),
        ({"service": "shop", "end": "2026-11-21T01:00:00"}, "end: give the UTC offset"),
        ({"service": "shop", "end": "tomorrow"}, "end: not a time: 'tomorrow'"),
        ({"service": "shop", "end": NOW - 60, "start": NOW - 120}, "the window is over already"),
        ({"service": "shop", "duration": "100d"}, "at most 90 days"),
        ({"service": "shop", "duration": "1h", "silence": True}, "unknown field 'silence'"),
        ({"service": "shop", "duration": "1h", "reason": 5}, "reason: must be text"),
    ],
)
async def test_a_bad_window_is_a_400_that_says_why(served, body: object, message: str) -> None:
    base, _, _ = served
    async with ClientSession(headers=AUTH) as session, session.post(f"{base}/-/maintenance", json=body) as response:
        assert response.status == 400
        assert message in await response.text()


async def test_cross_site_and_rebound_requests_are_refused_like_reload(served) -> None:
    base, exporter, _ = served
    body = b'{"service": "shop", "duration": "1h"}'
    async with ClientSession(headers=AUTH) as session:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(f"{base}/-/maintenance", data=body, headers=form) as response:
            assert response.status == 415
        evil = {"Content-Type": "application/json", "Origin": "http://evil.example"}
        async with session.post(f"{base}/-/maintenance", data=body, headers=evil) as response:
            assert response.status == 403
        rebound = {"Content-Type": "application/json", "Host": "attacker.example"}
        async with session.post(f"{base}/-/maintenance", data=body, headers=rebound) as response:
            assert response.status == 421
        async with session.delete(f"{base}/-/maintenance/x", headers={"Host": "attacker.example"}) as response:
            assert response.status == 421
        async with session.post(
            f"{base}/-/maintenance", data=b"x" * 20000, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 413
    assert exporter.adhoc.windows() == []


async def test_windows_survive_a_restart_through_the_state_dir(tmp_path: Path) -> None:
    clock = Clock()
    first = exporter_of(tmp_path, clock)
    window = first.adhoc.add("shop", NOW, NOW + 3600, "kernel update")
    second = exporter_of(tmp_path, clock)
    assert second.adhoc.windows() == [window]
    assert second.in_maintenance("shop")
    clock.now = NOW + 3600
    assert not second.in_maintenance("shop")


async def test_without_maintenance_auth_in_the_config_no_window_can_be_added_or_ended(tmp_path: Path) -> None:
    exporter = exporter_of(
        tmp_path, Clock(), CONFIG.replace(f"global: {{maintenance_auth: {{bearer_token: {TOKEN}}}}}\n", "")
    )
    server = TestServer(make_app(exporter), host="127.0.0.1")
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with ClientSession(headers=AUTH) as session:
            async with session.post(f"{base}/-/maintenance", json={"service": "shop", "duration": "1h"}) as answer:
                assert answer.status == 403
                assert "set global.maintenance_auth in the config" in await answer.text()
            async with session.delete(f"{base}/-/maintenance/x") as answer:
                assert answer.status == 403
            async with session.get(f"{base}/-/maintenance") as answer:
                assert answer.status == 200  # the listing is read-only, like the status page
    finally:
        await server.close()
    assert exporter.adhoc.windows() == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
async def test_a_request_without_the_token_is_a_401_and_changes_nothing(served, headers: dict[str, str]) -> None:
    base, exporter, _ = served
    window = exporter.adhoc.add("shop", NOW, NOW + 3600, "planned by the test")
    async with ClientSession(headers=headers) as session:
        async with session.post(f"{base}/-/maintenance", json={"service": "shop", "duration": "1h"}) as answer:
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert TOKEN not in await answer.text()
        async with session.delete(f"{base}/-/maintenance/{window.id}") as answer:
            assert answer.status == 401
    assert exporter.adhoc.windows() == [window]
