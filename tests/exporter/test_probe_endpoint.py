"""/probe: blackbox-compatible answers, the deadline header, debug output and the SSRF guard."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from tests.conftest import free_port
from tests.support.certs import Authority
from tests.support.dnsserver import DnsServer

BLACKBOX = shutil.which("prometheus-blackbox-exporter")
EXTENSIONS = {"probe_failure_info", "probe_ssl_leaf_cert_expiry"}  # slaprobe's additions to blackbox's set
NEWER_BLACKBOX = {"probe_tls_cipher_info"}  # emitted by blackbox 0.24+, not by Debian's 0.23

MODULES = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4}
  http_tls:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config: {ca_file: CA_FILE}
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip4}
  dns_a:
    prober: dns
    timeout: 5s
    dns: {query_name: shop.test, query_type: A, preferred_ip_protocol: ip4}
"""


def names_and_success(text: str) -> tuple[set[str], float]:
    names = set()
    success = -1.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            if sample.name == "probe_success":
                success = sample.value
    return names - EXTENSIONS - NEWER_BLACKBOX, success


@pytest.fixture
async def targets(authority: Authority, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """An HTTP server, the same over TLS, a TCP listener and a DNS server, all on loopback."""

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def leave(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/hang", hang)
    app.router.add_get("/leave", leave)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    http_port, https_port = free_port(), free_port()
    # 0.0.0.0 so that the redirect target 127.0.0.2 answers too (only loopback is dialled)
    await web.TCPSite(runner, "0.0.0.0", http_port).start()
    cert = authority.issue(tmp_path, hosts=("127.0.0.1", "localhost"))
    await web.TCPSite(runner, "127.0.0.1", https_port, ssl_context=cert.server_context()).start()
    async with DnsServer("127.0.0.1") as dns:
        dns.answer("shop.test.", "A", "127.0.0.1")
        yield {
            "http": f"http://127.0.0.1:{http_port}/",
            "https": f"https://127.0.0.1:{https_port}/",
            "hang": f"http://127.0.0.1:{http_port}/hang",
            "leave": f"http://127.0.0.1:{http_port}/leave",
            "tcp": f"127.0.0.1:{http_port}",
            "dns": dns.address,
            "ca": str(authority.path),
        }
    await runner.cleanup()


def modules_file(tmp_path: Path, ca: str) -> Path:
    path = tmp_path / "blackbox.yml"
    path.write_text(MODULES.replace("CA_FILE", ca))
    return path


async def slaprobe_client(tmp_path: Path, targets: dict[str, str], allow: list[str]) -> TestClient:
    exporter = Exporter(Sources(modules=str(modules_file(tmp_path, targets["ca"]))))
    assert exporter.reload().successful
    client = TestClient(TestServer(make_app(exporter, probe_allow=allow), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
def blackbox(tmp_path: Path, targets: dict[str, str]) -> Iterator[str]:
    if BLACKBOX is None:
        pytest.skip("prometheus-blackbox-exporter is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [BLACKBOX, f"--config.file={modules_file(tmp_path, targets['ca'])}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"{base}/metrics", timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and proc.poll() is None, "blackbox_exporter did not start"
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.peer
@pytest.mark.parametrize(
    ("module", "target"),
    [("http_2xx", "http"), ("http_tls", "https"), ("tcp_connect", "tcp"), ("dns_a", "dns"), ("http_2xx", "hang")],
)
async def test_slaprobe_answers_with_the_same_metric_names_and_success_as_blackbox(
    tmp_path: Path, targets: dict[str, str], blackbox: str, module: str, target: str
) -> None:
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "2"}
    params = {"module": module, "target": targets[target]}
    theirs = await asyncio.to_thread(requests.get, f"{blackbox}/probe", params=params, headers=headers, timeout=10)
    client = await slaprobe_client(tmp_path, targets, ["127.0.0.0/8"])
    try:
        ours = await (await client.get("/probe", params=params, headers=headers)).text()
    finally:
        await client.close()
    their_names, their_success = names_and_success(theirs.text)
    our_names, our_success = names_and_success(ours)
    assert our_success == their_success
    # Debian's blackbox is 0.23; 0.28 also registers probe_failed_due_to_bytes for every tcp probe.
    assert our_names - BLACKBOX_028_ADDS == their_names


BLACKBOX_028_ADDS = {"probe_failed_due_to_bytes"}


async def test_the_scrape_timeout_header_bounds_the_probe(tmp_path: Path, targets: dict[str, str]) -> None:
    client = await slaprobe_client(tmp_path, targets, ["127.0.0.0/8"])
    started = time.monotonic()
    try:
        response = await client.get(
            "/probe", params={"target": targets["hang"]}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}
        )
        text = await response.text()
    finally:
        await client.close()
    assert time.monotonic() - started < 1.4
    assert "probe_success 0" in text and 'probe_failure_info{reason="timeout"} 1' in text


async def test_a_target_outside_config_and_allow_list_is_refused_with_how_to_allow_it(
    tmp_path: Path, targets: dict[str, str]
) -> None:
    client = await slaprobe_client(tmp_path, targets, [])
    try:
        response = await client.get("/probe", params={"target": targets["http"]})
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 403
    assert text.strip() == (
        "target 127.0.0.1 is not in the config or the allow-list; "
        "add it with --probe-allow 127.0.0.1/32 or global.probe_allow"
    )


async def test_a_redirect_that_leaves_the_allow_list_is_refused(tmp_path: Path, targets: dict[str, str]) -> None:
    client = await slaprobe_client(tmp_path, targets, ["127.0.0.1/32"])
    try:
        allowed = await client.get("/probe", params={"target": targets["http"]})
        allowed_text = await allowed.text()
        refused = await client.get("/probe", params={"target": targets["leave"]})
        text = await refused.text()
    finally:
        await client.close()
    assert allowed.status == 200 and "probe_success 1" in allowed_text
    assert refused.status == 403 and "127.0.0.2" in text


async def test_debug_shows_the_probe_log_the_metrics_and_the_module(tmp_path: Path, targets: dict[str, str]) -> None:
    client = await slaprobe_client(tmp_path, targets, ["127.0.0.0/8"])
    try:
        text = await (await client.get("/probe", params={"target": targets["http"], "debug": "true"})).text()
    finally:
        await client.close()
    assert "Logs for the probe:" in text and "Beginning probe" in text
    assert "Metrics that would have been returned:" in text and "probe_success 1" in text
    assert "Module configuration:" in text


async def test_an_unknown_module_is_a_clear_400(tmp_path: Path, targets: dict[str, str]) -> None:
    client = await slaprobe_client(tmp_path, targets, ["127.0.0.0/8"])
    try:
        response = await client.get("/probe", params={"target": targets["http"], "module": "nope"})
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 400 and "nope" in text
