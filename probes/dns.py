"""DNS probe: one query to one server over UDP or TCP, judged like blackbox_exporter's.

The server (``host:port``; the first ``nameserver`` of resolv.conf when unset) is resolved
through ``resolve_host`` so the guard sees the IP actually dialled. Phases follow
blackbox: ``resolve``, ``connect`` (socket set up; the TCP handshake), ``request`` (query
sent until the answer is read). A UDP answer with the TC bit is asked again over TCP,
as every stub resolver does, and the probe log says so; the assertions then see the
complete answer.

Records are matched as blackbox (miekg/dns) prints them, one line per record with the
header fields separated by tabs: ``www.example.org.\\t300\\tIN\\tA\\t192.0.2.1``, so
blackbox modules keep working unchanged. Regexes are searched, not anchored.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from slaprobe import conventions as names
from slaprobe.config import DnsRecordAssertion, DnsSpec, TLSConfig
from slaprobe.probes.resolve import ResolveError, address_samples, resolve_host, unresolved_samples
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, Sample
from slaprobe.probes.tlsutil import TLSSettingsError, client_context, describe_tls_error, server_hostname

RESOLV_CONF = Path("/etc/resolv.conf")
_PHASES = ("resolve", "connect", "request")
_MAX_UDP = 65535


class _BadAnswerError(Exception):
    """The server sent something that is not an answer to our query."""


class _TruncatedError(Exception):
    """The UDP answer had the TC bit set."""


async def probe_dns(spec: DnsSpec, ctx: ProbeContext) -> ProbeResult:
    """Send ``spec``'s query to its server and check rcode, record counts and records."""
    trace = ctx.trace
    state = _State(ctx)
    try:
        rdtype = dns.rdatatype.from_text(spec.type)
        rdclass = dns.rdataclass.from_text(spec.query_class)
        accepted = {dns.rcode.from_text(code) for code in spec.expect.rcode}
        query = dns.message.make_query(spec.query, rdtype, rdclass)
    except dns.exception.DNSException as exc:  # config validation should have caught it
        return state.finish(FailureReason.INTERNAL, f"invalid DNS spec: {exc}")
    if not spec.recursion_desired:
        query.flags &= ~dns.flags.RD

    server = spec.server or system_nameserver(ctx.extras.get("resolv_conf", RESOLV_CONF))
    host, port = _split_host_port(server)
    try:
        ip, family = await resolve_host(
            host, ctx, preferred=spec.preferred_ip_protocol, fallback=spec.ip_protocol_fallback, port=port
        )
    except ResolveError as exc:
        state.unresolved()
        return state.finish(FailureReason.DNS, str(exc))
    state.resolved(ip, family)

    where = f"{_join(ip, port)} over {spec.transport}"
    trace.log(f"asking {where}: {spec.query} {spec.query_class} {spec.type} (id {query.id})")
    try:
        try:
            response = await _exchange(query, (ip, port), family, spec.transport, state, spec, host)
        except _TruncatedError:
            trace.log("answer truncated (TC bit) over udp; asking again over tcp")
            where = f"{_join(ip, port)} over tcp (udp answer was truncated)"
            response = await _exchange(query, (ip, port), family, "tcp", state, spec, host)
    except ssl.SSLError as exc:
        return state.finish(FailureReason.TLS, f"{where}: {describe_tls_error(exc)}")
    except TLSSettingsError as exc:
        return state.finish(FailureReason.TLS, str(exc))
    except ConnectionRefusedError:
        return state.finish(FailureReason.CONNECT, f"connection refused by {where}")
    except OSError as exc:
        return state.finish(FailureReason.CONNECT, f"{where}: {exc.strerror or exc}")
    except _BadAnswerError as exc:
        return state.finish(FailureReason.PROTOCOL, f"{where}: {exc}")

    answers, authorities, additionals = state.answered(response)
    rcode = dns.rcode.to_text(response.rcode())
    trace.log(f"answer {rcode}: {answers} answer, {authorities} authority, {additionals} additional records")
    if response.rcode() not in accepted:
        return state.finish(FailureReason.RCODE, f"rcode {rcode} not in {spec.expect.rcode}")
    if answers < spec.expect.min_answers:
        return state.finish(
            FailureReason.ASSERTION,
            f"{answers} answer records, expected at least {spec.expect.min_answers}",
        )
    sections = (
        ("answer", response.answer, spec.expect.answer),
        ("authority", response.authority, spec.expect.authority),
        ("additional", response.additional, spec.expect.additional),
    )
    for section, rrsets, assertion in sections:
        problem = check_records(record_lines(rrsets), assertion)
        if problem:
            return state.finish(FailureReason.ASSERTION, f"{section} section: {problem}")
    trace.log(f"success: {rcode} from {where}")
    return state.finish(None, "")


