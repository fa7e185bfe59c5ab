"""The ICMP probe, pinging loopback only (127.0.0.0/8 and ::1)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as names
from slaprobe.config import IcmpSpec
from slaprobe.probes.icmp import (
    IcmpSocketError,
    echo_request,
    internet_checksum,
    jitter,
    open_icmp_socket,
    probe_icmp,
)
from slaprobe.probes.resolve import ip_hash as ip_addr_hash
from slaprobe.probes.result import (
    FailureReason,
    ForbiddenTargetError,
    ProbeContext,
    ProbeResult,
    ProbeTrace,
)
from slaprobe.probes.runner import run_probe


def _can_open(family: int, kind: int) -> bool:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    try:
        socket.socket(family, kind, proto).close()
    except OSError:
        return False
    return True


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


CAN_PING = _can_open(socket.AF_INET, socket.SOCK_DGRAM) or _can_open(socket.AF_INET, socket.SOCK_RAW)
CAN_PING6 = _has_ipv6_loopback() and (
    _can_open(socket.AF_INET6, socket.SOCK_DGRAM) or _can_open(socket.AF_INET6, socket.SOCK_RAW)
)
needs_ping = pytest.mark.skipif(not CAN_PING, reason="neither ping sockets nor CAP_NET_RAW")


def context(timeout: float = 2.0, **extras: Any) -> ProbeContext:
    """A context that keeps the probe log, with ``extras`` as seams."""
    return ProbeContext(timeout=timeout, trace=ProbeTrace(debug=True), extras=dict(extras))


def spec(host: str = "127.0.0.1", **fields: Any) -> IcmpSpec:
    """Five quick echo requests to ``host``."""
    return IcmpSpec.model_validate({"host": host, "packets": 5, "packet_interval": "5ms", **fields})


def default_hop_limit(sysctl: str) -> int:
    """The TTL / hop limit the kernel puts on its echo replies (64 unless tuned)."""
    path = Path(sysctl)
    return int(path.read_text()) if path.exists() else 64


def rtt_stats(result: ProbeResult) -> dict[str, float]:
    """The probe_icmp_rtt_seconds samples by stat."""
    return {s.labels[0][1]: s.value for s in result.samples if s.name == names.BB_ICMP_RTT}


class Refusing:
    """A socket factory that refuses some socket kinds, like a kernel without permission."""

    def __init__(self, *refused: int) -> None:
        self.refused = refused
        self.calls: list[tuple[int, int, int]] = []
        self.opened: list[socket.socket] = []

    def __call__(self, family: int, kind: int, proto: int) -> socket.socket:
        self.calls.append((family, kind, proto))
        if kind in self.refused:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        sock = socket.socket(family, kind, proto)
        self.opened.append(sock)
        return sock


@needs_ping
async def test_five_echo_requests_to_loopback_all_come_back() -> None:
    ctx = context()

    result = await run_probe(probe_icmp, spec(), ctx)

    assert result.success, result.detail
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 0
    stats = rtt_stats(result)
    assert set(stats) == {"min", "avg", "max", "jitter"}
    assert 0 < stats["min"] <= stats["avg"] <= stats["max"] < 1
    assert stats["jitter"] <= stats["max"] - stats["min"]
    assert result.phases["rtt"] == stats["avg"]
    phases = {s.labels[0][1]: s.value for s in result.samples if s.name == names.BB_ICMP_DURATION}
    assert phases == {p: result.phases[p] for p in ("resolve", "setup", "rtt")}
    assert result.sample(names.BB_IP_PROTOCOL) == 4
    assert result.sample(names.BB_IP_ADDR_HASH) == ip_addr_hash("127.0.0.1")
    assert result.sample(names.BB_DNS_LOOKUP) == result.phases["resolve"]
    assert result.sample(names.BB_ICMP_REPLY_HOP_LIMIT) == default_hop_limit("/proc/sys/net/ipv4/ip_default_ttl")
    assert result.duration < 1  # all replies in: no waiting for stragglers
    assert any("0 of 5 echo requests lost" in line for line in ctx.trace.lines)


@needs_ping
async def test_any_address_in_127_slash_8_answers() -> None:
    result = await run_probe(probe_icmp, spec("127.0.0.2", packets=2), context())

    assert result.success, result.detail


@pytest.mark.skipif(not CAN_PING6, reason="no ::1 or no ICMPv6 socket")
async def test_five_echo_requests_to_ipv6_loopback_all_come_back() -> None:
    result = await run_probe(probe_icmp, spec("::1"), context())

    assert result.success, result.detail
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 0
    assert result.sample(names.BB_IP_PROTOCOL) == 6
    assert result.sample(names.BB_ICMP_REPLY_HOP_LIMIT) == default_hop_limit("/proc/sys/net/ipv6/conf/lo/hop_limit")


@needs_ping
async def test_dropped_requests_count_as_loss_and_the_probe_returns_before_its_deadline() -> None:
    sent: list[int] = []

    def drop_every_other(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
        sent.append(int.from_bytes(packet[6:8], "big"))
        if len(sent) % 2:  # the 1st, 3rd and 5th leave; the others vanish on the "wire"
            sock.sendto(packet, address)

    ctx = context(timeout=0.8, icmp_send=drop_every_other)
    result = await run_probe(probe_icmp, spec(expect={"max_loss_ratio": 0.2}), ctx)

    assert sent == [1, 2, 3, 4, 5]
    assert result.reason is FailureReason.LOSS
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 0.4
    assert "2 of 5 echo requests lost (40%)" in result.detail
    assert len(rtt_stats(result)) == 4  # the replies that came still give RTTs
    assert result.duration < 0.8  # the probe stopped waiting itself: not a timeout


@needs_ping
async def test_loss_within_max_loss_ratio_is_a_success() -> None:
    def drop_first(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
        if packet[6:8] != b"\x00\x01":
            sock.sendto(packet, address)

    ctx = context(timeout=0.5, icmp_send=drop_first)
    result = await run_probe(probe_icmp, spec(expect={"max_loss_ratio": 0.2}), ctx)

    assert result.success, result.detail
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 0.2


@needs_ping
async def test_no_reply_at_all_is_loss_by_default() -> None:
    ctx = context(timeout=0.3, icmp_send=lambda sock, packet, address: None)

    result = await run_probe(probe_icmp, spec(packets=3), ctx)

    assert result.reason is FailureReason.LOSS
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 1
    assert rtt_stats(result) == {}
    assert result.sample(names.BB_ICMP_DURATION) is not None


@needs_ping
async def test_an_unroutable_send_is_a_connect_failure() -> None:
    def no_route(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
        raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))

    result = await run_probe(probe_icmp, spec(packets=2), context(timeout=0.3, icmp_send=no_route))

    assert result.reason is FailureReason.CONNECT
    assert "unreachable" in result.detail


@needs_ping
async def test_an_average_rtt_above_max_rtt_is_slow() -> None:
    tight = spec(packets=3)
    tight = tight.model_copy(update={"expect": tight.expect.model_copy(update={"max_rtt": 1e-9})})

    result = await run_probe(probe_icmp, tight, context())

    assert result.reason is FailureReason.SLOW
    assert "average rtt" in result.detail
    assert result.sample(names.BB_ICMP_LOSS_RATIO) == 0


@needs_ping
async def test_an_average_rtt_within_max_rtt_succeeds() -> None:
    result = await run_probe(probe_icmp, spec(packets=3, expect={"max_rtt": "1s"}), context())

    assert result.success, result.detail


@needs_ping
async def test_ttl_and_payload_size_are_put_on_the_wire() -> None:
    seen: list[tuple[int, int]] = []

    def record(sock: socket.socket, packet: bytes, address: tuple[str, int]) -> None:
        seen.append((sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL), len(packet)))
        sock.sendto(packet, address)

    result = await run_probe(probe_icmp, spec(packets=2, ttl=3, payload_size=100), context(icmp_send=record))

    assert result.success, result.detail
    assert seen == [(3, 108), (3, 108)]  # 8 bytes of ICMP header, then the payload


@needs_ping
async def test_a_payload_too_small_for_the_tag_still_matches_replies() -> None:
    result = await run_probe(probe_icmp, spec(packets=2, payload_size=0), context())

    assert result.success, result.detail


@needs_ping
async def test_cancellation_closes_the_socket() -> None:
    factory = Refusing()
    ctx = context(timeout=30, icmp_socket_factory=factory, icmp_send=lambda s, p, a: None)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await probe_icmp(spec(), ctx)

    assert len(factory.opened) == 1
    assert factory.opened[0].fileno() == -1


async def test_a_guard_refusal_is_forbidden_before_any_socket_is_opened() -> None:
    def deny(host: str, ip: str) -> None:
        raise ForbiddenTargetError(f"{ip} not allowed")

    factory = Refusing()
    ctx = ProbeContext(timeout=1, guard=deny, extras={"icmp_socket_factory": factory})

    result = await run_probe(probe_icmp, spec(), ctx)

    assert result.reason is FailureReason.FORBIDDEN
    assert factory.calls == []


async def test_an_address_of_the_wrong_family_without_fallback_fails_to_resolve() -> None:
    result = await run_probe(probe_icmp, spec(preferred_ip_protocol="ip6", ip_protocol_fallback=False), context())

    assert result.reason is FailureReason.DNS


async def test_without_any_icmp_socket_the_probe_says_which_privilege_is_missing() -> None:
    factory = Refusing(socket.SOCK_DGRAM, socket.SOCK_RAW)

    result = await run_probe(probe_icmp, spec(), context(icmp_socket_factory=factory))

    assert result.reason is FailureReason.PERMISSION
    assert "CAP_NET_RAW" in result.detail
    assert "ping_group_range" in result.detail
    assert "setup" in result.phases


def test_the_chooser_prefers_an_unprivileged_ping_socket() -> None:
    opened: list[tuple[int, int, int]] = []

    def fake(family: int, kind: int, proto: int) -> socket.socket:
        opened.append((family, kind, proto))
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands in for a ping socket

    icmp = open_icmp_socket(socket.AF_INET, factory=fake)
    icmp.sock.close()

    assert not icmp.raw
    assert opened == [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)]


@pytest.mark.skipif(not _can_open(socket.AF_INET, socket.SOCK_RAW), reason="no CAP_NET_RAW")
def test_the_chooser_falls_back_to_a_raw_socket_when_ping_sockets_are_refused() -> None:
    factory = Refusing(socket.SOCK_DGRAM)

    icmp = open_icmp_socket(socket.AF_INET, factory=factory)
    icmp.sock.close()

    assert icmp.raw
    assert [kind for _f, kind, _p in factory.calls] == [socket.SOCK_DGRAM, socket.SOCK_RAW]


def test_the_chooser_uses_icmpv6_for_ipv6() -> None:
    factory = Refusing(socket.SOCK_DGRAM, socket.SOCK_RAW)

    with pytest.raises(IcmpSocketError, match=r"CAP_NET_RAW or net\.ipv4\.ping_group_range"):
        open_icmp_socket(socket.AF_INET6, factory=factory)

    assert {proto for _f, _k, proto in factory.calls} == {socket.IPPROTO_ICMPV6}


@needs_ping
def test_the_chooser_on_this_host_matches_ping_group_range() -> None:
    group_range = Path("/proc/sys/net/ipv4/ping_group_range")
    if not group_range.exists():
        pytest.skip("not Linux")
    low, high = (int(x) for x in group_range.read_text().split())
    groups = {os.getgid(), *os.getgroups()}

    icmp = open_icmp_socket(socket.AF_INET)
    icmp.sock.close()

    assert icmp.raw is not any(low <= gid <= high for gid in groups)


@pytest.mark.skipif(not _can_open(socket.AF_INET, socket.SOCK_DGRAM), reason="ping_group_range excludes us")
async def test_the_unprivileged_ping_socket_path_works_when_the_kernel_allows_it() -> None:
    factory = Refusing(socket.SOCK_RAW)

    result = await run_probe(probe_icmp, spec(), context(icmp_socket_factory=factory))

    assert result.success, result.detail
    assert [kind for _f, kind, _p in factory.calls] == [socket.SOCK_DGRAM]


@pytest.mark.skipif(not _can_open(socket.AF_INET, socket.SOCK_RAW), reason="no CAP_NET_RAW")
async def test_the_raw_socket_path_works_when_ping_sockets_are_refused() -> None:
    factory = Refusing(socket.SOCK_DGRAM)

    result = await run_probe(probe_icmp, spec(), context(icmp_socket_factory=factory))

    assert result.success, result.detail
    assert factory.calls[-1][1] == socket.SOCK_RAW


def test_echo_requests_carry_a_valid_checksum() -> None:
    packet = echo_request(socket.AF_INET, 0x1234, 7, b"payload!")

    assert packet[0] == 8
    assert packet[4:8] == b"\x12\x34\x00\x07"
    assert internet_checksum(packet) == 0  # a correct checksum sums to zero
    assert echo_request(socket.AF_INET6, 1, 1, b"")[0] == 128


def test_jitter_is_the_mean_absolute_difference_of_consecutive_rtts() -> None:
    assert jitter([0.010, 0.014, 0.011, 0.011]) == pytest.approx((0.004 + 0.003 + 0) / 3)
    assert jitter([0.010]) == 0


@needs_ping
async def test_a_deadline_too_short_to_send_anything_is_a_timeout() -> None:
    ctx = context(timeout=0.001, icmp_send=lambda sock, packet, address: None)
    ctx.trace.started -= 1  # the probe's budget is already spent when it starts

    result = await probe_icmp(spec(), ctx)

    assert result.reason is FailureReason.TIMEOUT
    assert "before the first echo request" in result.detail
