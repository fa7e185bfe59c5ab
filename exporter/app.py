"""The aiohttp application of ``slaprobe serve``: /metrics, /probe, /-/reload, status page."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, gc_collector, generate_latest, platform_collector, process_collector

from slaprobe import __version__
from slaprobe import conventions as c
from slaprobe.config import Config, Probe
from slaprobe.exporter import blackbox
from slaprobe.exporter.connlimit import ConnectionLimiter
from slaprobe.exporter.exposition import CONTENT_TYPE, MetricFamily
from slaprobe.exporter.heartbeats import install_heartbeats
from slaprobe.exporter.incidents import INCIDENTS_KEY, WEBHOOK_PATH, install_incidents
from slaprobe.exporter.maintenance import MAINTENANCE_PATH, install_maintenance, maintenance_text
from slaprobe.exporter.runtime import Exporter, ReloadStatus
from slaprobe.exporter.status import DEFAULT_REFRESH, plan_counter, render_status_page
from slaprobe.exporter.store import service_info_text
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ForbiddenTargetError, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from slaprobe.text import sanitize_text

log = logging.getLogger("slaprobe.web")

EXPORTER_KEY = web.AppKey("exporter", Exporter)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
CONNECTIONS_KEY = web.AppKey("connections", ConnectionLimiter)  # set by serve(); absent in bare test apps


RELOAD_SUCCESS = MetricFamily(
    c.CONFIG_RELOAD_SUCCESS, "gauge", "Whether the last configuration reload attempt was successful."
)
RELOAD_TIMESTAMP = MetricFamily(
    c.CONFIG_RELOAD_TIMESTAMP, "gauge", "Unix time in seconds of the last successful reload."
)
BUILD_INFO = MetricFamily(c.BUILD_INFO, "gauge", "slaprobe version; always 1.", ("version",))
SCHEDULER_LAG = MetricFamily(c.SCHEDULER_LAG, "histogram", "How late scheduled runs started, in seconds.")
SCHEDULER_MISSED = MetricFamily(
    c.SCHEDULER_MISSED,
    "counter",
    "Scheduled runs skipped: overrun (the previous run was still going) or late (no slot in time).",
    (c.LABEL_CAUSE,),
)
PROBES_IN_FLIGHT = MetricFamily(c.PROBES_IN_FLIGHT, "gauge", "Scheduled probe runs executing right now.")
SHARD_INFO = MetricFamily(
    c.SHARD_INFO,
    "gauge",
    "This replica is shard I of N (--shard I/N) in its location; always 1.",
    (c.LABEL_LOCATION, c.LABEL_SHARD, c.LABEL_SHARDS),
)
CONNECTIONS_OPEN = MetricFamily(c.CONNECTIONS_OPEN, "gauge", "Client connections open to the listener.")
CONNECTIONS_REFUSED = MetricFamily(
    c.CONNECTIONS_REFUSED,
    "counter",
    "Client connections closed on arrival: over the process-wide cap (total) or one address's share (peer).",
    (c.LABEL_REASON,),
)


def connection_metrics_text(limiter: ConnectionLimiter | None) -> str:
    """The listener's open connections and refusals by reason ("" without a limiter)."""
    if limiter is None:
        return ""
    out = [CONNECTIONS_OPEN.header, CONNECTIONS_OPEN.sample(limiter.open), CONNECTIONS_REFUSED.header]
    out += [CONNECTIONS_REFUSED.sample(count, reason) for reason, count in sorted(limiter.refused.items())]
    return "".join(out)


