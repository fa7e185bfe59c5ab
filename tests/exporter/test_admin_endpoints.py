"""Admin endpoints (/-/reload, the webhook) on a real server over loopback: no cross-site
requests, no DNS rebinding, one reload at a time and at most one a second."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest
import requests
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.incidents import WEBHOOK_PATH
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.webconfig import parse_web_config
from tests.conftest import free_port

CONFIG = "version: v1\nservices:\n  a:\n    probes: [{name: p, tcp: {address: '127.0.0.1:9'}}]\n"


def exporter_of(tmp_path: Path) -> Exporter:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(CONFIG)
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful
    return exporter


async def serving(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Exporter]]:
    """A running app (reload rate limit off) at its http://127.0.0.1:port base URL."""
    exporter = exporter_of(tmp_path)
    server = await serving(make_app(exporter, reload_interval=0, allowed_hosts=["slaprobe.example"]))
    yield f"http://127.0.0.1:{server.port}", exporter
    await server.close()


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
)
async def test_a_form_post_to_reload_is_refused_with_415(served, content_type: str) -> None:
    base, _ = served
    async with (
        ClientSession() as session,
        session.post(f"{base}/-/reload", data=b"a=1", headers={"Content-Type": content_type}) as response,
    ):
        assert response.status == 415
        assert "curl -X POST" in await response.text()


async def test_a_cross_site_origin_is_refused_with_403_and_the_own_origin_reloads(served) -> None:
    base, _ = served
    async with ClientSession() as session:
        for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
            async with session.post(f"{base}/-/reload", headers={"Origin": origin}) as response:
                assert response.status == 403, origin
        async with session.post(f"{base}/-/reload", headers={"Sec-Fetch-Site": "cross-site"}) as response:
            assert response.status == 403
        async with session.post(f"{base}/-/reload", headers={"Origin": base}) as response:
            assert response.status == 200
        async with session.post(f"{base}/-/reload") as response:  # curl -X POST
            assert response.status == 200


async def test_a_host_name_not_listed_is_refused_on_admin_endpoints_but_not_on_scrapes(served) -> None:
    base, _ = served
    rebound = {"Host": "attacker.example"}
    async with ClientSession() as session:
        for path in ("/-/reload", WEBHOOK_PATH):
            async with session.post(f"{base}{path}", headers=rebound) as response:
                assert response.status == 421, path
                assert "--allow-host" in await response.text()
        for path in ("/metrics", "/-/healthy", "/-/ready"):
            async with session.get(f"{base}{path}", headers=rebound) as response:
                assert response.status == 200, path
        for host in ("slaprobe.example:9799", "SLAPROBE.example.", "localhost:9799", "127.0.0.1", "[::1]:9799"):
            async with session.post(f"{base}/-/reload", headers={"Host": host}) as response:
                assert response.status == 200, host


async def test_two_concurrent_reloads_are_serialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = exporter_of(tmp_path)
    server = await serving(make_app(exporter, reload_interval=0))
    base = f"http://127.0.0.1:{server.port}"
    release = threading.Event()
    inside = threading.Semaphore(0)
    plan = exporter._plan_sources
    at_once = [0, 0]  # now, most

    def slow_plan():  # runs in reload_async's thread: the first reload is held here
        at_once[0] += 1
        at_once[1] = max(at_once)
        inside.release()
        release.wait(10)
        try:
            return plan()
        finally:
            at_once[0] -= 1

    monkeypatch.setattr(exporter, "_plan_sources", slow_plan)
    try:
        async with ClientSession() as session:
            first = asyncio.ensure_future(session.post(f"{base}/-/reload"))
            await asyncio.to_thread(inside.acquire, True, 10)
            async with session.post(f"{base}/-/reload") as second:
                assert second.status == 429
                assert "a reload is running" in await second.text()
                assert int(second.headers["Retry-After"]) >= 1
            release.set()
            async with await first as response:
                assert response.status == 200
            async with session.post(f"{base}/-/reload") as after:  # the gate is open again
                assert after.status == 200
        assert at_once[1] == 1
    finally:
        release.set()
        await server.close()


