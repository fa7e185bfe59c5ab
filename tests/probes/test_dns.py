"""The DNS probe against a loopback DNS responder, over UDP and TCP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.message
import pytest

from slaprobe import conventions as names
from slaprobe.config import DnsSpec
from slaprobe.probes.dns import check_records, probe_dns, system_nameserver
from slaprobe.probes.resolve import ip_hash as ip_addr_hash
from slaprobe.probes.result import (
    FailureReason,
    ForbiddenTargetError,
    ProbeContext,
    ProbeResult,
    ProbeTrace,
)
from slaprobe.probes.runner import run_probe
from tests.conftest import free_port
from tests.support.dnsserver import DnsServer, Reply, record

WWW = "www.example.test"
WWW_REPLY = Reply(
    answer=[record(WWW, "A", "192.0.2.1"), record(WWW, "A", "192.0.2.2")],
    authority=[record("example.test", "NS", "ns1.example.test.", ttl=7200)],
    additional=[record("ns1.example.test", "A", "198.51.100.53", ttl=7200)],
)


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    """A responder on 127.0.0.1 that knows www.example.test."""
    async with DnsServer() as srv:
        srv.set(WWW, "A", WWW_REPLY)
        yield srv


def context(timeout: float = 2.0, **extras: Any) -> ProbeContext:
    """A context that keeps the probe log."""
    return ProbeContext(timeout=timeout, trace=ProbeTrace(debug=True), extras=dict(extras))


async def probe(spec: DnsSpec, timeout: float = 2.0, **kw: Any) -> ProbeResult:
    """Run the DNS probe the way the scheduler does."""
    return await run_probe(probe_dns, spec, context(timeout), **kw)


def spec_for(server: DnsServer, query: str = WWW, **fields: Any) -> DnsSpec:
    """A validated spec asking ``server``."""
    return DnsSpec.model_validate({"query": query, "server": server.address, **fields})


def labelled(result: ProbeResult, name: str) -> dict[str, float]:
    """The samples called ``name`` by their first label's value."""
    return {s.labels[0][1]: s.value for s in result.samples if s.name == name}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_answered_query_succeeds_and_reports_blackbox_samples(server: DnsServer, transport: str) -> None:
    result = await probe(spec_for(server, transport=transport))

    assert result.success, result.detail
    assert result.reason is None
    assert result.sample(names.BB_DNS_QUERY_SUCCEEDED) == 1
    assert result.sample(names.BB_DNS_ANSWER_RRS) == 2
    assert result.sample(names.BB_DNS_AUTHORITY_RRS) == 1
    assert result.sample(names.BB_DNS_ADDITIONAL_RRS) == 1
    assert result.sample(names.BB_IP_PROTOCOL) == 4
    assert result.sample(names.BB_IP_ADDR_HASH) == ip_addr_hash("127.0.0.1")
    assert result.sample(names.BB_DNS_LOOKUP) == result.phases["resolve"]
    assert result.sample(names.BB_DNS_SERIAL) is None
    assert set(labelled(result, names.BB_DNS_DURATION)) == {"resolve", "connect", "request"}
    assert set(result.phases) == {"resolve", "connect", "request"}
    assert result.phases["request"] > 0
    assert [(q.transport, q.name, q.type) for q in server.queries] == [(transport, "www.example.test.", "A")]


async def test_the_recursion_desired_flag_follows_the_spec(server: DnsServer) -> None:
    await probe(spec_for(server))
    await probe(spec_for(server, recursion_desired=False))

    assert [q.recursion_desired for q in server.queries] == [True, False]


async def test_query_type_and_class_are_sent_as_configured(server: DnsServer) -> None:
    server.answer("example.test", "MX", "10 mail.example.test.")

    result = await probe(spec_for(server, "example.test", type="MX", query_class="IN"))

    assert result.success, result.detail
    assert server.queries[-1].type == "MX"


async def test_a_soa_answer_reports_the_zone_serial(server: DnsServer) -> None:
    soa = "ns1.example.test. noc.example.test. 2024061501 7200 3600 1209600 300"
    server.answer("example.test", "SOA", soa)

    result = await probe(spec_for(server, "example.test", type="SOA"))

    assert result.success, result.detail
    assert result.sample(names.BB_DNS_SERIAL) == 2024061501


