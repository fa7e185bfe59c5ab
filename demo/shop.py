"""The sample service of ``slaprobe demo``: a small local shop that misbehaves on a schedule.

Why do the demo's probes fail? On purpose, on a fixed schedule, so that every alert,
escalation level and dashboard panel has something to show. Everything listens on
127.0.0.1 only (the demo needs no network):

    http://127.0.0.1:18080     the shop (HTTP)
    https://127.0.0.1:18443    the same shop over HTTPS (own CA, see below)
    127.0.0.1:18025 (tcp)      an SMTP-like line service: "220 demo ready", PING -> PONG
    127.0.0.1:18053 (udp)      a DNS responder: shop.demo. A 127.0.0.1, other names NXDOMAIN

The schedule repeats every 5 minutes, aligned to the wall clock (cycles start at
minutes :00, :05, :10, ... of every hour):

    cycle second   wall clock (each hour)       what happens
    0-60           :00:00-:01:00, :05:00-...    all normal
    60-90          :01:00-:01:30, :06:00-...    GET / answers 503: an error burst
    90-150         :01:30-:02:30, :06:30-...    all normal
    150-210        :02:30-:03:30, :07:30-...    GET /api/catalog takes 0.6 s rising to 1.2 s
    210-300        :03:30-:05:00, :08:30-...    all normal

Independent of the clock:

- ``GET /healthz`` always answers 200.
- The HTTPS certificate expires 10 days after the service started, so a probe asserting
  ``min_days_left: 14`` always fails: "certificate near expiry". The CA that signed it
  is written to ``<workdir>/ca.pem`` (``/tmp/slaprobe-demo/ca.pem`` for ``slaprobe demo``)
  and a new CA and certificate are made at every start.
- Of the bill checks (``GET /api/bill``) every 5th fails, alternately with a 500 and
  with a 200 whose body says ``{"status": "overdue"}``: the flaky step of the billing
  flow, which therefore fails about 1 run in 5 at its ``bill`` step.

``GET /schedule`` shows the current phase and when it ends; every response carries an
``X-Demo-Phase`` header. The business flow (credentials demo/demo):
``POST /api/login`` ``{"user", "password"}`` -> ``{"token"}`` and a ``session`` cookie;
``POST /api/subscribe`` (Bearer token or cookie) -> ``{"subscription_id"}``;
``GET /api/bill?subscription=ID`` -> ``{"status": "paid", ...}``;
``POST /api/unsubscribe`` (optional ``{"subscription_id"}``; without it, all of the
user's subscriptions). ``POST /hooks/<receiver>`` stores an Alertmanager webhook
notification and ``GET /hooks`` lists the last 200, so the demo's receivers can point
here. Requests are logged to ``<workdir>/access.log`` in nginx ``combined`` format
followed by ``$request_time``. State lives in memory and is lost at exit.

The support desk writes ``<workdir>/tickets.jsonl`` (one JSON ticket event per line,
started afresh at every start), five tickets per 5-minute cycle on the same wall-clock
schedule (``TICKET_SCRIPT``). Opened events are backdated, so day-long deadlines pass
within the cycle: ticket B (operations) passes its 12 h first-response deadline ~30 s
after it is opened, while still open; ticket C (service) arrives 25 h old, past both
deadlines; A, D and E are handled in time (E, with no first response, is resolved
directly); A's first response is logged twice (a duplicate). The feedback desk: A, C, D,
E and F are rated (stars, 0-10, a thumb), A is confirmed, D is reopened and resolved again,
F and G arrive as raw text that the ``classify:`` rules route, A, B, D and F come from the
same customers every cycle (repeats), and every 2 hours 30 tickets about the app being
down arrive at once: a complaint spike (``TICKET_FIELDS``, ``SPIKE_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEMO_WORKDIR = Path("/tmp/slaprobe-demo")
DEMO_HTTP_PORT = 18080
DEMO_HTTPS_PORT = 18443
DEMO_TCP_PORT = 18025
DEMO_DNS_PORT = 18053
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_DNS_NAME = "shop.demo."

CYCLE_SECONDS = 300.0
ERROR_BURST = (60.0, 90.0)
SLOW_WINDOW = (150.0, 210.0)
SLOW_DELAY = (0.6, 1.2)
BILL_FAILURE_EVERY = 5
CERT_DAYS_LEFT = 10.0

_HOST = "127.0.0.1"
_KEEP = 10_000  # sessions and subscriptions kept in memory, at most
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Phase = Literal["normal", "errors", "slow"]
BillOutcome = Literal["paid", "error", "overdue"]
Sleep = Callable[[float], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------- the schedule


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the sample service does at one instant of the schedule."""

    phase: Phase
    home_status: int
    catalog_delay: float
    cycle_second: float
    phase_ends_in: float


