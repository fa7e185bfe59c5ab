"""The exporter's HTTP surface: /metrics, reload, readiness, status page, secrets kept out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from tests.conftest import free_port
from tests.support.served import Serve

SECRET = "s3cr3t-t0ken-value"


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A loopback HTTP service: / answers 200 'Welcome', /broken answers 503 with hostile HTML."""

    async def home(_request: web.Request) -> web.Response:
        return web.Response(text="Welcome")

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="<script>alert(1)</script>")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/broken", broken)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def write_config(path: Path, base: str, *probes: str, interval: str = "1s") -> None:
    body = "\n".join(f"      - {p}" for p in probes)
    path.write_text(
        f"version: v1\nglobal: {{interval: {interval}, timeout: 500ms, location: test}}\n"
        f"services:\n  shop:\n    tier: critical\n    owner: payments\n    probes:\n{body}\n".replace("BASE", base)
    )


@pytest.fixture
async def exporter_client(
    tmp_path: Path, target: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TestClient, Exporter, Path]]:
    monkeypatch.setenv("SHOP_TOKEN", SECRET)
    config = tmp_path / "slaprobe.yaml"
    write_config(
        config,
        target,
        "{name: home, http: {url: 'BASE/', headers: {Authorization: 'Bearer ${env:SHOP_TOKEN}'}, expect: {body_regex: Welcome}}}",
        "{name: broken, http: {url: 'BASE/broken?key=${env:SHOP_TOKEN}'}}",
    )
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful
    # Reloads back to back: the gate's rate limit is tested in test_admin_endpoints.py.
    client = TestClient(TestServer(make_app(exporter, reload_interval=0), host="127.0.0.1"))
    await client.start_server()
    yield client, exporter, config
    await client.close()


async def test_metrics_show_runs_and_failure_reasons_of_scheduled_probes(exporter_client) -> None:
    client, exporter, _ = exporter_client
    await until(lambda: all(s.runs >= 1 for s in exporter.store.series()))
    text = await (await client.get("/metrics")).text()
    assert 'slaprobe_probe_runs_total{service="shop",probe="home",location="test"}' in text
    assert 'slaprobe_probe_failures_total{service="shop",probe="broken",location="test",reason="http_status"}' in text
    assert 'slaprobe_service_info{service="shop",tier="critical",owner="payments"} 1' in text
    assert "slaprobe_config_last_reload_successful 1" in text
    assert "slaprobe_scheduler_lag_seconds_bucket" in text and "process_cpu_seconds_total" in text


async def test_a_bad_reload_is_rejected_and_the_running_config_stays(exporter_client) -> None:
    client, exporter, config = exporter_client
    good = config.read_text()
    config.write_text(good + "  bogus: {tier: none}\n")
    response = await client.post("/-/reload")
    assert response.status == 500
    assert "services.bogus.tier" in await response.text()
    assert [s.meta.probe for s in exporter.store.series()] == ["home", "broken"]
    assert "slaprobe_config_last_reload_successful 0" in await (await client.get("/metrics")).text()
    status = await (await client.get("/")).text()
    assert "The last reload was rejected" in status
    config.write_text(good)
    assert (await client.post("/-/reload")).status == 200


async def test_a_removed_probe_leaves_no_stale_series_and_kept_probes_keep_counting(exporter_client, target) -> None:
    client, exporter, config = exporter_client
    await until(lambda: all(s.runs >= 1 for s in exporter.store.series()))
    runs_before = exporter.store.get(("shop", "home")).runs
    write_config(config, target, "{name: home, http: {url: 'BASE/', expect: {body_regex: Welcome}}}")
    assert (await client.post("/-/reload")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'probe="broken"' not in text
    assert exporter.store.get(("shop", "home")).runs >= runs_before


async def test_reload_only_accepts_post(exporter_client) -> None:
    client, _, _ = exporter_client
    assert (await client.get("/-/reload")).status == 405


async def test_health_and_readiness_answer(exporter_client) -> None:
    client, _, _ = exporter_client
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200


async def test_the_status_page_lists_every_probe_with_its_failure_and_escapes_target_text(exporter_client) -> None:
    client, exporter, _ = exporter_client
    await until(lambda: all(s.runs >= 2 for s in exporter.store.series()))
    page = await (await client.get("/")).text()
    assert "home" in page and "broken" in page and "http_status" in page
    assert "<script>alert" not in page
    assert page.count('class="fail"') >= 2


async def test_secrets_never_appear_in_metrics_status_page_or_reload_errors(exporter_client) -> None:
    client, exporter, config = exporter_client
    await until(lambda: all(s.runs >= 1 for s in exporter.store.series()))
    surfaces = [await (await client.get(path)).text() for path in ("/metrics", "/")]
    config.write_text(config.read_text().replace("'BASE", "'ftp:"))
    surfaces.append(await (await client.post("/-/reload")).text())
    for text in surfaces:
        assert SECRET not in text


def test_serve_reloads_on_sighup_and_keeps_serving_with_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text("version: v1\nservices:\n  a:\n    probes: [{name: p, tcp: {address: '127.0.0.1:9'}}]\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not become ready"
            time.sleep(0.05)
        config.write_text("version: v1\nservices:\n  a:\n    probes: [{name: q, tcp: {address: '127.0.0.1:9'}}]\n")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while 'probe="q"' not in requests.get(f"{base}/metrics", timeout=2).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        config.write_text("version: v1\nservices: [")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "slaprobe_config_last_reload_successful 0" not in requests.get(f"{base}/metrics", timeout=2).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert 'probe="q"' in requests.get(f"{base}/metrics", timeout=2).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out.decode()
    assert b"config rejected, keeping the running one" in out


def test_serve_started_with_a_bad_config_says_no_config_loaded_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text("version: v1\nservices:\n  a:\n    logs: [{name: l, path: /x, format: combined}]\n")
    done = subprocess.run(Serve(tmp_path, args=["--config", str(config)]).argv, capture_output=True, timeout=30)
    out = (done.stdout + done.stderr).decode()
    assert done.returncode == 1, out
    assert "config rejected, no config loaded" in out and "services.a.logs[0].format" in out
    assert "keeping the running one" not in out


async def test_metrics_that_fail_to_render_answer_a_whole_500_not_a_cut_off_200(
    exporter_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, exporter, _ = exporter_client
    await until(lambda: all(s.runs >= 1 for s in exporter.store.series()))

    def broken() -> str:
        raise RuntimeError("a bug in a renderer")

    monkeypatch.setattr(exporter.logs, "render", broken)  # rendered after the probe series
    response = await client.get("/metrics")
    assert response.status == 500
    assert "slaprobe_probe_runs_total" not in await response.text()


async def test_debug_and_error_pages_tell_browsers_not_to_sniff_their_type(exporter_client) -> None:
    client, _, _ = exporter_client
    error = await client.get("/probe")  # no target: 400
    debug = await client.get("/probe", params={"module": "shop/home", "debug": "true"})
    missing = await client.get("/no-such-page")
    assert (error.status, debug.status, missing.status) == (400, 200, 404)
    for response in (error, debug, missing, await client.get("/metrics"), await client.get("/")):
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url
