"""``slaprobe demo``: the misbehaving sample shop plus ``slaprobe serve`` probing it.

The sample service listens on free loopback ports (any port the system gives), so a
taken port never stops the demo. ``demo.yaml`` is written for the sample service's
default ports and ``/tmp/slaprobe-demo``; ``render_config`` replaces those with the
ports actually bound and the ``--workdir``, and the result goes to
``<workdir>/slaprobe.yaml``. Before serving, the demo writes what the product
generates from that config (``slaprobe generate all``: rules, rule tests, Alertmanager
routing, dashboards) into ``<workdir>/generated`` and prints the escalation table, so
a newcomer sees the heart of the product, not only the exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from slaprobe.config import Config, ConfigError, parse_config
from slaprobe.demo import shop
from slaprobe.demo.loop import (
    Loop,
    Report,
    find_binaries,
    loop_config_text,
    loop_section,
    new_token,
    report_page,
    start_loop,
)
from slaprobe.exporter.app import STATUS_SECTIONS_KEY
from slaprobe.exporter.runtime import Sources
from slaprobe.exporter.serve import ServeOptions, serve
from slaprobe.units import format_duration

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
DEFAULT_LISTEN = "127.0.0.1:9799"

# The tokens of demo.yaml that name the sample service's defaults, and what replaces them.
_PORT_TOKENS = {
    "http": shop.DEMO_HTTP_PORT,
    "https": shop.DEMO_HTTPS_PORT,
    "tcp": shop.DEMO_TCP_PORT,
    "dns": shop.DEMO_DNS_PORT,
}


def render_config(workdir: Path, ports: Mapping[str, int], template: str | None = None) -> str:
    """demo.yaml with the sample service's ``ports`` (http, https, tcp, dns) and ``workdir``.

    Raises ``ValueError`` when the workdir cannot stand in a YAML plain scalar as it is.
    """
    text = DEMO_CONFIG.read_text(encoding="utf-8") if template is None else template
    workdir = Path(workdir).resolve()
    if any(ch in str(workdir) for ch in "\n\r\t,:#{}[]'\"&*!|>%@`"):
        raise ValueError(f"--workdir {str(workdir)!r}: choose a path without YAML punctuation")
    for name, default in _PORT_TOKENS.items():
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    return text.replace(str(shop.DEMO_WORKDIR), str(workdir))


def free_listen(listen: str) -> str:
    """``listen`` when its port can be bound now, else (or for port 0) the same host on a free port."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            if int(port):
                sock.bind((host, int(port)))
                return listen
        except OSError:
            pass
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        free = sock.getsockname()[1]
    return f"[{host}]:{free}" if family == socket.AF_INET6 else f"{host}:{free}"


Generate = Callable[[Config], Mapping[str, str]]
"""What ``slaprobe generate all`` makes of a config: {file name: text} (the CLI passes it in:
the demo may not import alerts/ or dashboards/ itself)."""


def write_generated(config: Config, out: Path, generate: Generate) -> list[Path]:
    """Everything ``generate`` makes of ``config``, written into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate(config).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def escalation_table(config: Config) -> list[str]:
    """Who is notified, and when, for each service's page and ticket alerts."""
    lines = [f"  {'service':<10} {'tier':<9} {'alert':<7} {'priority':<9} escalation"]
    for name, service in config.services.items():
        priorities = config.priorities.get(service.tier)
        if priorities is None:
            continue
        for severity, priority in (("page", priorities.page), ("ticket", priorities.ticket)):
            levels = config.escalation.get(priority, [])
            steps = ", ".join(
                f"L{i} after {format_duration(level.after)} -> {level.notify}"
                + (f" ({level.during})" if level.during else "")
                for i, level in enumerate(levels, start=1)
            )
            lines.append(f"  {name:<10} {service.tier:<9} {severity:<7} {priority:<9} {steps or '(not routed)'}")
    return lines


