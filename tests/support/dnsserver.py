"""A loopback DNS responder for tests: UDP and TCP on one port, canned answers and faults.

    async with DnsServer() as server:
        server.answer("www.example.test", "A", "192.0.2.1", "192.0.2.2")
        server.set("down.example.test", "A", Reply(rcode="SERVFAIL"))
        server.set("big.example.test", "TXT", Reply(answer=[...], truncate_udp=True))
        spec = DnsSpec(query="www.example.test", server=server.address)

Names without a reply get ``server.default`` (NXDOMAIN). ``server.queries`` records every
query received, so a test can check what the probe sent and over which transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import struct
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass(frozen=True)
class Reply:
    """How the server answers one (name, type): records per section, an rcode, faults.

    Records are zone-file lines with every field: ``"www.example.test. 300 IN A 192.0.2.1"``.
    """

    answer: Sequence[str] = ()
    authority: Sequence[str] = ()
    additional: Sequence[str] = ()
    rcode: str = "NOERROR"
    truncate_udp: bool = False  # over UDP: TC bit set and no records (TCP gets everything)
    silent: bool = False  # never answer (the client times out)
    hangup: bool = False  # TCP: close the connection without answering; UDP: like silent
    wire: bytes | None = None  # send exactly these bytes instead of an answer
    delay: float = 0.0  # seconds to wait before answering (a slow server)


@dataclass(frozen=True)
class Query:
    """One query the server received."""

    transport: str  # "udp" or "tcp"
    name: str  # lower case, absolute ("www.example.test.")
    type: str  # "A", "SOA", ...
    recursion_desired: bool
    id: int


def record(name: str, rdtype: str, rdata: str, *, ttl: int = 300) -> str:
    """One zone-file line with every field, such as ``a.test. 300 IN A 192.0.2.1``."""
    return f"{_key_name(name)} {ttl} IN {rdtype.upper()} {rdata}"


def _key_name(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()


def _rrset(line: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)


@dataclass
class DnsServer:
    """A DNS responder on ``host`` answering UDP and TCP on one random port."""

    host: str = "127.0.0.1"
    replies: dict[tuple[str, str], Reply] = field(default_factory=dict)
    default: Reply = field(default_factory=lambda: Reply(rcode="NXDOMAIN"))
    silent: bool = False  # never answer anything (overrides every reply)
    queries: list[Query] = field(default_factory=list, init=False)
    port: int = field(default=0, init=False)
    _udp: asyncio.DatagramTransport | None = field(default=None, init=False, repr=False)
    _tcp: asyncio.Server | None = field(default=None, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` as DnsSpec.server takes it (``[::1]:port`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def set(self, name: str, rdtype: str, reply: Reply) -> None:
        """Answer queries for ``name``/``rdtype`` with ``reply``."""
        self.replies[(_key_name(name), rdtype.upper())] = reply

    def answer(self, name: str, rdtype: str, *rdatas: str, ttl: int = 300) -> None:
        """Answer ``name``/``rdtype`` with NOERROR and one record per rdata text."""
        self.set(name, rdtype, Reply(answer=[record(name, rdtype, r, ttl=ttl) for r in rdatas]))

    def reply_for(self, name: str, rdtype: str) -> Reply:
        """The reply configured for ``name``/``rdtype`` (``default`` if none)."""
        return self.replies.get((_key_name(name), rdtype.upper()), self.default)

    async def start(self) -> DnsServer:
        """Bind UDP and TCP to the same free port on ``host``."""
        loop = asyncio.get_running_loop()
        for _ in range(50):
            udp, _protocol = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(self.host, 0))
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError as exc:
                udp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp, self.port = udp, port
            return self
        raise RuntimeError("no port free for both UDP and TCP")

    async def close(self) -> None:
        """Stop answering and release the port."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    async def __aenter__(self) -> DnsServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ answering

    def _respond(self, wire: bytes, transport: str) -> tuple[Reply, bytes | None]:
        """The reply that applies and the bytes to send (None: send nothing)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a test server ignores what it cannot parse, like a real one
            return self.default, None
        if not query.question:
            return self.default, None
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append(Query(transport, name, rdtype, bool(query.flags & dns.flags.RD), query.id))
        reply = self.reply_for(name, rdtype)
        if self.silent or reply.silent or reply.hangup:
            return reply, None
        if reply.wire is not None:
            return reply, reply.wire
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.set_rcode(dns.rcode.from_text(reply.rcode))
        if transport == "udp" and reply.truncate_udp:
            response.flags |= dns.flags.TC
        else:
            response.answer = [_rrset(line) for line in reply.answer]
            response.authority = [_rrset(line) for line in reply.authority]
            response.additional = [_rrset(line) for line in reply.additional]
        return reply, response.to_wire()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_datagram(self, wire: bytes, addr: tuple[str, int]) -> None:
        reply, out = self._respond(wire, "udp")
        if out is not None:
            self._spawn(self._send_udp(out, addr, reply.delay))

    async def _send_udp(self, out: bytes, addr: tuple[str, int], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(out, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                reply, out = self._respond(wire, "tcp")
                if reply.hangup and not self.silent:
                    return
                if out is None:
                    continue
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._on_datagram(data, addr)
