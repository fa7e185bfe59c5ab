"""Connection admission for ``slaprobe serve``: a flood of clients never takes the last descriptor.

Without a cap, clients that open more connections than the open-file limit leave the
process with no descriptor to spare: ``accept()`` fails with EMFILE, asyncio stops
accepting for a second at a time, and a Prometheus scrape waits behind the flood (1500
connections at ``ulimit -n 1024`` made a new ``/metrics`` connection take 15.4 s).

Two rules apply to every accepted connection, before aiohttp sees it:

- at most ``limit`` connections are open at once, well below the open-file limit, so
  probes, log files and state saves always find a descriptor;
- one client address holds at most ``per_peer`` of them, so a flood from one address
  leaves room for Prometheus and the others.

A connection over either bound is closed at once and counted by reason. The soft
open-file limit is raised to the hard one at start (:func:`raise_open_file_limit`), so
the cap only bites where the hard limit is low.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

RESERVED_FILES = 256  # descriptors kept for probes, log files and state saves
MAX_RAISED_FILES = 65536  # the soft limit is raised to the hard one, at most this
REFUSED_TOTAL = "total"  # refusal reasons: over the process-wide cap ...
REFUSED_PEER = "peer"  # ... or over the cap of one client address


def raise_open_file_limit(ceiling: int = MAX_RAISED_FILES) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard limit; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def default_limit(open_files: int) -> int:
    """Connections admitted at once for a soft open-file limit: the limit less a reserve."""
    reserve = max(RESERVED_FILES, open_files // 4)
    return max(16, open_files - reserve)


def default_per_peer(limit: int) -> int:
    """Connections one client address may hold: a quarter of the cap, at least 8."""
    return max(8, limit // 4)


def peer_address(transport: asyncio.BaseTransport) -> str:
    """The client's IP address ("" for a unix socket or an unknown peer)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""


@dataclass
class ConnectionLimiter:
    """Counts open connections per client address and admits or refuses new ones."""

    limit: int
    per_peer: int
    open: int = 0
    by_peer: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=lambda: Counter({REFUSED_TOTAL: 0, REFUSED_PEER: 0}))

    def admit(self, peer: str) -> bool:
        """Take a slot for ``peer``, or count the refusal and return False."""
        if self.open >= self.limit:
            self.refused[REFUSED_TOTAL] += 1
            return False
        if self.by_peer[peer] >= self.per_peer:
            self.refused[REFUSED_PEER] += 1
            return False
        self.open += 1
        self.by_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        """Give back the slot of a closed connection."""
        self.open -= 1
        left = self.by_peer[peer] - 1
        if left > 0:
            self.by_peer[peer] = left
        else:
            del self.by_peer[peer]

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that applies this limiter to ``factory``'s protocols."""
        return lambda: _Admitted(self, factory)


class _Admitted(asyncio.Protocol):
    """Stands in front of one aiohttp request handler; refused connections never reach it."""

    __slots__ = ("_factory", "_inner", "_limiter", "_peer")

    def __init__(self, limiter: ConnectionLimiter, factory: Callable[[], asyncio.Protocol]) -> None:
        self._limiter = limiter
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_address(transport)
        if not self._limiter.admit(peer):
            assert isinstance(transport, asyncio.Transport)  # loop.create_server's are
            transport.abort()  # a reset: the client learns at once, the descriptor is free now
            return
        self._peer = peer
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is None:
            return
        self._limiter.release(self._peer)
        inner.connection_lost(exc)
