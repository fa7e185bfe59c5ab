"""/probe has bounds: per host and port, never itself, a concurrency limit, flows only on opt-in.

Each test runs slaprobe's web application on a real loopback socket (as ``serve`` does)
and talks to it over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from tests.conftest import free_port

Start = Callable[..., Awaitable[str]]


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[[web.Application, int | None], Awaitable[str]]]:
    """Serve an application on 127.0.0.1 (at ``port``, or a free one); yields its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, port: int | None = None) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        runners.append(runner)
        port = port or free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def target(loopback: Callable[[web.Application, int | None], Awaitable[str]]) -> str:
    """An HTTP server answering 200 at / and redirecting to ``?to=`` at /go."""

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/go", go)
    return await loopback(app, None)


async def slaprobe(
    tmp_path: Path,
    loopback: Callable[[web.Application, int | None], Awaitable[str]],
    probes: str,
    *,
    allow: list[str] | None = None,
    port: int | None = None,
    global_: str = "",
) -> str:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        f"version: v1\nglobal: {{interval: 1h{global_}}}\nservices:\n  shop:\n    probes:\n{probes}", encoding="utf-8"
    )
    exporter = Exporter(Sources(config=str(config)))
    status = exporter.reload()
    assert status.successful, status.issues
    return await loopback(make_app(exporter, probe_allow=allow or []), port)


async def get(url: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return response.status, await response.text()


async def test_a_configured_host_port_opens_that_port_and_no_other(
    tmp_path: Path, loopback: Start, target: str
) -> None:
    other = await loopback(web.Application(), None)  # a second port of the same address
    base = await slaprobe(tmp_path, loopback, f"      - {{name: home, http: {{url: '{target}/'}}}}\n")

    status, text = await get(f"{base}/probe", target=f"{target}/")
    assert status == 200 and "probe_success 1" in text

    port = other.rsplit(":", 1)[1]
    status, text = await get(f"{base}/probe", target=f"{other}/")
    assert status == 403
    assert text == (
        f"target 127.0.0.1 port {port} is named in the config at port {target.rsplit(':', 1)[1]} only; "
        f"add it with --probe-allow 127.0.0.1/32:{port} or global.probe_allow\n"
    )


async def test_an_allow_list_entry_with_a_port_opens_that_port(tmp_path: Path, loopback: Start, target: str) -> None:
    port = target.rsplit(":", 1)[1]
    base = await slaprobe(
        tmp_path, loopback, "      - {name: ping, icmp: {host: 127.0.0.9}}\n", allow=[f"127.0.0.0/8:{port}"]
    )
    status, text = await get(f"{base}/probe", target=f"{target}/")
    assert status == 200 and "probe_success 1" in text
    status, _ = await get(f"{base}/probe", target=f"http://127.0.0.1:{free_port()}/")
    assert status == 403


async def test_slaprobe_never_probes_its_own_listen_address(tmp_path: Path, loopback: Start) -> None:
    own = free_port()
    base = await slaprobe(tmp_path, loopback, f"      - {{name: self, http: {{url: 'http://127.0.0.1:{own}/'}}}}\n",
                          allow=["127.0.0.0/8"], port=own)  # fmt: skip
    status, text = await get(f"{base}/probe", target=f"{base}/probe?target={base}/")
    assert status == 403
    assert text == f"target 127.0.0.1:{own} is slaprobe's own listen address; /probe never probes itself\n"


async def test_a_redirect_back_into_probe_is_refused_at_the_hop(tmp_path: Path, loopback: Start, target: str) -> None:
    own = free_port()
    base = await slaprobe(tmp_path, loopback, "      - {name: ping, icmp: {host: 127.0.0.9}}\n",
                          allow=["127.0.0.0/8"], port=own)  # fmt: skip
    loop = f"{target}/go?to={base}/probe%3Ftarget%3D{target}/go"
    status, text = await get(f"{base}/probe", target=loop)
    assert status == 403
    assert "is slaprobe's own listen address; /probe never probes itself" in text
