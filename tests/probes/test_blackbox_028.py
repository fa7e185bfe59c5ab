"""What blackbox 0.28 documents and Debian's 0.23 lacks, run from module files against loopback servers.

Each test translates a module the way ``/probe`` does (``parse_modules``) and runs the
probe of its kind; the behaviour pinned is that of blackbox 0.28's CONFIGURATION.md and
prober sources (``prober/http.go``, ``query_response.go``, ``unix.go``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import textwrap
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import brotli
import pytest
from aiohttp import web

from slaprobe import conventions as names
from slaprobe.exporter.blackbox import Module, parse_modules
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from tests.probes.test_tcp import serve
from tests.support.certs import make_authority
from tests.support.hosts import hosts


def module_of(body: str) -> Module:
    """The module ``m`` of a file whose only module has this body."""
    text = "modules:\n  m:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return parse_modules(text)["m"]


async def probe(module: Module, target: str, **fields: Any) -> ProbeResult:
    """Run ``module`` against ``target`` as /probe does (with blackbox's samples)."""
    ctx = ProbeContext(timeout=5.0, trace=ProbeTrace(debug=True), want_samples=True, **fields)
    return await run_probe(PROBERS[module.kind], module.spec_for(target), ctx)


def value(result: ProbeResult, name: str) -> float | None:
    return next((s.value for s in result.samples if s.name == name), None)


@contextlib.asynccontextmanager
async def http_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1; yields the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------- http_headers


async def test_http_headers_add_values_secrets_and_files_read_at_each_request(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.getall("X-Api-Key", []))
        return web.Response(text="ok")

    key = tmp_path / "key.txt"
    key.write_text("from-file-1\n")
    module = module_of(f"""\
        prober: http
        http:
          headers: {{X-Api-Key: plain}}
          http_headers:
            X-Api-Key: {{values: [v1, v2], secrets: [s1], files: ['{key}']}}
        """)
    assert "s1" in module.secrets
    async with http_server(echo) as base:
        assert (await probe(module, base)).success
        key.write_text("  from-file-2  ")
        assert (await probe(module, base)).success
        key.unlink()
        missing = await probe(module, base)
    assert seen == [
        ["plain", "v1", "v2", "s1", "from-file-1"],
        ["plain", "v1", "v2", "s1", "from-file-2"],
    ]
    assert not missing.success and f"unable to read headers file {key}" in missing.detail


# ---------------------------------------------------------------------------- oauth2


async def test_oauth2_client_credentials_fetch_a_token_that_the_probe_sends_as_bearer() -> None:
    token_requests: list[dict[str, Any]] = []

    async def token_endpoint(request: web.Request) -> web.Response:
        form = dict(await request.post())
        token_requests.append({"auth": request.headers.get("Authorization"), "form": form})
        return web.json_response({"access_token": "tok-123", "token_type": "bearer", "expires_in": 60})

    async def target(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == "Bearer tok-123"
        return web.Response(status=200 if ok else 401)

    async with http_server(token_endpoint) as tokens, http_server(target) as base:
        module = module_of(f"""\
            prober: http
            http:
              oauth2:
                client_id: "client id"
                client_secret: "s3cret"
                token_url: "{tokens}/token"
                scopes: [read, write]
                endpoint_params: {{audience: shop}}
            """)
        result = await probe(module, base)
    assert result.success, result.detail
    expected_auth = "Basic " + base64.b64encode(b"client+id:s3cret").decode()
    assert token_requests == [
        {
            "auth": expected_auth,
            "form": {"grant_type": "client_credentials", "audience": "shop", "scope": "read write"},
        }
    ]


async def test_an_oauth2_token_endpoint_that_refuses_fails_the_probe_with_its_status() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403)

    async with http_server(refuse) as tokens:
        module = module_of(f"prober: http\nhttp:\n  oauth2: {{client_id: c, token_url: '{tokens}/t'}}\n")
        result = await probe(module, "http://127.0.0.1:1/")
    assert result.reason is FailureReason.HTTP_STATUS and "token endpoint answered 403" in result.detail


# ---------------------------------------------------------------------------- compression

BODY = b"Welcome " * 500
ENCODED = {
    "gzip": gzip.compress(BODY),
    "br": brotli.compress(BODY),
    "deflate": zlib.compress(BODY),
    "identity": BODY,
}


@pytest.mark.parametrize("coding", sorted(ENCODED))
async def test_compression_asks_for_its_coding_and_decodes_the_body(coding: str) -> None:
    asked: list[str] = []

    async def encoded(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Accept-Encoding", ""))
        headers = {} if coding == "identity" else {"Content-Encoding": coding}
        return web.Response(body=ENCODED[coding], headers=headers)

    module = module_of(f"""\
        prober: http
        http: {{compression: {coding}, fail_if_body_not_matches_regexp: ["^Welcome Welcome"]}}
        """)
    async with http_server(encoded) as base:
        result = await probe(module, base)
    assert result.success, result.detail
    assert asked == [coding]
    assert value(result, names.BB_HTTP_BODY_LENGTH) == len(BODY)


# ---------------------------------------------------------------------------- CEL


@pytest.mark.parametrize(
    ("key", "body", "success"),
    [
        ("fail_if_body_json_not_matches_cel", {"foo": "bar", "baz": "qux"}, True),
        ("fail_if_body_json_not_matches_cel", {"foo": "bar", "baz": "aux"}, False),
        ("fail_if_body_json_not_matches_cel", {"foo": "bar"}, False),  # no such key: an evaluation error
        ("fail_if_body_json_matches_cel", {"foo": "bar", "baz": "qux"}, False),
        ("fail_if_body_json_matches_cel", {"foo": "no", "baz": "qux"}, True),
        ("fail_if_body_json_matches_cel", "not json", False),
    ],
)
async def test_cel_expressions_over_the_json_body_decide_as_in_blackbox(key: str, body: Any, success: bool) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=body if isinstance(body, str) else json.dumps(body))

    module = module_of(f"""\
        prober: http
        http:
          {key}: "body.foo == 'bar' && body.baz.startsWith('q')"
        """)
    async with http_server(answer) as base:
        result = await probe(module, base)
    assert result.success is success, result.detail
    assert value(result, names.BB_FAILED_DUE_TO_CEL) == (0 if success else 1)
    if not success:
        assert result.reason is FailureReason.ASSERTION


# ---------------------------------------------------------------------------- proxies


@contextlib.asynccontextmanager
async def forward_proxy(log: list[dict[str, Any]]) -> AsyncIterator[str]:
    """A plain-HTTP forward proxy and CONNECT tunnel on 127.0.0.1 that maps every name to 127.0.0.1."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        log.append({"method": method, "target": target, "headers": headers})
        if method == "CONNECT":
            port = int(target.rpartition(":")[2])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            hostport, _, path = target.split("://", 1)[1].partition("/")
            port = int(hostport.rpartition(":")[2]) if ":" in hostport else 80
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            up_writer.write(head.replace(target.encode(), b"/" + path.encode(), 1))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            up_writer.transport.abort()

    async with serve(handle) as port:
        yield f"http://127.0.0.1:{port}"


async def test_skip_resolve_phase_with_proxy_lets_the_proxy_resolve_the_target() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    log: list[dict[str, Any]] = []
    asked: list[str] = []
    async with http_server(ok) as base, forward_proxy(log) as proxy:
        port = base.rpartition(":")[2]
        module = module_of(f"prober: http\nhttp: {{proxy_url: '{proxy}', skip_resolve_phase_with_proxy: true}}\n")
        result = await probe(module, f"http://shop.internal:{port}/", lookup=hosts({}, asked=asked))
        resolving = module_of(f"prober: http\nhttp: {{proxy_url: '{proxy}'}}\n")
        unresolved = await probe(resolving, f"http://shop.internal:{port}/", lookup=hosts({}))
    assert result.success, result.detail
    assert asked == []  # the target's name was never looked up here
    assert log[0]["target"] == f"http://shop.internal:{port}/"
    assert value(result, names.BB_IP_PROTOCOL) is None  # blackbox does not choose a protocol then
    assert unresolved.reason is FailureReason.DNS  # without it, the target must resolve here first


async def test_proxy_connect_header_is_sent_on_the_connect_request_only(tmp_path: Path) -> None:
    authority = make_authority(tmp_path)
    leaf = authority.issue(tmp_path)
    log: list[dict[str, Any]] = []

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=leaf.server_context())
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with forward_proxy(log) as proxy:
            module = module_of(f"""\
                prober: http
                http:
                  proxy_url: "{proxy}"
                  proxy_connect_header: {{Proxy-Authorization: [Bearer token], X-Trace: [a, b]}}
                  tls_config: {{ca_file: "{authority.path}"}}
                """)
            result = await probe(module, f"https://localhost:{port}/", lookup=hosts({"localhost": ["127.0.0.1"]}))
    finally:
        await runner.cleanup()
    assert result.success, result.detail
    assert log[0]["method"] == "CONNECT"
    assert log[0]["headers"]["Proxy-Authorization"] == "Bearer token"
    assert "Bearer token" in module.secrets


# ---------------------------------------------------------------------------- source_ip_address


async def test_tcp_and_http_connect_from_the_source_ip_address() -> None:
    peers: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        peers.append(request.remote or "")
        return web.Response(text="ok")

    async with http_server(ok) as base:
        port = base.rpartition(":")[2]
        http = await probe(module_of("prober: http\nhttp: {source_ip_address: 127.0.0.2}\n"), base)
        tcp = await probe(module_of("prober: tcp\ntcp: {source_ip_address: 127.0.0.3}\n"), f"127.0.0.1:{port}")
    assert http.success and tcp.success, (http.detail, tcp.detail)
    assert peers == ["127.0.0.2"]


async def test_dns_sends_from_the_source_ip_address() -> None:
    import dns.message

    peers: list[str] = []

    class Answer(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            peers.append(addr[0])
            response = dns.message.make_response(dns.message.from_wire(data))
            self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Answer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        module = module_of(
            "prober: dns\ndns: {query_name: shop.test, query_type: A, source_ip_address: 127.0.0.2,"
            " preferred_ip_protocol: ip4}\n"
        )
        result = await probe(module, f"127.0.0.1:{port}")
    finally:
        transport.close()
    assert result.success, result.detail
    assert peers == ["127.0.0.2"]


# ---------------------------------------------------------------------------- binary dialogues, STARTTLS


async def test_a_binary_send_and_expect_bytes_hold_a_postgresql_sslrequest_dialogue() -> None:
    received: list[bytes] = []

    async def postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(9))
        writer.write(b"N")
        await writer.drain()
        await reader.read()

    async with serve(postgres) as port:
        module = module_of("""\
            prober: tcp
            tcp:
              query_response:
              - send: !!binary AAAACATSFi8=
              - expect_bytes: N
            """)
        good = await probe(module, f"127.0.0.1:{port}")
        ssl_enabled = module_of("""\
            prober: tcp
            tcp:
              query_response:
              - send: !!binary AAAACATSFi8=
              - expect_bytes: S
            """)
        wrong = await probe(ssl_enabled, f"127.0.0.1:{port}")
    assert good.success, good.detail
    assert received[0] == b"\x00\x00\x00\x08\x04\xd2\x16\x2f\n"  # blackbox sends a newline after every send
    assert value(good, names.BB_FAILED_DUE_TO_BYTES) == 0
    assert not wrong.success and value(wrong, names.BB_FAILED_DUE_TO_BYTES) == 1


async def test_labels_of_a_step_become_probe_expect_info_from_the_matched_groups() -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test ESMTP Postfix 3.7\r\n")
        await writer.drain()
        await reader.read()

    async with serve(banner) as port:
        module = module_of("""\
            prober: tcp
            tcp:
              query_response:
              - expect: "^220 ([^ ]+) ESMTP (.+)$"
                labels: [{name: host, value: "${1}"}, {name: software, value: "${2}"}]
            """)
        result = await probe(module, f"127.0.0.1:{port}")
    assert result.success, result.detail
    info = [s for s in result.samples if s.name == names.BB_EXPECT_INFO]
    assert [(dict(s.labels), s.value) for s in info] == [({"host": "mx.test", "software": "Postfix 3.7"}, 1.0)]


async def test_tls_config_configures_the_starttls_upgrade(tmp_path: Path) -> None:
    authority = make_authority(tmp_path)
    leaf = authority.issue(tmp_path, hosts=("mail.test",))
    server_tls = leaf.server_context()

    async def starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK STARTTLS ready\r\n")
        await writer.drain()
        await reader.readline()
        writer.write(b". OK begin\r\n")
        await writer.drain()
        await writer.start_tls(server_tls)
        await reader.readline()
        writer.write(b"* CAPABILITY IMAP4rev1\r\n")
        await writer.drain()
        await reader.read()

    body = """\
        prober: tcp
        tcp:
          tls_config: {{ca_file: "{ca}", server_name: mail.test}}
          query_response:
          - expect: "OK.*STARTTLS"
          - send: ". STARTTLS"
          - expect: "OK"
          - starttls: true
          - send: ". capability"
          - expect: "CAPABILITY IMAP4rev1"
        """
    other = make_authority(tmp_path, name="other CA")
    async with serve(starttls) as port:
        trusted = await probe(module_of(body.format(ca=authority.path)), f"127.0.0.1:{port}")
        untrusted = await probe(module_of(body.format(ca=other.path)), f"127.0.0.1:{port}")
    assert trusted.success, trusted.detail
    assert untrusted.reason is FailureReason.TLS


# ---------------------------------------------------------------------------- unix


async def test_the_unix_prober_talks_to_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "ping.sock"

    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (await reader.readline()).strip() == b"PING":
            writer.write(b"PONG\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(pong, str(path))
    try:
        module = module_of("""\
            prober: unix
            timeout: 5s
            unix:
              query_response:
                - send: "PING"
                - expect: "PONG"
            """)
        result = await probe(module, str(path))
        missing = await probe(module, str(tmp_path / "none.sock"))
    finally:
        server.close()
    assert module.kind == "unix"
    assert result.success, result.detail
    assert missing.reason is FailureReason.CONNECT


def test_a_unix_socket_probe_is_also_a_slaprobe_probe_kind() -> None:
    from slaprobe.config import parse_config

    config = parse_config(
        "version: v1\nservices:\n  s:\n    probes:\n"
        "      - {name: sock, unix: {path: /run/app.sock, dialogue: [{send: PING}, {expect: PONG}]}}\n"
    )
    probe_ = config.services["s"].probes[0]
    assert probe_.kind == "unix" and probe_.spec.target == "/run/app.sock"


# ---------------------------------------------------------------------------- icmp


async def test_icmp_sends_from_the_source_ip_address_with_the_df_bit() -> None:
    module = module_of(
        "prober: icmp\nicmp: {preferred_ip_protocol: ip4, source_ip_address: 127.0.0.1, dont_fragment: true}\n"
    )
    result = await probe(module, "127.0.0.1")
    if result.reason is FailureReason.PERMISSION:
        pytest.skip("no ICMP socket here (needs CAP_NET_RAW or ping_group_range)")
    assert result.success, result.detail
    foreign = module_of("prober: icmp\nicmp: {preferred_ip_protocol: ip4, source_ip_address: 192.0.2.1}\n")
    refused = await probe(foreign, "127.0.0.1")
    assert refused.reason is FailureReason.CONNECT and "cannot send from 192.0.2.1" in refused.detail


# ---------------------------------------------------------------------------- HTTP/2


@contextlib.asynccontextmanager
async def h2_server(tmp_path: Path, alpn: list[str]) -> AsyncIterator[tuple[str, Path]]:
    """A TLS server on 127.0.0.1 offering ``alpn`` that answers h2 with the h2 library and
    HTTP/1.1 by hand; yields the base URL and the CA to trust. Body: the protocol spoken."""
    import h2.config
    import h2.connection
    import h2.events

    authority = make_authority(tmp_path)
    context = authority.issue(tmp_path).server_context()
    context.set_alpn_protocols(alpn)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() != "h2":
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\nspoken over HTTP/1.1")
            await writer.drain()
            return
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    body = b"spoken over HTTP/2"
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                    conn.send_data(event.stream_id, body, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()

    async with serve(handle, tls=context) as port:
        yield f"https://localhost:{port}/", authority.path


async def test_an_h2_only_target_is_probed_over_http2_negotiated_by_alpn(tmp_path: Path) -> None:
    async with h2_server(tmp_path, ["h2"]) as (url, ca):
        module = module_of(f"""\
            prober: http
            http:
              valid_http_versions: ["HTTP/2.0"]
              fail_if_body_not_matches_regexp: ["over HTTP/2"]
              tls_config: {{ca_file: "{ca}"}}
            """)
        result = await probe(module, url, lookup=hosts({"localhost": ["127.0.0.1"]}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_VERSION) == 2.0
    assert value(result, names.BB_HTTP_STATUS) == 200
    assert value(result, names.BB_HTTP_SSL) == 1


async def test_enable_http2_false_speaks_http1_and_fails_a_module_that_wants_http2(tmp_path: Path) -> None:
    async with h2_server(tmp_path, ["h2", "http/1.1"]) as (url, ca):
        module = module_of(f"""\
            prober: http
            http:
              enable_http2: false
              valid_http_versions: ["HTTP/2.0"]
              tls_config: {{ca_file: "{ca}"}}
            """)
        result = await probe(module, url, lookup=hosts({"localhost": ["127.0.0.1"]}))
    assert result.reason is FailureReason.ASSERTION
    assert value(result, names.BB_HTTP_VERSION) == 1.1


# ---------------------------------------------------------------------------- grpc


@contextlib.asynccontextmanager
async def health_server(
    statuses: dict[str, int], *, tls: tuple[bytes, bytes] | None = None, seen: list[Any] | None = None
) -> AsyncIterator[int]:
    """A grpc.health.v1 server on 127.0.0.1 answering ``statuses`` (service -> ServingStatus)."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    class Recording(health.HealthServicer):
        def Check(self, request: Any, context: Any) -> Any:
            if seen is not None:
                seen.append(dict(context.invocation_metadata()))
            return super().Check(request, context)

    server = grpc.aio.server()
    servicer = Recording()
    for service, status in statuses.items():
        servicer.set(service, status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([tls]))
    await server.start()
    assert health_pb2  # the generated messages are loaded with the stubs
    try:
        yield port
    finally:
        await server.stop(None)


async def test_a_grpc_health_check_succeeds_for_a_serving_service_with_blackboxs_samples() -> None:
    from grpc_health.v1 import health_pb2

    seen: list[Any] = []
    statuses = {"shop": health_pb2.HealthCheckResponse.SERVING, "db": health_pb2.HealthCheckResponse.NOT_SERVING}
    async with health_server(statuses, seen=seen) as port:
        module = module_of(
            "prober: grpc\ngrpc: {service: shop, metadata: {x-team: [payments]}, preferred_ip_protocol: ip4}\n"
        )
        result = await probe(module, f"localhost:{port}", lookup=hosts({"localhost": ["127.0.0.1"]}))
        down = await probe(module_of("prober: grpc\ngrpc: {service: db}\n"), f"127.0.0.1:{port}")
        unknown = await probe(module_of("prober: grpc\ngrpc: {service: nope}\n"), f"127.0.0.1:{port}")
    assert result.success, result.detail
    assert seen[0]["x-team"] == "payments"
    health = {dict(s.labels)["serving_status"]: s.value for s in result.samples if s.name == names.BB_GRPC_HEALTH}
    assert health == {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 0, "SERVICE_UNKNOWN": 0}
    assert value(result, names.BB_GRPC_STATUS) == 0 and value(result, names.BB_GRPC_SSL) == 0
    assert down.reason is FailureReason.ASSERTION and "NOT_SERVING" in down.detail
    assert unknown.reason is FailureReason.ASSERTION and value(unknown, names.BB_GRPC_STATUS) == 5  # NOT_FOUND


async def test_a_grpc_health_check_over_tls_verifies_the_target_name(tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2

    authority = make_authority(tmp_path)
    leaf = authority.issue(tmp_path, hosts=("grpc.test",))
    pair = (leaf.key.read_bytes(), leaf.cert.read_bytes())
    async with health_server({"": health_pb2.HealthCheckResponse.SERVING}, tls=pair) as port:
        body = f"prober: grpc\ngrpc: {{tls: true, tls_config: {{ca_file: '{authority.path}'{{extra}}}}}}\n"
        good = await probe(module_of(body.replace("{extra}", ", server_name: grpc.test")), f"127.0.0.1:{port}")
        wrong = await probe(module_of(body.replace("{extra}", ", server_name: other.test")), f"127.0.0.1:{port}")
    assert good.success, good.detail
    assert value(good, names.BB_GRPC_SSL) == 1
    assert wrong.reason in (FailureReason.TLS, FailureReason.CONNECT)


async def test_grpc_faults_end_with_the_right_reason() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 3)
        await writer.drain()
        await reader.read()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    module = module_of("prober: grpc\n")
    outcomes = {}
    for name, handler in (("reset", reset), ("garbage", garbage), ("silent", silent)):
        async with serve(handler) as port:
            ctx = ProbeContext(timeout=1.0, trace=ProbeTrace(debug=True), want_samples=True)
            result = await run_probe(PROBERS["grpc"], module.spec_for(f"127.0.0.1:{port}"), ctx)
        outcomes[name] = result.reason
    async with serve(reset) as port:
        pass
    refused = await probe(module, f"127.0.0.1:{port}")
    assert outcomes == {
        "reset": FailureReason.CONNECT,
        "garbage": FailureReason.PROTOCOL,
        "silent": FailureReason.TIMEOUT,
    }
    assert refused.reason is FailureReason.CONNECT


def test_a_grpc_check_is_a_slaprobe_probe_and_a_flow_step() -> None:
    from slaprobe.config import parse_config

    config = parse_config(
        "version: v1\nservices:\n  s:\n    probes:\n"
        "      - {name: health, grpc: {address: '10.0.0.1:50051', service: shop}}\n"
        "      - name: flow\n        flow:\n          steps:\n"
        "            - {name: check, grpc: {address: '10.0.0.1:50051'}}\n"
    )
    probes = config.services["s"].probes
    assert probes[0].kind == "grpc" and probes[1].kind == "flow"


# ---------------------------------------------------------------------------- websocket


async def test_the_websocket_prober_upgrades_and_runs_the_message_dialogue_of_blackboxs_example() -> None:
    seen: list[Any] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        if request.path != "/ws":
            return web.Response(status=404)
        seen.append((request.headers.get("X-Some-Header"), request.headers.get("Authorization")))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('Hello, prober"')
        reply = await ws.receive_str()
        await ws.send_str("Welcome" if reply == "Hello server, i'am prober" else "Go away")
        await ws.close()
        return ws

    # blackbox's own example module (its master branch's example.yml), plain ws here.
    module = module_of("""\
        prober: websocket
        websocket:
          http_config:
            authorization:
              credentials: "secret_token"
          headers:
            X-Some-Header: "my_header"
          query_response:
            - expect: ^Hello,\\s(.+)"
              send: "Hello server, i'am ${1}"
            - expect: ^Welcome
        """)
    async with http_server(chat) as base:
        ws_base = base.replace("http://", "ws://")
        result = await probe(module, f"{ws_base}/ws")
        refused = await probe(module, f"{ws_base}/nope")
    assert result.success, result.detail
    assert seen[0] == ("my_header", "Bearer secret_token")
    assert value(result, "probe_websocket_connection_upgraded") == 1
    assert value(result, "probe_websocket_failed_due_to_regex") == 0
    assert refused.reason is FailureReason.HTTP_STATUS and value(refused, "probe_websocket_status_code") == 404


async def test_websocket_faults_end_with_the_right_reason() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
        await writer.drain()

    module = module_of("prober: websocket\nwebsocket: {query_response: [{expect: x}]}\n")
    outcomes = {}
    for name, handler in (("reset", reset), ("garbage", garbage)):
        async with serve(handler) as port:
            outcomes[name] = (await probe(module, f"ws://127.0.0.1:{port}/")).reason
    assert outcomes == {"reset": FailureReason.CONNECT, "garbage": FailureReason.PROTOCOL}


async def test_an_http2_hop_reports_blackboxs_tls_series_and_no_chain_expiry_when_insecure(tmp_path: Path) -> None:
    async with h2_server(tmp_path, ["h2"]) as (url, _ca):
        module = module_of("prober: http\nhttp: {tls_config: {insecure_skip_verify: true}}\n")
        result = await probe(module, url, lookup=hosts({"localhost": ["127.0.0.1"]}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_VERSION) == 2.0
    info = next(s for s in result.samples if s.name == names.BB_SSL_LAST_CHAIN_INFO)
    assert dict(info.labels)["serialnumber"]
    assert any(s.name == names.BB_TLS_CIPHER for s in result.samples)
    assert value(result, names.BB_SSL_LAST_CHAIN_EXPIRY) is None  # blackbox verifies no chain in insecure mode
