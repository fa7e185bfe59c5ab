"""Hostile input end to end: /probe's allow-list under DNS rebinding and odd redirects,
request-smuggling-safe headers, basic auth and TLS on a real ``serve``, stored XSS.

Unit coverage of the guard's decisions is in tests/exporter/test_guard.py; here the whole
path runs: the web app, the probe, the resolver seam (the event loop's ``getaddrinfo``),
the dial, and what the target receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer

from slaprobe.config import FlowSpec, HttpSpec
from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ProbeContext
from slaprobe.probes.runner import run_probe
from tests.conftest import free_port
from tests.support.certs import Authority
from tests.support.dnsserver import Reply, record
from tests.support.faults import FaultProcess, FaultServer

MODULES = "modules:\n  http_2xx:\n    prober: http\n    timeout: 3s\n    http: {preferred_ip_protocol: ip4}\n"


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def faults() -> AsyncIterator[FaultServer]:
    # On every loopback address, so a dial the guard should have stopped would be seen here.
    async with FaultServer(host="0.0.0.0", tls=False, dns=False) as server:
        yield server


async def probe_client(tmp_path: Path, allow: list[str], config: str | None = None) -> TestClient:
    client, _ = await exporter_client(tmp_path, allow, config)
    return client


async def exporter_client(tmp_path: Path, allow: list[str], config: str | None = None) -> tuple[TestClient, Exporter]:
    modules = tmp_path / "modules.yml"
    modules.write_text(MODULES)
    sources = Sources(modules=str(modules))
    if config is not None:
        (tmp_path / "slaprobe.yaml").write_text(config)
        sources = Sources(config=str(tmp_path / "slaprobe.yaml"), modules=str(modules))
    exporter = Exporter(sources)
    assert exporter.reload().successful
    client = TestClient(TestServer(make_app(exporter, probe_allow=allow), host="127.0.0.1"))
    await client.start_server()
    return client, exporter


class Rebinding:
    """A resolver seam: ``name`` answers each address of ``answers`` in turn (the last one then on)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, *answers: str) -> None:
        self.name = name
        self.answers = list(answers)
        self.lookups = 0
        self.real = loop.getaddrinfo

    async def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != self.name:
            return await self.real(host, port, *args, **kwargs)
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port or 0))]


# ---------------------------------------------------------------------------- the allow-list


