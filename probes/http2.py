"""HTTP/2 for the HTTP probe: one hop over TLS with ALPN offering h2 and http/1.1, as Go's client does.

Used for ``https`` hops when ``enable_http2`` is on (blackbox's default): the server picks
the protocol by ALPN, so an h2-only server answers over HTTP/2 and any other over
HTTP/1.1. Go's client never speaks h2c (HTTP/2 without TLS), nor does this.

The protocol is httpcore's (with ``h2``, the HTTP/2 state machine of python-hyper), the
client under httpx: it negotiates by ALPN, streams bodies and is maintained; aiohttp has
no HTTP/2. Only the network is ours: ``_Backend`` dials the one address the guard saw
(from ``source`` if set) and times ``connect`` and ``tls`` apart, like the aiohttp connector.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from slaprobe.probes import tlsutil
from slaprobe.probes.httpwire import WireError
from slaprobe.probes.reasons import first_line, os_reason
from slaprobe.probes.result import FailureReason, ProbeTrace

try:
    import brotli
except ImportError:  # pragma: no cover - a dependency; br bodies then stay encoded
    brotli = None

ALPN = ("h2", "http/1.1")


class Http2Error(WireError):
    """A target fault on an HTTP/2-capable hop; ``reason`` says which kind."""


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that times its TLS upgrade and keeps the handshake it made."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, backend: _Backend) -> None:
        self.inner = inner
        self.backend = backend

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        try:
            upgraded = await self.inner.start_tls(ssl_context, server_hostname, timeout)
        except httpcore.ConnectError as exc:
            self.backend.tls_failure = exc.__cause__ or exc.__context__ or exc
            raise
        finally:
            self.backend.trace.add_phase("tls", time.monotonic() - started)
        self.backend.connected = time.monotonic()
        ssl_object = upgraded.get_extra_info("ssl_object")
        if ssl_object is not None:
            verified = ssl_object.context.verify_mode != ssl.CERT_NONE
            self.backend.handshake = tlsutil.describe_handshake(ssl_object, verified=verified)
        return _Stream(upgraded, self.backend)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """Dials exactly ``ip`` (whatever host the URL names), timing connect; one connection."""

    def __init__(self, ip: str, trace: ProbeTrace, source: str | None) -> None:
        self.ip = ip
        self.trace = trace
        self.source = source
        self.inner = httpcore.AnyIOBackend()
        self.connected = 0.0
        self.handshake: tlsutil.Handshake | None = None
        self.tls_failure: BaseException | None = None
        self.connect_failure: BaseException | None = None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        try:
            stream = await self.inner.connect_tcp(self.ip, port, timeout, self.source, socket_options)
        except httpcore.ConnectError as exc:
            self.connect_failure = exc.__cause__ or exc.__context__ or exc
            raise
        finally:
            self.trace.add_phase("connect", time.monotonic() - started)
        return _Stream(stream, self)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class H2Response:
    """One hop's response head and a stream of its body, shaped like ``httpwire.WireResponse``."""

    def __init__(self, response: httpcore.Response, stack: contextlib.AsyncExitStack, decode: bool) -> None:
        self.status = response.status
        reason = response.extensions.get("reason_phrase", b"")
        self.reason = reason.decode("latin-1") if isinstance(reason, bytes) else str(reason or "")
        version = response.extensions.get("http_version", b"HTTP/1.1")
        self.version = (2, 0) if version == b"HTTP/2" else (1, 0) if version == b"HTTP/1.0" else (1, 1)
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(
            CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers)
        )
        self._chunks: AsyncIterator[bytes] = response.aiter_stream().__aiter__()
        self._stack = stack
        self._decoder = _decoder(self.headers.get("Content-Encoding", "")) if decode else None
        self.handshake: tlsutil.Handshake | None = None

    @property
    def charset(self) -> str | None:
        """The charset parameter of Content-Type, or None."""
        from slaprobe.probes.httpwire import _charset

        raw = self.headers.get("Content-Type")
        return _charset(raw) if raw is not None else None

    @property
    def content_length(self) -> int | None:
        """The Content-Length header (of the encoded body), or None."""
        raw = self.headers.get("Content-Length")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    async def readany(self) -> bytes:
        """The next body bytes (decoded if asked); b"" at the end."""
        while True:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                if self._decoder is not None:
                    tail, self._decoder = _flush(self._decoder), None
                    if tail:
                        return tail
                return b""
            except httpcore.ReadError as exc:
                raise Http2Error(FailureReason.CONNECT, f"reading the body: {_cause(exc)}") from exc
            except httpcore.RemoteProtocolError as exc:
                raise Http2Error(FailureReason.PROTOCOL, f"invalid HTTP body: {_cause(exc)}") from exc
            if self._decoder is not None:
                try:
                    chunk = self._decoder.decompress(chunk) if hasattr(self._decoder, "decompress") else chunk
                except Exception as exc:  # zlib.error, brotli.error
                    raise Http2Error(FailureReason.PROTOCOL, f"invalid compressed body: {exc}") from exc
            if chunk:
                return chunk

    def close(self) -> None:
        """Drop the connection (the exit stack is closed by ``aclose``)."""

    async def aclose(self) -> None:
        """Close the stream and the connection pool behind it."""
        with contextlib.suppress(Exception):
            await self._stack.aclose()


