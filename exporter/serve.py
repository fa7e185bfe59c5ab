"""``slaprobe serve``: load the config, start the web app and scheduler, reload on SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from slaprobe.exporter.app import CONNECTIONS_KEY, RELOAD_GATE_KEY, make_app
from slaprobe.exporter.connlimit import ConnectionLimiter, default_limit, default_per_peer, raise_open_file_limit
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.sharding import ALL, Shard
from slaprobe.exporter.webconfig import load_web_config
from slaprobe.redact import RedactingFilter, Redactor

log = logging.getLogger("slaprobe")


@dataclass(frozen=True)
class ServeOptions:
    """What ``slaprobe serve`` was asked to do."""

    sources: Sources
    listen: str = "127.0.0.1:9799"
    probe_allow: list[str] = field(default_factory=list)
    web_config: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)  # --allow-host: DNS names of the admin endpoints
    state_dir: str | None = None
    shard: Shard = ALL
    max_connections: int | None = None  # client connections at once; default: the open-file limit less a reserve
    watch_config: bool = False  # --watch-config: reload when the config or module file changes


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9799"`` / ``"[::]:9799"`` / ``":9799"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def configure_logging(current_redactor: Callable[[], Redactor], level: int = logging.INFO) -> None:
    """Log as ``ts=... level=... logger=... msg=...`` to stderr, secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    handler.addFilter(RedactingFilter(current_redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


KEEPALIVE_SECONDS = 75.0  # an idle client connection is closed after this (aiohttp's own default is an hour)


async def serve(
    options: ServeOptions,
    *,
    ready: asyncio.Event | None = None,
    setup: Callable[[web.Application], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; return the exit status. ``setup`` may add routes to the app (the demo)."""
    exporter = Exporter(options.sources, shard=options.shard, state_dir=options.state_dir)
    configure_logging(lambda: exporter.redact)
    before, open_files = raise_open_file_limit()
    if open_files != before:
        log.info("raised the open-file limit from %d to %d", before, open_files)
    limit = options.max_connections or default_limit(open_files)
    limiter = ConnectionLimiter(limit=limit, per_peer=default_per_peer(limit))
    exporter.freeze_gc = True
    status = exporter.reload()
    if not status.successful:
        return 1
    middlewares: list[Middleware] = []
    ssl_context = None
    if options.web_config:
        web_config = load_web_config(options.web_config)
        ssl_context = web_config.ssl_context()
        middlewares.append(web_config.middleware(exempt=("/-/healthy",)))
    app = make_app(
        exporter, probe_allow=options.probe_allow, middlewares=middlewares, allowed_hosts=options.allowed_hosts
    )
    app[CONNECTIONS_KEY] = limiter
    if setup is not None:
        setup(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    host, port = split_listen(options.listen)
    loop = asyncio.get_running_loop()
    assert runner.server is not None  # set by setup()
    # Not web.TCPSite: every connection passes the limiter before aiohttp's handler sees it.
    listener = await loop.create_server(
        limiter.wrap(runner.server), host, port, ssl=ssl_context, backlog=1024, reuse_address=True
    )
    scheme = "https" if ssl_context else "http"
    log.info(
        "listening on %s://%s:%d (shard %d/%d, at most %d client connections, %d per address)",
        scheme,
        host,
        port,
        options.shard.index,
        options.shard.count,
        limiter.limit,
        limiter.per_peer,
    )

    stop = asyncio.Event()

    loop.add_signal_handler(signal.SIGHUP, app[RELOAD_GATE_KEY].signal)  # the gate of POST /-/reload
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if options.watch_config:
        from slaprobe.exporter.watch import watch_files

        paths = [p for p in (options.sources.config, options.sources.modules) if p]
        gate = app[RELOAD_GATE_KEY]

        async def reload_through_gate() -> None:
            gate.signal()  # as SIGHUP: now if the gate is open, else once it opens

        watcher = asyncio.create_task(watch_files(paths, reload_through_gate, stop=stop))
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            await watcher
        log.info("shutting down")
        listener.close()
        await runner.cleanup()
    return 0
