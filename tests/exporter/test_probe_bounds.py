"""/probe has bounds: per host and port, never itself, a concurrency limit, flows only on opt-in.

Each test runs slaprobe's web application on a real loopback socket (as ``serve`` does)
and talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
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
    tmp_path.mkdir(exist_ok=True)
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


async def test_ports_in_global_probe_allow_are_read_from_the_config(
    tmp_path: Path, loopback: Start, target: str
) -> None:
    port = target.rsplit(":", 1)[1]
    ping = "      - {name: ping, icmp: {host: 127.0.0.9}}\n"
    base = await slaprobe(tmp_path, loopback, ping, global_=f", probe_allow: ['127.0.0.0/8:{port}']")
    status, text = await get(f"{base}/probe", target=f"{target}/")
    assert status == 200 and "probe_success 1" in text
    status, _ = await get(f"{base}/probe", target=f"http://127.0.0.1:{free_port()}/")
    assert status == 403


@pytest.fixture
async def hanging(loopback: Callable[[web.Application, int | None], Awaitable[str]]) -> AsyncIterator[Hanging]:
    """An HTTP server whose /hang answers only when released; /ok answers at once."""
    server = Hanging()
    app = web.Application()
    app.router.add_get("/hang", server.hang)
    app.router.add_get("/ok", server.ok)
    server.base = await loopback(app, None)
    yield server
    server.release.set()


class Hanging:
    def __init__(self) -> None:
        self.base = ""
        self.waiting = 0
        self.served = 0
        self.release = asyncio.Event()

    async def hang(self, _request: web.Request) -> web.Response:
        self.waiting += 1
        await self.release.wait()
        return web.Response(text="late")

    async def ok(self, _request: web.Request) -> web.Response:
        self.served += 1
        return web.Response(text="ok")


async def poll(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_probe_requests_beyond_the_limit_get_503_and_scheduled_probes_keep_running(
    tmp_path: Path, loopback: Start, hanging: Hanging
) -> None:
    probes = f"      - {{name: ok, interval: 200ms, timeout: 150ms, http: {{url: '{hanging.base}/ok'}}}}\n"
    base = await slaprobe(tmp_path, loopback, probes, global_=", probe_concurrency: 3, concurrency: 1")
    async with aiohttp.ClientSession() as session:

        async def hang() -> int:
            async with session.get(f"{base}/probe", params={"target": f"{hanging.base}/hang"}) as response:
                return response.status

        held = [asyncio.create_task(hang()) for _ in range(3)]
        await poll(lambda: hanging.waiting == 3)
        async with session.get(f"{base}/probe", params={"target": f"{hanging.base}/ok"}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert await response.text() == (
                "too many /probe requests in flight (global.probe_concurrency: 3); retry later\n"
            )
        # The scheduler's one slot is not /probe's: the scheduled probe runs and succeeds meanwhile.
        served = hanging.served
        await poll(lambda: hanging.served >= served + 2)
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert 'slaprobe_probe_success{service="shop",probe="ok",location="default"} 1' in metrics
        hanging.release.set()
        assert await asyncio.gather(*held) == [200, 200, 200]
        async with session.get(f"{base}/probe", params={"target": f"{hanging.base}/ok"}) as response:
            assert response.status == 200  # the slots are free again


FLOW = """\
      - name: login
        flow:
          steps:
            - {{name: home, http: {{url: '{target}/'}}}}
"""


async def test_a_configured_flow_runs_through_probe_only_when_the_config_opts_in(
    tmp_path: Path, loopback: Start, target: str
) -> None:
    closed = await slaprobe(tmp_path / "off", loopback, FLOW.format(target=target))
    status, text = await get(f"{closed}/probe", module="shop/login")
    assert status == 403
    assert text == "shop/login is a flow (real logins): set global.probe_flows: true to run it\n"

    opened = await slaprobe(tmp_path / "on", loopback, FLOW.format(target=target), global_=", probe_flows: true")
    status, text = await get(f"{opened}/probe", module="shop/login")
    assert status == 200 and "probe_success 1" in text
