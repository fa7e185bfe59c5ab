"""A real monitoring stack on loopback for the board and report tests.

A faulty loopback target (HTTP that fails every other request and is sometimes slow, a
TLS endpoint whose certificate is near expiry, a login/pay flow whose pay step fails
every third time, a stand-in Alertmanager API and webhook sinks), an access log and a
ticket log that keep growing, a real ``slaprobe serve`` subprocess probing and reading
them, and a real Prometheus scraping it every second with the generated recording and
alerting rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from slaprobe.config import load_config
from slaprobe.dashboards.report import PrometheusClient, ReportError
from tests.conftest import free_port
from tests.support.certs import Authority

PROMETHEUS = shutil.which("prometheus")
SERVICE = "shop"
OTHER_SERVICE = "billing"
LOCATION = "lab"
FEEDBACK_SOURCE = "tickets"
JOB = "slaprobe"
ACKED_ALERT = "SLAErrorBudgetBurn"
WEBHOOK_TOKEN = "stack-webhook-token"  # alertmanager.webhook_auth: the webhook refuses posts without it


class _Counter:
    """A thread-safe counter of requests per path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def next(self, key: str) -> int:
        """The number of this request to ``key``, from 1."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


def _handler(counter: _Counter, hooks: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """The target's routes: faulty HTTP, the flow, a stand-in Alertmanager API, webhook sinks."""

        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""
            pass

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            """Answer a GET by path."""
            path = self.path.split("?")[0]
            n = counter.next(path)
            if path == "/flaky":
                if n % 4 == 3:
                    time.sleep(0.3)  # slower than the 250ms latency threshold, still a success
                self._send(500 if n % 2 == 0 else 200, b"Welcome" if n % 2 else b"oops", "text/plain")
            elif path == "/ok":
                self._send(200, b"Welcome", "text/plain")
            elif path == "/pay":
                self._send(500 if n % 3 == 0 else 200, {"status": "paid"})
            elif path == "/api/v2/silences":
                now = dt.datetime.now(dt.UTC)
                self._send(200, [_silence(now)])
            elif path == "/api/v2/alerts":
                self._send(200, [])
            elif path == "/-/healthy":
                self._send(200, b"ok", "text/plain")
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            """Answer a POST by path; webhook bodies are kept."""
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            if path == "/login":
                self._send(200, {"token": "t0k"})
            elif path.startswith("/hooks/"):
                with contextlib.suppress(ValueError):
                    hooks.append(json.loads(body or b"{}"))
                self._send(200, {})
            else:
                self._send(404, {"error": "not found"})

    return Handler


