"""The alerting loop of ``slaprobe demo``: real Prometheus and Alertmanager on free loopback ports.

When ``prometheus`` and ``alertmanager`` (Debian: ``prometheus-alertmanager``) are on PATH,
the demo starts both: Prometheus scrapes the demo's exporter and evaluates the generated
rules, Alertmanager routes the alerts with the generated routing to the sample service's
``/hooks/<receiver>`` (and copies them to the exporter's ``/alertmanager/webhook``). The
status page then shows the escalation levels the hooks received, links to Prometheus'
alerts and serves the live SLA report at ``/report``. Without them, the page and the banner
say what the loop would show and how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import IO, Any

import aiohttp

from slaprobe import conventions as c
from slaprobe.config import Config

PROMETHEUS_NAMES = ("prometheus",)
ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")  # Debian's name first
INSTALL_HINT = (
    "apt-get install prometheus prometheus-alertmanager (Debian, Ubuntu), "
    "or put the prometheus and alertmanager release binaries on PATH"
)
WOULD_SHOW = (
    "With Prometheus and Alertmanager installed, the demo starts both on free loopback ports: "
    "the generated rules raise the alerts, the generated routing pages on-call through the sample "
    "service's /hooks and escalates to the team lead after a minute, this page lists each level "
    "notified and links to Prometheus' alerts, and /report serves the live SLA report."
)
RULE_FILES = ("slaprobe-rules.yaml", "slaprobe-sample-rules.yaml")  # of `generate all`, for Prometheus
ROUTING_FILE = "alertmanager.yaml"
SCRAPE_INTERVAL = "5s"
READY_TIMEOUT = 30.0  # seconds for each binary to answer /-/ready

Report = Callable[[Config, str], str]
"""The live SLA report as HTML from a config and Prometheus' URL (the CLI passes it in: the
demo may not import dashboards/)."""


def find_binaries(which: Callable[[str], str | None] = shutil.which) -> tuple[str | None, str | None]:
    """Paths of prometheus and alertmanager on PATH (None where missing)."""
    prometheus = next((p for name in PROMETHEUS_NAMES if (p := which(name))), None)
    alertmanager = next((p for name in ALERTMANAGER_NAMES if (p := which(name))), None)
    return prometheus, alertmanager


def loop_config_text(alertmanager_port: int, exporter_listen: str, token: str) -> str:
    """The config keys that tie the demo's exporter to its Alertmanager (appended to demo.yaml)."""
    return (
        "\n# added by `slaprobe demo`: its own Alertmanager on a free port\n"
        "alertmanager:\n"
        f"  url: http://127.0.0.1:{alertmanager_port}\n"
        "  poll_interval: 5s\n"
        f"  webhook_url: http://{exporter_listen}/alertmanager/webhook\n"
        f"  webhook_auth: {{bearer_token: {token}}}\n"
    )


def new_token() -> str:
    """A bearer token for the exporter's webhook (hex: a plain YAML scalar)."""
    return secrets.token_hex(16)


