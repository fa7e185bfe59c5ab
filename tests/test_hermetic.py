"""The suite itself sends nothing off loopback: no name reaches the system resolver, no packet leaves.

tests/conftest.py replaces ``socket.getaddrinfo`` for the whole run; scripts/test runs
pytest under ``unshare -n`` (a network namespace with only ``lo``) when it is root.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import pytest


@pytest.mark.parametrize("name", ["example.invalid", "shop.example", "prometheus", "localhost.example"])
def test_a_name_other_than_localhost_is_not_resolved(name: str) -> None:
    with pytest.raises(socket.gaierror) as raised:
        socket.getaddrinfo(name, 80)
    assert raised.value.errno == socket.EAI_NONAME
    assert "loopback only" in str(raised.value)


async def test_the_event_loops_resolver_is_held_to_the_same_rule() -> None:
    with pytest.raises(socket.gaierror):
        await asyncio.get_running_loop().getaddrinfo("example.invalid", 80)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "0x7f000001", "127.1", None])
def test_ip_literals_and_localhost_still_resolve_without_a_query(host: str | None) -> None:
    assert socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)


def _only_loopback_interface() -> bool:
    """Whether this process's network namespace has ``lo`` alone (/proc/self/net is per namespace; /sys is not)."""
    try:
        lines = Path("/proc/self/net/dev").read_text(encoding="ascii").splitlines()[2:]
    except OSError:
        return False
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


@pytest.mark.skipif(not _only_loopback_interface(), reason="not in a loopback-only namespace (scripts/test as root)")
def test_in_the_loopback_only_namespace_no_route_leads_off_the_machine() -> None:
    with socket.socket() as sock, pytest.raises(OSError) as raised:
        sock.settimeout(2)
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: a route would be needed
    assert raised.value.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
