"""ICMP probe: N echo requests, the loss ratio, min/avg/max round-trip time and jitter.

Sockets: an unprivileged ping socket (``SOCK_DGRAM``, allowed by
``net.ipv4.ping_group_range``, IPv6 too) when the kernel allows one, a raw socket
(``CAP_NET_RAW``) otherwise, as blackbox does. The kernel rewrites the echo identifier
on ping sockets, so replies are matched by sequence number and a random per-probe tag
at the start of the payload (and by identifier on raw sockets, which see every echo
reply the host gets).

Timing: requests leave ``packet_interval`` apart. The probe then waits for the missing
replies until all came, or, once at least one did, ``max(2 x highest RTT, 1 s)`` after
the last request (ping's rule), and never past its own deadline (``ctx.timeout`` minus a
small margin), so it always returns loss figures itself instead of being cancelled.
An RTT runs from just before ``sendto`` to the moment the event loop reads the reply.
Jitter is the mean absolute difference of consecutive RTTs (RFC 3550's
``|D(i-1, i)|`` without its 1/16 smoothing; mtr's "javg"), in sequence order.

Seams (``ctx.extras``): ``icmp_socket_factory`` (``socket.socket``-like) and
``icmp_send`` (``send(sock, packet, address)``), so tests drop packets on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from slaprobe import conventions as names
from slaprobe.config import IcmpSpec
from slaprobe.probes.resolve import ResolveError, address_samples, resolve_host, unresolved_samples
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, ProbeTrace, Sample

log = logging.getLogger("slaprobe.probes")

SocketFactory = Callable[[int, int, int], socket.socket]
SendFn = Callable[[socket.socket, bytes, tuple[str, int]], None]

# Linux's IP_RECVTTL (include/uapi/linux/in.h); Python's socket module does not export it.
IP_RECVTTL: int = getattr(socket, "IP_RECVTTL", 12)
_ECHO_REQUEST: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTO: dict[int, int] = {
    socket.AF_INET: socket.IPPROTO_ICMP,
    socket.AF_INET6: socket.IPPROTO_ICMPV6,
}
_TAG_SIZE = 8
_FILL = b"slaprobe"
_MIN_LINGER = 1.0  # seconds to wait for late replies after the last request, at least
_PHASES = ("resolve", "setup", "rtt")
_warned_no_socket = False
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)  # Linux: path MTU discovery mode
_IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)  # never fragment: the DF bit


class IcmpSocketError(Exception):
    """Neither an unprivileged ping socket nor a raw socket could be opened."""


@dataclass(frozen=True)
class IcmpSocket:
    """An open ICMP socket and what kind it is."""

    sock: socket.socket
    family: int
    raw: bool  # SOCK_RAW: IPv4 replies start with the IP header; the identifier is ours


def open_icmp_socket(family: int, *, factory: SocketFactory = socket.socket) -> IcmpSocket:
    """An ICMP socket: an unprivileged ping socket when the kernel allows, raw otherwise."""
    failures = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            sock = factory(family, kind, _PROTO[family])
        except OSError as exc:
            name = "ping socket" if kind == socket.SOCK_DGRAM else "raw socket"
            failures.append(f"{name}: {exc.strerror or exc}")
            continue
        return IcmpSocket(sock, family, raw=kind == socket.SOCK_RAW)
    gid = os.getgid()
    raise IcmpSocketError(
        f"no ICMP socket: need CAP_NET_RAW or net.ipv4.ping_group_range covering gid {gid} "
        f"(sysctl -w net.ipv4.ping_group_range='{gid} {gid}', or setcap cap_net_raw+ep on the interpreter) "
        f"({'; '.join(failures)})"
    )


def echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request; the kernel fills the ICMPv6 checksum."""
    header = struct.pack("!BBHHH", _ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET6:
        return header + payload
    checksum = internet_checksum(header + payload)
    return struct.pack("!BBHHH", _ECHO_REQUEST[family], 0, checksum, ident, seq) + payload


def internet_checksum(data: bytes) -> int:
    """The RFC 1071 ones'-complement checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def jitter(rtts: list[float]) -> float:
    """Mean absolute difference of consecutive RTTs (0 with fewer than two)."""
    if len(rtts) < 2:
        return 0.0
    return statistics.fmean(abs(b - a) for a, b in pairwise(rtts))


async def probe_icmp(spec: IcmpSpec, ctx: ProbeContext) -> ProbeResult:
    """Send ``spec.packets`` echo requests to the host and judge loss and round-trip time."""
    trace = ctx.trace
    state = _State(ctx)
    try:
        ip, family = await resolve_host(
            spec.host, ctx, preferred=spec.preferred_ip_protocol, fallback=spec.ip_protocol_fallback
        )
    except ResolveError as exc:
        state.unresolved()
        return state.finish(FailureReason.DNS, str(exc))
    state.resolved(ip, family)

    started = time.monotonic()
    factory: SocketFactory = ctx.extras.get("icmp_socket_factory", socket.socket)
    try:
        icmp = open_icmp_socket(family, factory=factory)
    except IcmpSocketError as exc:
        trace.add_phase("setup", time.monotonic() - started)
        _warn_once(str(exc))
        # Not the target's fault, nor a bug: the process lacks the privilege; the detail says which.
        return state.finish(FailureReason.PERMISSION, str(exc))
    with icmp.sock:
        _configure(icmp, spec.ttl, dont_fragment=spec.dont_fragment)
        if spec.source_ip_address:
            try:
                icmp.sock.bind((spec.source_ip_address, 0))
            except OSError as exc:
                trace.add_phase("setup", time.monotonic() - started)
                return state.finish(
                    FailureReason.CONNECT, f"cannot send from {spec.source_ip_address}: {exc.strerror or exc}"
                )
        trace.add_phase("setup", time.monotonic() - started)
        trace.log(f"{'raw' if icmp.raw else 'unprivileged ping'} socket for {ip}")
        state.publish()
        session = _EchoSession(icmp, ip, spec, send=ctx.extras.get("icmp_send", _sendto))
        margin = min(0.5, ctx.timeout / 10)
        await session.run(ctx.trace.started + ctx.timeout - margin, trace)
    return _judge(spec, session, state)


def _judge(spec: IcmpSpec, session: _EchoSession, state: _State) -> ProbeResult:
    trace = state.ctx.trace
    sent, rtts = session.sent, session.rtts_in_order()
    loss = 1.0 if sent == 0 else (sent - len(rtts)) / sent
    state.loss = loss
    state.hop_limit = session.hop_limit
    if rtts:
        state.rtt = {
            "min": min(rtts),
            "avg": statistics.fmean(rtts),
            "max": max(rtts),
            "jitter": jitter(rtts),
        }
        trace.add_phase("rtt", state.rtt["avg"])
    summary = f"{sent - len(rtts)} of {sent} echo requests lost ({loss:.0%})"
    if state.rtt:
        rtt = state.rtt
        summary += (
            f", rtt min/avg/max/jitter {rtt['min'] * 1e3:.3f}/{rtt['avg'] * 1e3:.3f}/"
            f"{rtt['max'] * 1e3:.3f}/{rtt['jitter'] * 1e3:.3f} ms"
        )
    trace.log(summary)
    if sent == 0:
        return state.finish(FailureReason.TIMEOUT, "the deadline passed before the first echo request")
    if not rtts and session.send_error:
        return state.finish(FailureReason.CONNECT, f"sending to {session.ip}: {session.send_error}")
    if loss > spec.expect.max_loss_ratio:
        return state.finish(FailureReason.LOSS, f"{summary}; at most {spec.expect.max_loss_ratio:.0%} allowed")
    max_rtt = spec.expect.max_rtt
    if max_rtt is not None and state.rtt and state.rtt["avg"] > max_rtt:
        return state.finish(
            FailureReason.SLOW,
            f"average rtt {state.rtt['avg'] * 1e3:.3f} ms above {max_rtt * 1e3:.3f} ms",
        )
    return state.finish(None, "")


# ---------------------------------------------------------------------------- echo session


def _sendto(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
    sock.sendto(packet, address)


def _configure(icmp: IcmpSocket, ttl: int | None, *, dont_fragment: bool = False) -> None:
    sock = icmp.sock
    sock.setblocking(False)
    if icmp.family == socket.AF_INET:
        if ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if dont_fragment and sys.platform == "linux":  # blackbox: IPv4 only, on Linux
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        if sys.platform == "linux":
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    else:
        if ttl is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)


@dataclass
class _EchoSession:
    """Sends the echo requests of one probe and collects the replies that belong to it."""

    icmp: IcmpSocket
    ip: str
    spec: IcmpSpec
    send: SendFn
    ident: int = field(default_factory=lambda: secrets.randbelow(0x10000))
    tag: bytes = field(default_factory=lambda: secrets.token_bytes(_TAG_SIZE))
    sent_at: dict[int, float] = field(default_factory=dict)  # seq -> monotonic send time
    rtts: dict[int, float] = field(default_factory=dict)  # seq -> seconds
    hop_limit: int | None = None
    send_error: str = ""
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set on every reply
    payload: bytes = b""

    def __post_init__(self) -> None:
        size = self.spec.payload_size
        self.payload = (self.tag + _FILL * (size // len(_FILL) + 1))[:size]

    @property
    def sent(self) -> int:
        """Echo requests sent so far."""
        return len(self.sent_at)

    def rtts_in_order(self) -> list[float]:
        """Round-trip times of the answered requests, by sequence number."""
        return [self.rtts[seq] for seq in sorted(self.rtts)]

    async def run(self, deadline: float, trace: ProbeTrace) -> None:
        """Send every request (unless the deadline comes first) and wait for the replies."""
        loop = asyncio.get_running_loop()
        fd = self.icmp.sock.fileno()
        loop.add_reader(fd, self._on_readable)
        try:
            await self._send_all(deadline, trace)
            await self._wait_replies(deadline)
        finally:
            loop.remove_reader(fd)

    async def _send_all(self, deadline: float, trace: ProbeTrace) -> None:
        family = self.icmp.family
        address = (self.ip, 0)
        payload = self.payload
        first = time.monotonic()
        for seq in range(1, self.spec.packets + 1):
            due = first + (seq - 1) * self.spec.packet_interval
            if due >= deadline:
                trace.log(f"deadline: sent {self.sent} of {self.spec.packets} echo requests")
                return
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            packet = echo_request(family, self.ident, seq, payload)
            self.sent_at[seq] = time.monotonic()
            try:
                self.send(self.icmp.sock, packet, address)
            except OSError as exc:  # no route, firewall: this request is lost
                self.send_error = exc.strerror or str(exc)
                trace.log(f"echo request {seq} not sent: {self.send_error}")

    async def _wait_replies(self, deadline: float) -> None:
        last_sent = max(self.sent_at.values(), default=time.monotonic())
        while len(self.rtts) < self.sent:
            until = deadline
            if self.rtts:
                linger = max(2 * max(self.rtts.values()), _MIN_LINGER)
                until = min(deadline, last_sent + linger)
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), remaining)
            except TimeoutError:
                return

    def _on_readable(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data, ancdata, _flags, source = self.icmp.sock.recvmsg(65535, socket.CMSG_SPACE(4) * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued ICMP error; the reader fires again for any data
                return
            self._on_packet(data, ancdata, source[0], now)

    def _on_packet(self, data: bytes, ancdata: list[Any], source: str, now: float) -> None:
        hop_limit = _hop_limit(ancdata)
        if self.icmp.raw and self.icmp.family == socket.AF_INET:
            header_length = (data[0] & 0x0F) * 4 if data else 0
            if hop_limit is None and len(data) > 8:
                hop_limit = data[8]
            data = data[header_length:]
        if len(data) < 8 or source.split("%")[0] != self.ip:
            return
        kind, _code, _checksum, ident, seq = struct.unpack("!BBHHH", data[:8])
        if kind != _ECHO_REPLY[self.icmp.family] or data[8:] != self.payload:
            return
        if self.icmp.raw and ident != self.ident:  # ping sockets: the kernel owns the id
            return
        if seq not in self.sent_at or seq in self.rtts:
            return
        self.rtts[seq] = now - self.sent_at[seq]
        if hop_limit is not None:
            self.hop_limit = hop_limit
        self.progress.set()


def _hop_limit(ancdata: list[Any]) -> int | None:
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)) and len(
            data
        ) >= 4:
            return int.from_bytes(data[:4], sys.byteorder)
    return None


def _warn_once(message: str) -> None:
    global _warned_no_socket
    if not _warned_no_socket:
        _warned_no_socket = True
        log.warning("icmp probes cannot run: %s", message)


# ---------------------------------------------------------------------------- results


class _State:
    """What the probe knows so far, mirrored into ``ctx.trace.samples`` after each step."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.ip_samples: list[Sample] = []
        self.loss: float | None = None
        self.rtt: dict[str, float] = {}
        self.hop_limit: int | None = None
        self.publish()

    def resolved(self, ip: str, family: int) -> None:
        self.ip_samples = address_samples(ip, family, self.ctx.trace.phases.get("resolve", 0.0))
        self.publish()

    def unresolved(self) -> None:
        self.ip_samples = unresolved_samples(self.ctx.trace.phases.get("resolve", 0.0))
        self.publish()

    def publish(self) -> None:
        """Rewrite the trace's samples so a timeout still reports what was learned."""
        phases = self.ctx.trace.phases
        samples = list(self.ip_samples)
        samples += [Sample(names.BB_ICMP_DURATION, phases.get(p, 0.0), (("phase", p),)) for p in _PHASES]
        if self.hop_limit is not None:
            samples.append(Sample(names.BB_ICMP_REPLY_HOP_LIMIT, self.hop_limit))
        if self.loss is not None:
            samples.append(Sample(names.BB_ICMP_LOSS_RATIO, self.loss))
        samples += [Sample(names.BB_ICMP_RTT, value, (("stat", stat),)) for stat, value in self.rtt.items()]
        self.ctx.trace.samples[:] = samples

    def finish(self, reason: FailureReason | None, detail: str) -> ProbeResult:
        """The result: success when ``reason`` is None."""
        trace = self.ctx.trace
        if reason is not None:
            trace.log(f"failed ({reason}): {detail}")
        self.publish()
        return trace.result(reason, detail)
