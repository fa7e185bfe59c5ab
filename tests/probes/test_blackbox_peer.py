"""The probes answer /probe as Debian's blackbox_exporter does, asked the same questions side by side.

Each case runs a module of one module file through blackbox_exporter and through slaprobe's
probe for that module, against the same loopback target, and compares the named series.
Skipped when ``prometheus-blackbox-exporter`` is not installed.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from slaprobe.exporter.blackbox import load_modules, render_probe_metrics
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import ProbeContext
from slaprobe.probes.runner import run_probe
from tests.conftest import free_port
from tests.support.certs import Authority
from tests.support.dnsserver import DnsServer
from tests.support.hosts import hosts

BLACKBOX = shutil.which("prometheus-blackbox-exporter")
pytestmark = pytest.mark.peer

MODULES = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4}
  http_302:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, follow_redirects: false, valid_status_codes: [302]}
  http_ip6_only:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip6, ip_protocol_fallback: false}
  tcp_ip6_only:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip6, ip_protocol_fallback: false}
  dns_ip6_only:
    prober: dns
    timeout: 2s
    dns: {query_name: shop.test, preferred_ip_protocol: ip6, ip_protocol_fallback: false}
  dns_tcp:
    prober: dns
    timeout: 2s
    dns: {query_name: shop.test, preferred_ip_protocol: ip4, transport_protocol: tcp}
  dns_all_match_one:
    prober: dns
    timeout: 2s
    dns:
      query_name: shop.test
      query_type: A
      preferred_ip_protocol: ip4
      validate_answer_rrs: {fail_if_all_match_regexp: ['192\\.0\\.2\\.1$']}
  dns_all_match_every:
    prober: dns
    timeout: 2s
    dns:
      query_name: shop.test
      query_type: A
      preferred_ip_protocol: ip4
      validate_answer_rrs: {fail_if_all_match_regexp: ['\\tA\\t192\\.0\\.2\\.']}
  http_gzip:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, compression: gzip, fail_if_body_not_matches_regexp: ["^Welcome Welcome"]}
  http_as_sent:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, fail_if_body_not_matches_regexp: ["^Welcome Welcome"]}
  http_versions_with_http2:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, valid_http_versions: ["HTTP/1.1", "HTTP/2"]}
  tcp_from_source:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip4, source_ip_address: 127.0.0.2}
  grpc_shop:
    prober: grpc
    timeout: 5s
    grpc: {service: shop, preferred_ip_protocol: ip4}  # metadata: 0.28 only
  grpc_db:
    prober: grpc
    timeout: 5s
    grpc: {service: db, preferred_ip_protocol: ip4}
  grpc_unknown:
    prober: grpc
    timeout: 5s
    grpc: {service: nope, preferred_ip_protocol: ip4}
  http_host_header:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      headers: {Host: shop.example}
      tls_config: {ca_file: CA_FILE}
"""