def self_metrics_text(exporter: Exporter) -> str:
    """The exporter's own health: reload status and scheduler figures."""
    status = exporter.status
    out = [
        RELOAD_SUCCESS.header,
        RELOAD_SUCCESS.sample(int(status.successful and not status.refused_modules)),  # a refused module fails it
        RELOAD_TIMESTAMP.header,
        RELOAD_TIMESTAMP.sample(status.last_success),
        BUILD_INFO.header,
        BUILD_INFO.sample(1, __version__),
        SHARD_INFO.header,
        SHARD_INFO.sample(1, exporter.config.global_.location, str(exporter.shard.index), str(exporter.shard.count)),
    ]
    scheduler = exporter.scheduler
    if scheduler is not None:
        stats = scheduler.stats
        out += (SCHEDULER_LAG.header, SCHEDULER_LAG.histogram(stats.lag))
        out += (
            SCHEDULER_MISSED.header,
            SCHEDULER_MISSED.sample(stats.missed_overrun, "overrun"),
            SCHEDULER_MISSED.sample(stats.missed_late, "late"),
        )
        out += (PROBES_IN_FLIGHT.header, PROBES_IN_FLIGHT.sample(stats.in_flight))
    return "".join(out)


WRITE_BYTES = 1 << 22  # bytes of /metrics per write: the loop serves others between writes
RENDER_SLICE = 0.02  # seconds of rendering series between two turns of the event loop


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    """Scheduled-probe metrics, log metrics, service info, self-metrics and process metrics.

    The page is complete before its status line goes out: text that fails to render
    makes the whole scrape a 500, never a 200 cut off in the middle. With 10,000 probes
    it is ~24 MB; it is held as references to each series' cached bytes (no copy of the
    page) and written in pieces of about ``WRITE_BYTES``.
    """
    exporter = request.app[EXPORTER_KEY]
    services = {name: (s.tier, s.owner) for name, s in exporter.config.services.items()}
    series = exporter.store.series()
    # Turns of RENDER_SLICE seconds, not a fixed count of series: under load each turn of the
    # loop runs hundreds of probe callbacks, and a 50,000-probe page cut in 100 turns took 7-12 s.
    turn = time.perf_counter()
    for one in series:
        one.render()  # fills its cache: the text of a series whose probe ran since the last scrape
        if time.perf_counter() - turn > RENDER_SLICE:
            await asyncio.sleep(0)  # let due probes start between slices
            turn = time.perf_counter()
    pieces: list[bytes] = []
    for family in exporter.store.render_families():
        pieces += family
        await asyncio.sleep(0)
    tail = "".join(
        (
            exporter.logs.render(
                {
                    c.STATE_INCIDENTS: request.app[INCIDENTS_KEY].save_failures,
                    c.STATE_HEARTBEATS: exporter.heartbeats.save_failures,
                }
            ),
            request.app[INCIDENTS_KEY].render(),
            service_info_text(services),
            maintenance_text(exporter.calendars, exporter.clock(), exporter.adhoc),
            self_metrics_text(exporter),
            connection_metrics_text(request.app.get(CONNECTIONS_KEY)),
        )
    )
    pieces.append(tail.encode())
    pieces.append(generate_latest(request.app[REGISTRY_KEY]))
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)
    batch: list[bytes] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= WRITE_BYTES:
            await response.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        await response.write(b"".join(batch))
    await response.write_eof()
    return response


@dataclass(frozen=True, slots=True)
class _ProbeRequest:
    """What ``/probe`` was asked to run: a kind, an aimed spec and how to describe it in debug output."""

    kind: str
    spec: object
    timeout: float | None  # seconds, the module's or probe's own limit
    describe: Callable[[ProbeResult, list[str]], str]


