"""Every probe kind against every fault: ends on time, holds little memory, names the right reason.

The fault server runs in a child process (``FaultProcess``), so the time and the memory
measured here are the probe's alone. The requirement is "within the timeout plus 100 ms":
the probe's own duration is held to that; the wall clock around the call, which also
covers closing its sockets on a machine other tests may be loading, gets half a second.
bench/faults_load.py measures the same matrix with figures in bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slaprobe.config import DnsSpec, FlowSpec, HttpSpec, IcmpSpec, TcpSpec, TlsSpec
from slaprobe.probes.http import HTTP_TRANSPORT, MAX_HELD_BODY
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult
from slaprobe.probes.runner import run_probe
from tests.support.certs import Authority
from tests.support.faults import FaultEndpoints, FaultProcess, fault_certificates

pytestmark = pytest.mark.alone  # it times probes and scrapes: scripts/test runs it after the parallel part

HANG = 0.5  # seconds: the timeout of probes whose target never finishes answering
QUICK = 3.0  # seconds: the timeout of probes whose target fails fast (they must not use it)
OWN_SLACK = 0.1  # the requirement: a probe's duration is at most its timeout plus this
WALL_SLACK = 0.5  # the call as a whole, socket cleanup included, on a shared machine
MiB = 1024 * 1024

T = FailureReason


@dataclass(frozen=True)
class Case:
    """One probe of one kind aimed at one fault, and how it must end."""

    name: str
    kind: str
    spec: Callable[[FaultEndpoints, str], Any]  # (faults, CA file) -> spec
    reason: FailureReason | tuple[FailureReason | None, ...] | None  # a tuple: any of these
    timeout: float = QUICK
    extras: Callable[[], dict[str, Any]] | None = None
    transport: str | None = None  # http: "aiohttp" or "wire" (httpwire), else the default


def http(fault: str, **spec: Any) -> Callable[[FaultEndpoints, str], HttpSpec]:
    return lambda f, _ca: HttpSpec(url=f.url(fault), **spec)


def https(kind: str) -> Callable[[FaultEndpoints, str], HttpSpec]:
    return lambda f, ca: HttpSpec(url=f.tls_url(kind), tls={"ca_file": ca})


def dns(name: str) -> Callable[[FaultEndpoints, str], DnsSpec]:
    return lambda f, _ca: DnsSpec(query=f.dns_name(name), server=f.dns_address)


def drop_every_echo() -> dict[str, Any]:
    return {"icmp_send": lambda _sock, _packet, _address: None}


def hanging_flow(f: FaultEndpoints, _ca: str) -> FlowSpec:
    return FlowSpec.model_validate(
        {
            "steps": [{"name": "order", "http": {"url": f.url("hang")}}],
            "finally": [{"name": "cleanup", "http": {"url": f.url("ok")}}],
        }
    )


CASES = [
    Case("http hang", "http", http("hang"), T.TIMEOUT, HANG),
    Case("http slowloris headers", "http", http("slowloris"), T.TIMEOUT, HANG),
    Case("http trickled body", "http", http("trickle"), T.TIMEOUT, HANG),
    Case("http reset mid-body", "http", http("reset"), T.CONNECT),  # a reset is connect; a short body (FIN) protocol
    Case("http closed unanswered", "http", http("close"), T.CONNECT),
    Case("http 1 GiB body", "http", http("huge"), T.BODY_LIMIT),
    Case("http 1 GiB chunked body", "http", http("huge-chunked"), T.BODY_LIMIT),
    Case("http gzip bomb", "http", http("gzip-bomb", compression="gzip"), T.BODY_LIMIT),
    Case(
        "http 1 GiB body held for a regex, no limit",
        "http",
        http("huge", body_size_limit=0, expect={"body_regex": "never"}),
        T.BODY_LIMIT,
    ),
    # Read whole or cut by the deadline, depending on the machine's loopback speed (~2 GB/s here).
    Case("http 1 GiB body, no limit, not held", "http", http("huge", body_size_limit=0), (T.TIMEOUT, None), HANG),
    Case("http redirect loop", "http", http("redirect-loop"), T.REDIRECTS),
    Case("http Content-Length with Transfer-Encoding", "http", http("cl-te"), T.PROTOCOL),
    Case("http two Content-Lengths", "http", http("double-cl"), T.PROTOCOL),
    Case("http 1 MiB header line", "http", http("huge-header"), T.PROTOCOL),
    Case("http 10,000 headers", "http", http("many-headers"), T.PROTOCOL),
    Case("http garbage status line", "http", http("garbage"), T.PROTOCOL),
    Case("http silent port", "http", lambda f, _ca: HttpSpec(url=f"http://{f.silent_address}/"), T.TIMEOUT, HANG),
    Case("https expired certificate", "http", https("expired"), T.TLS),
    Case("https self-signed certificate", "http", https("self_signed"), T.TLS),
    Case("https wrong-host certificate", "http", https("wrong_host"), T.TLS),
    Case(
        "tcp silent port",
        "tcp",
        lambda f, _ca: TcpSpec(address=f.silent_address, dialogue=[{"expect": "^220"}]),
        T.TIMEOUT,
        HANG,
    ),
    Case(
        "tcp reset mid-answer",
        "tcp",
        lambda f, _ca: TcpSpec(
            address=f.address, dialogue=[{"send": "GET /reset HTTP/1.0\r\n\r"}, {"expect": "never"}]
        ),
        T.CONNECT,
    ),
    Case(
        "tcp 1 GiB answer without the expected line",
        "tcp",
        lambda f, _ca: TcpSpec(address=f.address, dialogue=[{"send": "GET /huge HTTP/1.0\r\n\r"}, {"expect": "never"}]),
        T.ASSERTION,
    ),
    Case(
        "tcp over TLS, expired certificate",
        "tcp",
        lambda f, ca: TcpSpec(address=f.tls_address("expired"), tls={"ca_file": ca}),
        T.TLS,
    ),
    Case("tls silent port", "tls", lambda f, _ca: TlsSpec(address=f.silent_address), T.TIMEOUT, HANG),
    Case("tls expired certificate", "tls", lambda f, ca: TlsSpec(address=f.tls_address("expired"), ca_file=ca), T.TLS),
    Case(
        "tls self-signed certificate",
        "tls",
        lambda f, ca: TlsSpec(address=f.tls_address("self_signed"), ca_file=ca),
        T.TLS,
    ),
    Case(
        "tls wrong-host certificate",
        "tls",
        lambda f, ca: TlsSpec(address=f.tls_address("wrong_host"), ca_file=ca),
        T.TLS,
    ),
    Case("dns SERVFAIL", "dns", dns("servfail"), T.RCODE),
    Case("dns truncated over udp, whole over tcp", "dns", dns("truncated"), None),
    Case(
        "dns truncated, no tcp listener",
        "dns",
        lambda f, _ca: DnsSpec(query="x.test", server=f.dns_truncating_address),
        T.CONNECT,
    ),
    Case("dns silent server", "dns", dns("silent"), T.TIMEOUT, HANG),
    Case("dns garbage answer", "dns", dns("garbage"), T.PROTOCOL),
    Case(
        "dns tcp hang-up",
        "dns",
        lambda f, _ca: DnsSpec(query=f.dns_name("hangup"), server=f.dns_address, transport="tcp"),
        T.PROTOCOL,
    ),
    Case(
        "icmp every echo lost",
        "icmp",
        lambda _f, _ca: IcmpSpec(host="127.0.0.1", packets=3, packet_interval="50ms"),
        T.LOSS,
        HANG,
        drop_every_echo,
    ),
    Case("flow step hangs", "flow", hanging_flow, T.TIMEOUT, 2 * HANG),
]
# Every HTTP fault on each of the http probe's transports (aiohttp and the lean httpwire).
CASES = [
    dataclasses.replace(case, name=f"{case.name} ({transport})" if transport else case.name, transport=transport)
    for case in CASES
    for transport in (("aiohttp", "wire") if case.kind == "http" else (None,))
]


@pytest.fixture(scope="module")
def faults(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProcess]:
    certs = fault_certificates(Path(tmp_path_factory.mktemp("faults")), authority)
    with FaultProcess(certs=certs, trickle_interval=0.02) as process:
        yield process


def expected(case: Case) -> tuple[FailureReason | None, ...]:
    return case.reason if isinstance(case.reason, tuple) else (case.reason,)


def open_sockets() -> int:
    """Sockets this process holds open right now."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def settle(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run_case(case: Case, faults: FaultProcess, authority: Authority) -> tuple[ProbeResult, float]:
    spec = case.spec(faults, str(authority.path))
    extras = case.extras() if case.extras else {}
    if case.transport is not None:
        extras[HTTP_TRANSPORT] = case.transport
    ctx = ProbeContext(timeout=case.timeout, extras=extras)
    started = time.monotonic()
    result = await run_probe(PROBERS[case.kind], spec, ctx, name=case.name)
    return result, time.monotonic() - started


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_every_probe_kind_ends_on_time_with_the_right_reason_and_closes_its_sockets(
    case: Case, faults: FaultProcess, authority: Authority
) -> None:
    if case.kind == "icmp" and not _icmp_possible():
        pytest.skip("no ICMP socket here")
    sockets = open_sockets()
    result, wall = await run_case(case, faults, authority)
    assert result.reason in expected(case), result.detail
    assert result.duration <= case.timeout + OWN_SLACK, f"{result.duration:.3f}s for a {case.timeout}s timeout"
    assert wall <= case.timeout + WALL_SLACK, f"{wall:.3f}s for a {case.timeout}s timeout"
    if case.timeout == QUICK:
        assert result.duration < QUICK / 2, f"a fast failure took {result.duration:.3f}s"
    if case.kind == "flow":
        assert [step.name for step in result.steps] == ["order", "cleanup"]
        assert result.steps[1].success, "the finally step still ran"
    assert await settle(lambda: open_sockets() <= sockets), f"{open_sockets() - sockets} sockets left open"


