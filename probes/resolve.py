"""Name resolution shared by every probe kind: family preference, fallback, guard, timing."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time

from slaprobe import conventions as names
from slaprobe.probes.result import DialGuard, Lookup, ProbeContext, Sample

_FAMILIES: dict[str, int] = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


class ResolveError(Exception):
    """The name has no address of an acceptable family."""


@functools.lru_cache(maxsize=16384)  # scheduled probes ask about the same hosts every run
def literal_ip(host: str) -> str | None:
    """``host`` as a normalised IP string if it is an IP literal (``[::1]`` too), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def resolve_host(
    host: str,
    ctx: ProbeContext,
    *,
    preferred: str = "ip4",
    fallback: bool = True,
    port: int | None = None,
) -> tuple[str, int]:
    """Resolve ``host`` to the one IP that will be dialled and return (ip, address family).

    The preferred family is tried first, the other only if ``fallback``. The time spent
    is added to the ``resolve`` phase; the guard (if any) checks the chosen IP (and ``port``,
    the one to be dialled, for a ``DialGuard``) and raises ``ForbiddenTargetError`` for an
    address outside the allow-list.
    """
    started = time.monotonic()
    try:
        ip = literal_ip(host)
        if ip is not None:
            family: int = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if not fallback and family != _FAMILIES[preferred]:
                raise ResolveError(f"{host} is not an {preferred} address")
        else:
            ip, family = await _lookup(host, preferred, fallback, ctx.lookup or _system_lookup)
        ctx.trace.log(f"resolved {host} to {ip}")
        if isinstance(ctx.guard, DialGuard):
            ctx.guard.check(host, ip, port)
        elif ctx.guard is not None:
            ctx.guard(host, ip)
        return ip, family
    finally:
        ctx.trace.add_phase("resolve", time.monotonic() - started)


async def _system_lookup(host: str, family: int) -> list[str]:
    """The addresses getaddrinfo gives for ``host`` in ``family``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _lookup(host: str, preferred: str, fallback: bool, lookup: Lookup) -> tuple[str, int]:
    order = [_FAMILIES[preferred]]
    if fallback:
        order.append(socket.AF_INET6 if order[0] == socket.AF_INET else socket.AF_INET)
    last: Exception | None = None
    for family in order:
        try:
            addresses = await lookup(host, family)
        except (OSError, UnicodeError) as exc:
            last = exc
            continue
        if addresses:
            return addresses[0], family
    raise ResolveError(f"cannot resolve {host}: {last}" if last else f"no address for {host}")


@functools.lru_cache(maxsize=16384)
def ip_hash(ip: str) -> float:
    """FNV-32a of the address bytes (4 for IPv4), as blackbox computes ``probe_ip_addr_hash``."""
    address = ipaddress.ip_address(ip.partition("%")[0])  # without an IPv6 zone
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Go's To4() hashes a v4-mapped address as IPv4
    value = 0x811C9DC5
    for byte in address.packed:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return float(value)


def address_samples(ip: str, family: int, lookup_seconds: float) -> list[Sample]:
    """blackbox's samples about the dialled address: lookup time, IP protocol, address hash."""
    return [
        Sample(names.BB_DNS_LOOKUP, lookup_seconds),
        Sample(names.BB_IP_PROTOCOL, 6 if family == socket.AF_INET6 else 4),
        Sample(names.BB_IP_ADDR_HASH, ip_hash(ip)),
    ]


def unresolved_samples(lookup_seconds: float) -> list[Sample]:
    """blackbox's samples about the address when resolution failed: the time spent, and
    protocol and hash 0 (its gauges are registered before the lookup, so they show 0)."""
    return [
        Sample(names.BB_DNS_LOOKUP, lookup_seconds),
        Sample(names.BB_IP_PROTOCOL, 0),
        Sample(names.BB_IP_ADDR_HASH, 0),
    ]