def _decoder(coding: str) -> Any:
    coding = coding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj()
    if coding == "br" and brotli is not None:
        return brotli.Decompressor()
    return None


def _flush(decoder: Any) -> bytes:
    flush = getattr(decoder, "flush", None)
    return flush() if flush is not None else b""


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, OSError):
        return os_reason(inner)
    return first_line(str(inner or exc)) or type(exc).__name__


async def exchange(
    *,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: bytes | None,
    ip: str,
    trace: ProbeTrace,
    ssl_context: ssl.SSLContext,
    server_hostname: str | None,
    source: str | None,
    decode: bool,
) -> H2Response:
    """One https hop with ALPN h2/http1.1 to ``ip``; the response head, its body unread.

    Adds ``connect``, ``tls`` and ``processing`` to the trace; raises ``Http2Error``.
    """
    backend = _Backend(ip, trace, source)
    stack = contextlib.AsyncExitStack()
    pool = await stack.enter_async_context(
        httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, http1=True, http2=True, network_backend=backend, retries=0, max_connections=1
        )
    )
    extensions: dict[str, Any] = {}
    if server_hostname:
        extensions["sni_hostname"] = server_hostname
    request_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    try:
        response = await stack.enter_async_context(
            pool.stream(method, str(url), headers=request_headers, content=body or b"", extensions=extensions)
        )
    except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
        await stack.aclose()
        if backend.tls_failure is not None:
            detail = (
                tlsutil.describe_tls_error(backend.tls_failure)
                if isinstance(backend.tls_failure, OSError)
                else first_line(str(backend.tls_failure))
            )
            raise Http2Error(FailureReason.TLS, detail, backend.handshake) from exc
        reason = os_reason(backend.connect_failure) if isinstance(backend.connect_failure, OSError) else _cause(exc)
        raise Http2Error(FailureReason.CONNECT, f"cannot connect to target {ip} port {url.port}: {reason}") from exc
    except (httpcore.ReadError, httpcore.WriteError) as exc:
        await stack.aclose()
        raise Http2Error(FailureReason.CONNECT, f"connection to target {ip} failed: {_cause(exc)}") from exc
    except (httpcore.RemoteProtocolError, httpcore.LocalProtocolError, httpcore.UnsupportedProtocol) as exc:
        await stack.aclose()
        raise Http2Error(FailureReason.PROTOCOL, f"invalid HTTP response: {_cause(exc)}") from exc
    finally:
        if backend.connected:
            trace.add_phase("processing", time.monotonic() - backend.connected)
    wrapped = H2Response(response, stack, decode)
    wrapped.handshake = backend.handshake
    return wrapped