MEMORY_CASES = {
    "http 1 GiB body": 4 * MiB,
    "http 1 GiB chunked body": 4 * MiB,
    "http gzip bomb": 8 * MiB,
    "http 1 GiB body held for a regex, no limit": 2 * MAX_HELD_BODY + 4 * MiB,
    "http 1 GiB body, no limit, not held": 4 * MiB,
    "http slowloris headers": 2 * MiB,
    "http 1 MiB header line": 2 * MiB,
    "http 10,000 headers": 2 * MiB,
    "tcp 1 GiB answer without the expected line": 4 * MiB,
}


async def test_body_and_header_faults_keep_the_memory_of_a_probe_bounded(
    faults: FaultProcess, authority: Authority
) -> None:
    peaks = {}
    for case in (c for c in CASES if c.name.rpartition(" (")[0] in MEMORY_CASES):
        tracemalloc.start()
        try:
            result, _ = await run_case(case, faults, authority)
            peaks[case.name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.reason in expected(case), (case.name, result.detail)
    over = {
        name: f"{peak / MiB:.1f} MiB" for name, peak in peaks.items() if peak > MEMORY_CASES[name.rpartition(" (")[0]]
    }
    assert not over, f"peak memory above the bound: {over}"


def _icmp_possible() -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return True
        except OSError:
            continue
    return False