def _silence(now: dt.datetime) -> dict[str, Any]:
    """An active Alertmanager silence acknowledging the burn-rate alert of the service."""
    return {
        "id": "ack-1",
        "status": {"state": "active"},
        "matchers": [
            {"name": "service", "value": SERVICE, "isRegex": False, "isEqual": True},
            {"name": "alertname", "value": ACKED_ALERT, "isRegex": False, "isEqual": True},
        ],
        "startsAt": (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "endsAt": (now + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "updatedAt": (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "createdBy": "oncall",
        "comment": "ACK looking into it",
    }


@dataclass
class Target:
    """The loopback target: HTTP on ``port``, TLS on ``tls_port``; received webhooks in ``hooks``."""

    port: int
    tls_port: int
    ca: Path
    hooks: list[dict[str, Any]] = field(default_factory=list)
    _servers: list[ThreadingHTTPServer] = field(default_factory=list)

    def stop(self) -> None:
        """Stop both servers."""
        for server in self._servers:
            server.shutdown()
            server.server_close()


def start_target(workdir: Path, authority: Authority) -> Target:
    """Start the faulty HTTP target and the TLS endpoint (certificate expiring in 10 days)."""
    counter = _Counter()
    hooks: list[dict[str, Any]] = []
    handler = _handler(counter, hooks)
    http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    cert = authority.issue(workdir, "target", days=10)
    tls.socket = cert.server_context().wrap_socket(tls.socket, server_side=True, do_handshake_on_connect=False)
    for server in (http, tls):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return Target(http.server_address[1], tls.server_address[1], cert.ca, hooks, [http, tls])


class LogWriter:
    """Appends nginx access-log lines and ticket events while the test runs."""

    CATEGORIES = ("technical", "operations", "service")
    CHANNELS = ("phone", "email", "web")

    def __init__(self, access_log: Path, ticket_log: Path) -> None:
        self.access_log = access_log
        self.ticket_log = ticket_log
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Write a backlog (tickets from days ago, some past their deadlines), then keep appending."""
        now = time.time()
        lines = []
        for i in range(12):
            ticket = next(self._ids)
            opened = now - 3 * 86400 + i * 3600
            lines.append(self._ticket(ticket, "opened", opened, i))
            if i % 3:
                lines.append(self._ticket(ticket, "first_response", opened + (i % 4) * 20 * 3600, i))
            if i % 2:
                lines.append(self._ticket(ticket, "resolved", opened + 60 * 3600, i))
        self.ticket_log.write_text("".join(lines))
        self.access_log.write_text("")
        self._thread.start()

    def _ticket(self, ticket: int, event: str, when: float, i: int, **extra: object) -> str:
        record: dict[str, object] = {
            "id": f"T{ticket}",
            "event": event,
            "time": round(when, 3),
            "category": self.CATEGORIES[i % 3],
            "urgency": "urgent" if i % 2 else "general",
            "service": SERVICE,
            "channel": self.CHANNELS[i % 3],
            **extra,
        }
        return json.dumps(record) + "\n"

    def _access(self, i: int) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        status = 503 if i % 5 == 0 else 200
        duration = 0.4 if i % 7 == 0 else 0.02 + (i % 5) * 0.01
        return f'127.0.0.1 - - [{stamp}] "GET /item/{i} HTTP/1.1" {status} 512 "-" "curl/8" {duration:.3f}\n'

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.wait(0.2):
                return
            with self.access_log.open("a") as log:
                log.write(self._access(i))
            if i % 5 == 0:
                ticket = next(self._ids)
                now = time.time()
                with self.ticket_log.open("a") as log:
                    customer = f"c{ticket % 3}"  # the same customer, service and category every 3rd: repeats
                    log.write(self._ticket(ticket, "opened", now - 30, ticket, customer=customer))
                    log.write(self._ticket(ticket, "first_response", now - 5, ticket))
                    if ticket % 2:
                        log.write(self._ticket(ticket, "resolved", now, ticket))
                        log.write(self._ticket(ticket, "rated", now, ticket, rating=ticket % 11, scale=10))
                        log.write(self._ticket(ticket, "closed", now, ticket))

    def stop(self) -> None:
        """Stop appending."""
        self._stop.set()
        self._thread.join(timeout=5)


def write_config(workdir: Path, target: Target, access_log: Path, ticket_log: Path) -> Path:
    """The slaprobe config the stack runs: two services, a flow, TLS, logs, tickets, escalation."""
    base = f"http://127.0.0.1:{target.port}"
    hook = {"webhook_configs": [{"url": f"{base}/hooks/x", "send_resolved": True}]}
    config = {
        "version": "v1",
        "global": {
            "location": LOCATION,
            "interval": "1s",
            "timeout": "900ms",
            "probe_allow": ["127.0.0.0/8"],
            "phase_histograms": True,  # so the percentile panels are checked against data
        },
        "services": {
            SERVICE: {
                "tier": "critical",
                "owner": "web-team",
                "runbook": f"{base}/runbook",
                "sla": {"window": "30d", "availability": 99, "latency": {"threshold": "250ms", "target": 90}},
                "probes": [
                    {"name": "home", "http": {"url": f"{base}/flaky", "expect": {"status": [200]}}},
                    {
                        "name": "cert",
                        "tls": {
                            "address": f"127.0.0.1:{target.tls_port}",
                            "ca_file": str(target.ca),
                            "min_days_left": 14,
                        },
                    },
                    {"name": "ping", "icmp": {"host": "127.0.0.1", "packets": 2}},  # the loss and jitter panel
                    {
                        "name": "checkout",
                        "interval": "2s",
                        "timeout": "1500ms",
                        "flow": {
                            "steps": [
                                {
                                    "name": "login",
                                    "http": {"url": f"{base}/login", "method": "POST", "json": {"user": "u"}},
                                    "extract": {"token": {"json": "$.token"}},
                                    "expect": {"status": [200]},
                                },
                                {
                                    "name": "pay",
                                    "http": {"url": f"{base}/pay?t=${{token}}"},
                                    "expect": {"status": [200]},
                                },
                            ]
                        },
                    },
                ],
                "logs": [
                    {"name": "shop-access", "path": str(access_log), "format": "nginx_combined", "start": "beginning"}
                ],
            },
            OTHER_SERVICE: {
                "tier": "high",
                "owner": "payments",
                "sla": {"window": "7d", "availability": 99.9},
                "probes": [{"name": "api", "http": {"url": f"{base}/ok"}}],
            },
        },
        "feedback": [
            {"name": FEEDBACK_SOURCE, "path": str(ticket_log), "service": SERVICE, "quality_categories": ["technical"]}
        ],
        "escalation": {
            "P1": [{"after": "0m", "notify": "oncall"}, {"after": "3s", "notify": "lead"}],
            "P2": [{"after": "0m", "notify": "oncall"}],
            "P3": [{"after": "0m", "notify": "tickets"}],
            "P4": [{"after": "0m", "notify": "tickets"}],
        },
        "receivers": {"oncall": hook, "lead": hook, "tickets": hook},
        "alertmanager": {"url": base, "poll_interval": "1s", "webhook_auth": {"bearer_token": WEBHOOK_TOKEN}},
        "alerting": {"escalation_bridge": "10s"},
    }
    path = workdir / "slaprobe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def generate_rules(config: Path, out: Path) -> list[Path]:
    """The recording and alerting rules: ``slaprobe generate rules`` (its Python API while the CLI lacks it)."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "slaprobe", "generate", "rules", "--config", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        from slaprobe.alerts import RULES_FILE, render_rule_files

        (out / RULES_FILE).write_text(render_rule_files(load_config(config))[RULES_FILE])
    files = sorted(p for p in out.glob("*.y*ml") if "test" not in p.name and "prometheusrule" not in p.name)
    assert files, f"no rule file generated in {out}: {done.stderr}"
    return files


@dataclass
class Stack:
    """The running stack: where Prometheus answers and what it was set up with."""

    workdir: Path
    config: Path
    prometheus_url: str
    serve_url: str
    target: Target
    rule_files: list[Path]
    client: PrometheusClient
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def logs(self) -> str:
        """The last lines each subprocess wrote, for failure messages."""
        out = []
        for name in ("serve.log", "prometheus.log"):
            path = self.workdir / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(check: Callable[[], bool], timeout: float, what: str, stack: Stack | None = None) -> None:
    """Poll ``check`` until it holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ReportError, requests.RequestException, AssertionError, KeyError, IndexError):
            if check():
                return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{stack.logs() if stack else ''}")


@contextlib.contextmanager
def running_stack(workdir: Path, authority: Authority) -> Iterator[Stack]:
    """Start target, logs, ``slaprobe serve`` and Prometheus; stop them all afterwards."""
    assert PROMETHEUS, "prometheus is not installed (Debian package prometheus)"
    target = start_target(workdir, authority)
    writer = LogWriter(workdir / "access.log", workdir / "tickets.jsonl")
    writer.start()
    config = write_config(workdir, target, writer.access_log, writer.ticket_log)
    rule_files = generate_rules(config, workdir / "rules")
    serve_port, prom_port = free_port(), free_port()
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = workdir / "state"
    state.mkdir()
    command = ["serve", "--config", str(config), "--listen", f"127.0.0.1:{serve_port}", "--state-dir", str(state)]
    serve = _spawn(
        [sys.executable, "-m", "slaprobe", *command],
        workdir / "serve.log",
        env,
    )
    prometheus = _spawn(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        workdir / "prometheus.log",
    )
    url = f"http://127.0.0.1:{prom_port}"
    stack = Stack(
        workdir=workdir,
        config=config,
        prometheus_url=url,
        serve_url=f"http://127.0.0.1:{serve_port}",
        target=target,
        rule_files=rule_files,
        client=PrometheusClient(url),
        processes=[serve, prometheus],
    )
    try:
        yield stack
    finally:
        writer.stop()
        for process in stack.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in stack.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        target.stop()


def webhook(
    status: str, labels: dict[str, str], started: dt.datetime, ended: dt.datetime | None = None
) -> dict[str, Any]:
    """An Alertmanager webhook notification (version 4) of one alert."""
    iso = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "test incident"},
        "startsAt": iso(started),
        "endsAt": iso(ended) if ended else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"{abs(hash(tuple(sorted(labels.items())))):016x}"[:16],
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{service="{labels.get("service", "")}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "slaprobe-incidents",
        "groupLabels": {"service": labels.get("service", "")},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [alert],
    }