async def test_a_burst_of_ten_reloads_gets_429s_while_healthy_keeps_answering(tmp_path: Path) -> None:
    exporter = exporter_of(tmp_path)
    server = await serving(make_app(exporter, reload_interval=60))
    base = f"http://127.0.0.1:{server.port}"
    async with ClientSession() as session:

        async def post() -> tuple[int, str | None]:
            async with session.post(f"{base}/-/reload") as response:
                return response.status, response.headers.get("Retry-After")

        async def healthy() -> int:
            async with session.get(f"{base}/-/healthy") as response:
                return response.status

        burst = asyncio.gather(*(post() for _ in range(10)))
        probes = asyncio.gather(*(healthy() for _ in range(10)))  # sent alongside the burst
        reloads, health = await burst, await probes
    await server.close()
    assert sorted(status for status, _ in reloads) == [200] + [429] * 9
    assert all(retry is not None and 1 <= int(retry) <= 60 for status, retry in reloads if status == 429)
    assert health == [200] * 10


async def test_sighup_reloads_go_through_the_same_gate_and_a_signal_too_soon_runs_once_later(tmp_path: Path) -> None:
    from slaprobe.exporter.app import RELOAD_GATE_KEY

    exporter = exporter_of(tmp_path)
    app = make_app(exporter, reload_interval=0.3)
    server = await serving(app)
    gate = app[RELOAD_GATE_KEY]
    calls = 0
    reload = exporter.reload_async

    async def counted():
        nonlocal calls
        calls += 1
        return await reload()

    gate._reload = counted
    try:
        for _ in range(5):
            gate.signal()  # the first runs now, the other four join one trailing reload
        async with ClientSession() as session, session.post(f"http://127.0.0.1:{server.port}/-/reload") as response:
            assert response.status == 429
        for _ in range(200):
            if calls == 2 and gate.wait() == 0:
                break
            await asyncio.sleep(0.02)
        assert calls == 2
    finally:
        await server.close()


async def test_web_config_basic_auth_can_guard_the_admin_endpoints_alone(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web_config = parse_web_config(
        {"basic_auth_users": {"admin": hashed}, "auth_excluded_paths": ["/metrics", "/-/ready", "/", "/probe"]},
        base=tmp_path,
    )
    exporter = exporter_of(tmp_path)
    app = make_app(exporter, reload_interval=0, middlewares=[web_config.middleware(exempt=("/-/healthy",))])
    server = await serving(app)
    base = f"http://127.0.0.1:{server.port}"
    good = {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
    try:
        async with ClientSession() as session:
            for path in ("/metrics", "/-/healthy", "/-/ready"):
                async with session.get(f"{base}{path}") as response:
                    assert response.status == 200, path
            async with session.post(f"{base}/-/reload") as response:
                assert response.status == 401
            async with session.post(f"{base}/-/reload", headers=good) as response:
                assert response.status == 200
    finally:
        await server.close()


async def test_the_host_of_the_configured_webhook_url_is_accepted_without_listing_it(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        CONFIG + "alertmanager: {url: 'http://127.0.0.1:9', poll_interval: 1h, "
        "webhook_url: 'http://slaprobe.monitoring.svc:9799/alertmanager/webhook', "
        "webhook_auth: {bearer_token: t0ken}}\n"
    )
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful
    server = await serving(make_app(exporter, reload_interval=0))
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with ClientSession() as session:
            named = {"Host": "slaprobe.monitoring.svc:9799", "Authorization": "Bearer t0ken"}
            async with session.post(f"{base}{WEBHOOK_PATH}", json={"alerts": []}, headers=named) as response:
                assert response.status == 200
            async with session.post(f"{base}/-/reload", headers={"Host": "slaprobe.monitoring.svc"}) as response:
                assert response.status == 200
            async with session.post(f"{base}{WEBHOOK_PATH}", headers={"Host": "other.example"}) as response:
                assert response.status == 421
            async with session.get(f"{base}/metrics") as response:
                assert 'slaprobe_alertmanager_webhook_refused_total{reason="cross_site"} 1' in await response.text()
    finally:
        await server.close()


def test_serve_takes_the_allowed_host_names_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(CONFIG)
    port = free_port()
    command = [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen([*command, "--allow-host", "slaprobe.example, exporter.example"], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        assert requests.post(f"{base}/-/reload", headers={"Host": "exporter.example"}, timeout=5).status_code == 200
        assert requests.post(f"{base}/-/reload", headers={"Host": "rebound.example"}, timeout=5).status_code == 421
        assert requests.get(f"{base}/metrics", headers={"Host": "rebound.example"}, timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{base}/-/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "serve did not become ready"
        time.sleep(0.05)