def behaviour_at(t: float) -> Behaviour:
    """The scheduled behaviour at Unix time ``t`` (pure: the whole schedule is here)."""
    second = t % CYCLE_SECONDS
    phase: Phase = "normal"
    status, delay = 200, 0.0
    if ERROR_BURST[0] <= second < ERROR_BURST[1]:
        phase, status = "errors", 503
    elif SLOW_WINDOW[0] <= second < SLOW_WINDOW[1]:
        progress = (second - SLOW_WINDOW[0]) / (SLOW_WINDOW[1] - SLOW_WINDOW[0])
        phase, delay = "slow", SLOW_DELAY[0] + (SLOW_DELAY[1] - SLOW_DELAY[0]) * progress
    boundaries = (*ERROR_BURST, *SLOW_WINDOW, CYCLE_SECONDS)
    ends = min(b for b in boundaries if b > second)
    return Behaviour(phase, status, delay, second, ends - second)


# ---------------------------------------------------------------------------- the ticket desk

TICKET_WRITE_INTERVAL = 1.0  # seconds between appends to tickets.jsonl
_HOUR = 3600.0

# (cycle second written, ticket, event, backdated by (s), category, urgency, channel, service)
TICKET_SCRIPT: tuple[tuple[float, str, str, float, str, str, str, str], ...] = (
    (10, "A", "opened", 1 * _HOUR, "technical", "urgent", "phone", "shop"),
    (20, "B", "opened", 12 * _HOUR - 30, "operations", "general", "email", "shop"),
    (30, "C", "opened", 25 * _HOUR, "service", "general", "web", "shop"),
    (40, "A", "first_response", 0, "", "", "", ""),
    (45, "A", "first_response", 0, "", "", "", ""),
    (60, "D", "opened", 0.5 * _HOUR, "technical", "general", "app", "shop"),
    (70, "E", "opened", 2 * _HOUR, "account", "urgent", "phone", "billing"),
    (90, "D", "first_response", 0, "", "", "", ""),
    (100, "A", "resolved", 0, "", "", "", ""),
    (120, "B", "first_response", 0, "", "", "", ""),
    (150, "C", "resolved", 0, "", "", "", ""),
    (200, "B", "resolved", 0, "", "", "", ""),
    (250, "E", "resolved", 0, "", "", "", ""),
    (280, "D", "resolved", 0, "", "", "", ""),
    # The feedback desk: raw-text tickets the classify: rules route, ratings, a confirmation, a reopen.
    (80, "F", "opened", 0.5 * _HOUR, "", "", "sms", ""),  # "charged twice": category billing, urgent, service billing
    (85, "G", "opened", 0.5 * _HOUR, "", "", "social", ""),  # "where is my parcel": operations
    (105, "A", "rated", 0, "", "", "", ""),
    (110, "A", "closed", 0, "", "", "", ""),  # confirmed by the customer
    (160, "C", "rated", 0, "", "", "", ""),
    (180, "F", "resolved", 0, "", "", "", ""),
    (185, "F", "rated", 0, "", "", "", ""),
    (230, "G", "first_response", 0, "", "", "", ""),
    (240, "G", "resolved", 0, "", "", "", ""),
    (255, "E", "rated", 0, "", "", "", ""),
    (285, "D", "reopened", 0, "", "", "", ""),  # the customer says it is not fixed
    (295, "D", "resolved", 0, "", "", "", ""),
    (298, "D", "rated", 0, "", "", "", ""),
)
# Fields of some events beside those of TICKET_SCRIPT. A ticket's customer is the same every
# cycle, so each opened ticket of A, B, D, F is a repeat of the cycle before (repeat_window 7d).
TICKET_FIELDS: dict[tuple[str, str], dict[str, object]] = {
    ("A", "opened"): {"customer": "demo-customer-1"},
    ("B", "opened"): {"customer": "demo-customer-2"},
    ("D", "opened"): {"customer": "demo-customer-3"},
    ("F", "opened"): {"customer": "demo-customer-4", "text": "I was charged twice for order 5512"},
    ("G", "opened"): {"text": "where is my parcel?"},
    ("A", "rated"): {"rating": 5, "scale": 5},
    ("C", "rated"): {"rating": 3, "scale": 10},  # a detractor
    ("E", "rated"): {"rating": "up"},
    ("F", "rated"): {"rating": 9, "scale": 10},  # a promoter
    ("D", "rated"): {"rating": 2, "scale": 5},
}
# The complaint spike: every SPIKE_EVERY cycles (2 h), at second SPIKE_SECOND of the cycle,
# SPIKE_TICKETS raw-text tickets about the shop's app being down arrive at once (routed to
# category outage by the rules) and are resolved at SPIKE_RESOLVED; no other category gets
# that many in an hour, so SLAFeedbackComplaintSpike fires for outage for about an hour.
SPIKE_EVERY, SPIKE_CYCLE, SPIKE_SECOND, SPIKE_RESOLVED, SPIKE_TICKETS = 24, 1, 130, 270, 30
SPIKE_TEXT = "the app is down, the payment page does not load"