def _configured_probe(exporter: Exporter, module_name: str, target: str) -> _ProbeRequest | None:
    """``module=<service>/<probe>`` runs that probe of the config now (``target`` may be omitted)."""
    service_name, _, probe_name = module_name.partition("/")
    service = exporter.config.services.get(service_name)
    probe = next((p for p in service.probes if p.name == probe_name), None) if service else None
    if probe is None:
        return None
    if probe.heartbeat is not None:
        raise ValueError(f"{module_name} is a heartbeat: it is pushed to /push/{module_name}, not probed")
    if probe.flow is not None and not exporter.config.global_.probe_flows:
        raise ForbiddenTargetError(f"{module_name} is a flow (real logins): set global.probe_flows: true to run it")
    spec = probe.spec
    if target and target != spec.target:
        if probe.flow is not None:
            raise ValueError("a flow probe runs against its configured steps; omit target")
        if _carries_credentials(probe, exporter.config.secrets):
            # Aimed elsewhere, it would hand its credentials to whatever the allow-list opens.
            raise ForbiddenTargetError(
                f"probe {module_name} sends credentials (a secret, basic_auth or an auth header); "
                "it runs against its configured target only: omit target"
            )
        spec = spec.with_target(target)  # type: ignore[union-attr]
    # Redacted before the dump: YAML folds and escapes long or tabbed strings past a text redaction.
    written = exporter.redact.data(probe.model_dump(mode="json", by_alias=True, exclude_defaults=True))

    def describe(result: ProbeResult, lines: list[str]) -> str:
        text = (
            "Logs for the probe:\n" + "".join(f"{line}\n" for line in lines)
            + "\n\n\nMetrics that would have been returned:\n" + blackbox.render_probe_metrics(result).decode()
            + f"\n\n\nProbe configuration ({service_name}):\n"
            + yaml.safe_dump(written, sort_keys=False, allow_unicode=True)
        )  # fmt: skip
        return exporter.redact(text)

    return _ProbeRequest(probe.kind, spec, exporter.config.timeout_of(probe), describe)


_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _carries_credentials(probe: Probe, secrets: frozenset[str]) -> bool:
    """Whether the probe sends what only its own target may see: a ${env:}/${file:} value
    anywhere in its spec, HTTP basic auth (user:password in the URL too) or an auth header."""

    def holds_secret(value: object) -> bool:
        if isinstance(value, str):
            return any(secret in value for secret in secrets)
        if isinstance(value, dict):
            return any(holds_secret(v) for v in value.values())
        if isinstance(value, list):
            return any(holds_secret(v) for v in value)
        return False

    if secrets and holds_secret(probe.model_dump()):
        return True
    http = probe.http
    return http is not None and (
        http.basic_auth is not None
        or "@" in urlsplit(http.url).netloc
        or any(name.lower() in _CREDENTIAL_HEADERS for name in http.headers)
    )


def _module_probe(exporter: Exporter, module: blackbox.Module, target: str) -> _ProbeRequest:
    """A blackbox module aimed at ``target`` (ValueError for a target of the wrong shape)."""

    def describe(result: ProbeResult, lines: list[str]) -> str:
        return blackbox.render_debug(result, lines, module, exporter.redact)

    return _ProbeRequest(module.kind, module.spec.with_target(target), module.timeout, describe)


