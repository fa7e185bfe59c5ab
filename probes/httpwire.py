"""A lean HTTP/1.1 client for one probe hop: one fresh connection, one request, one response.

``probe_http`` uses it for every hop it supports (no proxy; see ``supports_headers``) instead
of aiohttp, which costs several times more CPU per probe: a ClientSession, a connector, a
request object, timers and tracing per request. Here a hop is a socket connected to the IP
``probe_http`` resolved and guarded, optional TLS with tlsutil's cached context, the request
bytes written once, and the response parsed by httptools (llhttp, the C parser of Node.js)
inside an ``asyncio.Protocol`` whose callbacks do little more than append.

What the caller gets (``exchange``) is a ``WireResponse``: status, version, headers (a
``CIMultiDictProxy``, as aiohttp gives), the TLS handshake, and ``readany`` to stream the body.
The body is delimited by Content-Length, chunked coding or the close of the connection;
HEAD, 1xx, 204 and 304 responses have none. A gzip or deflate Content-Encoding is decoded
(as aiohttp does; no Accept-Encoding is sent unless the probe's headers ask for one), a
bounded slice at a time, so a small compressed body cannot expand in memory past what the
reader asks for. Reading pauses while more than ``_HIGH_WATER`` bytes wait unread.

Target faults raise ``WireError`` with the failure reason and a one-line detail:
connect (refused, reset, closed before any response), tls (handshake, verification, a TLS
1.3 alert after the handshake), protocol (unparseable response, truncated body, headers
above ``MAX_HEADER_BYTES``, Content-Length together with Transfer-Encoding, conflicting
Content-Lengths, a request header holding CR, LF or NUL). Phases ``connect``, ``tls`` and
``processing`` (connection usable -> response head parsed) are added to the trace here;
``transfer`` is the reader's.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import socket
import ssl
import time
import zlib
from typing import Any, cast

from aiohttp.helpers import parse_content_type
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from slaprobe.probes import tlsutil
from slaprobe.probes.reasons import describe, os_reason, ssl_cause
from slaprobe.probes.result import FailureReason, ProbeTrace

try:  # a C HTTP/1.1 parser; without it probe_http keeps aiohttp for every hop
    import httptools
except ImportError:  # pragma: no cover - httptools is a dependency
    httptools = None  # type: ignore[assignment]

AVAILABLE = httptools is not None

MAX_HEADER_BYTES = 64 * 1024
"""Most bytes of response head (status line and header fields) accepted; more is protocol."""

_RECV_BYTES = 64 * 1024  # most bytes read from a plain socket at once
_HIGH_WATER = 256 * 1024  # body bytes waiting unread before reading from the socket pauses
_INFLATE_SLICE = 256 * 1024  # most decompressed bytes produced per readany
_GET_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # no Content-Length: 0 without a body
_NO_BODY_STATUS = frozenset({204, 304})
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0), "0.9": (0, 9)}
# Request headers whose framing or semantics this client does not implement: aiohttp sends those.
_UNSUPPORTED_HEADERS = frozenset({"transfer-encoding", "content-length", "expect", "upgrade", "te"})
_DECODED_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})
_UNSAFE = ("\r", "\n", "\x00")


class WireError(Exception):
    """A target fault on one hop, as the probe reports it."""

    def __init__(self, reason: FailureReason, detail: str, handshake: tlsutil.Handshake | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.handshake = handshake  # a completed handshake the failure came after (its certificate)


def supports_headers(headers: dict[str, str] | CIMultiDict[str]) -> bool:
    """Whether requests with these configured headers can be sent by this client.

    Not: a caller-set framing header (Transfer-Encoding, Content-Length, TE), Expect or Upgrade,
    or an Accept-Encoding naming a coding other than gzip and deflate (aiohttp may decode br).
    """
    for name, value in headers.items():
        lower = name.lower()
        if lower in _UNSUPPORTED_HEADERS:
            return False
        if lower == "accept-encoding":
            codings = {part.split(";", 1)[0].strip().lower() for part in value.split(",")}
            if not codings <= _DECODED_CODINGS | {""}:
                return False
    return True


# ---------------------------------------------------------------------------- the request


def build_request(
    method: str, url: URL, headers: CIMultiDict[str], body: bytes | None, cookie: str | None = None
) -> bytes:
    """The request head and body as bytes; protocol failure for a header that would split it.

    Host comes first (the URL's, unless ``headers`` name one), then the given headers, then
    ``Accept: */*``, a Cookie from the jar, Content-Length and ``Connection: close``
    (unless given). Nothing is sent that the caller did not give, apart from those.
    """
    if any(char in method for char in " \r\n\x00") or not method:
        raise WireError(FailureReason.PROTOCOL, f"request method {method[:32]!r} is not a token; not sent")
    target = url.raw_path_qs or "/"
    if any(char in target for char in " \r\n\x00"):
        raise WireError(FailureReason.PROTOCOL, "request target holds a space, CR, LF or NUL; not sent")
    lines = [f"{method} {target} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {url.host_port_subcomponent}")
    for name, value in headers.items():
        if any(char in name or char in value for char in _UNSAFE) or ":" in name or not name.strip():
            raise WireError(FailureReason.PROTOCOL, f"request header {repr(name)[:64]} holds CR, LF or NUL; not sent")
        if cookie is not None and name.lower() == "cookie":
            value, cookie = f"{value}; {cookie}", None
        lines.append(f"{name}: {value}")
    if "Accept" not in headers:
        lines.append("Accept: */*")
    if cookie:
        if any(char in cookie for char in _UNSAFE):
            raise WireError(FailureReason.PROTOCOL, "a cookie from the jar holds CR, LF or NUL; not sent")
        lines.append(f"Cookie: {cookie}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method not in _GET_METHODS:
        lines.append("Content-Length: 0")
    if "Connection" not in headers:
        lines.append("Connection: close")
    lines.append("\r\n")
    head = "\r\n".join(lines).encode("utf-8")
    return head + body if body else head


# ---------------------------------------------------------------------------- the response


class WireResponse:
    """The head of a response and a stream of its body (``readany``)."""

    __slots__ = ("_exchange", "handshake", "headers", "reason", "status", "version")

    def __init__(self, exchange: _Exchange, handshake: tlsutil.Handshake | None) -> None:
        self._exchange = exchange
        self.status = exchange.status
        self.reason = exchange.reason
        self.version = exchange.version
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(exchange.header_list))
        self.handshake = handshake

    @property
    def charset(self) -> str | None:
        """The charset parameter of Content-Type, or None (as aiohttp's ``charset``)."""
        raw = self.headers.get("Content-Type")
        return _charset(raw) if raw is not None else None

    @property
    def content_length(self) -> int | None:
        """The Content-Length header's value (of the encoded body), or None."""
        return self._exchange.content_length

    async def readany(self) -> bytes:
        """The body bytes available now (waiting for some if none are); b"" at its end."""
        return await self._exchange.readany()

    def close(self) -> None:
        """Drop the connection (at once: nothing more is read from it)."""
        self._exchange.close()


@functools.lru_cache(maxsize=256)  # keyed by the header text: targets repeat the same type
def _charset(content_type: str) -> str | None:
    return parse_content_type(content_type)[1].get("charset")


class _Fault(Exception):
    """Raised from a parser callback; the fault itself is in ``_Exchange.fault``."""


class _Exchange(asyncio.Protocol):
    """One connection's protocol: feeds httptools and queues the body for ``readany``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, peer: str, head_only: bool, decode: bool = True) -> None:
        self.loop = loop
        self.decode = decode  # False: a compressed body is passed on as sent
        self.peer = peer  # "target 10.0.0.1 port 80", for details
        self.head_only = head_only  # a HEAD request: the response has no body whatever it says
        assert httptools is not None
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[None] = loop.create_future()
        self.waiter: asyncio.Future[None] | None = None
        self.received = 0  # bytes received before the head was complete
        self.header_bytes = 0
        self.header_list: list[tuple[str, str]] = []
        self.reason_bytes = b""
        self.status = 0
        self.reason = ""
        self.version: tuple[int, int] | None = None
        self.content_length: int | None = None
        self.content_lengths: set[bytes] = set()
        self.transfer_encoding = False
        self.chunked = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.inflater: Any = None  # zlib decompressobj of a gzip or deflate body
        self.deflate = False  # the inflater may need a second try as raw deflate
        self.tail = b""  # compressed input the inflater has not consumed yet
        self.headed = False  # the final response head is parsed
        self.done = False  # the body is complete
        self.fault: WireError | None = None

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(asyncio.Transport): uvloop's transports implement it without subclassing.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.done or self.fault is not None:
            return
        if not self.headed:
            self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.finish()  # 101 Switching Protocols: what follows is not HTTP
        except httptools.HttpParserError as exc:
            if self.fault is None:
                what = "body" if self.headed else "response"
                self.fail(FailureReason.PROTOCOL, f"invalid HTTP {what}: {describe(exc)}")
        if self.fault is not None:
            self.wake()
            return
        if not self.headed and self.received > MAX_HEADER_BYTES:
            self.fail(FailureReason.PROTOCOL, f"invalid HTTP response: head larger than {MAX_HEADER_BYTES} bytes")
            self.wake()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done or self.fault is not None:
            self.wake()
            return
        if exc is not None:
            if (tls_error := ssl_cause(exc)) is not None:
                self.fail(FailureReason.TLS, tlsutil.describe_tls_error(tls_error))
            else:
                self.fail(FailureReason.CONNECT, f"connection to {self.peer} failed: {os_reason(exc)}")
        elif not self.received and not self.headed:
            self.fail(FailureReason.CONNECT, f"{self.peer.split(' ')[0]} closed the connection without responding")
        elif not self.headed:
            self.fail(FailureReason.PROTOCOL, "invalid HTTP response: the connection closed inside the head")
        elif self.content_length is None and not self.chunked:
            self.finish()  # a body delimited by the close of the connection
        else:
            self.fail(FailureReason.PROTOCOL, "invalid HTTP body: the connection closed before the body ended")
        self.wake()

    # -------------------------------------------------------------- httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason_bytes += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            self.fail(FailureReason.PROTOCOL, f"invalid HTTP response: head larger than {MAX_HEADER_BYTES} bytes")
            raise _Fault
        text = name.decode("utf-8", "surrogateescape")
        lower = text.lower()
        if lower == "content-length":
            self.content_lengths.add(value.strip())
        elif lower == "transfer-encoding":
            self.transfer_encoding = True
            self.chunked = value.rstrip().lower().endswith(b"chunked")
        self.header_list.append((text, value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.header_list, self.reason_bytes, self.content_lengths = [], b"", set()
            self.transfer_encoding = self.chunked = False
            return
        if self.content_lengths and self.transfer_encoding:
            self.fail(FailureReason.PROTOCOL, "invalid HTTP response: both Content-Length and Transfer-Encoding")
            raise _Fault
        if len(self.content_lengths) > 1:
            self.fail(FailureReason.PROTOCOL, "invalid HTTP response: conflicting Content-Length headers")
            raise _Fault
        if self.content_lengths:
            text = next(iter(self.content_lengths))
            if not text.isdigit():
                self.fail(FailureReason.PROTOCOL, "invalid HTTP response: Content-Length is not a number")
                raise _Fault
            self.content_length = int(text)
        self.status = status
        self.reason = self.reason_bytes.decode("latin-1").strip()
        self.version = _VERSIONS.get(self.parser.get_http_version())
        self.headed = True
        if self.head_only or status in _NO_BODY_STATUS or status == 101:
            self.finish()
        elif self.decode:
            self.start_decoding()
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.done:
            return  # after a HEAD response: whatever follows is not ours to read
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        if self.headed:
            self.finish()

    # -------------------------------------------------------------- state

    def start_decoding(self) -> None:
        """Decode the body of a gzip or deflate Content-Encoding; others are passed on as sent."""
        coding = ""
        for name, value in self.header_list:
            if name.lower() == "content-encoding":
                coding = value.strip().lower()
        if coding in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self.inflater = zlib.decompressobj(zlib.MAX_WBITS)  # zlib-wrapped; raw deflate on retry
            self.deflate = True

    def finish(self) -> None:
        if not self.done:
            self.done = True
            if not self.head.done() and self.headed:
                self.head.set_result(None)
            if self.transport is not None:
                # Connection: close; nothing more is read. abort, not close: a TLS close_notify
                # exchange would only cost CPU (and linger) for a connection we are done with.
                self.transport.abort()
            self.wake()

    def fail(self, reason: FailureReason, detail: str) -> None:
        if self.fault is None and not self.done:
            self.fault = WireError(reason, detail)
            if self.transport is not None:
                self.transport.abort()
            if not self.head.done():
                self.head.set_exception(self.fault)
                self.head.exception()  # retrieved here: the waiter may be gone (cancelled)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        self.done = True
        self.chunks.clear()
        if self.transport is not None:
            self.transport.abort()

    async def readany(self) -> bytes:
        while True:
            if self.chunks or self.tail:
                data = self.take()
                if data:
                    return data
                continue
            if self.fault is not None:
                raise self.fault
            if self.done:
                return self.flush()
            self.waiter = self.loop.create_future()
            await self.waiter

    def take(self) -> bytes:
        """The queued body bytes (decoded, at most ``_INFLATE_SLICE`` when compressed)."""
        if self.tail:
            raw, self.tail = self.tail, b""
        else:
            raw = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks.clear()
            self.buffered = 0
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
        if self.inflater is None:
            return raw
        try:
            data = self.inflater.decompress(raw, _INFLATE_SLICE)
        except zlib.error as exc:
            if not self.deflate:
                raise self.decode_failure(exc) from None
            self.deflate = False  # not zlib-wrapped: raw deflate, as some servers send
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                data = self.inflater.decompress(raw, _INFLATE_SLICE)
            except zlib.error as again:
                raise self.decode_failure(again) from None
        self.deflate = False
        self.tail = self.inflater.unconsumed_tail
        return data

    def flush(self) -> bytes:
        if self.inflater is None:
            return b""
        inflater, self.inflater = self.inflater, None
        try:
            return inflater.flush()
        except zlib.error as exc:
            raise self.decode_failure(exc) from None

    def decode_failure(self, exc: zlib.error) -> WireError:
        self.fault = WireError(FailureReason.PROTOCOL, f"invalid HTTP body: cannot decompress it: {exc}")
        self.close()
        return self.fault


# ---------------------------------------------------------------------------- plain TCP


class _PlainTransport:
    """The few transport calls ``_Exchange`` makes, for one plain-TCP connection.

    asyncio's ``create_connection(sock=...)`` builds a general transport through a chain of
    callbacks and futures, each costing an event-loop iteration; for a probe that writes one
    request and reads one response that is pure overhead (in-process, 10 probes at a time
    against nginx: 216 µs of CPU per probe with it, 180 µs with this). Here the socket
    is watched with ``add_reader`` directly: what arrives goes to ``data_received``, the end
    or an error to ``connection_lost`` (soon after, as asyncio does), and ``abort`` closes
    the socket at once. The request is sent on connect; what the socket buffer did not take
    is sent when it is writable again.
    """

    __slots__ = ("_closed", "_fd", "_loop", "_out", "_protocol", "_reading", "_sock", "_writing")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: _Exchange) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._out = b""  # request bytes not sent yet
        self._reading = False
        self._writing = False  # waiting for the socket to take the rest of the request
        self._closed = False
        protocol.connection_made(cast(asyncio.BaseTransport, self))

    def start(self, request: bytes) -> None:
        """Send ``request`` and start reading the response."""
        self._out = request
        self._write_ready()
        if not self._closed:
            self.resume_reading()

    def _write_ready(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._close(exc)
            return
        self._out = self._out[sent:]
        if self._out and not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)
        elif not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _read_ready(self) -> None:
        try:
            data = self._sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(exc)
            return
        if data:
            self._protocol.data_received(data)
        else:
            self._protocol.eof_received()
            self._close(None)

    def pause_reading(self) -> None:
        if self._reading and not self._closed:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def abort(self) -> None:
        self._close(None)

    def _close(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reading:
            self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)


# ---------------------------------------------------------------------------- one hop


async def exchange(
    *,
    ip: str,
    family: int,
    port: int,
    request: bytes,
    head_only: bool,
    trace: ProbeTrace,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    decode: bool = True,
) -> WireResponse:
    """Dial ``ip`` (already resolved and guarded), send ``request``, return the response head.

    ``decode`` False passes a gzip or deflate body on as sent.

    Adds ``connect``, ``tls`` and ``processing`` to the trace, also when failing or cancelled.
    """
    loop = asyncio.get_running_loop()
    peer = f"target {ip} port {port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    started = connected = time.monotonic()
    try:
        sock.setblocking(False)
        connected = await _connect(loop, sock, (ip, port))
    except BaseException as exc:
        sock.close()
        connected = time.monotonic()
        if isinstance(exc, OSError):
            raise WireError(FailureReason.CONNECT, f"cannot connect to {peer}: {os_reason(exc)}") from exc
        raise
    finally:
        trace.add_phase("connect", connected - started)
    protocol = _Exchange(loop, peer, head_only, decode)
    if ssl_context is None:
        _PlainTransport(loop, sock, protocol).start(request)
        return await _response(protocol, trace, connected, None)
    started = time.monotonic()
    try:
        transport, _ = await loop.create_connection(
            lambda: protocol, sock=sock, ssl=ssl_context, server_hostname=server_hostname
        )
    except OSError as exc:  # ssl.SSLError and CertificateError included; a reset mid-handshake too
        sock.close()
        raise WireError(FailureReason.TLS, tlsutil.describe_tls_error(exc)) from exc
    except BaseException:
        sock.close()
        raise
    finally:
        trace.add_phase("tls", time.monotonic() - started)
    connected = time.monotonic()
    handshake = None
    try:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            verified = ssl_object.context.verify_mode != ssl.CERT_NONE
            handshake = tlsutil.describe_handshake(ssl_object, verified=verified)
        transport.write(request)
    except BaseException:
        protocol.close()
        raise
    return await _response(protocol, trace, connected, handshake)


async def _response(
    protocol: _Exchange, trace: ProbeTrace, connected: float, handshake: tlsutil.Handshake | None
) -> WireResponse:
    """Wait for the head of the response to the request sent; ``processing`` runs from ``connected``."""
    try:
        await protocol.head
    except WireError as exc:
        exc.handshake = handshake
        raise
    except BaseException:
        protocol.close()
        raise
    finally:
        trace.add_phase("processing", time.monotonic() - connected)
    return WireResponse(protocol, handshake)


# ---------------------------------------------------------------------------- helpers


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[str, int]) -> float:
    """Connect the non-blocking ``sock``; the monotonic time it was up (OSError if it failed).

    ``loop.sock_connect`` without what a probe does not need (its address is already an IP),
    and the time is taken when the socket turns writable, not when the task next runs.
    """
    try:
        sock.connect(address)
        return time.monotonic()
    except (BlockingIOError, InterruptedError):
        pass
    fd = sock.fileno()
    up: asyncio.Future[float] = loop.create_future()

    def ready() -> None:
        if not up.done():
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                up.set_exception(OSError(error, os.strerror(error)))
            else:
                up.set_result(time.monotonic())

    loop.add_writer(fd, ready)
    try:
        return await up
    finally:
        loop.remove_writer(fd)