def ticket_events_between(start: float, end: float) -> list[dict[str, object]]:
    """The ticket events the desk writes at Unix times in ``(start, end]``, in order (pure)."""
    events: list[tuple[float, dict[str, object]]] = []
    first_cycle = int(start // CYCLE_SECONDS)
    for cycle in range(first_cycle, int(end // CYCLE_SECONDS) + 1):
        base = cycle * CYCLE_SECONDS
        for second, ticket, kind, backdated, category, urgency, channel, service in TICKET_SCRIPT:
            written = base + second
            if not start < written <= end:
                continue
            when = dt.datetime.fromtimestamp(written - backdated, dt.UTC)
            event: dict[str, object] = {
                "time": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "id": f"DEMO-{cycle}-{ticket}",
                "event": kind,
            }
            if kind == "opened":
                labels = {"category": category, "urgency": urgency, "channel": channel, "service": service}
                event.update({k: v for k, v in labels.items() if v})  # raw text: the rules fill in
            event.update(TICKET_FIELDS.get((ticket, kind), {}))
            events.append((written, event))
        if cycle % SPIKE_EVERY == SPIKE_CYCLE:
            for second, kind in ((SPIKE_SECOND, "opened"), (SPIKE_RESOLVED, "resolved")):
                written = base + second
                if not start < written <= end:
                    continue
                stamp = dt.datetime.fromtimestamp(written, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                for n in range(SPIKE_TICKETS):
                    event = {"time": stamp, "id": f"DEMO-{cycle}-S{n}", "event": kind}
                    if kind == "opened":
                        event.update(channel="app", text=SPIKE_TEXT)
                    events.append((written, event))
    return [event for _, event in sorted(events, key=lambda e: e[0])]


def bill_outcome(check: int) -> BillOutcome:
    """Outcome of the ``check``-th bill check (from 1): every 5th fails, 500 and overdue in turn."""
    if check % BILL_FAILURE_EVERY:
        return "paid"
    return "error" if (check // BILL_FAILURE_EVERY) % 2 else "overdue"


# ---------------------------------------------------------------------------- state


@dataclass
class DemoState:
    """In-memory state of the sample shop: sessions, subscriptions, bill checks, notifications."""

    sessions: OrderedDict[str, str] = field(default_factory=OrderedDict)
    subscriptions: OrderedDict[str, str] = field(default_factory=OrderedDict)
    bill_checks: int = 0
    notifications: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def remember(self, table: OrderedDict[str, str], key: str, user: str) -> None:
        """Store ``key -> user``, forgetting the oldest entries past the limit."""
        table[key] = user
        while len(table) > _KEEP:
            table.popitem(last=False)


# ---------------------------------------------------------------------------- HTTP(S)


class _Shop:
    """The aiohttp handlers; ``clock`` drives the schedule, ``sleep`` the slow responses."""

    def __init__(
        self,
        state: DemoState,
        clock: Callable[[], float],
        sleep: Sleep,
        access_log: IO[str] | None,
        log_request_time: bool,
    ) -> None:
        self.state = state
        self.clock = clock
        self.sleep = sleep
        self.access_log = access_log
        self.log_request_time = log_request_time

    def app(self) -> web.Application:
        """The shop's routes."""
        app = web.Application(middlewares=[self.annotate])
        app.router.add_get("/", self.home)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/schedule", self.schedule)
        app.router.add_get("/runbook/{service}", self.runbook)
        app.router.add_get("/api/catalog", self.catalog)
        app.router.add_post("/api/login", self.login)
        app.router.add_post("/api/subscribe", self.subscribe)
        app.router.add_get("/api/bill", self.bill)
        app.router.add_post("/api/unsubscribe", self.unsubscribe)
        app.router.add_post("/hooks/{receiver}", self.hook)
        app.router.add_get("/hooks", self.hooks)
        return app

    @web.middleware
    async def annotate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Add ``X-Demo-Phase`` to every response and write the access log line."""
        started = time.perf_counter()
        phase = behaviour_at(self.clock()).phase
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Demo-Phase"] = phase
            self._log(request, exc, time.perf_counter() - started)
            raise
        response.headers["X-Demo-Phase"] = phase
        self._log(request, response, time.perf_counter() - started)
        return response

    def _log(self, request: web.Request, response: web.StreamResponse, elapsed: float) -> None:
        if self.access_log is None:
            return
        when = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        stamp = f"{when:%d}/{_MONTHS[when.month - 1]}/{when:%Y:%H:%M:%S} +0000"
        body = response.body if isinstance(response, web.Response) else None
        size = len(body) if isinstance(body, bytes) else 0
        line = (
            f"{request.remote or '-'} - - [{stamp}] "
            f'"{_quote(f"{request.method} {request.path_qs} HTTP/{request.version.major}.{request.version.minor}")}" '
            f'{response.status} {size} "{_quote(request.headers.get("Referer", "-"))}" '
            f'"{_quote(request.headers.get("User-Agent", "-"))}"'
        )
        if self.log_request_time:
            line += f" {elapsed:.3f}"
        self.access_log.write(line + "\n")

    async def home(self, request: web.Request) -> web.Response:
        """GET /: the front page, or 503 during the error burst."""
        behaviour = behaviour_at(self.clock())
        if behaviour.home_status != 200:
            return web.Response(
                status=behaviour.home_status,
                text=f"Service Unavailable: scheduled error burst, over in {behaviour.phase_ends_in:.0f}s\n",
            )
        return web.Response(
            content_type="text/html",
            text="<!doctype html><title>demo shop</title><h1>Welcome to the demo shop</h1>"
            '<p><a href="/api/catalog">catalog</a> &middot; <a href="/schedule">schedule</a></p>\n',
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: always 200."""
        return web.Response(text="ok\n")

    async def schedule(self, request: web.Request) -> web.Response:
        """GET /schedule: the current phase, when it ends, and the schedule's constants."""
        now = self.clock()
        behaviour = behaviour_at(now)
        return web.json_response(
            {
                "now": now,
                "phase": behaviour.phase,
                "cycle_seconds": CYCLE_SECONDS,
                "cycle_second": round(behaviour.cycle_second, 3),
                "phase_ends_in_seconds": round(behaviour.phase_ends_in, 3),
                "home_status": behaviour.home_status,
                "catalog_delay_seconds": round(behaviour.catalog_delay, 3),
                "error_burst": list(ERROR_BURST),
                "slow_window": list(SLOW_WINDOW),
                "bill_failure_every": BILL_FAILURE_EVERY,
                "bill_checks": self.state.bill_checks,
            }
        )

    async def runbook(self, request: web.Request) -> web.Response:
        """GET /runbook/<service>: this module's explanation of the schedule."""
        service = request.match_info["service"]
        return web.Response(text=f"Runbook for the demo service {service!r}.\n\n{__doc__}")

    async def catalog(self, request: web.Request) -> web.Response:
        """GET /api/catalog: three items, late during the slow window."""
        delay = behaviour_at(self.clock()).catalog_delay
        if delay > 0:
            await self.sleep(delay)
        items = [
            {"sku": "tea-01", "name": "Green tea", "price": "4.20"},
            {"sku": "mug-02", "name": "Mug", "price": "9.90"},
            {"sku": "pot-03", "name": "Tea pot", "price": "24.00"},
        ]
        return web.json_response({"items": items}, headers={"X-Demo-Delay": f"{delay:.3f}"})

    async def login(self, request: web.Request) -> web.Response:
        """POST /api/login: a token (and session cookie) for demo/demo, else 401."""
        body = await _json_object(request)
        if body.get("user") != DEMO_USER or body.get("password") != DEMO_PASSWORD:
            return web.json_response({"error": "invalid credentials"}, status=401)
        token = secrets.token_urlsafe(24)
        self.state.remember(self.state.sessions, token, DEMO_USER)
        response = web.json_response({"token": token, "user": DEMO_USER})
        response.set_cookie("session", token, httponly=True, samesite="Lax", path="/")
        return response

    async def subscribe(self, request: web.Request) -> web.Response:
        """POST /api/subscribe: a new subscription of the logged-in user."""
        user = self._user(request)
        body = await _json_object(request, required=False)
        subscription = "sub-" + secrets.token_hex(6)
        self.state.remember(self.state.subscriptions, subscription, user)
        return web.json_response({"subscription_id": subscription, "plan": str(body.get("plan", "basic"))})

    async def bill(self, request: web.Request) -> web.Response:
        """GET /api/bill?subscription=ID: paid, except every 5th check (500 or overdue)."""
        user = self._user(request)
        subscription = request.query.get("subscription", "")
        if self.state.subscriptions.get(subscription) != user:
            return web.json_response({"error": f"no subscription {subscription!r}"}, status=404)
        self.state.bill_checks += 1
        outcome = bill_outcome(self.state.bill_checks)
        if outcome == "error":
            return web.json_response({"error": "billing backend unavailable"}, status=500)
        return web.json_response(
            {
                "subscription_id": subscription,
                "status": outcome,
                "amount": "9.90",
                "currency": "EUR",
            }
        )

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """POST /api/unsubscribe: end one (``subscription_id``) or all of the user's subscriptions."""
        user = self._user(request)
        body = await _json_object(request, required=False)
        wanted = body.get("subscription_id")
        gone = [s for s, owner in self.state.subscriptions.items() if owner == user and wanted in (None, s)]
        for subscription in gone:
            del self.state.subscriptions[subscription]
        return web.json_response({"unsubscribed": gone})

    async def hook(self, request: web.Request) -> web.Response:
        """POST /hooks/<receiver>: store one webhook notification."""
        body = await _json_object(request)
        self.state.notifications.append(
            {
                "receiver": request.match_info["receiver"],
                "received_at": self.clock(),
                "payload": body,
            }
        )
        return web.json_response({"stored": True})

    async def hooks(self, request: web.Request) -> web.Response:
        """GET /hooks: the notifications received, oldest first."""
        return web.json_response(list(self.state.notifications))

    def _user(self, request: web.Request) -> str:
        """The user of the request's Bearer token or session cookie; 401 without one."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get("session", "")
        user = self.state.sessions.get(token)
        if user is None:
            raise web.HTTPUnauthorized(
                text='{"error": "log in first: Bearer token or session cookie"}',
                content_type="application/json",
            )
        return user


async def _json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 when it is not one (an empty body is ``{}`` if optional)."""
    raw = await request.read()
    if not raw.strip() and not required:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json")
    return body


def _quote(text: str) -> str:
    """Escape a field as nginx does, so ``[^"]*`` stays safe inside quotes."""
    return "".join(c if " " <= c < "\x7f" and c not in '"\\' else f"\\x{ord(c):02X}" for c in text)


# ---------------------------------------------------------------------------- TCP and DNS


class _LineService:
    """An SMTP-like line service: greets, answers PING with PONG, HELO/EHLO, QUIT."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Talk to one client until it quits, idles for 60 s or goes away."""
        self.writers.add(writer)
        try:
            writer.write(b"220 demo ready\r\n")
            await writer.drain()
            while True:
                async with asyncio.timeout(60):
                    line = await reader.readline()
                if not line:
                    break
                command = line.strip().upper()
                if command == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                if command == b"PING":
                    writer.write(b"PONG\r\n")
                elif command.split(b" ")[0] in (b"HELO", b"EHLO"):
                    writer.write(b"250 demo\r\n")
                else:
                    writer.write(b"500 unknown command\r\n")
                await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # idle, gone, or a line over the reader's limit: just hang up
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _DnsResponder(asyncio.DatagramProtocol):
    """Answers ``shop.demo. A`` with 127.0.0.1; other names NXDOMAIN, garbage is dropped."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.name = dns.name.from_text(DEMO_DNS_NAME)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to answer on."""
        # Not isinstance: CPython's selector datagram transport is no DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Answer one query."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            question = query.question[0]
            if question.name != self.name:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(self.name, 30, "IN", "A", _HOST))
        if self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


# ---------------------------------------------------------------------------- certificates


@dataclass(frozen=True, slots=True)
class _Certificates:
    ca: Path
    cert: Path
    key: Path
    not_after: dt.datetime


def _make_certificates(workdir: Path, now: dt.datetime) -> _Certificates:
    """A fresh CA (``ca.pem``) and a leaf for localhost/127.0.0.1/::1 that expires in 10 days."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slaprobe demo CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + dt.timedelta(days=CERT_DAYS_LEFT)
    sans = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = _Certificates(workdir / "ca.pem", workdir / "demo.crt", workdir / "demo.key", not_after)
    pkcs8 = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_atomically(files.key, pkcs8, 0o600)
    _write_atomically(files.cert, leaf.public_bytes(pem) + ca_cert.public_bytes(pem), 0o644)
    _write_atomically(files.ca, ca_cert.public_bytes(pem), 0o644)
    return files


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` in one step, so a probe never reads half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- running it


@dataclass
class SampleService:
    """A running sample service: its bound loopback ports, CA file, state, and ``close()``."""

    http_port: int
    https_port: int
    tcp_port: int
    dns_port: int
    ca_file: Path
    cert_not_after: dt.datetime
    access_log: Path
    state: DemoState
    ticket_log: Path | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    @property
    def http_url(self) -> str:
        """Base URL of the shop over HTTP, without a trailing slash."""
        return f"http://{_HOST}:{self.http_port}"

    @property
    def https_url(self) -> str:
        """Base URL of the shop over HTTPS (trust ``ca_file``), without a trailing slash."""
        return f"https://{_HOST}:{self.https_port}"

    @property
    def tcp_address(self) -> str:
        """host:port of the line service."""
        return f"{_HOST}:{self.tcp_port}"

    @property
    def dns_server(self) -> str:
        """host:port of the UDP DNS responder."""
        return f"{_HOST}:{self.dns_port}"

    def endpoints(self) -> dict[str, str]:
        """What to print for a human: name -> URL, address or file."""
        return {
            "http": self.http_url + "/",
            "https": self.https_url + "/",
            "schedule": self.http_url + "/schedule",
            "notifications": self.http_url + "/hooks",
            "tcp": self.tcp_address,
            "dns": f"{self.dns_server} (udp, {DEMO_DNS_NAME})",
            "ca_file": str(self.ca_file),
            "access_log": str(self.access_log),
            **({"ticket_log": str(self.ticket_log)} if self.ticket_log else {}),
        }

    async def close(self) -> None:
        """Stop every listener and close the access log; safe to call twice."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            await close()

    async def __aenter__(self) -> SampleService:
        """The service itself; leaving the block closes it."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the service."""
        await self.close()


async def _write_tickets(path: Path, clock: Callable[[], float]) -> None:
    """Append the scripted ticket events to ``path`` as their time comes (the file starts empty)."""
    with path.open("w", encoding="utf-8", buffering=1) as out:
        last = clock()
        while True:
            await asyncio.sleep(TICKET_WRITE_INTERVAL)
            now = clock()
            for event in ticket_events_between(last, now):
                out.write(json.dumps(event) + "\n")
            last = max(last, now)


def _listen(port: int, kind: socket.SocketKind, what: str) -> socket.socket:
    """A socket bound to 127.0.0.1:``port``; the error says which listener could not bind."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_HOST, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"sample service: cannot listen on {_HOST}:{port} for {what}: {exc.strerror}") from exc
    return sock


async def start_sample_service(
    workdir: Path,
    *,
    http_port: int = 0,
    https_port: int = 0,
    tcp_port: int = 0,
    dns_port: int = 0,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    log_request_time: bool = True,
    write_tickets: bool = True,
) -> SampleService:
    """Start the shop (HTTP, HTTPS), line service and DNS responder on 127.0.0.1 (port 0: any free)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    socks: list[socket.socket] = []
    try:
        for port, kind, what in (
            (http_port, socket.SOCK_STREAM, "http"),
            (https_port, socket.SOCK_STREAM, "https"),
            (tcp_port, socket.SOCK_STREAM, "tcp"),
            (dns_port, socket.SOCK_DGRAM, "dns"),
        ):
            socks.append(_listen(port, kind, what))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    http_sock, https_sock, tcp_sock, dns_sock = socks
    http_port, https_port, tcp_port, dns_port = (int(s.getsockname()[1]) for s in socks)

    certs = _make_certificates(workdir, dt.datetime.now(dt.UTC))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.cert, certs.key)

    state = DemoState()
    log_path = workdir / "access.log"
    access_log = log_path.open("a", encoding="utf-8", buffering=1)
    service = SampleService(
        http_port=http_port,
        https_port=https_port,
        tcp_port=tcp_port,
        dns_port=dns_port,
        ca_file=certs.ca,
        cert_not_after=certs.not_after,
        access_log=log_path,
        state=state,
    )

    async def close_log() -> None:
        access_log.close()

    service._closers.append(close_log)
    if write_tickets:
        service.ticket_log = workdir / "tickets.jsonl"
        desk = asyncio.create_task(_write_tickets(service.ticket_log, clock), name="demo-ticket-desk")

        async def close_desk() -> None:
            desk.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await desk

        service._closers.append(close_desk)
    try:
        runner = web.AppRunner(
            _Shop(state, clock, sleep, access_log, log_request_time).app(),
            access_log=None,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        service._closers.append(runner.cleanup)
        await web.SockSite(runner, http_sock).start()
        await web.SockSite(runner, https_sock, ssl_context=tls).start()

        lines = _LineService()
        server = await asyncio.start_server(lines.serve, sock=tcp_sock)

        async def close_tcp() -> None:
            server.close()
            for writer in list(lines.writers):
                writer.close()
            await server.wait_closed()

        service._closers.append(close_tcp)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(_DnsResponder, sock=dns_sock)

        async def close_dns() -> None:
            transport.close()

        service._closers.append(close_dns)
    except BaseException:
        await service.close()
        for sock in socks:
            sock.close()
        raise
    return service