def prometheus_config(exporter_listen: str, alertmanager_port: int, rule_files: Sequence[Path]) -> str:
    """Prometheus' config: scrape the exporter, evaluate the generated rules, alert the demo's Alertmanager."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": "slaprobe", "static_configs": [{"targets": [exporter_listen]}]}],
    }
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML


@dataclass
class Loop:
    """What the status page shows of the loop; ``prometheus_url`` is empty when it does not run."""

    prometheus_url: str = ""
    alertmanager_url: str = ""
    missing: tuple[str, ...] = ()  # binaries not found on PATH
    problem: str = ""  # why a binary found did not start
    report: Report | None = None
    config: Config | None = None
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def running(self) -> bool:
        """Whether Prometheus and Alertmanager run."""
        return bool(self.prometheus_url)

    def start(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start one binary, its output into ``log``."""
        out = log.open("wb")
        self._logs.append(out)
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._processes.append(process)
        return process

    def stop(self) -> None:
        """Stop the binaries this loop started (terminate, then kill after 10 s)."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        for out in self._logs:
            out.close()
        self._logs.clear()

    def banner(self) -> list[str]:
        """Lines of the demo's banner about the loop."""
        if self.running:
            return [
                "alerting loop (Prometheus and Alertmanager, generated rules and routing):",
                f"  prometheus     {self.prometheus_url}/alerts",
                f"  alertmanager   {self.alertmanager_url}",
                "  escalations    on the status page (from the sample service's /hooks)",
            ]
        why = f"not found on PATH: {', '.join(self.missing)}" if self.missing else self.problem
        return [
            f"alerting loop: off ({why})",
            f"  {WOULD_SHOW}",
            f"  install: {INSTALL_HINT}",
        ]


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> str:
    """'' once ``url`` answers 200, else why not (the process exited, or the time ran out)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                args = process.args
                name = Path(str(args[0] if isinstance(args, list) else args)).name
                return f"{name} exited with status {process.returncode}"
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return ""
            await asyncio.sleep(0.2)
    return f"{url} did not answer within {timeout:.0f}s"


async def start_loop(
    work: Path,
    *,
    prometheus: str,
    alertmanager: str,
    prometheus_port: int,
    alertmanager_port: int,
    exporter_listen: str,
    generated: Path,
) -> Loop:
    """Start Alertmanager with the generated routing and Prometheus with the generated rules.

    Logs go to ``<work>/prometheus.log`` and ``<work>/alertmanager.log``, data under
    ``<work>/prometheus-data`` and ``<work>/alertmanager-data``.
    """
    loop = Loop()
    rules = [generated / name for name in RULE_FILES if (generated / name).exists()]
    prometheus_yml = work / "prometheus.yml"
    prometheus_yml.write_text(prometheus_config(exporter_listen, alertmanager_port, rules), encoding="utf-8")
    am = loop.start(
        [
            alertmanager,
            f"--config.file={generated / ROUTING_FILE}",
            f"--storage.path={work / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",  # no gossip: one instance, notifications at once
        ],
        work / "alertmanager.log",
    )
    prom = loop.start(
        [
            prometheus,
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--rules.alert.resend-delay=5s",
        ],
        work / "prometheus.log",
    )
    am_url, prom_url = f"http://127.0.0.1:{alertmanager_port}", f"http://127.0.0.1:{prometheus_port}"
    for url, process, log in ((am_url, am, "alertmanager.log"), (prom_url, prom, "prometheus.log")):
        problem = await wait_ready(f"{url}/-/ready", process)
        if problem:
            loop.stop()
            loop.problem = f"{problem}; see {work / log}"
            return loop
    loop.prometheus_url, loop.alertmanager_url = prom_url, am_url
    return loop


# ---------------------------------------------------------------------------- what the hooks received


@dataclass(frozen=True, slots=True)
class Notified:
    """One escalation level of one alert as the hooks received it."""

    level: str
    receiver: str
    alertname: str
    service: str
    first: float  # unix seconds of the first firing notification
    status: str  # of the latest notification: firing or resolved


def notified_levels(notifications: Iterable[Mapping[str, Any]]) -> list[Notified]:
    """Each (level, receiver, alert, service) the hooks received, with its first firing and latest status.

    ``notifications``: the sample service's stored webhook calls (``receiver``, ``received_at``,
    ``payload`` as Alertmanager posts it), oldest first.
    """
    first: dict[tuple[str, str, str, str], float] = {}
    latest: dict[tuple[str, str, str, str], str] = {}
    for note in notifications:
        payload = note.get("payload")
        if not isinstance(payload, Mapping):
            continue
        for alert in payload.get("alerts") or ():
            if not isinstance(alert, Mapping):
                continue
            labels = alert.get("labels") or {}
            key = (
                str(labels.get(c.LABEL_ESCALATION_LEVEL, "1")),
                str(note.get("receiver", "")),
                str(labels.get(c.LABEL_ALERTNAME, "")),
                str(labels.get(c.LABEL_SERVICE, "")),
            )
            status = str(alert.get("status", payload.get("status", "")))
            if status == c.ALERT_FIRING and key not in first:
                first[key] = float(note.get("received_at", 0.0))
            latest[key] = status
    rows = [Notified(*key, first=first.get(key, 0.0), status=status) for key, status in latest.items()]
    return sorted(rows, key=lambda n: (n.first or float("inf"), n.level, n.receiver, n.alertname))


def loop_section(loop: Loop, notifications: Iterable[Mapping[str, Any]], hooks_url: str, now: float) -> str:
    """The status page's section about the alerting loop (HTML; every value escaped)."""
    if not loop.running:
        why = f"{', '.join(loop.missing)} not found on PATH" if loop.missing else loop.problem
        return (
            "<section class='loop'><h2>Alerting loop: off</h2>"
            f"<p class='muted'>{escape(why)}.</p><p>{escape(WOULD_SHOW)}</p>"
            f"<p>Install: <code>{escape(INSTALL_HINT)}</code>, then start <code>slaprobe demo</code> again.</p>"
            "</section>"
        )
    rows = notified_levels(notifications)
    levels = sorted({n.level for n in rows if n.first}, key=lambda v: (len(v), v))
    summary = (
        "levels notified so far: " + ", ".join(f"<b>L{escape(v)}</b>" for v in levels)
        if levels
        else "no notification yet (the first page reaches on-call about half a minute after the start)"
    )
    body = "".join(
        f"<tr><td>L{escape(n.level)}</td><td>{escape(n.receiver)}</td><td>{escape(n.alertname)}</td>"
        f"<td>{escape(n.service)}</td><td class='{'down' if n.status == c.ALERT_FIRING else 'up'}'>"
        f"{escape(n.status)}</td><td class='muted'>{_ago(n.first, now)}</td></tr>"
        for n in rows
    )
    table = (
        "<div class='wide'><table><tr><th>level</th><th>receiver</th><th>alert</th><th>service</th>"
        f"<th>latest</th><th>first notified</th></tr>{body}</table></div>"
        if rows
        else ""
    )
    return (
        "<section class='loop'><h2>Alerting loop</h2>"
        f"<p>Escalation, as the sample service's <a href='{escape(hooks_url)}'>/hooks</a> received it: "
        f"{summary}.</p>{table}"
        f"<p><a href='{escape(loop.prometheus_url)}/alerts'>Prometheus alerts</a> · "
        f"<a href='{escape(loop.alertmanager_url)}/#/alerts'>Alertmanager</a> · "
        "<a href='/report'>live SLA report</a></p></section>"
    )


def _ago(timestamp: float, now: float) -> str:
    if not timestamp:
        return "–"
    return f"{max(0.0, now - timestamp):.0f}s ago"


def report_page(loop: Loop) -> tuple[int, str]:
    """(status, HTML) of ``/report``: the live report, or what it would show and how to get it."""
    if loop.running and loop.report is not None and loop.config is not None:
        try:
            return 200, loop.report(loop.config, loop.prometheus_url)
        except Exception as exc:  # the page says why (a ReportError, Prometheus not answering) instead of failing
            return 503, _page("SLA report not ready", f"Prometheus could not give the report yet: {exc}")
    return 503, _page(
        "SLA report: needs Prometheus",
        "The live SLA report (availability, compliance, budget and incidents of every service, from "
        f"Prometheus) shows here while the demo runs Prometheus. {WOULD_SHOW} Install: {INSTALL_HINT}.",
    )


def _page(title: str, text: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1><p>{escape(text)}</p>"
        "<p><a href='/'>status page</a></p></body></html>"
    )
