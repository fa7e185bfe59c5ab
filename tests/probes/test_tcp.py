"""The tcp probe against real loopback servers: dialogues, STARTTLS, hostile peers, every reason."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as names
from slaprobe.config import TcpSpec
from slaprobe.probes.result import FailureReason, ForbiddenTargetError, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from slaprobe.probes.tcp import MAX_STEP_BYTES, expand_template, ip_hash, probe_tcp
from tests.conftest import free_port
from tests.support.certs import Authority, CertFiles, make_authority
from tests.support.hosts import hosts

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run ``handler`` for each connection on 127.0.0.1; yields the port; cleans up every handler."""
    tasks: set[asyncio.Task[Any]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (OSError, EOFError, asyncio.CancelledError):
            pass  # the probe hung up, or the test is over: both normal for a server under test
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(connected, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def spec(port: int, *dialogue: dict[str, Any], host: str = "localhost", **fields: Any) -> TcpSpec:
    """A validated tcp spec for ``host:port``."""
    return TcpSpec.model_validate({"address": f"{host}:{port}", "dialogue": list(dialogue), **fields})


def context(timeout: float = 5.0, **fields: Any) -> ProbeContext:
    """A context that keeps the probe log."""
    return ProbeContext(timeout=timeout, trace=ProbeTrace(debug=True), **fields)


async def probe(tcp: TcpSpec, timeout: float = 5.0, **fields: Any) -> ProbeResult:
    """Run the tcp probe the way the scheduler does."""
    return await run_probe(probe_tcp, tcp, context(timeout, **fields))


def sample_names(result: ProbeResult) -> set[str]:
    """The names of every sample in ``result``."""
    return {s.name for s in result.samples}


async def smtp(received: list[str], *, tls: ssl.SSLContext, banner: bytes = b"220 mx.test ESMTP ready\r\n") -> Handler:
    """An SMTP-like handler: banner, EHLO, STARTTLS, then EHLO and QUIT over TLS; logs what it got."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        received.append((await reader.readline()).decode())
        writer.write(b"250-mx.test greets you\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
        received.append((await reader.readline()).decode())
        writer.write(b"220 2.0.0 Ready to start TLS\r\n")
        await writer.drain()
        await writer.start_tls(tls)
        received.append((await reader.readline()).decode())
        writer.write(b"250-mx.test\r\n250 AUTH PLAIN\r\n")
        received.append((await reader.readline()).decode())
        writer.write(b"221 bye\r\n")
        await writer.drain()
        await reader.read()

    return handle


SMTP_DIALOGUE = (
    {"expect": r"^220 (\S+) ESMTP", "send": "EHLO probe.${1}"},
    {"expect": "^250 STARTTLS", "send": "STARTTLS"},
    {"expect": "^220", "starttls": True},
    {"send": "EHLO probe"},
    {"expect": "^250 ", "send": "QUIT"},
    {"expect": "^221"},
)


@pytest.fixture
def leaf(authority: Authority, tmp_path: Path) -> CertFiles:
    """A valid certificate for localhost from the test CA."""
    return authority.issue(tmp_path, "localhost")


# ---------------------------------------------------------------------------- connect only


async def test_a_listening_port_succeeds_with_resolve_and_connect_phases() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(hang_up) as port:
        result = await probe(spec(port))
    assert result.success, result.detail
    assert result.reason is None
    assert set(result.phases) == {"resolve", "connect"}
    assert result.sample(names.BB_IP_PROTOCOL) == 4
    assert result.sample(names.BB_FAILED_DUE_TO_REGEX) == 0
    assert result.sample(names.BB_IP_ADDR_HASH) == ip_hash("127.0.0.1")
    assert result.sample(names.BB_DNS_LOOKUP) == result.phases["resolve"]
    assert result.cert is None


async def test_a_closed_port_fails_with_connect() -> None:
    result = await probe(spec(free_port(), host="127.0.0.1"))
    assert result.reason is FailureReason.CONNECT
    assert "refused" in result.detail.lower()
    assert "connect" in result.phases


async def test_an_unresolvable_name_fails_with_dns() -> None:
    result = await probe(spec(80, host="no-such-host.invalid"), lookup=hosts())
    assert result.reason is FailureReason.DNS
    assert "no-such-host.invalid" in result.detail
    assert "connect" not in result.phases
    assert names.BB_DNS_LOOKUP in sample_names(result)


async def test_an_ip4_literal_with_ip6_only_fails_with_dns() -> None:
    result = await probe(spec(80, host="127.0.0.1", preferred_ip_protocol="ip6", ip_protocol_fallback=False))
    assert result.reason is FailureReason.DNS


async def test_the_guard_checks_the_resolved_ip_and_its_refusal_is_forbidden() -> None:
    seen: list[tuple[str, str]] = []

    def guard(host: str, ip: str) -> None:
        seen.append((host, ip))
        raise ForbiddenTargetError(f"{ip} is not allowed")

    result = await probe(spec(free_port()), guard=guard)
    assert result.reason is FailureReason.FORBIDDEN
    assert seen == [("localhost", "127.0.0.1")]
    assert "connect" not in result.phases


async def test_an_ip6_literal_is_dialled_over_ip6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    server = None
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe(spec(port, host="[::1]", preferred_ip_protocol="ip6"))
    finally:
        server.close()
        await server.wait_closed()
    assert result.success, result.detail
    assert result.sample(names.BB_IP_PROTOCOL) == 6


# ---------------------------------------------------------------------------- dialogue


async def test_a_dialogue_sends_matched_groups_and_succeeds() -> None:
    received: list[bytes] = []

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"noise first\r\nHELLO name=alice id=42\r\n")
        received.append(await reader.readline())
        writer.write(b"OK\n")
        received.append(await reader.readline())
        writer.write(b"BYE-OK\n")
        await reader.read()

    steps = (
        {"expect": r"HELLO name=(?P<who>\w+) id=(\d+)", "send": "HI ${who} $2 $$5 ${9}"},
        {"expect": "^OK$", "send": "BYE"},
        {"expect": "^BYE-OK$"},
    )
    async with serve(greet) as port:
        result = await probe(spec(port, *steps))
    assert result.success, result.detail
    assert received == [b"HI alice 42 $5 \n", b"BYE\n"]
    assert result.sample(names.BB_FAILED_DUE_TO_REGEX) == 0


async def test_the_log_says_how_many_bytes_were_sent_never_what() -> None:
    got: list[bytes] = []

    async def auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"USER?\n")
        got.append(await reader.readline())
        writer.write(b"+OK\n")
        await reader.read()

    ctx = context()
    async with serve(auth) as port:
        result = await run_probe(
            probe_tcp, spec(port, {"expect": "USER", "send": "PASS hunter2"}, {"expect": "OK"}), ctx
        )
    assert result.success, result.detail
    assert got == [b"PASS hunter2\n"]
    log = "\n".join(ctx.trace.lines)
    assert "hunter2" not in log
    assert "sent 13 bytes" in log
    assert "'+OK'" in log  # what the peer said is logged, for debugging expect


async def test_a_connection_closed_before_a_match_fails_with_assertion() -> None:
    async def wrong_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\nsomething else")
        await writer.drain()

    async with serve(wrong_banner) as port:
        result = await probe(spec(port, {"expect": "^220 "}))
    assert result.reason is FailureReason.ASSERTION
    assert "'^220 '" in result.detail
    assert result.sample(names.BB_FAILED_DUE_TO_REGEX) == 1


async def test_the_last_line_without_a_newline_can_still_match() -> None:
    async def no_newline(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"first\nREADY")
        await writer.drain()

    async with serve(no_newline) as port:
        result = await probe(spec(port, {"expect": "^READY$"}))
    assert result.success, result.detail


async def test_a_peer_that_never_speaks_times_out_with_the_phases_so_far() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(silent) as port:
        result = await probe(spec(port, {"expect": "^220"}), timeout=0.3)
    assert result.reason is FailureReason.TIMEOUT
    assert {"resolve", "connect"} <= set(result.phases)
    assert result.duration < 2
    assert result.sample(names.BB_IP_PROTOCOL) == 4


async def test_an_endless_line_fails_with_protocol_and_bounded_memory() -> None:
    chunk = b"x" * 65536

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # until the probe hangs up
            writer.write(chunk)
            await writer.drain()

    async with serve(flood) as port:
        tracemalloc.start()
        try:
            result = await probe(spec(port, {"expect": "^220"}), timeout=10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.reason is FailureReason.PROTOCOL
    assert "without a newline" in result.detail
    assert result.sample(names.BB_FAILED_DUE_TO_REGEX) == 0
    assert peak < 4 * MAX_STEP_BYTES  # one step's bytes, a chunk, and the server's own buffers


async def test_endless_lines_that_never_match_fail_with_assertion_after_the_step_limit() -> None:
    async def chatter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(b"250-still talking\r\n" * 1000)
            await writer.drain()

    async with serve(chatter) as port:
        result = await probe(spec(port, {"expect": "^220"}), timeout=10)
    assert result.reason is FailureReason.ASSERTION
    assert str(MAX_STEP_BYTES) in result.detail
    assert result.sample(names.BB_FAILED_DUE_TO_REGEX) == 1


async def test_a_reset_in_the_middle_of_the_dialogue_fails_with_connect() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\n")
        await reader.readline()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: the kernel sends RST

    async with serve(reset) as port:
        result = await probe(spec(port, {"expect": "^220", "send": "HELO"}, {"expect": "^250"}))
    assert result.reason is FailureReason.CONNECT
    assert "step 2" in result.detail


# ---------------------------------------------------------------------------- TLS


async def test_tls_from_the_start_reports_the_certificate_and_runs_the_dialogue(
    authority: Authority, leaf: CertFiles
) -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 ready\r\n")
        await reader.read()

    async with serve(greet, tls=leaf.server_context()) as port:
        result = await probe(spec(port, {"expect": r"^\* OK"}, tls={"ca_file": str(authority.path)}))
    assert result.success, result.detail
    assert set(result.phases) == {"resolve", "connect", "tls"}
    assert result.cert is not None and result.cert.verified
    assert result.cert.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert {
        names.BB_SSL_EARLIEST_EXPIRY,
        names.BB_SSL_LAST_CHAIN_EXPIRY,
        names.BB_SSL_LAST_CHAIN_INFO,
        names.BB_TLS_VERSION,
        names.BB_TLS_CIPHER,
    } <= sample_names(result)


async def test_tls_from_the_start_with_an_unknown_ca_fails_with_tls_and_keeps_the_certificate(
    tmp_path: Path,
) -> None:
    stranger = make_authority(tmp_path, "stranger CA").issue(tmp_path, "localhost")

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await reader.read()

    async with serve(greet, tls=stranger.server_context()) as port:
        result = await probe(spec(port, {"expect": "hello"}, tls={}))
    assert result.reason is FailureReason.TLS
    assert "certificate verify failed" in result.detail
    assert result.cert is not None and not result.cert.verified
    assert result.cert.issuer == "CN=stranger CA"
    assert names.BB_SSL_LAST_CHAIN_EXPIRY not in sample_names(result)


async def test_an_smtp_dialogue_upgrades_with_starttls(authority: Authority, leaf: CertFiles) -> None:
    received: list[str] = []
    handler = await smtp(received, tls=leaf.server_context())
    async with serve(handler) as port:
        result = await probe(spec(port, *SMTP_DIALOGUE, tls={"ca_file": str(authority.path)}))
    assert result.success, result.detail
    assert received == ["EHLO probe.mx.test\n", "STARTTLS\n", "EHLO probe\n", "QUIT\n"]
    assert "tls" in result.phases
    assert result.cert is not None and result.cert.verified
    assert result.sample(names.BB_TLS_VERSION) == 1


async def test_starttls_with_an_untrusted_certificate_fails_with_tls(leaf: CertFiles) -> None:
    handler = await smtp([], tls=leaf.server_context())
    async with serve(handler) as port:
        result = await probe(spec(port, *SMTP_DIALOGUE))  # system store: the test CA is unknown
    assert result.reason is FailureReason.TLS
    assert "certificate verify failed" in result.detail


async def test_starttls_checks_min_days_left_after_the_dialogue(authority: Authority, tmp_path: Path) -> None:
    soon = authority.issue(tmp_path, "soon", hosts=("localhost",), days=3)
    handler = await smtp([], tls=soon.server_context())
    async with serve(handler) as port:
        result = await probe(spec(port, *SMTP_DIALOGUE, tls={"ca_file": str(authority.path), "min_days_left": 7}))
    assert result.reason is FailureReason.CERT_EXPIRY
    assert "expires in 3.0 days" in result.detail
    assert result.cert is not None


async def test_a_server_rejecting_a_missing_client_certificate_fails_with_tls(
    authority: Authority, leaf: CertFiles
) -> None:
    # A blocking OpenSSL server, as nginx would be: unlike asyncio's, it sends its alert.
    server_ctx = leaf.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(authority.path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> str:
        conn, _ = listener.accept()
        with conn:
            try:
                server_ctx.wrap_socket(conn, server_side=True).sendall(b"hello\n")
            except ssl.SSLError as exc:
                return str(exc.reason)
        return "no error"

    with listener:
        server = asyncio.get_running_loop().run_in_executor(None, serve_once)
        # TLS 1.3: the client's handshake completes; the server's alert arrives on the first read.
        result = await probe(spec(port, {"expect": "hello"}, tls={"ca_file": str(authority.path)}))
        assert await server == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert result.reason is FailureReason.TLS
    assert "certificate required" in result.detail


async def test_a_client_certificate_lets_the_dialogue_through(
    authority: Authority, leaf: CertFiles, tmp_path: Path
) -> None:
    client = authority.issue(tmp_path, "client", hosts=("probe.test",), client=True)
    server_ctx = leaf.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(authority.path)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        writer.write(f"hello {dict(x[0] for x in peer['subject'])['commonName']}\n".encode())
        await reader.read()

    tls = {"ca_file": str(authority.path), "cert_file": str(client.cert), "key_file": str(client.key)}
    async with serve(greet, tls=server_ctx) as port:
        result = await probe(spec(port, {"expect": "^hello client$"}, tls=tls))
    assert result.success, result.detail


# ---------------------------------------------------------------------------- template expansion


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${1}-$2", "a-b"),
        ("${name}", "a"),
        ("$name", "a"),
        ("$1x", ""),  # Go reads the name "1x", which is no group
        ("${1}x", "ax"),
        ("$$1", "$1"),
        ("${7}", ""),
        ("$ ${", "$ ${"),
        ("$3", ""),  # an unmatched optional group
    ],
)
def test_templates_expand_like_gos_regexp_expand(template: str, expected: str) -> None:
    match = re.search(r"(?P<name>a)(b)(c)?", "ab")
    assert match is not None
    assert expand_template(template, match) == expected