async def run_demo(
    *,
    listen: str = DEFAULT_LISTEN,
    workdir: str = str(shop.DEMO_WORKDIR),
    generate: Generate | None = None,
    report: Report | None = None,
    binaries: tuple[str | None, str | None] | None = None,
) -> int:
    """Start the sample service on free loopback ports, write the config and what
    ``generate`` makes of it into ``workdir``, start Prometheus and Alertmanager when
    ``binaries`` (default: found on PATH) has both, then serve; run until Ctrl-C."""
    work = Path(workdir).resolve()
    prometheus, alertmanager = find_binaries() if binaries is None else binaries
    with_loop = bool(prometheus and alertmanager and generate)
    listen = free_listen(listen)
    am_port, prom_port = _free_port(), _free_port()
    try:
        service = await shop.start_sample_service(work)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        ports = {
            "http": service.http_port,
            "https": service.https_port,
            "tcp": service.tcp_port,
            "dns": service.dns_port,
        }
        config_path = work / "slaprobe.yaml"
        text = render_config(work, ports)
        if with_loop:
            text += loop_config_text(am_port, listen, new_token())
        config = parse_config(text, require_secrets=False)
        config_path.write_text(text, encoding="utf-8")
        generated = write_generated(config, work / "generated", generate) if generate else []
    except (OSError, ValueError, ConfigError) as exc:
        await service.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if with_loop:
        assert prometheus and alertmanager
        loop = await start_loop(
            work,
            prometheus=prometheus,
            alertmanager=alertmanager,
            prometheus_port=prom_port,
            alertmanager_port=am_port,
            exporter_listen=listen,
            generated=work / "generated",
        )
    else:
        missing = tuple(n for n, p in (("prometheus", prometheus), ("alertmanager", alertmanager)) if not p)
        loop = Loop(missing=missing, problem="" if missing else "nothing generated to run it with")
    loop.report, loop.config = report, config
    hooks_url = service.http_url + "/hooks"

    def setup(app: web.Application) -> None:
        def section() -> str:
            return loop_section(loop, list(service.state.notifications), hooks_url, time.time())

        async def handle_report(_request: web.Request) -> web.Response:
            status, html = await asyncio.to_thread(report_page, loop)
            return web.Response(status=status, text=html, content_type="text/html")

        app[STATUS_SECTIONS_KEY] = [section]
        app.router.add_get("/report", handle_report)

    ready = asyncio.Event()

    async def announce() -> None:
        await ready.wait()
        lines = [f"  {name:<14} {url}" for name, url in service.endpoints().items()]
        files = [f"  {path}" for path in generated]
        print(
            "slaprobe demo is running (Ctrl-C to stop)\n"
            f"  status page    http://{listen}/\n"
            f"  metrics        http://{listen}/metrics\n"
            f"  one probe      http://{listen}/probe?target=http://127.0.0.1:{service.http_port}/&debug=true\n"
            f"  config         {config_path}\n"
            "sample service (misbehaves on purpose, see /schedule):\n" + "\n".join(lines) + "\n"
            f"generated from the config (slaprobe generate all --config {config_path} --out {work / 'generated'}):\n"
            + "\n".join(files)
            + "\nescalation (level 1 is the alert; later levels while it keeps firing, unacknowledged):\n"
            + "\n".join(escalation_table(config))
            + "\n"
            + "\n".join(loop.banner())
            + f"\nreport: http://{listen}/report (live while Prometheus runs), or\n"
            f"  slaprobe report --config {config_path} --prometheus {loop.prometheus_url or 'http://127.0.0.1:9090'}"
            f" --period 1d --out {work / 'report.html'}",
            flush=True,
        )

    announcer = asyncio.create_task(announce())
    try:
        options = ServeOptions(sources=Sources(config=str(config_path)), listen=listen)
        return await serve(options, ready=ready, setup=setup)
    finally:
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer
        loop.stop()
        await service.close()


def _free_port() -> int:
    return int(free_listen("127.0.0.1:0").rpartition(":")[2])