async def test_a_name_that_rebinds_to_a_forbidden_address_is_refused_on_the_second_probe(
    tmp_path: Path, faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    rebinding = Rebinding(loop, "rebind.example", "127.0.0.1", "169.254.169.254")
    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    client = await probe_client(tmp_path, ["127.0.0.1/32"])
    target = f"http://rebind.example:{faults.port}/ok"
    try:
        first = await client.get("/probe", params={"target": target})
        first_text = await first.text()
        second = await client.get("/probe", params={"target": target})
        second_text = await second.text()
    finally:
        await client.close()
    assert first.status == 200 and "probe_success 1" in first_text
    assert second.status == 403
    assert second_text.strip().startswith("target rebind.example resolved to 169.254.169.254")
    assert "169.254.169.254/32" in second_text  # says how to allow it
    assert rebinding.lookups == 2 and faults.counts["ok"] == 1  # one lookup per probe, one dial


async def test_a_redirect_back_to_a_name_that_rebound_meanwhile_is_refused_at_that_hop(
    tmp_path: Path, faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    rebinding = Rebinding(loop, "rebind.example", "127.0.0.1", "127.0.0.2")
    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    client = await probe_client(tmp_path, ["127.0.0.1/32"])
    hop = f"http://rebind.example:{faults.port}/ok"
    try:
        response = await client.get(
            "/probe", params={"target": f"http://rebind.example:{faults.port}/redirect?to={hop}"}
        )
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 403 and "resolved to 127.0.0.2" in text
    # The hop was looked up once and never dialled: 127.0.0.2 reaches this server too.
    assert rebinding.lookups == 2 and faults.counts == {"redirect": 1}


ODD_SPELLINGS = [
    "http://0x7f000002:{port}/ok",  # hex
    "http://2130706434:{port}/ok",  # one decimal number
    "http://0177.0.0.2:{port}/ok",  # octal
    "http://127.2:{port}/ok",  # short form
    "http://[::ffff:127.0.0.2]:{port}/ok",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:2]:{port}/ok",  # the same in hex groups
    "http://１２７.０.０.２:{port}/ok",  # full-width digits (IDNA folds them)
    "http://0xa9fea9fe/latest/meta-data/",  # 169.254.169.254 in hex
    "http://169.254.43518/latest/meta-data/",  # ... as a.b.c
    "http://0251.0376.0251.0376/latest/meta-data/",  # ... in octal
    "http://2852039166/latest/meta-data/",  # ... as one number
    "http://169.254.169.254./latest/meta-data/",  # ... with a trailing dot
    "http://[::ffff:169.254.169.254]/latest/meta-data/",  # ... IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",  # ... IPv4-mapped in hex groups
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # ... behind NAT64
    "http://[2002:a9fe:a9fe::1]/latest/meta-data/",  # ... as 6to4
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS's IPv6 metadata address
    "http://127.0.0.1:{port}@169.254.169.254/latest/meta-data/",  # userinfo that looks like a host
]


UNRESOLVABLE = {"http://169.254.169.254./latest/meta-data/"}  # were it resolved, the guard would see the address


@pytest.mark.parametrize("location", ODD_SPELLINGS)
async def test_a_redirect_that_leaves_the_allow_list_by_any_spelling_is_refused_before_dialling(
    tmp_path: Path, faults: FaultServer, location: str
) -> None:
    client = await probe_client(tmp_path, ["127.0.0.1/32"])
    try:
        response = await client.get(
            "/probe", params={"target": faults.url("redirect", to=location.format(port=faults.port))}
        )
        text = await response.text()
    finally:
        await client.close()
    if location in UNRESOLVABLE:  # glibc does not read it as an address: nothing to dial
        assert 'probe_failure_info{reason="dns"} 1' in text
    else:
        assert response.status == 403, text
        assert "--probe-allow" in text
    assert faults.counts == {"redirect": 1}, "the forbidden hop reached a server"


async def test_a_configured_probe_with_credentials_cannot_be_aimed_at_another_target(
    tmp_path: Path, faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "t0ken-for-the-shop-only")
    config = f"""version: v1
services:
  shop:
    probes:
      - {{name: api, http: {{url: '{faults.url("echo")}', headers: {{X-Token: '${{env:SHOP_TOKEN}}'}}}}}}
      - {{name: admin, http: {{url: '{faults.url("echo")}', basic_auth: {{username: ops, password: literal}}}}}}
      - {{name: public, http: {{url: '{faults.url("ok")}'}}}}
"""
    client = await probe_client(tmp_path, ["127.0.0.0/8"], config)
    elsewhere = f"http://127.0.0.2:{faults.port}/echo"  # allowed by the allow-list, not the shop
    try:
        refused = {
            p: await client.get("/probe", params={"module": f"shop/{p}", "target": elsewhere}) for p in ("api", "admin")
        }
        texts = {p: await r.text() for p, r in refused.items()}
        own = await client.get("/probe", params={"module": "shop/api"})
        public = await client.get("/probe", params={"module": "shop/public", "target": elsewhere})
        public_text = await public.text()
    finally:
        await client.close()
    for probe, response in refused.items():
        assert response.status == 403 and "sends credentials" in texts[probe], texts[probe]
    assert own.status == 200 and public.status == 200 and "probe_success 1" in public_text
    assert len(faults.requests) == 2  # its own target for api, elsewhere for public: nothing else
    assert b"t0ken-for-the-shop-only" in faults.requests[0] and b"Host: 127.0.0.2" in faults.requests[1]


# ---------------------------------------------------------------------------- request smuggling


async def test_cr_or_lf_in_a_configured_header_never_splits_the_request(faults: FaultServer) -> None:
    spec = HttpSpec(url=faults.url("echo"), headers={"X-Team": "sre\r\nX-Injected: 1", "X-Ok": "yes"})
    result = await run_probe(PROBERS["http"], spec, ProbeContext(timeout=3))
    assert result.reason is FailureReason.PROTOCOL
    assert result.detail == "request header 'X-Team' holds CR, LF or NUL; not sent"
    assert not faults.requests, "nothing may go out"


async def test_cr_or_lf_in_a_value_taken_from_a_target_never_splits_the_next_request(faults: FaultServer) -> None:
    token = json.dumps({"token": "t0k3n\r\nX-Injected: 1\r\n\r\nGET /smuggled HTTP/1.1"})
    flow = FlowSpec.model_validate({
        "steps": [
            {"name": "login", "http": {"url": faults.url("json", text=token)}, "extract": {"token": {"json": "$.token"}}},
            {"name": "use", "http": {"url": faults.url("echo"), "headers": {"Authorization": "Bearer ${token}"}}},
            {"name": "query", "http": {"url": faults.url("echo") + "?t=${token}"}},
        ]
    })  # fmt: skip
    result = await run_probe(PROBERS["flow"], flow, ProbeContext(timeout=3))
    assert result.reason is FailureReason.PROTOCOL
    assert result.detail == "step use: request header 'Authorization' holds CR, LF or NUL; not sent"
    assert "t0k3n" not in result.detail
    heads = list(faults.requests)
    assert len(heads) == 1 and heads[0].startswith(b"GET /json?")  # the login only
    assert not any(b"X-Injected" in line for head in heads for line in head.split(b"\r\n")[1:])


async def test_cr_or_lf_in_a_redirect_location_stays_inside_one_request_line(faults: FaultServer) -> None:
    spec = HttpSpec(url=faults.url("redirect", to="/echo\r\nX-Injected: 1"))
    result = await run_probe(PROBERS["http"], spec, ProbeContext(timeout=3))
    assert result.success, result.detail
    for head in faults.requests:
        assert not any(line.startswith(b"X-Injected") for line in head.split(b"\r\n"))


async def test_a_hostname_parameter_that_would_split_the_request_is_a_400(tmp_path: Path, faults: FaultServer) -> None:
    client = await probe_client(tmp_path, ["127.0.0.1/32"])
    try:
        answers = {}
        for hostname in ("shop\r\nX-Injected: 1", "shop\x00", "a" * 64 + ".example", "two words"):
            response = await client.get("/probe", params={"target": faults.url("echo"), "hostname": hostname})
            answers[hostname] = (response.status, await response.text())
        fine = await client.get("/probe", params={"target": faults.url("echo"), "hostname": "shop.example"})
        fine_text = await fine.text()
    finally:
        await client.close()
    for hostname, (status, text) in answers.items():
        assert status == 400 and text.startswith("Invalid hostname"), (hostname, text)
    assert fine.status == 200 and "probe_success 1" in fine_text
    assert [head for head in faults.requests if b"Host: shop.example\r\n" in head], "the valid one was sent"
    assert len(faults.requests) == 1


async def test_conflicting_lengths_from_a_target_fail_cleanly_and_smuggle_nothing(faults: FaultServer) -> None:
    for fault in ("cl-te", "double-cl"):
        spec = HttpSpec(url=faults.url(fault), expect={"body_not_regex": "smuggled"})
        result = await run_probe(PROBERS["http"], spec, ProbeContext(timeout=3))
        assert result.reason is FailureReason.PROTOCOL, (fault, result.detail)
        assert result.detail.startswith("invalid HTTP response: ")


# ---------------------------------------------------------------------------- stored XSS


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


async def test_markup_a_target_puts_in_a_failure_detail_is_shown_escaped_on_the_status_page(
    tmp_path: Path, authority: Authority
) -> None:
    cn = "<img src=x onerror=alert(1)>"
    hostile_cert = authority.issue(tmp_path, cn, hosts=("127.0.0.1",))
    document = json.dumps({"status": "<script>alert('json')</script>\" onmouseover=\"alert(2)"})
    async with FaultServer(tls=False) as faults:
        assert faults.dns is not None
        faults.dns.set("xss.test", "TXT", Reply(answer=[record("xss.test", "TXT", '"<svg onload=alert(3)>"')]))
        tls_server = await asyncio.start_server(
            lambda r, w: w.close(), "127.0.0.1", 0, ssl=hostile_cert.server_context()
        )
        tls_port = tls_server.sockets[0].getsockname()[1]
        config = f"""version: v1
global: {{interval: 300ms, timeout: 250ms}}
services:
  shop:
    probes:
      - {{name: json, http: {{url: '{faults.url("json", text=document)}', expect: {{json: [{{path: $.status, equals: up}}]}}}}}}
      - {{name: location, http: {{url: '{faults.url("redirect", to="javascript:<script>alert(4)</script>")}'}}}}
      - {{name: cert, tls: {{address: '127.0.0.1:{tls_port}', ca_file: '{authority.path}', min_days_left: 1000}}}}
      - {{name: txt, dns: {{query: xss.test, type: TXT, server: '{faults.dns_address}', expect: {{answer: {{fail_if_matches_regexp: [svg]}}}}}}}}
"""
        client, exporter = await exporter_client(tmp_path, [], config)
        try:
            await until(lambda: all(s.history and len(s.history) >= 2 for s in exporter.store.series()))
            response = await client.get("/")
            page = await response.text()
        finally:
            await client.close()
            tls_server.close()
    details = {s.meta.probe: s.last.detail for s in exporter.store.series() if s.last}
    # The hostile text really reached the details ...
    assert "<script>alert('json')</script>" in details["json"]
    assert "img src=x onerror=alert(1)" in details["cert"]  # RFC 4514 backslash-escapes < and >
    assert "<svg onload=alert(3)>" in details["txt"]
    assert details["location"].startswith("redirect to unsupported URL javascript:")
    # ... and the page shows it as text: escaped, no element or attribute of its own.
    assert "&lt;script&gt;alert(&#x27;json&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)\\&gt;" in page and "&lt;svg onload=alert(3)&gt;" in page
    parsed = _Tags()
    parsed.feed(page)
    assert not parsed.tags & {"script", "img", "svg"}, parsed.tags
    assert not {a for a in parsed.attributes if a.startswith("on")}, parsed.attributes
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


# ---------------------------------------------------------------------------- serve with --web-config

PASSWORD = "c0rrect-h0rse-battery"
# Credentials in the fields blackbox treats as secret. (Other literal header values are
# configuration, shown in debug output as blackbox shows them; see SECURITY.md.)
MODULE_SECRETS = ("m0dule-basic-pw", "m0dule-bearer-token", "m0dule-proxy-credentials")
SERVE_MODULES = f"""modules:
  http_2xx:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      headers: {{Proxy-Authorization: {MODULE_SECRETS[2]}}}
      basic_auth: {{username: dialer, password: {MODULE_SECRETS[0]}}}
  bearer:
    prober: http
    timeout: 3s
    http: {{preferred_ip_protocol: ip4, bearer_token: {MODULE_SECRETS[1]}}}
"""


@pytest.fixture(scope="module")
def served(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``slaprobe serve`` with TLS and a bcrypt user (cost 10), probing the fault server."""
    tmp = Path(tmp_path_factory.mktemp("serve"))
    cert = authority.issue(tmp, "exporter", hosts=("127.0.0.1",))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    (tmp / "web.yml").write_text(
        f"tls_server_config: {{cert_file: {cert.cert}, key_file: {cert.key}}}\nbasic_auth_users: {{prom: '{hashed}'}}\n"
    )
    (tmp / "modules.yml").write_text(SERVE_MODULES)
    port = free_port()
    log = tmp / "serve.log"
    with FaultProcess(dns=False) as faults, log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slaprobe", "serve", "--modules", str(tmp / "modules.yml"),
             "--web-config", str(tmp / "web.yml"), "--listen", f"127.0.0.1:{port}", "--probe-allow", "127.0.0.1/32"],
            stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        base = f"https://127.0.0.1:{port}"
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE would win over session.verify
        session.verify = str(authority.path)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if session.get(f"{base}/-/healthy", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.05)
            yield {"base": base, "port": port, "session": session, "faults": faults, "log": log}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_serve_with_web_config_answers_only_over_tls_and_only_with_the_bcrypt_password(served: dict[str, Any]) -> None:
    base, session = served["base"], served["session"]
    assert session.get(f"{base}/-/healthy", timeout=5).status_code == 200  # exempt: liveness probes
    for path in ("/metrics", "/", "/-/ready", f"/probe?target={served['faults'].url('ok')}"):
        refused = session.get(f"{base}{path}", timeout=5)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="slaprobe"', path
        assert session.get(f"{base}{path}", headers=auth("prom", "wrong"), timeout=5).status_code == 401, path
        assert session.get(f"{base}{path}", headers=auth("nobody", PASSWORD), timeout=5).status_code == 401, path
        assert session.get(f"{base}{path}", headers=auth("prom", PASSWORD), timeout=5).status_code == 200, path
    assert session.post(f"{base}/-/reload", timeout=5).status_code == 401
    with pytest.raises(requests.ConnectionError):  # plain HTTP gets no answer on the TLS port
        requests.get(f"http://127.0.0.1:{served['port']}/metrics", headers=auth("prom", PASSWORD), timeout=5)


def test_an_unknown_user_costs_the_same_bcrypt_time_as_a_wrong_password(served: dict[str, Any]) -> None:
    base, session = served["base"], served["session"]

    def timed(headers: dict[str, str]) -> float:
        started = time.perf_counter()
        assert session.get(f"{base}/metrics", headers=headers, timeout=10).status_code == 401
        return time.perf_counter() - started

    session.get(f"{base}/-/healthy", timeout=5)  # a warm connection for both
    wrong_password = statistics.median(timed(auth("prom", f"wrong-{i}")) for i in range(5))
    unknown_user = statistics.median(timed(auth(f"nobody-{i}", PASSWORD)) for i in range(5))
    # Loose on purpose: without the decoy hash an unknown user answers ~50x faster (no bcrypt).
    assert 0.4 < unknown_user / wrong_password < 2.5, (unknown_user, wrong_password)


def test_module_secrets_stay_out_of_probe_answers_debug_pages_and_logs(served: dict[str, Any]) -> None:
    base, session, faults = served["base"], served["session"], served["faults"]
    login = auth("prom", PASSWORD)
    surfaces = {}
    for module in ("http_2xx", "bearer"):
        for fault in ("echo", "status", "close"):
            params = {"target": faults.url(fault), "module": module, "debug": "true"}
            surfaces[f"{module} {fault} debug"] = session.get(
                f"{base}/probe", params=params, headers=login, timeout=10
            ).text
            del params["debug"]
            surfaces[f"{module} {fault}"] = session.get(f"{base}/probe", params=params, headers=login, timeout=10).text
    assert "probe_success 1" in surfaces["http_2xx echo"] and "<secret>" in surfaces["http_2xx echo debug"]
    surfaces["logs"] = served["log"].read_text(errors="replace")
    for where, text in surfaces.items():
        for secret in (*MODULE_SECRETS, PASSWORD):
            assert secret not in text, f"{secret!r} leaked into {where}"