def record_lines(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """Each record as one line of zone-file text, fields tab-separated as blackbox prints them."""
    lines: list[str] = []
    for rrset in rrsets:
        header = "\t".join(
            (
                rrset.name.to_text(),
                str(rrset.ttl),
                dns.rdataclass.to_text(rrset.rdclass),
                dns.rdatatype.to_text(rrset.rdtype),
            )
        )
        lines.extend(f"{header}\t{rdata.to_text()}" for rdata in rrset)
    return lines


def check_records(lines: Sequence[str], assertion: DnsRecordAssertion) -> str | None:
    """Why ``lines`` fail ``assertion`` (blackbox semantics), or None when they pass.

    fail_if_matches: any record matches any regex. fail_if_all_match: some record misses
    some regex (blackbox's reading of the key, prober/dns.go validRRs, whatever its name
    says; no records pass). fail_if_not_matches: some record misses some regex (or there
    are no records). fail_if_none_matches: no record matches any regex.
    """
    if not lines and assertion.fail_if_not_matches_regexp:
        return "no records, but fail_if_not_matches_regexp is set"
    if not lines and assertion.fail_if_none_matches_regexp:
        return "no records, but fail_if_none_matches_regexp is set"
    for line in lines:
        for regex in assertion.fail_if_matches_regexp:
            if re.search(regex, line):
                return f"record {line!r} matches fail_if_matches_regexp {regex!r}"
        for regex in assertion.fail_if_not_matches_regexp:
            if not re.search(regex, line):
                return f"record {line!r} does not match fail_if_not_matches_regexp {regex!r}"
    all_regexes = assertion.fail_if_all_match_regexp
    for line in lines:
        for regex in all_regexes:
            if not re.search(regex, line):
                return f"record {line!r} does not match fail_if_all_match_regexp {regex!r}"
    none_regexes = assertion.fail_if_none_matches_regexp
    if none_regexes and not any(re.search(r, line) for line in lines for r in none_regexes):
        return f"no record matches fail_if_none_matches_regexp {none_regexes}"
    return None


def system_nameserver(path: Path = RESOLV_CONF) -> str:
    """``host:port`` of the first nameserver in resolv.conf (127.0.0.1:53 if none, as glibc)."""
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                host = fields[1]
                return f"[{host}]:53" if ":" in host else f"{host}:53"
    return "127.0.0.1:53"


# ---------------------------------------------------------------------------- exchange


async def _exchange(
    query: dns.message.Message,
    address: tuple[str, int],
    family: int,
    transport: str,
    state: _State,
    spec: DnsSpec,
    host: str,
) -> dns.message.Message:
    """Send ``query`` to ``address`` and return the answer to it (one attempt)."""
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    if spec.dns_over_tls is not None:
        return await _exchange_tls(query, address, family, state, spec, host)
    with socket.socket(family, kind) as sock:
        sock.setblocking(False)
        if spec.source_ip_address:
            sock.bind((spec.source_ip_address, 0))
        with state.phase("connect"):
            # Connecting a UDP socket fixes the peer, so ICMP port unreachable surfaces
            # as ConnectionRefusedError and datagrams from others are dropped.
            await loop.sock_connect(sock, address)
        with state.phase("request"):
            wire = query.to_wire()
            if kind == socket.SOCK_DGRAM:
                await loop.sock_sendall(sock, wire)
                answer = await loop.sock_recv(sock, _MAX_UDP)
                if len(answer) >= 4 and answer[2] & (dns.flags.TC >> 8):
                    raise _TruncatedError
            else:
                await loop.sock_sendall(sock, struct.pack("!H", len(wire)) + wire)
                (length,) = struct.unpack("!H", await _recv_exactly(sock, 2))
                answer = await _recv_exactly(sock, length)
    return _parse(answer, query)


async def _exchange_tls(
    query: dns.message.Message,
    address: tuple[str, int],
    family: int,
    state: _State,
    spec: DnsSpec,
    host: str,
) -> dns.message.Message:
    """DNS over TLS (RFC 7858): the tcp exchange inside a TLS connection."""
    tls = spec.dns_over_tls or TLSConfig()
    context = client_context(tls)
    with state.phase("connect"):
        local = (spec.source_ip_address, 0) if spec.source_ip_address else None
        reader, writer = await asyncio.open_connection(
            address[0],
            address[1],
            family=family,
            ssl=context,
            server_hostname=server_hostname(tls, host) or None,
            local_addr=local,
        )
    try:
        with state.phase("request"):
            wire = query.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            try:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                answer = await reader.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                raise _BadAnswerError(f"connection closed after {len(exc.partial)} bytes") from None
    finally:
        writer.transport.abort()
    return _parse(answer, query)


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise _BadAnswerError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def _parse(wire: bytes, query: dns.message.Message) -> dns.message.Message:
    try:
        response = dns.message.from_wire(wire, one_rr_per_rrset=True)
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise _BadAnswerError(f"unparseable answer ({len(wire)} bytes): {exc}") from exc
    if response.id != query.id:
        raise _BadAnswerError(f"answer id {response.id} does not match query id {query.id}")
    if not query.is_response(response):
        raise _BadAnswerError("answer does not match the question asked")
    return response


# ---------------------------------------------------------------------------- results


class _State:
    """What the probe knows so far, mirrored into ``ctx.trace.samples`` after each step."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.ip_samples: list[Sample] = []
        self.counts: tuple[int, int, int] | None = None  # answer, authority, additional
        self.serial: int | None = None
        self.publish()

    def resolved(self, ip: str, family: int) -> None:
        self.ip_samples = address_samples(ip, family, self.ctx.trace.phases.get("resolve", 0.0))
        self.publish()

    def unresolved(self) -> None:
        self.ip_samples = unresolved_samples(self.ctx.trace.phases.get("resolve", 0.0))
        self.publish()

    def answered(self, response: dns.message.Message) -> tuple[int, int, int]:
        self.counts = counts = (
            _count(response.answer),
            _count(response.authority),
            _count(response.additional),
        )
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                self.serial = rrset[0].serial
        self.publish()
        return counts

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase into the trace, even when the deadline cancels it midway."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.ctx.trace.add_phase(name, time.monotonic() - started)
            self.publish()

    def publish(self) -> None:
        """Rewrite the trace's samples so a timeout still reports what was learned."""
        phases = self.ctx.trace.phases
        samples = list(self.ip_samples)
        samples += [Sample(names.BB_DNS_DURATION, phases.get(p, 0.0), (("phase", p),)) for p in _PHASES]
        samples.append(Sample(names.BB_DNS_QUERY_SUCCEEDED, 1 if self.counts else 0))
        counts = self.counts or (0, 0, 0)  # as blackbox: 0 until an answer came
        samples += [
            Sample(names.BB_DNS_ANSWER_RRS, counts[0]),
            Sample(names.BB_DNS_AUTHORITY_RRS, counts[1]),
            Sample(names.BB_DNS_ADDITIONAL_RRS, counts[2]),
        ]
        if self.serial is not None:
            samples.append(Sample(names.BB_DNS_SERIAL, self.serial))
        self.ctx.trace.samples[:] = samples

    def finish(self, reason: FailureReason | None, detail: str) -> ProbeResult:
        """The result: success when ``reason`` is None."""
        trace = self.ctx.trace
        if reason is not None:
            trace.log(f"failed ({reason}): {detail}")
        self.publish()
        return trace.result(reason, detail)


def _count(rrsets: Iterable[dns.rrset.RRset]) -> int:
    return sum(len(rrset) for rrset in rrsets)


def _split_host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def _join(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
