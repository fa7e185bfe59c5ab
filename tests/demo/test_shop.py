"""The demo's sample service: its schedule, its listeners on loopback, and the demo config."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from cryptography import x509

from slaprobe.config import load_config
from slaprobe.demo.shop import (
    CYCLE_SECONDS,
    DEMO_DNS_PORT,
    DEMO_HTTP_PORT,
    DEMO_HTTPS_PORT,
    DEMO_TCP_PORT,
    DEMO_WORKDIR,
    SampleService,
    behaviour_at,
    bill_outcome,
    start_sample_service,
)

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "demo" / "demo.yaml"
CYCLE_START = 6_000_000 * CYCLE_SECONDS  # 2027-01-15T08:00:00Z, the start of a cycle


class FakeClock:
    """A clock that says whatever time the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Demo:
    """A running sample service with its fake clock and the delays it asked to sleep."""

    service: SampleService
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The test's HTTP client."""
        assert self.session is not None
        return self.session


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """The sample service on free loopback ports, at the start of a cycle of a fake clock."""
    clock = FakeClock(CYCLE_START)
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    service = await start_sample_service(tmp_path, clock=clock, sleep=fake_sleep)
    # unsafe=True: aiohttp's default cookie jar ignores cookies from IP-address hosts.
    jar = aiohttp.CookieJar(unsafe=True)
    async with service, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), cookie_jar=jar) as session:
        yield Demo(service, clock, sleeps, session)


# ---------------------------------------------------------------------------- the schedule (pure)


@pytest.mark.parametrize(
    ("second", "status"),
    [(0, 200), (59.9, 200), (60, 503), (75, 503), (89.9, 503), (90, 200), (299.9, 200)],
)
def test_the_home_page_fails_with_503_only_during_the_thirty_second_burst(second: float, status: int) -> None:
    for cycle in (0, 1, 1000):
        assert behaviour_at(CYCLE_START + cycle * CYCLE_SECONDS + second).home_status == status


def test_the_catalog_is_slow_only_during_its_minute_taking_between_0_6_and_1_2_seconds() -> None:
    delays = {s: behaviour_at(CYCLE_START + s).catalog_delay for s in range(300)}
    slow = sorted(s for s, d in delays.items() if d > 0)
    assert slow == list(range(150, 210))
    assert all(0.6 <= delays[s] <= 1.2 for s in slow)
    assert delays[150] == pytest.approx(0.6)
    assert delays[209] == pytest.approx(1.19)


def test_the_error_burst_and_the_slow_window_never_overlap() -> None:
    phases = [behaviour_at(CYCLE_START + s / 10) for s in range(3000)]
    assert not any(b.home_status != 200 and b.catalog_delay > 0 for b in phases)
    assert {b.phase for b in phases} == {"normal", "errors", "slow"}


def test_each_behaviour_says_when_its_phase_ends() -> None:
    assert behaviour_at(CYCLE_START + 10).phase_ends_in == pytest.approx(50)
    assert behaviour_at(CYCLE_START + 70).phase_ends_in == pytest.approx(20)
    assert behaviour_at(CYCLE_START + 250).phase_ends_in == pytest.approx(50)


def test_every_fifth_bill_check_fails_alternately_with_an_error_and_an_overdue_bill() -> None:
    outcomes = [bill_outcome(n) for n in range(1, 21)]
    assert [n for n, o in enumerate(outcomes, 1) if o != "paid"] == [5, 10, 15, 20]
    assert [outcomes[n - 1] for n in (5, 10, 15, 20)] == ["error", "overdue", "error", "overdue"]


# ---------------------------------------------------------------------------- HTTP on loopback


async def test_the_home_page_answers_503_in_the_burst_and_200_outside_it(demo: Demo) -> None:
    demo.clock.now = CYCLE_START + 75
    async with demo.http.get(demo.service.http_url + "/") as resp:
        assert resp.status == 503
        assert resp.headers["X-Demo-Phase"] == "errors"
    demo.clock.now = CYCLE_START + 95
    async with demo.http.get(demo.service.http_url + "/") as resp:
        assert resp.status == 200
        assert "Welcome" in await resp.text()


async def test_healthz_stays_ok_during_the_error_burst(demo: Demo) -> None:
    demo.clock.now = CYCLE_START + 75
    async with demo.http.get(demo.service.http_url + "/healthz") as resp:
        assert resp.status == 200