async def handle_probe(request: web.Request) -> web.StreamResponse:
    """One probe now, answered in blackbox_exporter's format (``debug=true``: the probe log).

    ``module`` names a blackbox module (``--modules``, or the built-in ``http_2xx``) or a
    configured probe as ``<service>/<probe>``.
    """
    exporter = request.app[EXPORTER_KEY]
    target = request.query.get("target", "")
    module_name = request.query.get("module", blackbox.DEFAULT_MODULE)
    debug = request.query.get("debug", "").lower() == "true"
    guard = exporter.guard.for_request(request.transport.get_extra_info("sockname") if request.transport else None)
    module = {**blackbox.BUILTIN_MODULES, **exporter.modules}.get(module_name)
    try:
        if module is not None:
            if not target:
                return web.Response(status=400, text="Target parameter is missing\n")
            guard.check_target(target)
            wanted = _module_probe(exporter, module, target)
        else:
            if target:
                guard.check_target(target)
            found = _configured_probe(exporter, module_name, target)
            if found is None:
                return web.Response(status=400, text=f"Unknown module {module_name!r}\n")
            wanted = found
    except ForbiddenTargetError as exc:
        return web.Response(status=403, text=f"{exc}\n")
    except ValueError as exc:
        return web.Response(status=400, text=f"Invalid target {target!r}: {exc}\n")
    try:
        timeout = blackbox.probe_deadline(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"), wanted.timeout)
    except ValueError as exc:
        return web.Response(status=500, text=f"Failed to parse timeout from Prometheus header: {exc}\n")
    hostname = request.query.get("hostname") or None
    if hostname is not None and (problem := _hostname_problem(hostname)):
        return web.Response(status=400, text=f"Invalid hostname {hostname[:100]!r}: {problem}\n")
    trace = ProbeTrace(debug=debug)
    ctx = ProbeContext(
        timeout=timeout,
        trace=trace,
        guard=guard.address_guard(note=trace.log),
        hostname=hostname,
        secrets=exporter.config.secrets,
    )
    trace.log(f"Beginning probe (probe={wanted.kind}, timeout_seconds={timeout:g})")
    result = await run_probe(PROBERS[wanted.kind], wanted.spec, ctx, name=f"/probe {module_name}")
    trace.log(f"Probe {'succeeded' if result.success else 'failed'} (duration_seconds={result.duration:.6f})")
    if result.reason is FailureReason.FORBIDDEN and not debug:
        # A redirect or a resolved address left the allow-list: refuse like the target itself.
        return web.Response(status=403, text=f"{exporter.redact(result.detail)}\n")
    if debug:
        return web.Response(text=sanitize_text(wanted.describe(result, trace.lines)), content_type="text/plain")
    return web.Response(body=blackbox.render_probe_metrics(result), headers={"Content-Type": CONTENT_TYPE})


def _hostname_problem(hostname: str) -> str | None:
    """Why ``hostname=`` cannot be a Host header and TLS server name, or None if it can."""
    if not hostname.isprintable() or " " in hostname:
        return "control characters or spaces"
    try:
        hostname.encode("idna")  # what ssl does with a server name: labels of 1..63 characters
    except UnicodeError:
        return "a label is empty or longer than 63 characters"
    return None


RELOAD_INTERVAL = 1.0  # seconds: at most one reload started per interval (HTTP and SIGHUP alike)
ADMIN_PATHS = frozenset({"/-/reload", WEBHOOK_PATH, MAINTENANCE_PATH})  # what changes state: checked against rebinding
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})