class _Shop(http.server.BaseHTTPRequestHandler):
    """/204, /ok, /gzip, /redirect (302 to /ok) and /loop (302 to itself)."""

    def do_GET(self) -> None:
        if self.path == "/204":
            self.send_response(204)
            self.end_headers()
        elif self.path == "/gzip":  # compressed whether asked or not
            body = gzip.compress(b"Welcome " * 1000)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path in ("/loop", "/redirect"):
            self.send_response(302)
            self.send_header("Location", "/loop" if self.path == "/loop" else "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 in a thread; yields host:port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tls_shop(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shop over TLS with a certificate for shop.example only; yields host:port."""
    leaf = authority.issue(tmp_path_factory.mktemp("shop-cert"), "shop", hosts=("shop.example",))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    server.socket = leaf.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def modules_file(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Path:
    path = tmp_path_factory.mktemp("peer") / "blackbox.yml"
    path.write_text(MODULES.replace("CA_FILE", str(authority.path)))
    return path


@pytest.fixture(scope="module")
def blackbox(modules_file: Path) -> Iterator[str]:
    """blackbox_exporter on a loopback port with MODULES; yields its base URL."""
    if BLACKBOX is None:
        pytest.skip("prometheus-blackbox-exporter is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [BLACKBOX, f"--config.file={modules_file}", f"--web.listen-address=127.0.0.1:{port}"],
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


def series(text: str) -> dict[str, float]:
    """Every unlabelled sample of an exposition, by name."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def theirs(blackbox: str, module: str, target: str) -> dict[str, float]:
    answer = await asyncio.to_thread(
        requests.get, f"{blackbox}/probe", params={"module": module, "target": target}, timeout=10
    )
    return series(answer.text)


async def ours(modules_file: Path, module_name: str, target: str) -> dict[str, float]:
    module = load_modules(modules_file)[module_name]
    ctx = ProbeContext(timeout=2.0, lookup=hosts())
    result = await run_probe(PROBERS[module.kind], module.spec_for(target), ctx)
    return series(render_probe_metrics(result).decode())


CLOSED = "CLOSED"  # replaced by a port nothing listens on
SHOP = "SHOP"  # replaced by the shop's host:port

CASES = [
    # (module, target, series compared by value)
    ("http_2xx", "http://SHOP/204", ["probe_success", "probe_http_status_code", "probe_http_content_length"]),
    ("http_2xx", "http://127.0.0.1:CLOSED/", ["probe_success", "probe_http_content_length"]),
    ("http_2xx", "http://SHOP/loop", ["probe_success", "probe_http_status_code", "probe_http_redirects"]),
    ("http_302", "http://SHOP/redirect", ["probe_success", "probe_http_status_code", "probe_http_redirects"]),
    ("http_ip6_only", "http://127.0.0.1:CLOSED/", ["probe_success", "probe_ip_protocol", "probe_ip_addr_hash"]),
    (
        "http_gzip",
        "http://SHOP/gzip",
        ["probe_success", "probe_http_uncompressed_body_length", "probe_http_content_length"],
    ),
    (
        "http_as_sent",
        "http://SHOP/gzip",
        ["probe_success", "probe_http_uncompressed_body_length", "probe_http_content_length"],
    ),
    ("tcp_ip6_only", "127.0.0.1:CLOSED", ["probe_success", "probe_ip_protocol", "probe_ip_addr_hash"]),
    (
        "dns_ip6_only",
        "127.0.0.1:CLOSED",
        ["probe_success", "probe_ip_protocol", "probe_ip_addr_hash", "probe_dns_answer_rrs", "probe_dns_authority_rrs"],
    ),
    ("dns_tcp", "127.0.0.1:CLOSED", ["probe_success", "probe_dns_answer_rrs", "probe_dns_additional_rrs"]),
    ("http_versions_with_http2", "http://SHOP/ok", ["probe_success", "probe_http_version"]),
    ("tcp_from_source", "SHOP", ["probe_success", "probe_ip_protocol"]),
    ("grpc_shop", "127.0.0.1:CLOSED", ["probe_success", "probe_grpc_status_code", "probe_grpc_ssl"]),
]


@pytest.mark.parametrize(("module", "target", "compared"), CASES, ids=[f"{m}-{t}" for m, t, _ in CASES])
async def test_slaprobe_gives_blackboxs_values(
    blackbox: str, shop: str, modules_file: Path, module: str, target: str, compared: list[str]
) -> None:
    target = target.replace("SHOP", shop).replace("CLOSED", str(free_port()))
    their = await theirs(blackbox, module, target)
    our = await ours(modules_file, module, target)
    assert {name: our.get(name) for name in compared} == {name: their.get(name) for name in compared}
    if "probe_dns_lookup_time_seconds" in their:  # emitted even when the lookup failed
        assert "probe_dns_lookup_time_seconds" in our


@pytest.mark.parametrize("module", ["dns_all_match_one", "dns_all_match_every"])
async def test_fail_if_all_match_regexp_judges_the_answers_as_blackbox_does(
    blackbox: str, modules_file: Path, module: str
) -> None:
    async with DnsServer() as server:
        server.answer("shop.test", "A", "192.0.2.1", "192.0.2.2")
        their = await theirs(blackbox, module, server.address)
        our = await ours(modules_file, module, server.address)
    compared = ["probe_success", "probe_dns_answer_rrs", "probe_dns_query_succeeded"]
    assert their["probe_dns_answer_rrs"] == 2
    assert {name: our.get(name) for name in compared} == {name: their.get(name) for name in compared}
    assert their["probe_success"] == (1 if module == "dns_all_match_every" else 0), their


async def test_a_configured_host_header_is_the_tls_server_name_as_in_blackbox(
    blackbox: str, tls_shop: str, modules_file: Path
) -> None:
    their = await theirs(blackbox, "http_host_header", f"https://{tls_shop}/ok")
    our = await ours(modules_file, "http_host_header", f"https://{tls_shop}/ok")
    compared = ["probe_success", "probe_http_status_code", "probe_http_ssl"]
    assert {name: our.get(name) for name in compared} == {name: their.get(name) for name in compared}
    assert their["probe_success"] == 1


@pytest.mark.parametrize("module", ["grpc_shop", "grpc_db", "grpc_unknown"])
async def test_a_grpc_health_check_answers_as_blackboxs(blackbox: str, modules_file: Path, module: str) -> None:
    from grpc_health.v1 import health_pb2

    from tests.probes.test_blackbox_028 import health_server

    statuses = {"shop": health_pb2.HealthCheckResponse.SERVING, "db": health_pb2.HealthCheckResponse.NOT_SERVING}
    async with health_server(statuses) as port:
        their = await theirs(blackbox, module, f"127.0.0.1:{port}")
        our = await ours(modules_file, module, f"127.0.0.1:{port}")
    compared = ["probe_success", "probe_grpc_status_code", "probe_grpc_ssl"]
    assert {name: our.get(name) for name in compared} == {name: their.get(name) for name in compared}
    assert their["probe_success"] == (1 if module == "grpc_shop" else 0), their