async def test_the_catalog_sleeps_the_scheduled_delay_only_in_the_slow_window(demo: Demo) -> None:
    demo.clock.now = CYCLE_START + 180
    async with demo.http.get(demo.service.http_url + "/api/catalog") as resp:
        assert resp.status == 200
        assert (await resp.json())["items"]
    assert demo.sleeps == [pytest.approx(behaviour_at(CYCLE_START + 180).catalog_delay)]
    demo.clock.now = CYCLE_START + 10
    async with demo.http.get(demo.service.http_url + "/api/catalog") as resp:
        assert resp.status == 200
    assert len(demo.sleeps) == 1


async def test_the_schedule_page_shows_the_current_phase(demo: Demo) -> None:
    demo.clock.now = CYCLE_START + 160
    async with demo.http.get(demo.service.http_url + "/schedule") as resp:
        body = await resp.json()
    assert body["phase"] == "slow"
    assert body["phase_ends_in_seconds"] == pytest.approx(50)


async def test_the_https_certificate_verifies_with_the_ca_and_expires_within_fourteen_days(demo: Demo) -> None:
    service = demo.service
    assert service.ca_file == service.ca_file.parent / "ca.pem"
    context = ssl.create_default_context(cafile=service.ca_file)
    async with demo.http.get(service.https_url + "/healthz", ssl=context) as resp:
        assert resp.status == 200
    _, writer = await asyncio.open_connection("127.0.0.1", service.https_port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    days_left = (x509.load_der_x509_certificate(der).not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert 7 <= days_left < 14
    assert x509.load_der_x509_certificate(der).not_valid_after_utc == service.cert_not_after.replace(microsecond=0)


async def test_the_https_certificate_is_not_trusted_without_the_demo_ca(demo: Demo) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with demo.http.get(demo.service.https_url + "/healthz", ssl=ssl.create_default_context()):
            pass


async def test_the_business_flow_works_end_to_end(demo: Demo) -> None:
    base = demo.service.http_url
    async with demo.http.post(base + "/api/login", json={"user": "demo", "password": "demo"}) as resp:
        assert resp.status == 200
        token = (await resp.json())["token"]
        assert resp.cookies["session"].value == token
    auth = {"Authorization": f"Bearer {token}"}
    async with demo.http.post(base + "/api/subscribe", headers=auth, json={"plan": "basic"}) as resp:
        assert resp.status == 200
        subscription = (await resp.json())["subscription_id"]
    async with demo.http.get(base + "/api/bill", params={"subscription": subscription}, headers=auth) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "paid"
    async with demo.http.post(base + "/api/unsubscribe", headers=auth) as resp:
        assert resp.status == 200
        assert (await resp.json())["unsubscribed"] == [subscription]
    async with demo.http.get(base + "/api/bill", params={"subscription": subscription}, headers=auth) as resp:
        assert resp.status == 404


async def test_the_session_cookie_alone_authenticates_the_flow(demo: Demo) -> None:
    base = demo.service.http_url
    async with demo.http.post(base + "/api/login", json={"user": "demo", "password": "demo"}) as resp:
        assert resp.status == 200
    async with demo.http.post(base + "/api/subscribe") as resp:
        assert resp.status == 200


async def test_wrong_credentials_and_missing_tokens_are_refused(demo: Demo) -> None:
    base = demo.service.http_url
    async with demo.http.post(base + "/api/login", json={"user": "demo", "password": "nope"}) as resp:
        assert resp.status == 401
    async with demo.http.post(base + "/api/login", data="not json") as resp:
        assert resp.status == 400
    async with demo.http.post(base + "/api/subscribe", headers={"Authorization": "Bearer forged"}) as resp:
        assert resp.status == 401


async def test_the_fifth_bill_check_of_the_service_fails_with_500(demo: Demo) -> None:
    base = demo.service.http_url
    async with demo.http.post(base + "/api/login", json={"user": "demo", "password": "demo"}) as resp:
        auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    async with demo.http.post(base + "/api/subscribe", headers=auth) as resp:
        params = {"subscription": (await resp.json())["subscription_id"]}
    statuses = []
    for _ in range(5):
        async with demo.http.get(base + "/api/bill", params=params, headers=auth) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 200, 200, 200, 500]


async def test_the_runbook_page_explains_the_schedule(demo: Demo) -> None:
    async with demo.http.get(demo.service.http_url + "/runbook/shop") as resp:
        text = await resp.text()
    assert "'shop'" in text
    assert "GET / answers 503" in text


async def test_webhook_notifications_are_stored_and_listed(demo: Demo) -> None:
    base = demo.service.http_url
    alert = {"status": "firing", "alerts": [{"labels": {"alertname": "X"}}]}
    async with demo.http.post(base + "/hooks/oncall", json=alert) as resp:
        assert resp.status == 200
    async with demo.http.get(base + "/hooks") as resp:
        stored = await resp.json()
    assert stored == [{"receiver": "oncall", "received_at": CYCLE_START, "payload": alert}]


async def test_requests_are_logged_in_nginx_combined_format_with_the_request_time(demo: Demo) -> None:
    demo.clock.now = CYCLE_START + 75
    async with demo.http.get(demo.service.http_url + "/?q=1", headers={"User-Agent": 'probe "x"'}):
        pass
    line = demo.service.access_log.read_text().splitlines()[-1]
    pattern = (
        r'127\.0\.0\.1 - - \[15/Jan/2027:08:01:15 \+0000\] "GET /\?q=1 HTTP/1\.1" 503 \d+ "-" '
        r'"probe \\x22x\\x22" \d+\.\d{3}'
    )
    assert re.fullmatch(pattern, line), line


# ---------------------------------------------------------------------------- TCP and DNS


async def test_the_line_service_greets_and_answers_ping_with_pong(demo: Demo) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", demo.service.tcp_port)
    try:
        async with asyncio.timeout(5):
            assert await reader.readline() == b"220 demo ready\r\n"
            writer.write(b"PING\r\n")
            assert await reader.readline() == b"PONG\r\n"
            writer.write(b"QUIT\r\n")
            assert await reader.readline() == b"221 bye\r\n"
            assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_dns_responder_resolves_the_demo_name_and_nothing_else(demo: Demo) -> None:
    port = demo.service.dns_port
    answer = await dns.asyncquery.udp(dns.message.make_query("shop.demo", "A"), "127.0.0.1", port=port, timeout=5)
    assert [rr.to_text() for rrset in answer.answer for rr in rrset] == ["127.0.0.1"]
    missing = await dns.asyncquery.udp(dns.message.make_query("other.demo", "A"), "127.0.0.1", port=port, timeout=5)
    assert missing.rcode() == dns.rcode.NXDOMAIN


# ---------------------------------------------------------------------------- lifecycle


async def test_a_busy_port_is_named_in_the_error_and_nothing_is_left_listening(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port} for https"):
            await start_sample_service(tmp_path, https_port=port)


async def test_closing_the_service_frees_its_ports(tmp_path: Path) -> None:
    service = await start_sample_service(tmp_path)
    await service.close()
    await service.close()
    for port in (service.http_port, service.https_port, service.tcp_port):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------- the demo config


def test_the_demo_config_loads() -> None:
    cfg = load_config(DEMO_CONFIG)
    assert {"shop", "billing"} <= set(cfg.services)
    assert {p.kind for _, _, p in cfg.probes()} == {"http", "tcp", "tls", "dns", "icmp", "flow"}


def test_the_demo_config_probes_the_sample_service_on_its_default_ports_only() -> None:
    cfg = load_config(DEMO_CONFIG)
    targets = {urlsplit(p.spec.target).netloc or p.spec.target for _, _, p in cfg.probes()}
    expected = {f"127.0.0.1:{port}" for port in (DEMO_HTTP_PORT, DEMO_HTTPS_PORT, DEMO_TCP_PORT, DEMO_DNS_PORT)}
    assert targets == expected | {"127.0.0.1"}
    ca_files = {p.http.tls.ca_file for _, _, p in cfg.probes() if p.http}
    ca_files |= {p.tls.ca_file for _, _, p in cfg.probes() if p.tls}
    assert ca_files - {None} == {str(DEMO_WORKDIR / "ca.pem")}
    assert {log.path for s in cfg.services.values() for log in s.logs} == {str(DEMO_WORKDIR / "access.log")}


def test_the_demo_receivers_deliver_to_the_sample_service() -> None:
    cfg = load_config(DEMO_CONFIG)
    urls = [hook["url"] for receiver in cfg.receivers.values() for hook in receiver["webhook_configs"]]
    assert urls and all(url.startswith(f"http://127.0.0.1:{DEMO_HTTP_PORT}/hooks/") for url in urls)
