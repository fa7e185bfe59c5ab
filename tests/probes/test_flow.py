"""The flow probe against a real loopback shop: login -> subscribe -> bill -> unsubscribe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from slaprobe.config import FlowSpec
from slaprobe.probes.flow import finally_reserve
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ForbiddenTargetError, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from tests.support.dnsserver import DnsServer

TOKEN = "tok-7f3a9c2e5b1d4f6a8c0e2b4d6f8a1c3e"  # what login hands out: a secret
SESSION = "sess-5d2c9e7a"
REQUEST_ID = "req-20240501-0042"
BILL = "B-2024-0815"


@dataclass
class Shop:
    """The loopback shop's state: what it saw, and switches for its failures."""

    base: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    bodies: dict[str, Any] = field(default_factory=dict)  # path -> last JSON body received
    headers: dict[str, CIMultiDict[str]] = field(default_factory=dict)  # path -> last request headers
    bill_status: int = 200
    unsubscribe_status: int = 200
    login_token: bool = True  # False: login answers without a token
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets /hang return at teardown

    def paths(self) -> list[str]:
        """The paths requested, in order."""
        return [path for _, path in self.seen]


def shop_app(shop: Shop) -> web.Application:
    """A small business service: every route checks what a real one would."""
    routes = web.RouteTableDef()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        shop.seen.append((request.method, request.path))
        shop.headers[request.path] = CIMultiDict(request.headers)
        if request.can_read_body and request.content_type == "application/json":
            shop.bodies[request.path] = await request.json()
        return await handler(request)

    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    @routes.post("/api/login")
    async def login(request: web.Request) -> web.Response:
        credentials = await request.json()
        if credentials != {"user": "demo", "password": "demo"}:
            return web.json_response({"error": "bad credentials"}, status=401)
        document: dict[str, Any] = {"user": {"id": 7, "tenant": "acme"}}
        if shop.login_token:
            document["token"] = TOKEN
        response = web.json_response(document, headers={"X-Request-Id": REQUEST_ID})
        response.set_cookie("session", SESSION)
        return response

    @routes.post("/api/subscribe")
    async def subscribe(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"subscription_id": 4711, "plan": "basic"})

    @routes.get("/api/bill")
    async def bill(request: web.Request) -> web.Response:
        if request.cookies.get("session") != SESSION:
            return web.Response(status=403, text="no session")
        if request.query.get("subscription") != "4711":
            return web.Response(status=404, text="no such subscription")
        if shop.bill_status != 200:
            return web.Response(status=shop.bill_status, text="billing is down")
        return web.Response(text=f"<p>Bill no. {BILL} for 4711: paid</p>", content_type="text/html")

    @routes.get("/api/bills/{bill}")
    async def verify(request: web.Request) -> web.Response:
        ok = request.match_info["bill"] == BILL and request.headers.get("X-Request-Id") == REQUEST_ID
        return web.json_response({"status": "paid" if ok else "unknown"})

    @routes.get("/api/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization")})

    @routes.post("/api/unsubscribe")
    async def unsubscribe(request: web.Request) -> web.Response:
        return web.json_response({"done": True}, status=shop.unsubscribe_status)

    @routes.get("/hang")
    async def hang(request: web.Request) -> web.Response:
        await shop.release.wait()
        return web.Response(text="too late")

    app = web.Application(middlewares=[record])
    app.add_routes(routes)
    return app


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    """The shop running on a loopback port."""
    state = Shop()
    runner = web.AppRunner(shop_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    state.base = f"http://{host}:{port}"
    yield state
    state.release.set()
    await runner.cleanup()


# ---------------------------------------------------------------------------- helpers


def login_step(shop: Shop, **extract: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "login",
        "http": {"url": f"{shop.base}/api/login", "method": "POST", "json": {"user": "demo", "password": "demo"}},
        "expect": {"status": [200]},
        "extract": extract or {"token": {"json": "$.token"}},
    }


def unsubscribe_step(shop: Shop) -> dict[str, Any]:
    return {
        "name": "unsubscribe",
        "http": {
            "url": f"{shop.base}/api/unsubscribe",
            "method": "POST",
            "headers": {"Authorization": "Bearer ${token}"},
        },
        "expect": {"status": [200]},
    }


def business_flow(shop: Shop) -> dict[str, Any]:
    """login -> subscribe -> bill -> verify, then unsubscribe: every kind of extraction used."""
    return {
        "steps": [
            login_step(
                shop,
                token={"json": "$.token"},
                request_id={"header": "X-Request-Id"},
                user_id={"json": "$.user.id"},
            ),
            {
                "name": "subscribe",
                "http": {
                    "url": f"{shop.base}/api/subscribe",
                    "method": "POST",
                    "headers": {"Authorization": "Bearer ${token}"},
                    "json": {"user_id": "${user_id}", "note": "for user ${user_id}"},
                },
                "expect": {"status": [200]},
                "extract": {"subscription": {"json": "$.subscription_id"}},
            },
            {
                "name": "bill",
                "http": {"url": f"{shop.base}/api/bill?subscription=${{subscription}}"},
                "expect": {"status": [200]},
                "extract": {"bill": {"regex": r"Bill no\. (B-[0-9-]+)"}},
            },
            {
                "name": "verify",
                "http": {"url": f"{shop.base}/api/bills/${{bill}}", "headers": {"X-Request-Id": "${request_id}"}},
                "expect": {"json": [{"path": "$.status", "equals": "paid"}]},
            },
        ],
        "finally": [unsubscribe_step(shop)],
    }


def flow(document: dict[str, Any]) -> FlowSpec:
    return FlowSpec.model_validate(document)


async def run(
    spec: FlowSpec, *, timeout: float = 5.0, debug: bool = False, **kwargs: Any
) -> tuple[ProbeResult, ProbeTrace]:
    trace = ProbeTrace(debug=debug)
    result = await run_probe(PROBERS["flow"], spec, ProbeContext(timeout=timeout, trace=trace, **kwargs))
    return result, trace


def outcomes(result: ProbeResult) -> list[tuple[str, FailureReason | None]]:
    return [(step.name, step.reason) for step in result.steps]


# ---------------------------------------------------------------------------- the happy path


async def test_a_business_flow_passes_json_header_and_regex_values_to_later_steps(shop: Shop) -> None:
    result, _ = await run(flow(business_flow(shop)))
    assert result.success, result.detail
    assert result.reason is None and result.detail == ""
    assert shop.paths() == ["/api/login", "/api/subscribe", "/api/bill", f"/api/bills/{BILL}", "/api/unsubscribe"]
    assert shop.headers["/api/subscribe"]["Authorization"] == f"Bearer {TOKEN}"
    assert shop.headers[f"/api/bills/{BILL}"]["X-Request-Id"] == REQUEST_ID
    assert shop.headers["/api/unsubscribe"]["Authorization"] == f"Bearer {TOKEN}"


async def test_a_json_body_string_that_is_one_variable_keeps_the_json_type_of_the_value(shop: Shop) -> None:
    result, _ = await run(flow(business_flow(shop)))
    assert result.success, result.detail
    assert shop.bodies["/api/subscribe"] == {"user_id": 7, "note": "for user 7"}


async def test_cookies_set_by_login_are_sent_by_later_steps(shop: Shop) -> None:
    result, _ = await run(flow(business_flow(shop)))
    assert result.success, result.detail
    assert f"session={SESSION}" in shop.headers["/api/bill"]["Cookie"]


async def test_cookies_are_not_shared_between_runs_of_the_flow(shop: Shop) -> None:
    bill = {"name": "bill", "http": {"url": f"{shop.base}/api/bill?subscription=4711"}, "expect": {"status": [200]}}
    assert (await run(flow({"steps": [login_step(shop), bill]})))[0].success
    result, _ = await run(flow({"steps": [bill]}))
    assert result.detail == "step bill: status 403 not in [200]", "a new run starts without the session cookie"


async def test_every_step_run_reports_its_name_duration_and_reason(shop: Shop) -> None:
    result, _ = await run(flow(business_flow(shop)))
    assert outcomes(result) == [
        ("login", None),
        ("subscribe", None),
        ("bill", None),
        ("verify", None),
        ("unsubscribe", None),
    ]
    assert all(0 < step.duration < result.duration for step in result.steps)
    assert sum(step.duration for step in result.steps) <= result.duration
    assert result.phases["connect"] > 0 and result.phases["processing"] > 0
    assert result.samples == ()


async def test_tcp_and_dns_steps_use_variables_too(shop: Shop) -> None:
    received: list[str] = []

    async def line_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"READY s1\n")
        line = (await reader.readline()).decode().strip()
        received.append(line)
        writer.write(b"OK\n" if line == f"AUTH {TOKEN} s1 $HOME" else b"DENIED\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(line_service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, DnsServer() as dns_server:
        dns_server.answer("acme.shop.test", "A", "127.0.0.1")
        spec = flow(
            {
                "steps": [
                    login_step(shop, token={"json": "$.token"}, tenant={"json": "$.user.tenant"}),
                    {
                        "name": "line",
                        "tcp": {
                            "address": f"127.0.0.1:{port}",
                            "dialogue": [
                                {"expect": r"^READY (\w+)"},
                                {"send": "AUTH ${token} ${1} $$HOME"},
                                {"expect": "^OK"},
                            ],
                        },
                    },
                    {
                        "name": "resolve",
                        "dns": {"query": "${tenant}.shop.test", "server": dns_server.address},
                        "expect": {"min_answers": 1},
                    },
                ]
            }
        )
        result, _ = await run(spec)
        assert result.success, result.detail
        assert received == [f"AUTH {TOKEN} s1 $HOME"]
        assert [query.name for query in dns_server.queries] == ["acme.shop.test."]


# ---------------------------------------------------------------------------- failures


async def test_the_flow_stops_at_the_first_failing_step_and_names_it(shop: Shop) -> None:
    shop.bill_status = 500
    result, _ = await run(flow(business_flow(shop)))
    assert not result.success
    assert result.reason is FailureReason.HTTP_STATUS
    assert result.detail == "step bill: status 500 not in [200]"
    assert outcomes(result) == [
        ("login", None),
        ("subscribe", None),
        ("bill", FailureReason.HTTP_STATUS),
        ("unsubscribe", None),
    ]
    assert result.steps[2].detail == "status 500 not in [200]"


async def test_finally_steps_run_after_a_failed_step(shop: Shop) -> None:
    shop.bill_status = 503
    result, _ = await run(flow(business_flow(shop)))
    assert not result.success
    assert shop.paths()[-1] == "/api/unsubscribe"
    assert f"/api/bills/{BILL}" not in shop.paths()
    assert shop.headers["/api/unsubscribe"]["Authorization"] == f"Bearer {TOKEN}"


async def test_finally_steps_run_after_the_flow_timeout_and_the_timeout_is_reported(shop: Shop) -> None:
    spec = flow(
        {
            "steps": [login_step(shop), {"name": "stuck", "http": {"url": f"{shop.base}/hang"}}],
            "finally": [unsubscribe_step(shop)],
        }
    )
    result, _ = await run(spec, timeout=1.0)
    assert shop.paths() == ["/api/login", "/hang", "/api/unsubscribe"]
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail.startswith("step stuck: no answer within ")
    assert result.detail.endswith("(what was left of the flow's 1s timeout)")
    assert outcomes(result) == [("login", None), ("stuck", FailureReason.TIMEOUT), ("unsubscribe", None)]
    assert result.duration < 1.0
    # The rule: one finally step of three reserves a third of the flow's time.
    assert finally_reserve(spec, 1.0) == pytest.approx(1 / 3)
    assert result.steps[1].duration == pytest.approx(1.0 - 1 / 3 - result.steps[0].duration, abs=0.1)


async def test_finally_steps_run_when_the_caller_cancels_the_flow(shop: Shop) -> None:
    spec = flow(
        {
            "steps": [login_step(shop), {"name": "stuck", "http": {"url": f"{shop.base}/hang"}}],
            "finally": [unsubscribe_step(shop)],
        }
    )
    task = asyncio.ensure_future(PROBERS["flow"](spec, ProbeContext(timeout=30.0)))
    async with asyncio.timeout(5):
        while "/hang" not in shop.paths():
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert shop.paths()[-1] == "/api/unsubscribe"


async def test_a_step_timeout_limits_that_step_alone(shop: Shop) -> None:
    spec = flow(
        {
            "steps": [login_step(shop), {"name": "stuck", "timeout": "200ms", "http": {"url": f"{shop.base}/hang"}}],
            "finally": [unsubscribe_step(shop)],
        }
    )
    result, _ = await run(spec, timeout=10.0)
    assert result.reason is FailureReason.TIMEOUT
    assert result.detail == "step stuck: no answer within 0.2s"
    assert result.steps[1].duration == pytest.approx(0.2, abs=0.1)
    assert shop.paths()[-1] == "/api/unsubscribe"


async def test_a_value_missing_from_a_response_fails_its_step_with_reason_extract(shop: Shop) -> None:
    shop.login_token = False
    result, _ = await run(flow(business_flow(shop)))
    assert result.reason is FailureReason.EXTRACT
    assert result.detail == "step login: cannot extract token: nothing at $.token in the body"
    assert outcomes(result)[0] == ("login", FailureReason.EXTRACT)
    assert shop.paths() == ["/api/login"], "unsubscribe needs the token, so there is nothing to clean up"


async def test_a_missing_header_or_regex_match_fails_with_reason_extract_naming_the_variable(shop: Shop) -> None:
    spec = flow({"steps": [login_step(shop, trace={"header": "X-Trace-Id"})]})
    result, _ = await run(spec)
    assert (result.reason, result.detail) == (
        FailureReason.EXTRACT,
        "step login: cannot extract trace: no X-Trace-Id header in the response",
    )
    spec = flow({"steps": [login_step(shop, order={"regex": r"order=(\d+)"})]})
    result, _ = await run(spec)
    assert result.detail == "step login: cannot extract order: the body does not match 'order=(\\\\d+)'"


async def test_a_cleanup_step_runs_unless_it_needs_a_variable_that_was_never_extracted(shop: Shop) -> None:
    spec = flow(
        {
            "steps": [
                {**login_step(shop), "http": {**login_step(shop)["http"], "json": {"user": "demo", "password": "x"}}}
            ],
            "finally": [
                unsubscribe_step(shop),
                {"name": "home", "http": {"url": f"{shop.base}/api/echo"}},
            ],
        }
    )
    result, trace = await run(spec, debug=True)
    assert result.detail == "step login: status 401 not in [200]"
    assert outcomes(result) == [("login", FailureReason.HTTP_STATUS), ("home", None)]
    assert shop.paths() == ["/api/login", "/api/echo"]
    assert any("step unsubscribe: skipped, ${token} was never extracted" in line for line in trace.lines)


async def test_a_failing_cleanup_fails_the_flow_with_its_own_reason(shop: Shop) -> None:
    shop.unsubscribe_status = 500
    result, _ = await run(flow(business_flow(shop)))
    assert not result.success
    assert (result.reason, result.detail) == (FailureReason.HTTP_STATUS, "step unsubscribe: status 500 not in [200]")


async def test_the_guard_is_asked_for_every_step(shop: Shop) -> None:
    asked: list[str] = []

    def guard(host: str, ip: str) -> None:
        asked.append(host)
        if len(asked) > 1:
            raise ForbiddenTargetError(f"{host} is not allowed")

    result, _ = await run(flow(business_flow(shop)), guard=guard)
    assert result.reason is FailureReason.FORBIDDEN
    assert result.detail == "step subscribe: 127.0.0.1 is not allowed"


async def test_a_variable_without_a_value_at_run_time_fails_the_step_that_uses_it(shop: Shop) -> None:
    # Config loading rejects this flow (undefined_variables); built directly, it must still fail cleanly.
    spec = flow({"steps": [{"name": "echo", "http": {"url": f"{shop.base}/api/echo?t=${{ticket}}"}}]})
    result, _ = await run(spec)
    assert (result.reason, result.detail) == (
        FailureReason.EXTRACT,
        "step echo: ${ticket} has no value (used in http.url)",
    )
    assert shop.paths() == []


# ---------------------------------------------------------------------------- secrets


async def test_extracted_secrets_never_appear_in_details_or_log_lines(shop: Shop) -> None:
    spec = flow(
        {
            "steps": [
                login_step(shop),
                {
                    "name": "echo",
                    "http": {
                        "url": f"{shop.base}/api/echo/${{token}}/x",
                        "headers": {"Authorization": "Bearer ${token}"},
                    },
                    "expect": {"status": [404]},
                },
                {
                    "name": "check",
                    "http": {"url": f"{shop.base}/api/echo", "headers": {"Authorization": "Bearer ${token}"}},
                    "expect": {"json": [{"path": "$.authorization", "equals": "Bearer other"}]},
                },
            ],
            "finally": [unsubscribe_step(shop)],
        }
    )
    result, trace = await run(spec, debug=True)
    assert shop.headers["/api/echo"]["Authorization"] == f"Bearer {TOKEN}"  # the step did send it
    assert result.reason is FailureReason.ASSERTION
    assert result.detail == 'step check: $.authorization is "Bearer <secret>", not "Bearer other"'
    text = "\n".join([result.detail, *(step.detail for step in result.steps), *trace.lines])
    assert TOKEN not in text
    assert TOKEN[:12] not in text
    assert f"step login: extracted token ({len(TOKEN)} chars) from $.token" in text
    assert "/api/echo/<secret>/x" in text  # the URL is logged, the token in it is not


async def test_debug_lines_say_what_each_step_did_in_flow_time(shop: Shop) -> None:
    _, trace = await run(flow(business_flow(shop)), debug=True)
    assert trace.lines[0].startswith("+0.0")
    assert any(
        line.endswith("step bill: extracted bill (11 chars) from regex 'Bill no\\\\. (B-[0-9-]+)'")
        for line in trace.lines
    )
    assert any("step subscribe: POST " in line for line in trace.lines)
    stamps = [float(line.split("s ", 1)[0][1:]) for line in trace.lines]
    assert stamps == sorted(stamps)


async def test_a_flow_without_finally_steps_reports_the_step_that_timed_out(shop: Shop) -> None:
    spec = flow({"steps": [login_step(shop), {"name": "stuck", "http": {"url": f"{shop.base}/hang"}}]})
    result, _ = await run(spec, timeout=0.5)
    assert result.reason is FailureReason.TIMEOUT
    assert outcomes(result) == [("login", None), ("stuck", FailureReason.TIMEOUT)]
    assert result.detail.startswith("step stuck: no answer within 0.4")