class ReloadGate:
    """The one way into a reload, for ``POST /-/reload`` and SIGHUP: one reload at a time,
    and at most one started per ``min_interval`` seconds.

    A request arriving too soon is told how long to wait (``wait()``); a signal arriving too
    soon is not lost: one trailing reload runs once the gate opens (further signals until
    then join it, since it reads the files as they are when it starts).
    """

    def __init__(
        self,
        reload: Callable[[], Awaitable[ReloadStatus]],
        *,
        min_interval: float = RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reload = reload
        self._min = min_interval
        self._clock = clock
        self._running = False
        self._last = -math.inf  # clock() when the last reload started
        self._idle = asyncio.Event()
        self._idle.set()
        self._trailing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()  # a reference to each running signal reload

    @property
    def running(self) -> bool:
        """Whether a reload is under way."""
        return self._running

    def wait(self) -> float:
        """Seconds until a reload may start (0: now); while one runs, at least the interval."""
        if self._running:
            return max(self._min, 0.1)
        return max(0.0, self._last + self._min - self._clock())

    def run(self) -> Awaitable[ReloadStatus]:
        """Reload now: the gate closes at once, the reload runs when awaited (await it at once).

        Callers check ``wait()`` first; nothing awaits between the two.
        """
        self._running = True
        self._idle.clear()
        self._last = self._clock()
        return self._run()

    async def _run(self) -> ReloadStatus:
        try:
            return await self._reload()
        finally:
            self._running = False
            self._idle.set()

    def signal(self) -> None:
        """SIGHUP: reload now if the gate is open, else once when it opens."""
        if self._trailing is not None:
            return
        if self.wait() == 0:
            self._keep(asyncio.ensure_future(self.run()))
            return
        self._trailing = asyncio.ensure_future(self._when_open())
        self._keep(self._trailing)

    async def _when_open(self) -> None:
        while (delay := self.wait()) > 0:
            await (self._idle.wait() if self._running else asyncio.sleep(delay))
        self._trailing = None
        await self.run()

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel a signal reload still waiting or running (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


RELOAD_GATE_KEY = web.AppKey("reload_gate", ReloadGate)


def cross_site_problem(request: web.Request) -> tuple[int, str] | None:
    """(status, message) when a browser could have sent ``request`` from another site.

    A form content type (what a cross-site ``<form>`` or a CORS-free ``fetch`` can send) is
    415; an ``Origin`` whose host is not the request's Host, or a ``Sec-Fetch-Site`` other
    than same-origin/none, is 403. curl, Prometheus and Alertmanager send neither.
    """
    mimetype = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if mimetype in _FORM_TYPES:
        return 415, f"{mimetype} is refused here (a browser form can send it); POST with no body, e.g. curl -X POST"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("Host", "").lower():
        return 403, f"cross-site request from origin {origin[:100]!r} refused"
    if request.headers.get("Sec-Fetch-Site", "none") not in ("none", "same-origin"):
        return 403, "cross-site request refused (Sec-Fetch-Site)"
    return None


async def handle_reload(request: web.Request) -> web.Response:
    """POST: reload the config; a bad config is rejected and the running one stays.

    Refused: cross-site requests (415/403, ``cross_site_problem``) and reloads beyond the
    gate (429 with Retry-After: one running already, or the last started under a second ago).
    """
    problem = cross_site_problem(request)
    if problem is not None:
        status_code, message = problem
        return web.Response(status=status_code, text=f"{message}\n")
    exporter = request.app[EXPORTER_KEY]
    gate = request.app[RELOAD_GATE_KEY]
    if (wait := gate.wait()) > 0:
        why = "a reload is running" if gate.running else f"at most one reload per {RELOAD_INTERVAL:g}s"
        return web.Response(
            status=429, text=f"{why}; retry later\n", headers={"Retry-After": str(max(1, math.ceil(wait)))}
        )
    status = await gate.run()
    if status.successful:
        refused = "".join(f"error: {exporter.redact(str(issue))}\n" for issue in status.issues)
        if refused:
            refused = f"modules refused (serving the others): {', '.join(status.refused_modules)}\n{refused}"
        return web.Response(text=f"reloaded: {exporter.config.summary()}\n{refused}")
    lines = "".join(f"error: {exporter.redact(str(issue))}\n" for issue in status.issues)
    return web.Response(status=500, text=f"failed to reload config, keeping the running one:\n{lines}")


def _is_local_or_literal(host: str) -> bool:
    """Whether a Host header value names an IP literal or localhost (no DNS name to rebind)."""
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # browsers keep *.localhost on loopback
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_guard(allowed_hosts: Iterable[str] = (), config: Callable[[], Config] | None = None) -> Middleware:
    """Middleware refusing (421) admin requests whose Host is a DNS name not allowed.

    DNS rebinding points a name an attacker controls at this server, so a browser sends the
    attacker's name as Host. IP literals and localhost are always accepted; ``--allow-host``
    names the others, and the host of the running config's ``alertmanager.webhook_url`` (the
    name Alertmanager posts to) is accepted too. Only ``ADMIN_PATHS`` are checked: scrapes
    and probes keep any Host.
    """
    allowed = frozenset(name.rstrip(".").lower() for name in allowed_hosts)

    def webhook_host() -> str | None:
        manager = config().alertmanager if config is not None else None
        url = manager.webhook_url if manager is not None else None
        return urlsplit(str(url)).hostname if url is not None else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ADMIN_PATHS or request.path.startswith(MAINTENANCE_PATH + "/"):
            host = request.headers.get("Host")
            if host is not None and not _is_local_or_literal(host):
                name = (host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host).rstrip(".").lower()
                if name not in allowed and name != webhook_host():
                    if request.path == WEBHOOK_PATH and INCIDENTS_KEY in request.app:
                        request.app[INCIDENTS_KEY].refused["cross_site"] += 1  # counted with the webhook's own
                    return web.Response(
                        status=421,
                        text=f"Host {host[:100]!r} is not one of this server's names; "
                        "list it with --allow-host (IP literals and localhost always work)\n",
                    )
        return await handler(request)

    return guard


async def handle_healthy(_request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.Response(text="Healthy\n")


async def handle_ready(request: web.Request) -> web.Response:
    """Readiness: a config has been loaded."""
    if request.app[EXPORTER_KEY].status.last_success:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: no valid config loaded yet\n")


STATUS_SECTIONS_KEY = web.AppKey("status_sections", list[Callable[[], str]])
"""Extra sections of the status page (HTML, escaped by their maker), e.g. the demo's alerting loop."""


async def handle_status(request: web.Request) -> web.Response:
    """The HTML status page; ``?refresh=N`` sets its auto-refresh in seconds (0: off)."""
    exporter = request.app[EXPORTER_KEY]
    try:
        refresh = int(request.query.get("refresh", DEFAULT_REFRESH))
    except ValueError:
        refresh = DEFAULT_REFRESH
    html = render_status_page(
        exporter.config,
        exporter.store.series(),
        exporter.status,
        remote=exporter.store.remote_series(),
        now=time.time(),
        today=exporter.today(),
        redact=exporter.redact,
        version=__version__,
        started=exporter.started,
        schedules=exporter.schedules(),
        sources=exporter.logs.source_views(),
        refresh=refresh,
        sections=[section() for section in request.app.get(STATUS_SECTIONS_KEY, ())],
        hours=exporter.hours,
        in_maintenance=exporter.in_maintenance,
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


def make_app(
    exporter: Exporter,
    *,
    probe_allow: list[str] | None = None,
    middlewares: Sequence[Middleware] = (),
    allowed_hosts: Iterable[str] = (),
    reload_interval: float = RELOAD_INTERVAL,
) -> web.Application:
    """The web application; the scheduler runs while the app is up.

    ``allowed_hosts``: DNS names the admin endpoints answer to (``host_guard``);
    ``reload_interval``: seconds between two reloads at least (``ReloadGate``).
    """
    app = web.Application(middlewares=[host_guard(allowed_hosts, lambda: exporter.config), *middlewares])
    app.on_response_prepare.append(_no_sniffing)
    app[EXPORTER_KEY] = exporter
    if probe_allow is not None:
        exporter.allow_probes(probe_allow)
    registry = CollectorRegistry(auto_describe=True)
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    app[REGISTRY_KEY] = registry
    gate = ReloadGate(exporter.reload_async, min_interval=reload_interval)
    app[RELOAD_GATE_KEY] = gate

    async def close_gate(_app: web.Application) -> None:
        await gate.close()

    app.on_cleanup.append(close_gate)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/probe", blackbox.limit_probes(handle_probe, lambda: exporter.config.global_.probe_concurrency))
    app.router.add_post("/-/reload", handle_reload)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_get("/", handle_status)
    app.cleanup_ctx.append(_scheduler_context)
    app.cleanup_ctx.append(_logs_context)
    app.cleanup_ctx.append(plan_counter(exporter.schedules, lambda: exporter.started))  # status page, off-request
    install_incidents(app, exporter)  # /alertmanager/webhook and the silence poller
    install_heartbeats(app, exporter.heartbeats)  # /push/<service>/<probe> and missed periods
    install_maintenance(app, exporter, cross_site_problem)  # /-/maintenance: ad hoc windows
    return app


async def _no_sniffing(_request: web.Request, response: web.StreamResponse) -> None:
    """Every answer (debug and error pages too) is read as the type it declares, never sniffed:
    a page quoting target text must not turn into HTML or script in a browser."""
    response.headers["X-Content-Type-Options"] = "nosniff"


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    scheduler = app[EXPORTER_KEY].start_scheduler()
    task = asyncio.create_task(scheduler.run(), name="scheduler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _logs_context(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[EXPORTER_KEY].logs.run(), name="logs")
    yield
    task.cancel()  # run() saves ticket state and offsets, then closes its files
    with contextlib.suppress(asyncio.CancelledError):
        await task
