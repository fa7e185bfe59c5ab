"""Secrets (``${env:}``, ``${file:}`` and extracted flow tokens) never reach any output surface."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import free_port

PASSWORD = "pa55-w0rd-from-env"
API_KEY = "k3y-from-a-secret-file"
TOKEN = "t0ken-minted-by-the-server-0123456789"


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """Login hands out TOKEN; the bill answers with the token where a status belongs (so details quote it)."""

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != PASSWORD:
            return web.json_response({"error": "bad password"}, status=401)
        return web.json_response({"token": TOKEN})

    async def bill(request: web.Request) -> web.Response:
        return web.json_response({"status": request.headers.get("Authorization", "").removeprefix("Bearer ")})

    async def keyed(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"bad key {request.query.get('key')}")

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_get("/bill", bill)
    app.router.add_get("/keyed", keyed)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_no_output_surface_shows_a_secret(tmp_path: Path, shop: str) -> None:
    # The shop serves on this test's event loop, so the blocking client part runs in a thread.
    surfaces = await asyncio.to_thread(collect_surfaces, tmp_path, shop)
    assert "step bill" in surfaces["/probe flow debug"]  # the flow really ran and failed where expected
    assert "&lt;secret&gt;" in surfaces["/"] and "<secret>" in surfaces["logs"]  # redacted, then escaped
    for where, text in surfaces.items():
        for secret in (PASSWORD, API_KEY, TOKEN):
            assert secret not in text, f"{secret!r} leaked into {where}"


def collect_surfaces(tmp_path: Path, shop: str) -> dict[str, str]:
    """Run ``slaprobe serve`` against the shop and read every output surface."""
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        f"""version: v1
global: {{interval: 1s, timeout: 900ms, probe_flows: true}}
services:
  billing:
    probes:
      - name: keyed
        http: {{url: '{shop}/keyed?key=${{file:{key_file}}}'}}
      - name: flow
        flow:
          steps:
            - name: login
              http: {{url: '{shop}/login', method: POST, json: {{user: dialer, password: '${{env:SHOP_PASSWORD}}'}}}}
              extract: {{token: {{json: $.token}}}}
            - name: bill
              http: {{url: '{shop}/bill', headers: {{Authorization: 'Bearer ${{token}}'}}}}
              expect: {{json: [{{path: $.status, equals: paid}}]}}
"""
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SHOP_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    surfaces: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = requests.get(f"{base}/metrics", timeout=1).text
                if text.count("slaprobe_probe_last_run_timestamp_seconds{") == 2:  # both probes ran
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not run both probes"
            time.sleep(0.05)
        surfaces["/metrics"] = requests.get(f"{base}/metrics", timeout=5).text
        surfaces["/"] = requests.get(f"{base}/", timeout=5).text
        for probe in ("flow", "keyed"):
            response = requests.get(f"{base}/probe", params={"module": f"billing/{probe}", "debug": "true"}, timeout=5)
            surfaces[f"/probe {probe} debug"] = response.text
        surfaces["/probe keyed"] = requests.get(f"{base}/probe", params={"module": "billing/keyed"}, timeout=5).text
        config.write_text(config.read_text().replace("interval: 1s", "interval: nope"))
        surfaces["/-/reload"] = requests.post(f"{base}/-/reload", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    surfaces["logs"] = out.decode(errors="replace")
    return surfaces
