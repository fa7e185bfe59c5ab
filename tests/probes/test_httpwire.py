"""httpwire, the lean HTTP/1.1 transport of the HTTP probe, against real loopback servers.

The raw servers below write exact bytes, so framing the aiohttp test server never produces
(close-delimited bodies, interim responses, conflicting lengths, oversized heads) is covered.
The last section runs every test of test_http.py again with ``LEAN_TRANSPORT`` flipped, so
both transports keep passing the same suite whichever one is the default.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from yarl import URL

from slaprobe import conventions as names
from slaprobe.config import HttpSpec
from slaprobe.probes import http, httpwire
from slaprobe.probes.http import HTTP_TRANSPORT, _HttpProbe, probe_http
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from tests.support.certs import Authority


class Server:
    """A loopback asyncio server answering every connection with ``respond``; keeps the requests.

    ``respond`` gives the writes (bytes) to make; a None among them holds the connection open.
    """

    def __init__(self, respond: Callable[[bytes], Awaitable[list[Any]] | list[Any]]) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            request = head + (await reader.readexactly(length) if length else b"")
            self.requests.append(request)
            parts = self.respond(request)
            if not isinstance(parts, list):
                parts = await parts
            for part in parts:
                if part is None:  # hold the connection open until the test ends
                    await asyncio.Event().wait()
                writer.write(part)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.server.wait_closed()


@pytest.fixture
async def answer() -> AsyncIterator[Callable[..., Awaitable[tuple[str, Server]]]]:
    """Start servers that answer with fixed bytes (a list of writes) or a function of the request."""
    servers: list[Server] = []

    async def start(respond: Any, ssl_context: ssl.SSLContext | None = None) -> tuple[str, Server]:
        server = Server(respond if callable(respond) else (lambda request: list(respond)))
        servers.append(server)
        return await server.start(ssl_context), server

    yield start
    for server in servers:
        await server.stop()


def spec(url: str, **fields: Any) -> HttpSpec:
    return HttpSpec.model_validate({"url": url, **fields})


async def probe(http_spec: HttpSpec, transport: str = "wire", **ctx_fields: Any) -> ProbeResult:
    ctx = ProbeContext(timeout=5.0, trace=ProbeTrace(debug=True), extras={HTTP_TRANSPORT: transport}, **ctx_fields)
    return await run_probe(probe_http, http_spec, ctx)


def value(result: ProbeResult, name: str) -> float | None:
    return result.sample(name)


def failed(result: ProbeResult, reason: FailureReason) -> bool:
    assert not result.success, "probe unexpectedly succeeded"
    assert result.reason is reason, f"{result.reason}: {result.detail}"
    return True


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


# ---------------------------------------------------------------------------- which transport


def test_the_lean_transport_is_chosen_unless_the_probe_needs_aiohttp() -> None:
    def lean(transport: str | None = None, **fields: Any) -> bool:
        extras = {} if transport is None else {HTTP_TRANSPORT: transport}
        return _HttpProbe(spec("http://127.0.0.1/", **fields), ProbeContext(timeout=1, extras=extras)).lean()

    assert httpwire.AVAILABLE
    assert lean() is http.LEAN_TRANSPORT
    assert lean("wire")
    assert lean("wire", method="POST", json={"a": 1}, basic_auth={"username": "u"}, tls={"insecure_skip_verify": True})
    assert lean("wire", headers={"Accept-Encoding": "gzip, deflate;q=0.5"})
    assert not lean("aiohttp")
    assert not lean("wire", proxy="http://127.0.0.1:3128")
    assert not lean("wire", headers={"Accept-Encoding": "br"})
    for name in ("Transfer-Encoding", "content-length", "Expect", "Upgrade", "TE"):
        assert not lean("wire", headers={name: "x"}), name


async def test_a_probe_on_the_lean_transport_does_not_touch_aiohttp_sessions(
    answer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("aiohttp.ClientSession used on the lean path")

    monkeypatch.setattr(http.aiohttp, "ClientSession", refuse)
    assert (await probe(spec(base + "/"))).success


# ---------------------------------------------------------------------------- the request


async def test_the_request_is_http11_with_connection_close_and_no_accept_encoding(answer: Any) -> None:
    base, server = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])
    assert (await probe(spec(base + "/a/b?x=1&y=%20"))).success
    request = server.requests[0].decode()
    lines = request.split("\r\n")
    assert lines[0] == "GET /a/b?x=1&y=%20 HTTP/1.1"
    assert lines[1] == f"Host: {base.removeprefix('http://')}"
    assert "Connection: close" in lines
    assert "Accept: */*" in lines
    assert any(line.startswith("User-Agent: slaprobe/") for line in lines)
    assert not any(line.lower().startswith(("accept-encoding", "content-length", "content-type")) for line in lines)


async def test_a_post_body_is_sent_with_its_length_and_an_empty_post_with_zero(answer: Any) -> None:
    base, server = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])
    assert (await probe(spec(base + "/", method="POST", body="h\u00e9llo"))).success
    assert (await probe(spec(base + "/", method="DELETE"))).success
    assert server.requests[0].endswith(b"Content-Length: 6\r\nConnection: close\r\n\r\nh\xc3\xa9llo")
    assert b"\r\nContent-Length: 0\r\n" in server.requests[1]


async def test_a_request_body_larger_than_the_socket_buffer_is_sent_whole(answer: Any) -> None:
    body = "z" * (16 * 1024 * 1024)  # far more than one send() takes on loopback
    base, server = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])
    result = await probe(spec(base + "/", method="POST", body=body))
    assert result.success, result.detail
    assert server.requests[0].endswith(b"\r\n\r\n" + body.encode())


async def test_a_server_that_answers_and_closes_before_reading_the_body_still_gives_its_answer() -> None:
    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only; the 16 MiB body is never read
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await probe(spec(f"http://127.0.0.1:{port}/", method="POST", body="z" * (16 * 1024 * 1024)))
    finally:
        server.close()
    # Either the 413 was read before the reset, or the reset came first: never a hang or a bug.
    assert not result.success
    assert result.reason in (FailureReason.HTTP_STATUS, FailureReason.CONNECT), result.detail


async def test_a_run_that_wants_no_samples_builds_none_and_keeps_its_phases(answer: Any) -> None:
    base, _ = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])
    result = await probe(spec(base + "/"), want_samples=False)
    assert result.success, result.detail
    assert result.samples == ()
    assert set(result.phases) == {"resolve", "connect", "tls", "processing", "transfer"}


def test_a_header_with_cr_or_lf_is_never_written() -> None:
    url = URL("http://127.0.0.1/")
    for headers in ({"X-A": "1\r\nX-Injected: 1"}, {"X-A\n": "1"}, {"X-A": "nul\x00"}):
        with pytest.raises(httpwire.WireError) as caught:
            httpwire.build_request("GET", url, CIMultiDict(headers), None)
        assert caught.value.reason is FailureReason.PROTOCOL
        assert "CR, LF or NUL" in caught.value.detail
    with pytest.raises(httpwire.WireError):
        httpwire.build_request("GET", url, CIMultiDict(), None, cookie="a=1\r\nX: y")


async def test_a_header_with_cr_lf_fails_the_probe_with_protocol_and_sends_nothing(answer: Any) -> None:
    base, server = await answer([OK_HEAD + b"Content-Length: 2\r\n\r\nok"])
    result = await probe(spec(base + "/", headers={"X-Token": "a\r\nX-Injected: yes"}))
    assert failed(result, FailureReason.PROTOCOL)
    assert "X-Token" in result.detail and "X-Injected" not in result.detail
    assert server.requests == []


# ---------------------------------------------------------------------------- body framing


async def test_a_chunked_body_is_read_whole(answer: Any) -> None:
    base, _ = await answer(
        [
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
            b"5\r\nhello\r\n",
            b"7;ext=1\r\n, world\r\n",
            b"0\r\nX-Trailer: t\r\n\r\n",
        ]
    )
    result = await probe(spec(base + "/", expect={"body_regex": "^hello, world$"}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 12
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == -1


async def test_a_chunked_body_cut_before_the_last_chunk_fails_with_protocol(answer: Any) -> None:
    base, _ = await answer([OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"])
    assert failed(await probe(spec(base + "/")), FailureReason.PROTOCOL)


async def test_a_body_delimited_by_the_close_of_the_connection_is_read_whole(answer: Any) -> None:
    base, _ = await answer([b"HTTP/1.0 200 OK\r\n\r\n", b"first part, ", b"second part"])
    result = await probe(
        spec(base + "/", expect={"body_regex": "^first part, second part$", "http_version": ["HTTP/1.0"]})
    )
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 23
    assert value(result, names.BB_HTTP_VERSION) == 1.0


async def test_a_body_shorter_than_its_content_length_fails_with_protocol(answer: Any) -> None:
    base, _ = await answer([OK_HEAD + b"Content-Length: 10\r\n\r\nshort"])
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.PROTOCOL)
    assert result.detail == "invalid HTTP body: the connection closed before the body ended"


async def test_a_head_response_has_no_body_whatever_its_content_length(answer: Any) -> None:
    base, server = await answer([OK_HEAD + b"Content-Length: 1000\r\n\r\n"])  # and no body, then close
    result = await probe(spec(base + "/", method="HEAD"))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 0
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == 1000
    assert server.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


async def test_a_head_response_on_a_connection_the_server_keeps_open_completes(answer: Any) -> None:
    async def keep_open(request: bytes) -> list[bytes | None]:
        return [OK_HEAD + b"Content-Length: 1000\r\n\r\n", None]

    base, _ = await answer(keep_open)
    result = await asyncio.wait_for(probe(spec(base + "/", method="HEAD")), 3)
    assert result.success, result.detail


@pytest.mark.parametrize("status", [204, 304])
async def test_a_response_that_cannot_have_a_body_completes_without_one(answer: Any, status: int) -> None:
    async def respond(request: bytes) -> list[bytes | None]:
        return [f"HTTP/1.1 {status} Whatever\r\nETag: x\r\n\r\n".encode(), None]

    base, _ = await answer(respond)
    result = await asyncio.wait_for(probe(spec(base + "/", expect={"status": [status]})), 3)
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_STATUS) == status
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 0


async def test_interim_responses_are_skipped(answer: Any) -> None:
    base, _ = await answer(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
            OK_HEAD + b"Content-Length: 4\r\n\r\ndone",
        ]
    )
    result = await probe(
        spec(
            base + "/",
            expect={
                "body_regex": "^done$",
                "headers": [{"name": "Link", "regex": ".", "negate": True, "allow_missing": True}],
            },
        )
    )
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_STATUS) == 200


async def test_a_head_written_one_byte_at_a_time_is_parsed(answer: Any) -> None:
    response = OK_HEAD + b"X-Version: 1.2.3\r\nContent-Length: 5\r\n\r\nhello"
    base, _ = await answer([response[i : i + 1] for i in range(len(response))])
    result = await probe(
        spec(base + "/", expect={"body_regex": "^hello$", "headers": [{"name": "X-Version", "regex": r"^1\.2\.3$"}]})
    )
    assert result.success, result.detail


async def test_a_large_body_streams_with_bounded_buffering(answer: Any) -> None:
    size = 8 * 1024 * 1024
    base, _ = await answer([OK_HEAD + f"Content-Length: {size}\r\n\r\n".encode()] + [b"x" * 65536] * (size // 65536))
    result = await probe(spec(base + "/", body_size_limit=0))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == size


async def test_a_body_over_the_limit_stops_the_read(answer: Any) -> None:
    base, _ = await answer(
        [OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"]
        + [b"10000\r\n" + b"y" * 65536 + b"\r\n"] * 64
        + [b"0\r\n\r\n"]
    )
    result = await probe(spec(base + "/", body_size_limit="100KiB"))
    assert failed(result, FailureReason.BODY_LIMIT)
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 100 * 1024


# ---------------------------------------------------------------------------- hostile heads


async def test_a_head_above_64_kib_fails_with_protocol(answer: Any) -> None:
    big = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(80))
    base, _ = await answer([OK_HEAD + big + b"Content-Length: 2\r\n\r\nok"])
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.PROTOCOL)
    assert result.detail == "invalid HTTP response: head larger than 65536 bytes"


async def test_a_head_that_never_ends_fails_with_protocol_without_waiting_for_more(answer: Any) -> None:
    async def endless(request: bytes) -> list[bytes | None]:
        return [OK_HEAD + b"X-Long: " + b"a" * 4096, *[b"a" * 4096] * 64, None]  # one header, never finished

    base, _ = await answer(endless)
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.PROTOCOL)
    assert "head larger than 65536 bytes" in result.detail


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: -2\r\n",
    ],
)
async def test_ambiguous_body_framing_is_refused_with_protocol(answer: Any, head: bytes) -> None:
    base, _ = await answer([OK_HEAD + head + b"\r\nok\r\n0\r\n\r\n"])
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.PROTOCOL)
    assert result.detail.startswith("invalid HTTP response")


async def test_a_server_closing_inside_the_head_fails_with_protocol(answer: Any) -> None:
    base, _ = await answer([b"HTTP/1.1 200 OK\r\nContent-Le"])
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.PROTOCOL)


# ---------------------------------------------------------------------------- content coding


async def test_gzip_is_asked_for_only_by_compression_and_then_decoded(answer: Any) -> None:
    plain = b"Welcome " * 2000

    def respond(request: bytes) -> list[bytes]:
        if b"accept-encoding: gzip" not in request.lower():
            return [OK_HEAD + f"Content-Length: {len(plain)}\r\n\r\n".encode() + plain]
        body = gzip.compress(plain)
        return [OK_HEAD + f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body]

    base, _ = await answer(respond)
    unasked = await probe(spec(base + "/"))
    assert value(unasked, names.BB_HTTP_CONTENT_LENGTH) == len(plain)
    asked = await probe(spec(base + "/", compression="gzip", expect={"body_regex": "^Welcome Welcome"}))
    assert asked.success, asked.detail
    assert value(asked, names.BB_HTTP_BODY_LENGTH) == len(plain)
    content_length = value(asked, names.BB_HTTP_CONTENT_LENGTH)
    assert content_length is not None and content_length < 200
    as_sent = await probe(spec(base + "/", headers={"Accept-Encoding": "gzip"}))  # asked, not decoded
    assert value(as_sent, names.BB_HTTP_BODY_LENGTH) == content_length


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_deflate_is_decoded_zlib_wrapped_or_raw(answer: Any, wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    body = compressor.compress(b"deflated " * 100) + compressor.flush()
    base, _ = await answer(
        [OK_HEAD + f"Content-Encoding: deflate\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body]
    )
    result = await probe(spec(base + "/", compression="deflate", expect={"body_regex": "^deflated deflated"}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 900


async def test_a_compressed_body_over_the_limit_stops_without_inflating_it_all(answer: Any) -> None:
    body = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    base, _ = await answer([OK_HEAD + f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body])
    result = await probe(spec(base + "/", body_size_limit="1MiB", compression="gzip"))
    assert failed(result, FailureReason.BODY_LIMIT)
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 1024 * 1024


async def test_a_corrupt_gzip_body_fails_with_protocol(answer: Any) -> None:
    base, _ = await answer([OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"])
    result = await probe(spec(base + "/", compression="gzip"))
    assert failed(result, FailureReason.PROTOCOL)
    assert result.detail.startswith("invalid HTTP body: cannot decompress it")


# ---------------------------------------------------------------------------- TLS


async def test_a_chunked_response_over_tls_with_the_hostname_override(
    answer: Any, authority: Authority, tmp_path: Path
) -> None:
    leaf = authority.issue(tmp_path, "shop", hosts=("shop.example",))
    base, server = await answer(
        [OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"], ssl_context=leaf.server_context()
    )
    result = await probe(
        spec(base + "/", tls={"ca_file": str(authority.path)}, expect={"body_regex": "^abc$", "ssl": True}),
        hostname="shop.example",
    )
    assert result.success, result.detail
    assert result.cert is not None and result.cert.verified and result.cert.subject == "CN=shop"
    assert result.phases["tls"] > 0 and result.phases["connect"] > 0
    assert b"\r\nHost: shop.example\r\n" in server.requests[0]


async def test_a_close_delimited_body_over_tls_is_read_whole(answer: Any, authority: Authority, tmp_path: Path) -> None:
    leaf = authority.issue(tmp_path, "localhost")
    base, _ = await answer([b"HTTP/1.0 200 OK\r\n\r\n", b"x" * 300_000], ssl_context=leaf.server_context())
    result = await probe(spec(base.replace("127.0.0.1", "localhost") + "/", tls={"ca_file": str(authority.path)}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 300_000


# ---------------------------------------------------------------------------- the whole suite on the other transport


from tests.probes import test_http as _suite  # noqa: E402

for _name, _item in vars(_suite).items():
    if _name.startswith("test_") and callable(_item):
        globals()[f"{_name}__other_transport"] = _item
serve = _suite.serve
certs = _suite.certs


@pytest.fixture(autouse=True)
def _flip_the_transport_for_the_copied_suite(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests copied from test_http.py run on the transport that is not the default."""
    if request.node.name.partition("[")[0].endswith("__other_transport"):
        monkeypatch.setattr(http, "LEAN_TRANSPORT", not http.LEAN_TRANSPORT)
