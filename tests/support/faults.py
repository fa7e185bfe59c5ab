"""A loopback target that misbehaves on purpose, one fault per path or port.

    async with FaultServer(authority=authority, directory=tmp_path) as faults:
        faults.url("hang")                      # http://127.0.0.1:PORT/hang
        faults.url("redirect", to="http://169.254.169.254/")
        faults.tls_url("expired")               # https, an expired certificate
        faults.tls_address("wrong_host")        # host:port for tcp/tls probes
        faults.silent_address                   # accepts TCP, never speaks
        faults.dns_address, faults.dns_name("servfail")

    with FaultProcess(certs=fault_certificates(tmp_path, authority)) as faults:
        ...                                     # the same addresses, served by a child process

``FaultProcess`` keeps the server's CPU and memory out of the process being measured
(timing and tracemalloc figures are the probe's alone); bench/ scripts use it too.

HTTP faults (the path names the fault; the request is read first, so the probe's request
always goes out whole):

``ok``             200 with a short body
``hang``           never answers; the connection stays open until the client closes it
``slowloris``      the status line and headers one byte every ``trickle_interval``, never ending
``trickle``        headers at once (Content-Length 1 MiB), then one body byte per interval
``reset``          headers and part of the body, then a TCP reset (RST, SO_LINGER 0)
``close``          closes the connection without a byte of answer
``huge``           200 with a body of ``huge_size`` bytes (1 GiB), Content-Length announced
``huge-chunked``   the same size chunked, no Content-Length
``gzip-bomb``      ``huge_size`` zero bytes gzip-compressed on the fly (about 1 MiB on the wire)
``redirect-loop``  302 to itself, forever
``redirect``       302 to the ``to`` query parameter, sent as given (odd spellings included)
``cl-te``          Content-Length and Transfer-Encoding: chunked both, disagreeing (smuggling)
``double-cl``      two different Content-Length headers
``huge-header``    one header line of 1 MiB
``many-headers``   ``many_headers`` header lines (10,000)
``garbage``        a status line that is not HTTP; it quotes the ``text`` query parameter
``status``         the ``code`` query parameter as status (default 503) with ``text`` as the body
``json``           200 with the ``text`` query parameter as an ``application/json`` body
``echo``           200 echoing the request head, so a test sees what went on the wire
``rotate``         target ``id`` is ``ok`` or, for a quarter of the targets, one of ``ROTATING_FAULTS``;
                   which quarter and which fault change every ``rotate_period`` (bench/soak.py)

Bodies are generated as they are sent, a 64 KiB block at a time, and never held whole:
the server stays small whatever the client does, and stops when the client goes away.

TLS ports (``tls_url``/``tls_address``) serve the same paths behind a certificate that is
``good`` (signed by ``authority``), ``expired``, ``self_signed`` or ``wrong_host`` (valid, for
another name); without an ``authority`` only ``self_signed`` exists. DNS (``dns_address``)
answers ``ok.faults.test`` (A 127.0.0.1), ``servfail.faults.test`` (SERVFAIL),
``truncated.faults.test`` (TC over UDP, the full answer over TCP), ``silent.faults.test``
(no answer), ``garbage.faults.test`` (bytes that are no DNS message) and
``hangup.faults.test`` (TCP closed unanswered); ``dns_truncating_address`` always sets TC
over UDP and has no TCP listener at all. ``counts`` says how often each fault was served,
``open_connections`` how many connections are open now, ``bytes_sent`` how much went out.

Run it alone by hand: ``python -m tests.support.faults --port 8080`` (from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import dns.flags
import dns.message
from cryptography.hazmat.primitives import serialization

from tests.support.certs import Authority, CertFiles, make_authority
from tests.support.dnsserver import DnsServer, Reply, record

HUGE_SIZE = 1 << 30  # bytes of the huge bodies
BLOCK = 64 * 1024  # bytes written per send
MAX_REQUEST_HEAD = 64 * 1024  # bytes of request head the server reads, at most
CERT_KINDS = ("good", "expired", "self_signed", "wrong_host")
DNS_ZONE = "faults.test"
_REPO = Path(__file__).resolve().parents[2]

_ZEROS = bytes(BLOCK)
_FILLER = (b"slaprobe fault server filler line\n" * (BLOCK // 34 + 1))[:BLOCK]
_REASONS = {200: "OK", 302: "Found", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}

Handler = Callable[["_Exchange"], Awaitable[None]]


class _Exchange:
    """One request on one connection, and the means to answer it badly."""

    def __init__(self, server: FaultServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.head = b""
        self.path = ""
        self.query: dict[str, str] = {}

    async def read_request(self) -> bool:
        """Read the request head (and a Content-Length body); False when the client sent none."""
        try:
            self.head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return False
        line = self.head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        target = urlsplit(parts[1] if len(parts) > 1 else "/")
        self.path = target.path.strip("/")
        self.query = {k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
        length = 0
        for header in self.head.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value)
        if length:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await self.reader.readexactly(min(length, MAX_REQUEST_HEAD))
        self.server.requests.append(self.head)
        return True

    async def send(self, data: bytes) -> None:
        """Write and wait until the kernel took it (raises ConnectionError when the client left)."""
        self.writer.write(data)
        self.server.bytes_sent += len(data)
        await self.writer.drain()

    async def respond(self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        """A complete, well-formed response."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        await self.send("\r\n".join(lines).encode("utf-8", "surrogateescape") + body)  # bytes as given

    async def wait_for_client_to_leave(self) -> None:
        """Keep the connection open, reading nothing useful, until the client closes it."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(BLOCK):
                pass

    async def stream(self, size: int, block: bytes = _FILLER) -> None:
        """Send ``size`` bytes made of ``block``, one block at a time."""
        left = size
        while left > 0:
            chunk = block if left >= len(block) else block[:left]
            await self.send(chunk)
            left -= len(chunk)


# ---------------------------------------------------------------------------- the faults


async def _ok(ex: _Exchange) -> None:
    await ex.respond(200, b"ok\n", (("Content-Type", "text/plain"),))


async def _hang(ex: _Exchange) -> None:
    await ex.wait_for_client_to_leave()


async def _slowloris(ex: _Exchange) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: ":
        await ex.send(bytes((byte,)))
        await asyncio.sleep(ex.server.trickle_interval)
    while True:  # a header line that never ends
        await ex.send(b"z")
        await asyncio.sleep(ex.server.trickle_interval)


async def _trickle(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n")
    for _ in range(1 << 20):
        await ex.send(b".")
        await asyncio.sleep(ex.server.trickle_interval)


async def _reset(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" + _FILLER[:1000])
    # Let the client read the head first: a reset discards what it has not read yet, and the
    # fault is a reset in the middle of the body, not before the response.
    await asyncio.sleep(0.2)
    sock = ex.writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ex.writer.transport.abort()


async def _close(ex: _Exchange) -> None:
    ex.writer.close()


async def _huge(ex: _Exchange) -> None:
    size = ex.server.huge_size
    await ex.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
    await ex.stream(size)


async def _huge_chunked(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    left = ex.server.huge_size
    while left > 0:
        chunk = _FILLER[: min(left, BLOCK)]
        await ex.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        left -= len(chunk)
    await ex.send(b"0\r\n\r\n")


async def _gzip_bomb(ex: _Exchange) -> None:
    await ex.send(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    pending = b""
    for _ in range(ex.server.huge_size // BLOCK):
        pending += packer.compress(_ZEROS)
        if len(pending) >= 4096:
            await ex.send(b"%x\r\n%s\r\n" % (len(pending), pending))
            pending = b""
    pending += packer.flush()
    await ex.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(pending), pending))


async def _redirect_loop(ex: _Exchange) -> None:
    await ex.respond(302, headers=(("Location", "/redirect-loop"),))


async def _redirect(ex: _Exchange) -> None:
    # Sent byte for byte as given: the point is to try spellings a client might mangle.
    await ex.respond(302, headers=(("Location", ex.query.get("to", "/ok")),))


async def _cl_te(ex: _Exchange) -> None:
    await ex.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    )
    await ex.wait_for_client_to_leave()


async def _double_cl(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\nConnection: close\r\n\r\nok")
    await ex.wait_for_client_to_leave()


async def _huge_header(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    await ex.stream(1 << 20, b"h" * BLOCK)
    await ex.send(b"\r\nContent-Length: 2\r\n\r\nok")
    await ex.wait_for_client_to_leave()


async def _many_headers(ex: _Exchange) -> None:
    await ex.send(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Many: header\r\n"
    for _ in range(ex.server.many_headers // 1000):
        await ex.send(line * 1000)
    await ex.send(b"Content-Length: 2\r\n\r\nok")
    await ex.wait_for_client_to_leave()


async def _garbage(ex: _Exchange) -> None:
    await ex.send(f"HTTP/1.1 2OO {ex.query.get('text', 'garbage')}\r\n\r\n".encode())
    await ex.wait_for_client_to_leave()


async def _status(ex: _Exchange) -> None:
    code = int(ex.query.get("code", "503"))
    await ex.respond(code, ex.query.get("text", "unavailable").encode(), (("Content-Type", "text/html"),))


async def _json(ex: _Exchange) -> None:
    await ex.respond(200, ex.query.get("text", "{}").encode(), (("Content-Type", "application/json"),))


async def _echo(ex: _Exchange) -> None:
    await ex.respond(200, ex.head, (("Content-Type", "text/plain"),))


ROTATING_FAULTS = ("status", "hang", "reset", "close", "garbage", "trickle", "redirect-loop", "huge")


def rotating_fault(target: int, now: float, period: float, share: float = 0.25) -> str:
    """The fault target number ``target`` shows at unix time ``now``: "ok" for 1 - ``share`` of the
    targets, else one of ``ROTATING_FAULTS``. Each ``period`` other targets fail, in other ways."""
    window = int(now // period)
    digest = hashlib.blake2b(f"{target}/{window}".encode(), digest_size=4).digest()
    if int.from_bytes(digest, "big") >= share * 2**32:  # a fresh draw per target and window
        return "ok"
    return ROTATING_FAULTS[(target + window) % len(ROTATING_FAULTS)]


async def _rotate(ex: _Exchange) -> None:
    try:
        target = int(ex.query.get("id", "0"))
    except ValueError:
        target = 0
    fault = rotating_fault(target, time.time(), ex.server.rotate_period)
    ex.server.counts[f"rotate:{fault}"] += 1
    await HTTP_FAULTS[fault](ex)


HTTP_FAULTS: dict[str, Handler] = {
    "ok": _ok,
    "hang": _hang,
    "slowloris": _slowloris,
    "trickle": _trickle,
    "reset": _reset,
    "close": _close,
    "huge": _huge,
    "huge-chunked": _huge_chunked,
    "gzip-bomb": _gzip_bomb,
    "redirect-loop": _redirect_loop,
    "redirect": _redirect,
    "cl-te": _cl_te,
    "double-cl": _double_cl,
    "huge-header": _huge_header,
    "many-headers": _many_headers,
    "garbage": _garbage,
    "status": _status,
    "json": _json,
    "echo": _echo,
    "rotate": _rotate,
}


# ---------------------------------------------------------------------------- addresses


class FaultEndpoints:
    """Where each fault answers; shared by the in-loop ``FaultServer`` and ``FaultProcess``."""

    host: str = "127.0.0.1"
    port: int = 0  # plain HTTP faults
    tls_ports: dict[str, int]  # certificate kind -> port
    silent_port: int = 0
    dns_port: int = 0  # DNS over UDP and TCP (0: no DNS)
    dns_truncating_port: int = 0  # UDP only, TC on every answer

    def _hostport(self, port: int) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # a wildcard bind: dial loopback
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def address(self) -> str:
        """``host:port`` of the plain HTTP faults."""
        return self._hostport(self.port)

    def url(self, fault: str = "ok", **query: str) -> str:
        """The plain-HTTP URL of ``fault`` (see the module docstring), with ``query`` parameters."""
        return self._url("http", self.port, fault, query)

    def tls_url(self, kind: str, fault: str = "ok", **query: str) -> str:
        """The HTTPS URL of ``fault`` behind a certificate of ``kind`` (one of ``CERT_KINDS``)."""
        return self._url("https", self.tls_ports[kind], fault, query)

    def tls_address(self, kind: str) -> str:
        """``host:port`` of the TLS listener with a certificate of ``kind``."""
        return self._hostport(self.tls_ports[kind])

    @property
    def silent_address(self) -> str:
        """``host:port`` of a listener that accepts connections and never sends a byte."""
        return self._hostport(self.silent_port)

    @property
    def dns_address(self) -> str:
        """``host:port`` of the DNS responder (UDP and TCP)."""
        assert self.dns_port, "started without DNS"
        return self._hostport(self.dns_port)

    @property
    def dns_truncating_address(self) -> str:
        """``host:port`` of a UDP-only responder that sets TC on every answer (no TCP listener)."""
        assert self.dns_truncating_port, "started without DNS"
        return self._hostport(self.dns_truncating_port)

    @staticmethod
    def dns_name(fault: str) -> str:
        """The name the DNS responder answers with ``fault`` (ok, servfail, truncated, silent, ...)."""
        return f"{fault}.{DNS_ZONE}"

    def _url(self, scheme: str, port: int, fault: str, query: dict[str, str]) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{scheme}://{self._hostport(port)}/{fault}{suffix}"

    def ports(self) -> dict[str, Any]:
        """Every port, as ``FaultProcess`` reads them from the standalone server."""
        return {
            "host": self.host,
            "port": self.port,
            "tls_ports": self.tls_ports,
            "silent_port": self.silent_port,
            "dns_port": self.dns_port,
            "dns_truncating_port": self.dns_truncating_port,
        }


def fault_certificates(directory: Path, authority: Authority | None = None) -> dict[str, CertFiles]:
    """The certificates of the TLS faults, written to ``directory``: ``self_signed`` always,
    ``good``, ``expired`` and ``wrong_host`` (signed by ``authority``) when one is given."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"self_signed": _self_signed_files(make_authority(directory, "localhost self signed"), directory)}
    if authority is not None:
        files["good"] = authority.issue(directory, "faults-good")
        files["expired"] = authority.issue(directory, "faults-expired", days=-2, not_before_days=-30)
        files["wrong_host"] = authority.issue(directory, "faults-wrong-host", hosts=("elsewhere.example",))
    return files


