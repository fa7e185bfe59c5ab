"""A hosts table for probes, so that no test asks the system resolver (nothing leaves loopback).

    ctx = ProbeContext(timeout=5.0, lookup=hosts({"shop.test": ["127.0.0.1", "::1"]}))

A name missing from the table fails as getaddrinfo fails for an unknown name; ``hosts()``
with no table knows no name at all (the probe's "does not resolve" case).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from slaprobe.probes.result import Lookup


def hosts(table: Mapping[str, Sequence[str]] | None = None, *, asked: list[str] | None = None) -> Lookup:
    """A ``ProbeContext.lookup`` answering from ``table``; ``asked`` collects every name looked up."""
    known = {name.rstrip(".").lower(): list(addresses) for name, addresses in (table or {}).items()}

    async def lookup(host: str, family: int) -> list[str]:
        if asked is not None:
            asked.append(host)
        addresses = [a for a in known.get(host.rstrip(".").lower(), []) if (":" in a) == (family == socket.AF_INET6)]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return addresses

    return lookup
