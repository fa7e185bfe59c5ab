"""The HTTP probe against real loopback servers: plain, TLS, mTLS, proxied, hostile."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from slaprobe import conventions as names
from slaprobe.config import HttpSpec
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.http import COOKIE_JAR, PHASES, probe_http
from slaprobe.probes.resolve import ip_hash
from slaprobe.probes.result import (
    FailureReason,
    ForbiddenTargetError,
    ProbeContext,
    ProbeResult,
    ProbeTrace,
)
from slaprobe.probes.runner import run_probe
from tests.conftest import free_port
from tests.support.certs import Authority, CertFiles
from tests.support.hosts import hosts

Serve = Callable[..., Awaitable[str]]
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
SECRET = "hunter2-secret"


# ---------------------------------------------------------------------------- servers


def shop_app() -> web.Application:
    """A small service with one route per behaviour the tests need."""
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(request: web.Request) -> web.Response:
        return web.Response(
            text="<h1>Welcome to the shop</h1>",
            content_type="text/html",
            headers={"Last-Modified": LAST_MODIFIED, "X-Version": "1.2.3", "Cache-Control": "no-store"},
        )

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status page")

    @routes.get("/json")
    async def document(request: web.Request) -> web.Response:
        return web.json_response({"status": "up", "count": 2, "name": None, "items": [{"ok": True}, {"ok": True}]})

    @routes.get("/redirect/{n}")
    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/redirect/{n - 1}")

    @routes.get("/loop")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    @routes.get("/to")
    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    @routes.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "host": request.headers.get("Host"),
                "authorization": request.headers.get("Authorization"),
                "user_agent": request.headers.get("User-Agent"),
                "content_type": request.headers.get("Content-Type"),
                "cookie": request.headers.get("Cookie"),
                "x_team": request.headers.get("X-Team"),
                "x_api_key": request.headers.get("X-Api-Key"),
                "body": (await request.read()).decode(),
                "tls": request.transport is not None and request.transport.get_extra_info("ssl_object") is not None,
            }
        )

    @routes.post("/moved")
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/echo")

    @routes.get("/login")
    async def login(request: web.Request) -> web.Response:
        response = web.HTTPFound("/echo")
        response.set_cookie("session", "abc123")
        raise response

    @routes.get("/huge")
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(4096):  # 256 MiB at most, unless the client hangs up first
                await response.write(chunk)
        return response

    @routes.get("/gzip")
    async def compressed(request: web.Request) -> web.Response:
        body = gzip.compress(b"Welcome " * 1000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    @routes.get("/latin")
    async def latin(request: web.Request) -> web.Response:
        return web.Response(
            body="Caf\u00e9 ouvert".encode("latin-1"), headers={"Content-Type": "text/plain; charset=latin-1"}
        )

    @routes.get("/bogus-charset")
    async def bogus(request: web.Request) -> web.Response:
        return web.Response(body=b"Welcome", headers={"Content-Type": "text/plain; charset=no-such-charset"})

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)  # simulated service latency, not waiting for an event
        return web.Response(text="late")

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start aiohttp apps on loopback ports; returns their base URLs."""
    runners: list[web.AppRunner] = []

    async def start(
        app: web.Application | None = None, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> str:
        runner = web.AppRunner(app or shop_app(), access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, host, 0, ssl_context=ssl_context).start()
        address, port = runner.addresses[0][:2]
        address = f"[{address}]" if ":" in address else address
        return f"{'https' if ssl_context else 'http'}://{address}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """An asyncio TCP server on 127.0.0.1 running ``handler``; yields its port.

    On exit, handlers still running (a server that hangs on purpose) are cancelled and
    their connections closed.
    """
    running: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            running.discard(task)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await server.wait_closed()


def spec(url: str, **fields: Any) -> HttpSpec:
    """A validated spec, as the config loader would build it."""
    return HttpSpec.model_validate({"url": url, **fields})


def context(timeout: float = 5.0, **fields: Any) -> ProbeContext:
    """A context that keeps the probe log."""
    return ProbeContext(timeout=timeout, trace=ProbeTrace(debug=True), **fields)


async def probe(http: HttpSpec, ctx: ProbeContext | None = None) -> ProbeResult:
    """Run the probe the way the scheduler does (deadline and guard handled by the runner)."""
    return await run_probe(probe_http, http, ctx or context())


def value(result: ProbeResult, name: str, **labels: str) -> float | None:
    """The value of the sample called ``name`` with exactly ``labels``, or None."""
    wanted = tuple(sorted(labels.items()))
    for sample in result.samples:
        if sample.name == name and (not labels or tuple(sorted(sample.labels)) == wanted):
            return sample.value
    return None


def label_values(result: ProbeResult, name: str, label: str) -> list[str]:
    """The values of ``label`` on the samples called ``name``."""
    return [dict(s.labels)[label] for s in result.samples if s.name == name]


def failed(result: ProbeResult, reason: FailureReason) -> bool:
    """Whether the result failed for ``reason`` (asserted with the detail visible)."""
    assert not result.success, "probe unexpectedly succeeded"
    assert result.reason is reason, f"{result.reason}: {result.detail}"
    return True


# ---------------------------------------------------------------------------- success and samples


async def test_a_healthy_page_succeeds_with_blackbox_samples(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"status": [200], "body_regex": "Welcome"}))
    assert result.success, result.detail
    assert result.reason is None and result.detail == ""
    assert value(result, names.BB_HTTP_STATUS) == 200
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == len("<h1>Welcome to the shop</h1>")
    assert value(result, names.BB_HTTP_BODY_LENGTH) == len("<h1>Welcome to the shop</h1>")
    assert value(result, names.BB_HTTP_REDIRECTS) == 0
    assert value(result, names.BB_HTTP_SSL) == 0
    assert value(result, names.BB_HTTP_VERSION) == 1.1
    assert value(result, names.BB_FAILED_DUE_TO_REGEX) == 0
    assert value(result, names.BB_HTTP_LAST_MODIFIED) == 1445412480
    assert value(result, names.BB_IP_PROTOCOL) == 4
    assert value(result, names.BB_IP_ADDR_HASH) == ip_hash("127.0.0.1")
    assert value(result, names.BB_DNS_LOOKUP) is not None
    assert sorted(label_values(result, names.BB_HTTP_DURATION, "phase")) == sorted(PHASES)
    assert result.cert is None
    assert value(result, names.BB_TLS_VERSION, version="TLS 1.3") is None


async def test_phases_are_all_present_and_add_up_to_no_more_than_the_duration(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/"))
    assert set(result.phases) == set(PHASES)
    assert result.phases["tls"] == 0
    assert result.phases["connect"] > 0 and result.phases["processing"] > 0
    assert all(seconds >= 0 for seconds in result.phases.values())
    assert sum(result.phases.values()) <= result.duration
    for phase in PHASES:
        assert value(result, names.BB_HTTP_DURATION, phase=phase) == result.phases[phase]


def test_the_address_hash_is_blackboxs_fnv32a_of_the_address_bytes() -> None:
    # Go: fnv.New32a() over net.IP.To4() (IPv4, v4-mapped included) or To16(); the values
    # are FNV-1a 32 of 7f000001 and of ::1's sixteen bytes.
    assert ip_hash("127.0.0.1") == 3668918509
    assert ip_hash("::ffff:127.0.0.1") == 3668918509
    assert ip_hash("::1") == 1751717746


async def test_with_compression_a_compressed_body_is_measured_and_matched_after_decompression(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/gzip", compression="gzip", expect={"body_regex": "^Welcome Welcome"}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == len(b"Welcome " * 1000)
    content_length = value(result, names.BB_HTTP_CONTENT_LENGTH)
    assert content_length is not None and 0 < content_length < 8000


async def test_without_compression_a_compressed_body_is_measured_and_matched_as_sent(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/gzip", expect={"body_regex": "^Welcome"}))
    assert failed(result, FailureReason.ASSERTION)  # as blackbox: the gzip bytes are matched
    assert value(result, names.BB_HTTP_BODY_LENGTH) == len(gzip.compress(b"Welcome " * 1000))


async def test_the_body_is_matched_as_text_in_its_declared_charset(serve: Serve) -> None:
    base = await serve()
    assert (await probe(spec(base + "/latin", expect={"body_regex": "^Caf\u00e9 "}))).success
    assert (await probe(spec(base + "/bogus-charset", expect={"body_regex": "^Welcome$"}))).success


async def test_a_head_request_reads_no_body(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", method="HEAD"))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 0


# ---------------------------------------------------------------------------- the request


async def test_method_body_headers_and_basic_auth_are_sent(serve: Serve) -> None:
    base = await serve()
    result = await probe(
        spec(
            base + "/echo",
            method="PUT",
            body="hello",
            headers={"X-Team": "payments"},
            basic_auth={"username": "probe", "password": SECRET},
            expect={
                "json": [
                    {"path": "$.method", "equals": "PUT"},
                    {"path": "$.body", "equals": "hello"},
                    {"path": "$.x_team", "equals": "payments"},
                    {"path": "$.authorization", "matches": "^Basic "},
                    {"path": "$.user_agent", "matches": "^slaprobe/"},
                    {"path": "$.content_type", "equals": None},
                ]
            },
        )
    )
    assert result.success, result.detail


async def test_credentials_in_the_url_are_sent_as_basic_auth(serve: Serve) -> None:
    base = await serve()
    url = base.replace("http://", f"http://probe:{SECRET}@") + "/echo"
    expected = "Basic " + base64.b64encode(f"probe:{SECRET}".encode()).decode()
    result = await probe(spec(url, expect={"json": [{"path": "$.authorization", "equals": expected}]}))
    assert result.success, result.detail
    both = await probe(
        spec(
            url,
            basic_auth={"username": "other"},
            expect={"json": [{"path": "$.authorization", "matches": "^Basic b3RoZXI6$"}]},
        )
    )
    assert both.success, both.detail


async def test_a_json_body_is_sent_as_json(serve: Serve) -> None:
    base = await serve()
    result = await probe(
        spec(
            base + "/echo",
            method="POST",
            json={"user": "probe", "n": 1},
            expect={
                "json": [
                    {"path": "$.content_type", "equals": "application/json"},
                    {"path": "$.body", "equals": '{"user":"probe","n":1}'},
                ]
            },
        )
    )
    assert result.success, result.detail


async def test_every_probe_opens_a_fresh_connection(serve: Serve) -> None:
    peers: list[tuple[str, int]] = []

    async def record_peer(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", record_peer)
    base = await serve(app)
    for _ in range(3):
        assert (await probe(spec(base + "/"))).success
    assert len(set(peers)) == 3


async def test_the_hostname_override_sets_the_host_header(serve: Serve) -> None:
    base = await serve()
    result = await probe(
        spec(base + "/echo", expect={"json": [{"path": "$.host", "equals": "shop.example"}]}),
        context(hostname="shop.example"),
    )
    assert result.success, result.detail


async def test_secrets_stay_out_of_the_detail_and_the_probe_log(serve: Serve) -> None:
    base = await serve()
    ctx = context()
    result = await probe(
        spec(
            f"{base}/status/500?token={SECRET}",
            headers={"Authorization": f"Bearer {SECRET}"},
            basic_auth={"username": "probe", "password": SECRET},
        ),
        ctx,
    )
    assert failed(result, FailureReason.HTTP_STATUS)
    assert ctx.trace.lines, "the debug log is empty"
    assert SECRET not in result.detail
    assert not [line for line in ctx.trace.lines if SECRET in line or "Bearer" in line]


# ---------------------------------------------------------------------------- status and assertions


async def test_a_503_fails_with_http_status(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/status/503"))
    assert failed(result, FailureReason.HTTP_STATUS)
    assert result.detail == "status 503 is not 2xx"
    assert value(result, names.BB_HTTP_STATUS) == 503


async def test_a_status_outside_the_accepted_list_fails_and_a_listed_one_passes(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/status/404", expect={"status": [200]}))
    assert failed(result, FailureReason.HTTP_STATUS)
    assert result.detail == "status 404 not in [200]"
    assert (await probe(spec(base + "/status/404", expect={"status": [200, 404]}))).success


@pytest.mark.parametrize(
    ("expect", "detail"),
    [
        ({"body_regex": ["Welcome", "checkout"]}, "body does not match 'checkout'"),
        ({"body_not_regex": "shop"}, "body matches 'shop'"),
    ],
)
async def test_a_body_regex_failure_is_an_assertion_due_to_regex(
    serve: Serve, expect: dict[str, Any], detail: str
) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect=expect))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail == detail
    assert value(result, names.BB_FAILED_DUE_TO_REGEX) == 1


async def test_body_regexes_that_hold_pass(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"body_regex": ["Welcome", "shop"], "body_not_regex": "error"}))
    assert result.success, result.detail


@pytest.mark.parametrize(
    "assertion",
    [
        {"path": "$.status", "equals": "up"},
        {"path": "$.count", "equals": 2.0},
        {"path": "$.name", "equals": None},
        {"path": "$.items[*].ok", "equals": True},
        {"path": "$.status", "matches": "^u"},
        {"path": "$.count", "matches": "^2$"},
        {"path": "$.items[1]"},
        {"path": "$.missing", "exists": False},
    ],
)
async def test_a_json_assertion_that_holds_passes(serve: Serve, assertion: dict[str, Any]) -> None:
    base = await serve()
    result = await probe(spec(base + "/json", expect={"json": [assertion]}))
    assert result.success, result.detail


@pytest.mark.parametrize(
    ("assertion", "detail"),
    [
        ({"path": "$.status", "equals": "down"}, '$.status is "up", not "down"'),
        ({"path": "$.count", "equals": True}, "$.count is 2, not true"),
        ({"path": "$.items[*].ok", "equals": False}, "$.items[*].ok is true, not false"),
        ({"path": "$.status", "matches": "^down"}, "$.status does not match '^down'"),
        ({"path": "$.missing"}, "$.missing does not exist"),
        ({"path": "$.name", "exists": False}, "$.name exists"),
        ({"path": "$.items[?(@.ok)]"}, "unsupported syntax"),
    ],
)
async def test_a_json_assertion_that_does_not_hold_fails_with_assertion(
    serve: Serve, assertion: dict[str, Any], detail: str
) -> None:
    base = await serve()
    result = await probe(spec(base + "/json", expect={"json": [assertion]}))
    assert failed(result, FailureReason.ASSERTION)
    assert detail in result.detail


async def test_json_assertions_on_a_non_json_body_fail_with_assertion(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"json": [{"path": "$.status"}]}))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail.startswith("body is not JSON")


@pytest.mark.parametrize(
    "assertion",
    [
        {"name": "X-Version", "regex": r"^1\."},
        {"name": "x-version", "regex": r"^2\.", "negate": True},
        {"name": "X-Absent", "regex": "anything", "allow_missing": True},
        {"name": "X-Absent", "regex": "anything", "negate": True, "allow_missing": True},
    ],
)
async def test_a_header_assertion_that_holds_passes(serve: Serve, assertion: dict[str, Any]) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"headers": [assertion]}))
    assert result.success, result.detail


@pytest.mark.parametrize(
    ("assertion", "detail"),
    [
        ({"name": "X-Version", "regex": r"^2\."}, r"header X-Version does not match '^2\\.'"),
        ({"name": "Cache-Control", "regex": "no-store", "negate": True}, "header Cache-Control matches 'no-store'"),
        ({"name": "X-Absent", "regex": "anything"}, "header X-Absent is missing"),
    ],
)
async def test_a_header_assertion_that_does_not_hold_fails_without_quoting_the_value(
    serve: Serve, assertion: dict[str, Any], detail: str
) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"headers": [assertion]}))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail == detail
    assert "1.2.3" not in result.detail
    assert value(result, names.BB_FAILED_DUE_TO_REGEX) == 1


async def test_the_http_version_is_checked_against_the_accepted_list(serve: Serve) -> None:
    base = await serve()
    assert (await probe(spec(base + "/", expect={"http_version": ["HTTP/1.1"]}))).success
    result = await probe(spec(base + "/", expect={"http_version": ["HTTP/2.0"]}))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail == "HTTP/1.1 not in ['HTTP/2.0']"


async def test_expecting_tls_on_a_plain_http_target_fails(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", expect={"ssl": True}))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail == "final response was not over TLS"
    assert (await probe(spec(base + "/", expect={"ssl": False}))).success


async def test_a_response_slower_than_max_duration_fails_as_slow(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/slow", expect={"max_duration": "10ms"}))
    assert failed(result, FailureReason.SLOW)
    assert "more than max_duration 0.01s" in result.detail
    assert (await probe(spec(base + "/slow", expect={"max_duration": "5s"}))).success


async def test_slow_is_reported_only_when_everything_else_passed(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/slow", expect={"max_duration": "10ms", "body_regex": "early"}))
    assert failed(result, FailureReason.ASSERTION)


# ---------------------------------------------------------------------------- the body limit


async def test_a_body_above_the_limit_fails_while_streaming(serve: Serve) -> None:
    base = await serve()
    started = time.monotonic()
    result = await probe(spec(base + "/huge", body_size_limit="1MiB", expect={"body_regex": "x"}))
    assert failed(result, FailureReason.BODY_LIMIT)
    assert result.detail == "body larger than body_size_limit 1048576 bytes"
    assert value(result, names.BB_HTTP_BODY_LENGTH) == 1048576
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == -1  # streamed, no Content-Length
    assert time.monotonic() - started < 4  # stopped early, did not read 256 MiB


async def test_a_body_exactly_at_the_limit_passes(serve: Serve) -> None:
    base = await serve()
    size = len("<h1>Welcome to the shop</h1>")
    assert (await probe(spec(base + "/", body_size_limit=size))).success
    assert failed(await probe(spec(base + "/", body_size_limit=size - 1)), FailureReason.BODY_LIMIT)


async def test_a_failed_status_wins_over_the_body_limit(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/status/503", body_size_limit=4))
    assert failed(result, FailureReason.HTTP_STATUS)


# ---------------------------------------------------------------------------- redirects


async def test_redirects_are_followed_and_counted(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/redirect/3", expect={"body_regex": "arrived"}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_REDIRECTS) == 3
    assert value(result, names.BB_HTTP_STATUS) == 200


async def test_too_many_redirects_fail_with_redirects(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/loop", max_redirects=3))
    assert failed(result, FailureReason.REDIRECTS)
    assert result.detail == "more than 3 redirects"
    assert value(result, names.BB_HTTP_REDIRECTS) == 4  # as blackbox: the redirect not followed counts


async def test_without_following_redirects_the_3xx_is_the_response(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/redirect/1", follow_redirects=False, expect={"status": [302]}))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_REDIRECTS) == 1  # as blackbox: received, though not followed
    assert failed(await probe(spec(base + "/redirect/1", follow_redirects=False)), FailureReason.HTTP_STATUS)


async def test_a_204_has_content_length_0_as_blackbox_says(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/status/204"))
    assert result.success, result.detail
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == 0


async def test_without_a_response_the_content_length_is_0_as_blackbox_says() -> None:
    result = await probe(spec(f"http://127.0.0.1:{free_port()}/"))
    assert failed(result, FailureReason.CONNECT)
    assert value(result, names.BB_HTTP_CONTENT_LENGTH) == 0


async def test_a_303_after_a_post_continues_as_a_get_without_the_body(serve: Serve) -> None:
    base = await serve()
    result = await probe(
        spec(
            base + "/moved",
            method="POST",
            json={"a": 1},
            expect={"json": [{"path": "$.method", "equals": "GET"}, {"path": "$.body", "equals": ""}]},
        )
    )
    assert result.success, result.detail


async def test_cookies_set_by_a_redirect_are_sent_to_the_next_hop(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/login", expect={"json": [{"path": "$.cookie", "equals": "session=abc123"}]}))
    assert result.success, result.detail


async def test_a_cookie_jar_in_the_context_is_shared_between_probes(serve: Serve) -> None:
    import aiohttp

    base = await serve()
    jar = aiohttp.CookieJar(unsafe=True)
    assert (await probe(spec(base + "/login"), context(extras={COOKIE_JAR: jar}))).success
    result = await probe(
        spec(base + "/echo", expect={"json": [{"path": "$.cookie", "equals": "session=abc123"}]}),
        context(extras={COOKIE_JAR: jar}),
    )
    assert result.success, result.detail


async def test_credentials_do_not_follow_a_redirect_to_another_host(serve: Serve) -> None:
    base = await serve()
    other = (await serve()).replace("127.0.0.1", "localhost")
    result = await probe(
        spec(
            f"{base}/to?url={other}/echo",
            basic_auth={"username": "probe", "password": SECRET},
            expect={"json": [{"path": "$.authorization", "equals": None}]},
        )
    )
    assert result.success, result.detail


async def test_a_header_holding_a_secret_does_not_follow_a_redirect_to_another_host(serve: Serve) -> None:
    base = await serve()
    other = await serve(host="127.0.0.2")
    result = await probe(
        spec(
            f"{base}/to?url={other}/echo",
            headers={"X-Api-Key": f"key {SECRET}", "X-Team": "shop"},
            expect={"json": [{"path": "$.x_api_key", "equals": None}, {"path": "$.x_team", "equals": "shop"}]},
        ),
        context(secrets=frozenset({SECRET})),
    )
    assert result.success, result.detail


async def test_a_header_holding_a_secret_follows_a_redirect_on_the_same_host(serve: Serve) -> None:
    base = await serve()
    result = await probe(
        spec(
            f"{base}/to?url=/echo",
            headers={"X-Api-Key": SECRET},
            expect={"json": [{"path": "$.x_api_key", "equals": SECRET}]},
        ),
        context(secrets=frozenset({SECRET})),
    )
    assert result.success, result.detail


async def test_a_configured_env_header_of_a_scheduled_probe_stays_with_the_first_host(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Api-Key"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", record)
    other = await serve(app, host="127.0.0.2")
    base = await serve()
    monkeypatch.setenv("KEY", SECRET)
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        "version: v1\nglobal: {interval: 1s, timeout: 900ms}\nservices:\n  shop:\n    probes:\n"
        f"      - {{name: api, http: {{url: '{base}/to?url={other}/', headers: {{X-Api-Key: '${{env:KEY}}'}}}}}}\n"
    )
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful, exporter.status.issues
    task = asyncio.create_task(exporter.start_scheduler().run())
    deadline = time.monotonic() + 10
    while not seen:
        assert time.monotonic() < deadline, "the probe never reached 127.0.0.2"
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen[0] is None


async def test_every_hop_is_checked_by_the_guard_with_the_address_dialled(serve: Serve) -> None:
    base = await serve()
    other = (await serve()).replace("127.0.0.1", "localhost")
    seen: list[tuple[str, str]] = []

    def guard(host: str, ip: str) -> None:
        seen.append((host, ip))

    result = await probe(spec(f"{base}/to?url={other}/echo"), context(guard=guard))
    assert result.success, result.detail
    assert seen == [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1")]


async def test_a_guard_refusing_a_redirect_hop_makes_the_probe_forbidden(serve: Serve) -> None:
    base = await serve()
    other = (await serve()).replace("127.0.0.1", "localhost")

    def guard(host: str, ip: str) -> None:
        if host != "127.0.0.1":
            raise ForbiddenTargetError(f"{host} ({ip}) is not allowed")

    result = await probe(spec(f"{base}/to?url={other}/echo"), context(guard=guard))
    assert failed(result, FailureReason.FORBIDDEN)
    assert result.detail == "localhost (127.0.0.1) is not allowed"
    assert value(result, names.BB_HTTP_REDIRECTS) == 1


async def test_a_redirect_to_a_non_http_scheme_is_a_protocol_failure(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(f"{base}/to?url=ftp://127.0.0.1/file"))
    assert failed(result, FailureReason.PROTOCOL)


# ---------------------------------------------------------------------------- network failures


async def test_a_refused_port_fails_with_connect() -> None:
    port = free_port()
    result = await probe(spec(f"http://127.0.0.1:{port}/"))
    assert failed(result, FailureReason.CONNECT)
    assert result.detail == f"cannot connect to target 127.0.0.1 port {port}: connection refused"
    assert value(result, names.BB_HTTP_STATUS) == 0


async def test_an_unresolvable_name_fails_with_dns() -> None:
    result = await probe(spec("http://nonexistent.invalid/"), context(lookup=hosts()))
    assert failed(result, FailureReason.DNS)
    assert "nonexistent.invalid" in result.detail


async def test_a_hanging_server_times_out_keeping_the_phases_so_far() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # never answers

    async with raw_server(hang) as port:
        result = await probe(spec(f"http://127.0.0.1:{port}/"), context(timeout=0.3))
    assert failed(result, FailureReason.TIMEOUT)
    assert result.phases["connect"] > 0
    assert result.phases["processing"] > 0.2
    assert value(result, names.BB_HTTP_DURATION, phase="processing") == result.phases["processing"]
    assert value(result, names.BB_HTTP_STATUS) == 0
    assert value(result, names.BB_IP_PROTOCOL) == 4


async def test_garbage_bytes_instead_of_http_fail_with_protocol() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x00\x01\x02 this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(garbage) as port:
        result = await probe(spec(f"http://127.0.0.1:{port}/"))
    assert failed(result, FailureReason.PROTOCOL)
    assert result.detail.startswith("invalid HTTP response")


async def test_a_truncated_body_fails_with_protocol() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a little")
        await writer.drain()
        writer.close()

    async with raw_server(truncated) as port:
        result = await probe(spec(f"http://127.0.0.1:{port}/"))
    assert failed(result, FailureReason.PROTOCOL)


async def test_a_server_that_hangs_up_without_answering_fails_with_connect() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(hang_up) as port:
        result = await probe(spec(f"http://127.0.0.1:{port}/"))
    assert failed(result, FailureReason.CONNECT)
    assert result.detail == "target closed the connection without responding"


# ---------------------------------------------------------------------------- IP families


def ipv6_available() -> bool:
    """Whether ::1 can be bound here."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
async def test_an_ipv6_target_is_probed_over_ipv6(serve: Serve) -> None:
    base = await serve(host="::1")
    result = await probe(spec(base + "/", preferred_ip_protocol="ip6"))
    assert result.success, result.detail
    assert value(result, names.BB_IP_PROTOCOL) == 6
    assert value(result, names.BB_IP_ADDR_HASH) == ip_hash("::1")


async def test_an_ipv4_literal_is_used_when_ip6_is_preferred_with_fallback(serve: Serve) -> None:
    base = await serve()
    result = await probe(spec(base + "/", preferred_ip_protocol="ip6"))
    assert result.success, result.detail
    assert value(result, names.BB_IP_PROTOCOL) == 4


async def test_without_fallback_a_name_lacking_the_preferred_family_fails_with_dns(serve: Serve) -> None:
    base = (await serve()).replace("127.0.0.1", "ip4only.test")
    only_ip4 = hosts({"ip4only.test": ["127.0.0.1"]})
    result = await probe(
        spec(base + "/", preferred_ip_protocol="ip6", ip_protocol_fallback=False), context(lookup=only_ip4)
    )
    assert failed(result, FailureReason.DNS)


# ---------------------------------------------------------------------------- TLS


@pytest.fixture
def certs(authority: Authority, tmp_path: Path) -> Callable[..., CertFiles]:
    """Issue server certificates signed by the test CA."""

    def issue(name: str = "localhost", **kwargs: Any) -> CertFiles:
        return authority.issue(tmp_path, name, **kwargs)

    return issue


async def test_a_trusted_tls_target_succeeds_with_certificate_facts(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    leaf = certs()
    base = await serve(ssl_context=leaf.server_context())
    result = await probe(spec(base + "/", tls={"ca_file": str(authority.path)}, expect={"ssl": True}))
    assert result.success, result.detail
    assert result.cert is not None and result.cert.verified
    assert result.cert.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert result.cert.subject == "CN=localhost"
    assert value(result, names.BB_HTTP_SSL) == 1
    assert value(result, names.BB_SSL_EARLIEST_EXPIRY) == result.cert.earliest_expiry
    assert value(result, names.BB_TLS_LEAF_EXPIRY) == result.cert.leaf_expiry
    assert value(result, names.BB_SSL_LAST_CHAIN_EXPIRY) is not None
    assert label_values(result, names.BB_TLS_VERSION, "version") == ["TLS 1.3"]
    assert label_values(result, names.BB_TLS_CIPHER, "cipher")[0].startswith("TLS_")
    assert result.phases["connect"] > 0 and result.phases["tls"] > 0 and result.phases["processing"] > 0


async def test_tls_min_and_max_version_are_applied(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    base = await serve(ssl_context=certs().server_context())
    tls = {"ca_file": str(authority.path), "max_version": "TLS12"}
    result = await probe(spec(base + "/", tls=tls))
    assert result.success, result.detail
    assert label_values(result, names.BB_TLS_VERSION, "version") == ["TLS 1.2"]
    assert label_values(result, names.BB_TLS_CIPHER, "cipher")[0].startswith("TLS_ECDHE_")


async def test_an_untrusted_certificate_fails_with_tls_and_still_reports_it(
    serve: Serve, certs: Callable[..., CertFiles]
) -> None:
    leaf = certs()
    base = await serve(ssl_context=leaf.server_context())
    result = await probe(spec(base + "/"))  # the system store does not know the test CA
    assert failed(result, FailureReason.TLS)
    assert "certificate verify failed" in result.detail
    assert result.cert is not None and not result.cert.verified
    assert result.cert.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert value(result, names.BB_TLS_LEAF_EXPIRY) == result.cert.leaf_expiry
    assert value(result, names.BB_SSL_LAST_CHAIN_EXPIRY) is None  # nothing verified: no bogus value


async def test_an_expired_certificate_fails_with_tls_and_reports_its_expiry(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    leaf = certs(days=-2, not_before_days=-30)
    base = await serve(ssl_context=leaf.server_context())
    result = await probe(spec(base + "/", tls={"ca_file": str(authority.path)}))
    assert failed(result, FailureReason.TLS)
    assert "expired" in result.detail
    assert result.cert is not None and result.cert.leaf_expiry < time.time()


async def test_a_certificate_for_another_host_fails_with_tls(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    leaf = certs("other", hosts=("other.example",))
    base = await serve(ssl_context=leaf.server_context())
    result = await probe(spec(base + "/", tls={"ca_file": str(authority.path)}))
    assert failed(result, FailureReason.TLS)
    assert "certificate verify failed" in result.detail
    assert result.cert is not None and result.cert.subject == "CN=other"


async def test_skipping_verification_accepts_an_untrusted_certificate(
    serve: Serve, certs: Callable[..., CertFiles]
) -> None:
    base = await serve(ssl_context=certs().server_context())
    result = await probe(spec(base + "/", tls={"insecure_skip_verify": True}))
    assert result.success, result.detail
    assert result.cert is not None and not result.cert.verified


async def test_a_certificate_close_to_expiry_fails_with_cert_expiry(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    base = await serve(ssl_context=certs(days=3).server_context())
    tls = {"ca_file": str(authority.path), "min_days_left": 14}
    result = await probe(spec(base + "/", tls=tls))
    assert failed(result, FailureReason.CERT_EXPIRY)
    assert "expires in 2.9 days" in result.detail or "expires in 3.0 days" in result.detail
    assert (await probe(spec(base + "/", tls={**tls, "min_days_left": 2}))).success


async def test_a_configured_host_header_is_the_sni_and_verified_name_as_in_blackbox(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    leaf = certs("shop", hosts=("shop.example",))
    base = await serve(ssl_context=leaf.server_context())
    tls = {"ca_file": str(authority.path)}
    result = await probe(spec(base + "/", tls=tls, headers={"Host": "shop.example:443"}))
    assert result.success, result.detail
    assert result.cert is not None and result.cert.verified and result.cert.subject == "CN=shop"
    assert failed(await probe(spec(base + "/", tls=tls)), FailureReason.TLS)  # 127.0.0.1 is not on it


async def test_the_hostname_override_is_the_sni_and_verified_name(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    leaf = certs("shop", hosts=("shop.example",))
    base = await serve(ssl_context=leaf.server_context())
    tls = {"ca_file": str(authority.path)}
    assert failed(await probe(spec(base + "/echo", tls=tls)), FailureReason.TLS)
    result = await probe(
        spec(base + "/echo", tls=tls, expect={"json": [{"path": "$.host", "equals": "shop.example"}]}),
        context(hostname="shop.example"),
    )
    assert result.success, result.detail
    assert (await probe(spec(base + "/", tls={**tls, "server_name": "shop.example"}))).success


def mtls_server_context(leaf: CertFiles, authority: Authority) -> ssl.SSLContext:
    """A server context that demands a client certificate signed by the test CA."""
    server = leaf.server_context()
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(authority.path)
    return server


async def test_a_server_requiring_a_client_certificate_accepts_ours(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    base = await serve(ssl_context=mtls_server_context(certs(), authority))
    client = certs("probe-client", client=True)
    tls = {"ca_file": str(authority.path), "cert_file": str(client.cert), "key_file": str(client.key)}
    result = await probe(spec(base + "/", tls=tls))
    assert result.success, result.detail


async def test_a_tls12_server_refusing_a_missing_client_certificate_fails_with_tls(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    server = mtls_server_context(certs(), authority)
    server.maximum_version = ssl.TLSVersion.TLSv1_2  # the refusal comes inside the handshake
    base = await serve(ssl_context=server)
    result = await probe(spec(base + "/", tls={"ca_file": str(authority.path)}))
    assert failed(result, FailureReason.TLS)


async def test_a_tls13_refusal_arriving_after_the_handshake_fails_with_tls(
    certs: Callable[..., CertFiles], authority: Authority
) -> None:
    # TLS 1.3 verifies the client after the client's handshake is done: the alert comes
    # with the response. asyncio servers drop it, so a blocking server in a thread sends it.
    server = mtls_server_context(certs(), authority)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def refuse_one() -> None:
        connection, _ = listener.accept()
        tls = server.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        with contextlib.suppress(OSError):
            tls.do_handshake()  # fails without a client certificate; the alert goes out
        with contextlib.suppress(OSError):
            tls.shutdown(socket.SHUT_WR)
            while socket.socket.recv(tls, 65536):  # drain, so closing does not reset the alert away
                pass
        tls.close()
        listener.close()

    thread = threading.Thread(target=refuse_one, daemon=True)
    thread.start()
    result = await probe(spec(f"https://127.0.0.1:{port}/", tls={"ca_file": str(authority.path)}))
    await asyncio.to_thread(thread.join, 5)
    assert failed(result, FailureReason.TLS)
    assert result.detail == "TLS handshake failed: tlsv13 alert certificate required"
    assert result.cert is not None and result.cert.verified  # the server's side was fine


async def test_a_missing_client_certificate_file_fails_with_tls(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority, tmp_path: Path
) -> None:
    base = await serve(ssl_context=certs().server_context())
    tls = {"cert_file": str(tmp_path / "absent.crt"), "key_file": str(tmp_path / "absent.key")}
    result = await probe(spec(base + "/", tls=tls))
    assert failed(result, FailureReason.TLS)
    assert "cannot load" in result.detail


async def test_plain_http_on_a_tls_url_fails_with_tls(serve: Serve) -> None:
    base = (await serve()).replace("http://", "https://")
    result = await probe(spec(base + "/"))
    assert failed(result, FailureReason.TLS)


async def test_expecting_plain_http_on_a_tls_target_fails(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    base = await serve(ssl_context=certs().server_context())
    result = await probe(spec(base + "/", tls={"ca_file": str(authority.path)}, expect={"ssl": False}))
    assert failed(result, FailureReason.ASSERTION)
    assert result.detail == "final response was over TLS"


# ---------------------------------------------------------------------------- proxy


class Proxy:
    """A tiny loopback HTTP proxy: CONNECT tunnels and absolute-URI forwarding."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0
        self.server: contextlib.AbstractAsyncContextManager[int] = raw_server(self.handle)

    async def __aenter__(self) -> Proxy:
        self.port = await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.__aexit__(*exc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode().split(" ")
        self.requests.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = target.split("://", 1)[1]
            authority, _, path = url.partition("/")
            host, _, port = authority.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(f"{method} /{path} {version}\r\n".encode() + rest)
        try:
            await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))
        finally:
            up_writer.close()

    @staticmethod
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_plain_http_request_goes_through_the_proxy(serve: Serve) -> None:
    base = await serve()
    async with Proxy() as proxy:
        result = await probe(spec(base + "/", proxy=proxy.url, expect={"body_regex": "Welcome"}))
    assert result.success, result.detail
    assert proxy.requests == [f"GET {base}/"]


async def test_a_tls_request_is_tunnelled_through_the_proxy(
    serve: Serve, certs: Callable[..., CertFiles], authority: Authority
) -> None:
    base = await serve(ssl_context=certs().server_context())
    async with Proxy() as proxy:
        result = await probe(spec(base + "/", proxy=proxy.url, tls={"ca_file": str(authority.path)}))
    assert result.success, result.detail
    assert proxy.requests == [f"CONNECT {base.removeprefix('https://')}"]
    assert result.phases["tls"] > 0
    assert result.cert is not None and result.cert.verified


async def test_an_unreachable_proxy_fails_with_connect(serve: Serve) -> None:
    base = await serve()
    port = free_port()
    result = await probe(spec(base + "/", proxy=f"http://127.0.0.1:{port}"))
    assert failed(result, FailureReason.CONNECT)
    assert result.detail == f"cannot connect to proxy 127.0.0.1 port {port}: connection refused"


async def test_the_guard_checks_the_target_behind_a_proxy(serve: Serve) -> None:
    base = await serve()

    def refuse(host: str, ip: str) -> None:
        raise ForbiddenTargetError(f"{host} is not allowed")

    async with Proxy() as proxy:
        result = await probe(spec(base + "/", proxy=proxy.url), context(guard=refuse))
    assert failed(result, FailureReason.FORBIDDEN)
    assert proxy.requests == []


# ---------------------------------------------------------------------------- direct use


async def test_called_without_the_runner_a_failure_is_still_a_value() -> None:
    result = await probe_http(spec(f"http://127.0.0.1:{free_port()}/"), context())
    assert failed(result, FailureReason.CONNECT)
    assert json.dumps(result.detail)  # one printable line
    assert "\n" not in result.detail