# ---------------------------------------------------------------------------- the server


class FaultServer(FaultEndpoints):
    """Every fault on loopback, in the running event loop: one HTTP port (path = fault), TLS
    ports per certificate kind, a TCP port that never speaks, and DNS. Use as ``async with``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authority: Authority | None = None,
        directory: Path | None = None,
        certs: dict[str, CertFiles] | None = None,
        huge_size: int = HUGE_SIZE,
        trickle_interval: float = 0.05,
        rotate_period: float = 60.0,
        many_headers: int = 10_000,
        tls: bool = True,
        dns: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = authority
        self.directory = directory
        self.certs = certs
        self.huge_size = huge_size
        self.trickle_interval = trickle_interval
        self.rotate_period = rotate_period
        self.many_headers = many_headers
        self.want_tls = tls
        self.want_dns = dns
        self.counts: Counter[str] = Counter()
        self.requests: deque[bytes] = deque(maxlen=1000)  # request heads, newest last
        self.bytes_sent = 0
        self.open_connections = 0
        self.tls_ports = {}
        self.dns: DnsServer | None = None
        self._servers: list[asyncio.Server] = []
        self._silent: set[asyncio.StreamWriter] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FaultServer:
        """Bind every listener (free ports unless ``port`` was given for HTTP)."""
        http = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_REQUEST_HEAD, backlog=4096)
        self._servers.append(http)
        self.port = http.sockets[0].getsockname()[1]
        silent = await asyncio.start_server(self._serve_silently, self.host, 0, backlog=4096)
        self._servers.append(silent)
        self.silent_port = silent.sockets[0].getsockname()[1]
        if self.want_tls:
            for kind, cert in self._certificates().items():
                server = await asyncio.start_server(
                    self._serve, self.host, 0, ssl=cert.server_context(), limit=MAX_REQUEST_HEAD, backlog=4096
                )
                self._servers.append(server)
                self.tls_ports[kind] = server.sockets[0].getsockname()[1]
        if self.want_dns:
            await self._start_dns()
        return self

    async def close(self) -> None:
        """Stop every listener and drop every connection."""
        for server in self._servers:
            server.close()
        for writer in list(self._silent):
            writer.transport.abort()
        if self._udp is not None:
            self._udp.close()
        if self.dns is not None:
            await self.dns.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> FaultServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        exchange = _Exchange(self, reader, writer)
        try:
            if await exchange.read_request():
                handler = HTTP_FAULTS.get(exchange.path)
                self.counts[exchange.path if handler else "unknown"] += 1
                if handler is None:
                    await exchange.respond(404, b"no such fault\n")
                else:
                    await handler(exchange)
        except (ConnectionError, ssl.SSLError):
            pass  # the client left, as clients of a misbehaving server do
        finally:
            self.open_connections -= 1
            writer.transport.abort()

    async def _serve_silently(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.counts["silent"] += 1
        self._silent.add(writer)
        try:
            with contextlib.suppress(ConnectionError):
                while await reader.read(BLOCK):  # swallow whatever comes, say nothing
                    pass
        finally:
            self._silent.discard(writer)
            self.open_connections -= 1
            writer.transport.abort()

    def _certificates(self) -> dict[str, CertFiles]:
        if self.certs is not None:
            return self.certs
        directory = self.directory
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="slaprobe-faults-")
            directory = Path(self._tmp.name)
        return fault_certificates(directory / f"faults-{id(self):x}", self.authority)

    async def _start_dns(self) -> None:
        self.dns = dns_server = DnsServer(self.host)
        ok = record(self.dns_name("ok"), "A", "127.0.0.1")
        dns_server.set(self.dns_name("ok"), "A", Reply(answer=[ok]))
        dns_server.set(self.dns_name("servfail"), "A", Reply(rcode="SERVFAIL"))
        truncated = [record(self.dns_name("truncated"), "A", f"127.0.0.{i}") for i in range(1, 40)]
        dns_server.set(self.dns_name("truncated"), "A", Reply(answer=truncated, truncate_udp=True))
        dns_server.set(self.dns_name("silent"), "A", Reply(silent=True))
        dns_server.set(self.dns_name("garbage"), "A", Reply(wire=b"\x00\x01not a dns message"))
        dns_server.set(self.dns_name("hangup"), "A", Reply(hangup=True))
        await dns_server.start()
        self.dns_port = dns_server.port
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(_AlwaysTruncated, local_addr=(self.host, 0))
        self.dns_truncating_port = self._udp.get_extra_info("sockname")[1]


class FaultProcess(FaultEndpoints):
    """A ``FaultServer`` in a child process, so its CPU and memory stay out of the measured
    process. A context manager; the child exits when the manager does (or when we die)."""

    def __init__(
        self,
        *,
        certs: dict[str, CertFiles] | None = None,
        huge_size: int = HUGE_SIZE,
        trickle_interval: float = 0.05,
        rotate_period: float = 60.0,
        dns: bool = True,
        start_timeout: float = 20.0,
    ) -> None:
        self.tls_ports = {}
        args = [
            sys.executable, "-m", "tests.support.faults", "--ports-json",
            "--huge-size", str(huge_size), "--trickle-interval", str(trickle_interval),
            "--rotate-period", str(rotate_period),
        ]  # fmt: skip
        for kind, files in (certs or {}).items():
            args += ["--cert", f"{kind}={files.cert}={files.key}"]
        if dns:
            args.append("--dns")
        self._proc = subprocess.Popen(
            args, cwd=_REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], start_timeout)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise RuntimeError("the fault server process did not start")
        for key, value in json.loads(line).items():
            setattr(self, key, value)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    def close(self) -> None:
        """Stop the child and close its pipes."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> FaultProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _self_signed_files(authority: Authority, directory: Path) -> CertFiles:
    """A certificate for localhost that signs itself (its 'CA' is itself, trusted by nobody)."""
    cert_path = directory / "self-signed.crt"
    key_path = directory / "self-signed.key"
    cert_path.write_bytes(authority.cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        authority.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return CertFiles(cert_path, key_path, cert_path, authority.cert.not_valid_after_utc)


class _AlwaysTruncated(asyncio.DatagramProtocol):
    """Answers every query with an empty response carrying the TC bit."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not a query: ignore it, as a real server would
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        self.transport.sendto(response.to_wire(), addr)


# ---------------------------------------------------------------------------- standalone


async def _main(args: argparse.Namespace) -> None:
    certs = {}
    for entry in args.cert:
        kind, cert, key = entry.split("=")
        certs[kind] = CertFiles(Path(cert), Path(key), Path(cert), _dt.datetime.now(_dt.UTC))
    server = FaultServer(
        host=args.host,
        port=args.port,
        certs=certs,
        huge_size=args.huge_size,
        trickle_interval=args.trickle_interval,
        rotate_period=args.rotate_period,
        tls=bool(certs),
        dns=args.dns,
    )
    async with server:
        if args.ports_json:
            print(json.dumps(server.ports()), flush=True)
            # The parent holds our stdin: when it goes away (even killed), so do we.
            loop = asyncio.get_running_loop()
            gone = asyncio.Event()
            loop.add_reader(sys.stdin.fileno(), lambda: gone.set() if not os.read(sys.stdin.fileno(), 4096) else None)
            await gone.wait()
        else:
            print(f"faults on http://{server.address}/<fault>: {', '.join(HTTP_FAULTS)}", flush=True)
            await asyncio.Event().wait()


def main() -> None:
    """``python -m tests.support.faults --port P``: serve the faults until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--huge-size", type=int, default=HUGE_SIZE)
    parser.add_argument("--trickle-interval", type=float, default=0.05)
    parser.add_argument("--rotate-period", type=float, default=60.0)
    parser.add_argument("--cert", action="append", default=[], metavar="KIND=CERT=KEY", help="a TLS listener")
    parser.add_argument("--dns", action="store_true", help="also serve the DNS faults")
    parser.add_argument("--ports-json", action="store_true", help="print the ports as JSON; exit when stdin closes")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