@pytest.mark.parametrize("rcode", ["NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR", "YXDOMAIN"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_unaccepted_rcode_fails_with_reason_rcode(server: DnsServer, rcode: str, transport: str) -> None:
    server.set("bad.example.test", "A", Reply(rcode=rcode))

    result = await probe(spec_for(server, "bad.example.test", transport=transport))

    assert result.reason is FailureReason.RCODE
    assert rcode in result.detail
    assert result.sample(names.BB_DNS_QUERY_SUCCEEDED) == 1  # an answer came; it was wrong


async def test_an_rcode_listed_in_expect_is_accepted(server: DnsServer) -> None:
    spec = spec_for(server, "gone.example.test", expect={"rcode": ["NOERROR", "NXDOMAIN"]})

    result = await probe(spec)

    assert result.success, result.detail
    assert result.sample(names.BB_DNS_ANSWER_RRS) == 0


async def test_fewer_answers_than_min_answers_fail_the_assertion(server: DnsServer) -> None:
    result = await probe(spec_for(server, expect={"min_answers": 3}))

    assert result.reason is FailureReason.ASSERTION
    assert "2 answer records, expected at least 3" in result.detail


REGEX_CASES = [
    # (section, assertion, passes)
    ("answer", {"fail_if_matches_regexp": [r"192\.0\.2\.2$"]}, False),
    ("answer", {"fail_if_matches_regexp": [r"203\.0\.113\."]}, True),
    # fail_if_all_match fails unless every record matches every regex, as blackbox does
    ("answer", {"fail_if_all_match_regexp": [r"\tA\t192\.0\.2\."]}, True),
    ("answer", {"fail_if_all_match_regexp": [r"192\.0\.2\.1$"]}, False),
    ("answer", {"fail_if_all_match_regexp": [r"192\.0\.2\.", r"\.1$"]}, False),
    ("answer", {"fail_if_not_matches_regexp": [r"192\.0\.2\.1$"]}, False),
    # blackbox modules match miekg/dns text: header fields separated by tabs
    ("answer", {"fail_if_not_matches_regexp": [r"^www\.example\.test\.\t300\tIN\tA\t192\.0\.2\."]}, True),
    ("answer", {"fail_if_none_matches_regexp": [r"203\.0\.113\."]}, False),
    ("answer", {"fail_if_none_matches_regexp": [r"203\.0\.113\.", r"192\.0\.2\.2"]}, True),
    ("authority", {"fail_if_not_matches_regexp": [r"\tNS\tns1\.example\.test\.$"]}, True),
    ("authority", {"fail_if_matches_regexp": [r"ns1\."]}, False),
    ("additional", {"fail_if_none_matches_regexp": [r"198\.51\.100\.53"]}, True),
    ("additional", {"fail_if_all_match_regexp": [r"^ns1\."]}, True),
    ("additional", {"fail_if_all_match_regexp": [r"^ns2\."]}, False),
]


@pytest.mark.parametrize(("section", "assertion", "passes"), REGEX_CASES)
async def test_record_regexes_follow_blackbox_semantics(
    server: DnsServer, section: str, assertion: dict[str, list[str]], passes: bool
) -> None:
    result = await probe(spec_for(server, expect={section: assertion}))

    assert result.success is passes, result.detail
    if not passes:
        assert result.reason is FailureReason.ASSERTION
        assert result.detail.startswith(f"{section} section: ")


@pytest.mark.parametrize(
    ("assertion", "passes"),
    [
        ({"fail_if_matches_regexp": ["."]}, True),
        ({"fail_if_all_match_regexp": ["."]}, True),
        ({"fail_if_not_matches_regexp": ["."]}, False),
        ({"fail_if_none_matches_regexp": ["."]}, False),
    ],
)
async def test_an_empty_section_fails_only_the_regexes_that_need_a_record(
    server: DnsServer, assertion: dict[str, list[str]], passes: bool
) -> None:
    server.answer("empty.example.test", "A")

    result = await probe(spec_for(server, "empty.example.test", expect={"answer": assertion}))

    assert result.success is passes, result.detail


def test_records_are_checked_as_single_lines_of_zone_file_text() -> None:
    lines = ['a.test.\t300\tIN\tTXT\t"hello world"']
    spec = DnsSpec.model_validate(
        {"query": "a.test", "expect": {"answer": {"fail_if_not_matches_regexp": ['"hello world"$']}}}
    )

    assert check_records(lines, spec.expect.answer) is None


async def test_a_truncated_udp_answer_is_asked_again_over_tcp(server: DnsServer) -> None:
    server.set(
        "big.example.test",
        "TXT",
        Reply(
            answer=[record("big.example.test", "TXT", f'"chunk {i} {"x" * 200}"') for i in range(10)],
            truncate_udp=True,
        ),
    )
    ctx = context()

    result = await run_probe(probe_dns, spec_for(server, "big.example.test", type="TXT"), ctx)

    assert result.success, result.detail
    assert result.sample(names.BB_DNS_ANSWER_RRS) == 10
    assert [q.transport for q in server.queries] == ["udp", "tcp"]
    assert any("truncated" in line for line in ctx.trace.lines)


async def test_a_truncated_answer_whose_tcp_retry_is_refused_fails_to_connect(
    server: DnsServer,
) -> None:
    server.set("big.example.test", "TXT", Reply(truncate_udp=True))
    assert server._tcp is not None
    server._tcp.close()  # UDP stays up, TCP now refuses
    await server._tcp.wait_closed()

    result = await probe(spec_for(server, "big.example.test", type="TXT"))

    assert result.reason is FailureReason.CONNECT
    assert "truncated" in result.detail


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_server_that_never_answers_times_out_with_partial_phases(server: DnsServer, transport: str) -> None:
    server.silent = True

    result = await probe(spec_for(server, transport=transport), timeout=0.3)

    assert result.reason is FailureReason.TIMEOUT
    assert 0.3 <= result.duration < 1.5
    assert {"resolve", "connect", "request"} <= set(result.phases)
    assert result.phases["request"] > 0.2
    assert result.sample(names.BB_DNS_QUERY_SUCCEEDED) == 0
    assert result.sample(names.BB_IP_PROTOCOL) == 4
    assert len(server.queries) == 1


async def test_a_refused_tcp_connection_fails_to_connect() -> None:
    port = free_port()

    result = await probe(DnsSpec(query=WWW, server=f"127.0.0.1:{port}", transport="tcp"))

    assert result.reason is FailureReason.CONNECT
    assert "refused" in result.detail
    assert result.sample(names.BB_DNS_QUERY_SUCCEEDED) == 0


async def test_a_closed_udp_port_fails_to_connect_via_icmp_port_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await probe(DnsSpec(query=WWW, server=f"127.0.0.1:{port}", transport="udp"))

    assert result.reason is FailureReason.CONNECT
    assert "refused" in result.detail


async def test_a_guard_refusal_is_forbidden_and_sends_nothing(server: DnsServer) -> None:
    def deny(host: str, ip: str) -> None:
        raise ForbiddenTargetError(f"{ip} is not allowed")

    ctx = ProbeContext(timeout=2.0, guard=deny)
    result = await run_probe(probe_dns, spec_for(server), ctx)

    assert result.reason is FailureReason.FORBIDDEN
    assert "127.0.0.1 is not allowed" in result.detail
    assert server.queries == []


async def test_the_guard_sees_the_resolved_ip_of_a_server_name(server: DnsServer) -> None:
    seen: list[tuple[str, str]] = []
    ctx = ProbeContext(timeout=2.0, guard=lambda host, ip: seen.append((host, ip)))
    spec = DnsSpec(query=WWW, server=f"localhost:{server.port}")

    result = await run_probe(probe_dns, spec, ctx)

    assert result.success, result.detail
    assert seen == [("localhost", "127.0.0.1")]


async def test_a_server_of_the_wrong_family_without_fallback_fails_to_resolve(
    server: DnsServer,
) -> None:
    spec = spec_for(server, preferred_ip_protocol="ip6", ip_protocol_fallback=False)

    result = await probe(spec)

    assert result.reason is FailureReason.DNS
    assert server.queries == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_unparseable_answer_is_a_protocol_failure(server: DnsServer, transport: str) -> None:
    server.set(WWW, "A", Reply(wire=b"\x12\x34not dns at all"))

    result = await probe(spec_for(server, transport=transport))

    assert result.reason is FailureReason.PROTOCOL
    assert "unparseable" in result.detail


async def test_an_answer_to_another_query_is_a_protocol_failure(server: DnsServer) -> None:
    other = DnsServer()
    other.answer("other.example.test", "A", "192.0.2.1")
    foreign = other._respond(_query_wire("other.example.test", query_id=1), "udp")[1]
    assert foreign is not None
    server.set(WWW, "A", Reply(wire=foreign))

    result = await probe(spec_for(server))

    assert result.reason is FailureReason.PROTOCOL
    assert "does not match" in result.detail


async def test_a_tcp_server_that_hangs_up_is_a_protocol_failure(server: DnsServer) -> None:
    server.set(WWW, "A", Reply(hangup=True))

    result = await probe(spec_for(server, transport="tcp"))

    assert result.reason is FailureReason.PROTOCOL
    assert "connection closed" in result.detail


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_a_server_on_ipv6_loopback_is_asked_over_ipv6() -> None:
    try:
        srv = await DnsServer(host="::1").start()
    except OSError:
        pytest.skip("::1 not available")
    try:
        srv.answer(WWW, "AAAA", "2001:db8::1")
        result = await probe(DnsSpec(query=WWW, type="AAAA", server=srv.address))
    finally:
        await srv.close()

    assert result.success, result.detail
    assert result.sample(names.BB_IP_PROTOCOL) == 6
    assert result.sample(names.BB_IP_ADDR_HASH) == ip_addr_hash("::1")


def test_the_default_server_is_the_first_nameserver_of_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.test\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    ipv6 = tmp_path / "resolv6.conf"
    ipv6.write_text("nameserver fd00::53\n")

    assert system_nameserver(conf) == "10.0.0.2:53"
    assert system_nameserver(ipv6) == "[fd00::53]:53"
    assert system_nameserver(tmp_path / "missing") == "127.0.0.1:53"


async def test_without_a_server_the_probe_asks_the_resolv_conf_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    spec = DnsSpec(query=WWW, transport="tcp")
    refused: list[tuple[str, str]] = []

    def deny(host: str, ip: str) -> None:
        refused.append((host, ip))
        raise ForbiddenTargetError(f"{ip} refused")

    ctx = ProbeContext(timeout=2.0, guard=deny, extras={"resolv_conf": conf})
    result = await run_probe(probe_dns, spec, ctx)

    assert result.reason is FailureReason.FORBIDDEN  # stops before any traffic to port 53
    assert refused == [("127.0.0.1", "127.0.0.1")]


def _fnv1a_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def test_ip_addr_hash_is_fnv1a_32_of_the_address_bytes_as_blackbox_hashes_them() -> None:
    assert _fnv1a_32(b"a") == 0xE40C292C  # the published FNV-1a test vector
    assert ip_addr_hash("127.0.0.1") == _fnv1a_32(bytes([127, 0, 0, 1]))
    assert ip_addr_hash("::1") == _fnv1a_32(bytes(15) + b"\x01")
    assert ip_addr_hash("::ffff:127.0.0.1") == ip_addr_hash("127.0.0.1")


def _query_wire(name: str, *, query_id: int) -> bytes:
    return dns.message.make_query(name, "A", id=query_id).to_wire()


@pytest.mark.parametrize(
    "fields",
    [{"type": "NOSUCHTYPE"}, {"query_class": "XX"}, {"expect": {"rcode": ["NOPE"]}}, {"query": "a" * 64 + ".test"}],
)
async def test_a_spec_dnspython_cannot_express_is_reported_without_sending(
    server: DnsServer, fields: dict[str, Any]
) -> None:
    result = await probe(spec_for(server, **fields))

    assert result.reason is FailureReason.INTERNAL
    assert result.detail.startswith("invalid DNS spec: ")
    assert server.queries == []
