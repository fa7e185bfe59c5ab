"""End to end: real Prometheus and Alertmanager escalate a failing loopback target, and stop on a silence.

slaprobe's app (``make_app`` plus the incident endpoints) probes a loopback HTTP target every
second; Prometheus scrapes it every second and evaluates the generated rules every second;
the generated Alertmanager config sends each level to its own loopback webhook sink. Delays
are scaled down: level 2 after 8 s, level 3 after 20 s. The target fails; level 1 reaches the
on-call sink, level 2 the team-lead sink after its delay; a silence on the level-1 alert
created through Alertmanager's API acknowledges the incident, which resolves level 2 and
keeps level 3 from ever firing; the silence expires, the target recovers, and the on-call
sink gets the resolved notification. The incident metrics count one acknowledgement and one
resolution. A blip pages level 1 only. An incident that recovers while its silence holds
closes all the same (Alertmanager sends no resolved notification of a silenced alert; the
exporter sees the alert gone in Alertmanager's API), with its time to resolve recorded, and
the team lead, whose level resolved at the acknowledgement, got that resolved notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from slaprobe import conventions as c
from slaprobe.alerts import generate_alertmanager, generate_rules
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import load_config
from slaprobe.exporter.app import make_app
from slaprobe.exporter.incidents import INCIDENTS_KEY, install_incidents
from slaprobe.exporter.runtime import Exporter, Sources
from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None, reason="needs Debian's prometheus and prometheus-alertmanager"
)

LEVEL_2_AFTER = 8.0
LEVEL_3_AFTER = 20.0
INCIDENTS_PATH = "/e2e/incidents"  # used only while make_app does not install the incident endpoints itself


@dataclass
class Notification:
    """One webhook call a sink received."""

    receiver: str
    at: float  # monotonic seconds
    status: str
    alerts: list[dict[str, Any]]

    def levels(self, status: str, alertname: str) -> set[str]:
        """Escalation levels of the alerts named ``alertname`` in this notification with ``status``."""
        return {
            a["labels"].get(c.LABEL_ESCALATION_LEVEL, "")
            for a in self.alerts
            if a["status"] == status and a["labels"].get(c.LABEL_ALERTNAME) == alertname
        }


@dataclass
class Sinks:
    """Loopback webhook receivers, one path per receiver."""

    received: list[Notification] = field(default_factory=list)

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            self.received.append(
                Notification(request.match_info["receiver"], time.monotonic(), body["status"], body["alerts"])
            )
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{receiver}", hook)
        return app

    def of(
        self, receiver: str, status: str = "firing", level: str | None = None, alertname: str = c.ALERT_PROBE_DOWN
    ) -> list[Notification]:
        """Notifications a receiver got with a ``status`` alert named ``alertname`` (at ``level``)."""
        return [
            n
            for n in self.received
            if n.receiver == receiver and (levels := n.levels(status, alertname)) and (level is None or level in levels)
        ]


class Target:
    """A loopback HTTP service that answers 200, or 503 while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def app(self) -> web.Application:
        async def home(_request: web.Request) -> web.Response:
            return web.Response(status=503 if self.failing else 200, text="Welcome")

        app = web.Application()
        app.router.add_get("/", home)
        return app


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def started(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def write_config(path: Path, target: int, sinks: int, alertmanager: int, exporter: int) -> None:
    receivers = {
        name: {"webhook_configs": [{"url": f"http://127.0.0.1:{sinks}/{name}"}]}
        for name in ("oncall", "team-lead", "duty-manager")
    }
    config = {
        "version": "v1",
        "global": {"interval": "1s", "timeout": "500ms", "location": "e2e"},
        "services": {
            "shop": {
                "tier": "critical",
                "owner": "web",
                # A 50% objective: no burn-rate pair can page (only the 3d/6h ticket), so the pages
                # this test follows are the probe-down alert's.
                "sla": {"availability": 50},
                "probes": [{"name": "home", "http": {"url": f"http://127.0.0.1:{target}/"}}],
            }
        },
        "escalation": {
            "P1": [
                {"after": "0s", "notify": "oncall"},
                {"after": f"{LEVEL_2_AFTER:g}s", "notify": "team-lead"},
                {"after": f"{LEVEL_3_AFTER:g}s", "notify": "duty-manager"},
            ]
        },
        "receivers": receivers,
        "alertmanager": {
            "url": f"http://127.0.0.1:{alertmanager}",
            "poll_interval": "500ms",
            "webhook_url": f"http://127.0.0.1:{exporter}/alertmanager/webhook",
            # written into the generated receiver's http_config: Alertmanager sends it, the webhook requires it
            "webhook_auth": {"bearer_token": "e2e-webhook-token"},
        },
        "alerting": {
            "probe_down_runs": 2,
            "escalation_bridge": "10s",  # above level 2's after: the old rule escalated blips then
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Target, Sinks, str, str, Exporter]]:
    """Target, sinks, slaprobe, Alertmanager and Prometheus on loopback; yields their handles and URLs."""
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    target, sinks = Target(), Sinks()
    target_server = TestServer(target.app(), host="127.0.0.1")
    sink_server = TestServer(sinks.app(), host="127.0.0.1")
    await target_server.start_server()
    await sink_server.start_server()
    am_port, prom_port, exporter_port = free_port(), free_port(), free_port()
    config = tmp_path / "slaprobe.yaml"
    write_config(config, target_server.port or 0, sink_server.port or 0, am_port, exporter_port)

    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful
    app = make_app(exporter)
    scrape_paths = ["/metrics"]
    if INCIDENTS_KEY not in app:  # not wired into make_app yet: mount the incident endpoints here
        incidents = install_incidents(app, exporter)

        async def incident_metrics(_request: web.Request) -> web.Response:
            return web.Response(text=incidents.render())

        app.router.add_get(INCIDENTS_PATH, incident_metrics)
        scrape_paths.append(INCIDENTS_PATH)
    exporter_server = TestServer(app, host="127.0.0.1", port=exporter_port)
    await exporter_server.start_server()

    cfg = load_config(config)
    (tmp_path / "rules.yaml").write_text(dump_yaml(generate_rules(cfg)))
    (tmp_path / "alertmanager.yaml").write_text(dump_yaml(generate_alertmanager(cfg)))
    prometheus_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [
            {
                "job_name": f"slaprobe{index}",
                "metrics_path": path,
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
            for index, path in enumerate(scrape_paths)
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config))
    am_args = [
        ALERTMANAGER,
        f"--config.file={tmp_path / 'alertmanager.yaml'}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",  # no gossip: notifications without waiting for peers to settle
    ]
    prom_args = [
        PROMETHEUS,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--rules.alert.resend-delay=1s",
    ]
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    try:
        with (
            started(am_args, tmp_path / "alertmanager.log") as am,
            started(prom_args, tmp_path / "prometheus.log") as prom,
        ):
            await wait_ready(f"{am_url}/-/ready", am, tmp_path / "alertmanager.log")
            await wait_ready(f"{prom_url}/-/ready", prom, tmp_path / "prometheus.log")
            yield target, sinks, am_url, prom_url, exporter
    finally:
        await exporter_server.close()
        await sink_server.close()
        await target_server.close()


async def query(session: aiohttp.ClientSession, prom_url: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{prom_url}/api/v1/query", params={"query": promql}) as response:
        body = await response.json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_levels_reach_their_receivers_on_time_and_a_silence_stops_the_next_level(
    stack: tuple[Target, Sinks, str, str, Exporter],
) -> None:
    target, sinks, am_url, prom_url, _ = stack
    async with aiohttp.ClientSession() as session:
        # Healthy first, so every series exists before the failure.
        runs = f'{c.PROBE_RUNS}{{service="shop"}} > 2'
        await until_async(lambda: query(session, prom_url, runs), 20, "probe runs in Prometheus")

        target.failing = True
        await until(lambda: sinks.of("oncall", level="1"), 20, "level 1 at the on-call sink")
        level_1 = sinks.of("oncall", level="1")[0]
        assert level_1.alerts[0]["labels"]["alertname"] == c.ALERT_PROBE_DOWN
        assert level_1.alerts[0]["labels"]["priority"] == "P1"
        assert not sinks.of("team-lead")

        await until(lambda: sinks.of("team-lead", level="2"), LEVEL_2_AFTER + 10, "level 2 at the team-lead sink")
        delay = sinks.of("team-lead", level="2")[0].at - level_1.at
        assert LEVEL_2_AFTER - 1.5 <= delay <= LEVEL_2_AFTER + 4, f"level 2 came {delay:.1f}s after level 1"

        # Acknowledge: silence the level-1 alert through Alertmanager's API.
        silence = {
            "matchers": [
                {"name": "alertname", "value": c.ALERT_PROBE_DOWN, "isRegex": False, "isEqual": True},
                {"name": "service", "value": "shop", "isRegex": False, "isEqual": True},
                {"name": "escalation_level", "value": "1", "isRegex": False, "isEqual": True},
            ],
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
            "createdBy": "e2e",
            "comment": "ACK: looking into it",
        }
        async with session.post(f"{am_url}/api/v2/silences", json=silence) as response:
            assert response.status == 200, await response.text()
            silence_id = (await response.json())["silenceID"]
        acknowledged = f'{c.ALERT_ACKNOWLEDGED}{{service="shop",alertname="{c.ALERT_PROBE_DOWN}"}} == 1'
        await until_async(lambda: query(session, prom_url, acknowledged), 10, "the acknowledgement in Prometheus")
        # Level 2 resolves at once; level 3 never fires.
        await until(lambda: sinks.of("team-lead", "resolved", level="2"), 15, "level 2 resolved")
        remaining = level_1.at + LEVEL_3_AFTER + 4 - time.monotonic()
        await asyncio.sleep(max(0.0, remaining))
        assert not sinks.of("duty-manager"), "level 3 fired although the incident was acknowledged"
        meta = f'ALERTS{{alertname="{c.ALERT_PROBE_DOWN}",escalation_level="3"}}'
        assert await query(session, prom_url, meta) == []

        # Done: the target recovers while acknowledged, then the silence expires. Nothing
        # escalates after level 1 has resolved, so the duty manager never hears of it; the
        # muted level 1 sends on-call no resolved notification (Alertmanager issue 226), and
        # the incident closes from the exporter's poll of Alertmanager's alerts instead.
        target.failing = False
        level_1_firing = f'ALERTS{{alertname="{c.ALERT_PROBE_DOWN}",alertstate="firing",escalation_level="1"}}'
        await until_async(lambda: nothing(query(session, prom_url, level_1_firing)), 20, "level 1 resolved")
        async with session.delete(f"{am_url}/api/v2/silence/{silence_id}") as response:
            assert response.status == 200
        await asyncio.sleep(4)  # a few evaluations and a group_wait after the silence ended
        assert not sinks.of("duty-manager"), "level 3 fired after recovery, when the silence ended"

        # Incident metrics: one acknowledged, one resolved, none open.
        await until_async(
            lambda: query(session, prom_url, f'{c.INCIDENT_TIME_TO_RESOLVE}_count{{priority="P1"}} >= 1'),
            15,
            "time to resolve in Prometheus",
        )
        tta = await query(session, prom_url, f'{c.INCIDENT_TIME_TO_ACKNOWLEDGE}_count{{priority="P1"}}')
        assert [float(r["value"][1]) for r in tta] == [1.0]
        opened = await query(session, prom_url, f'sum({c.INCIDENTS_OPEN}{{priority="P1"}})')
        assert float(opened[0]["value"][1]) == 0
    print(json.dumps([(n.receiver, n.status, round(n.at - level_1.at, 1)) for n in sinks.received]))


async def silence_level_1(session: aiohttp.ClientSession, am_url: str) -> str:
    """Acknowledge: a silence on the level-1 alert through Alertmanager's API; its id."""
    silence = {
        "matchers": [
            {"name": "alertname", "value": c.ALERT_PROBE_DOWN, "isRegex": False, "isEqual": True},
            {"name": "service", "value": "shop", "isRegex": False, "isEqual": True},
            {"name": "escalation_level", "value": "1", "isRegex": False, "isEqual": True},
        ],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
        "createdBy": "e2e",
        "comment": "ACK: looking into it",
    }
    async with session.post(f"{am_url}/api/v2/silences", json=silence) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["silenceID"])


async def test_a_blip_pages_level_1_only(stack: tuple[Target, Sinks, str, str, Exporter]) -> None:
    target, sinks, _, prom_url, _ = stack
    async with aiohttp.ClientSession() as session:
        runs = f'{c.PROBE_RUNS}{{service="shop"}} > 2'
        await until_async(lambda: query(session, prom_url, runs), 20, "probe runs in Prometheus")
        target.failing = True
        firing = f'ALERTS{{alertname="{c.ALERT_PROBE_DOWN}",alertstate="firing",escalation_level="1"}}'
        await until_async(lambda: query(session, prom_url, firing), 20, "level 1 firing in Prometheus")
        # Held until on-call is paged: Alertmanager sends nothing for an alert that resolves
        # before its group is first flushed, so a shorter blip may page nobody at all.
        await until(lambda: sinks.of("oncall", level="1"), LEVEL_2_AFTER / 2, "level 1 at the on-call sink")
        target.failing = False  # a blip: level 1 fired a few seconds, below level 2's 8 s
        blip_over = time.monotonic()
        await until(lambda: sinks.of("oncall", "resolved", level="1"), 30, "level 1 resolved at the on-call sink")
        # Long enough for level 2 and level 3 under the old rule (the bridge kept them true after recovery).
        await asyncio.sleep(max(0.0, blip_over + LEVEL_3_AFTER + 5 - time.monotonic()))
        assert not sinks.of("team-lead"), "a blip escalated to the team lead"
        assert not sinks.of("duty-manager"), "a blip escalated to the duty manager"


async def test_an_incident_that_recovers_under_its_silence_closes_with_its_time_to_resolve(
    stack: tuple[Target, Sinks, str, str, Exporter],
) -> None:
    target, sinks, am_url, prom_url, _ = stack
    async with aiohttp.ClientSession() as session:
        runs = f'{c.PROBE_RUNS}{{service="shop"}} > 2'
        await until_async(lambda: query(session, prom_url, runs), 20, "probe runs in Prometheus")
        target.failing = True
        await until(lambda: sinks.of("team-lead", level="2"), LEVEL_2_AFTER + 30, "level 2 at the team-lead sink")
        await silence_level_1(session, am_url)
        await until(lambda: sinks.of("team-lead", "resolved", level="2"), 15, "level 2 resolved at the team lead")
        open_incidents = f'sum({c.INCIDENTS_OPEN}{{priority="P1"}}) == 1'
        await until_async(lambda: query(session, prom_url, open_incidents), 15, "one open incident")

        target.failing = False  # recovers while the silence holds: Alertmanager sends no resolved notification
        closed = f'sum({c.INCIDENTS_OPEN}{{priority="P1"}}) == 0 and on() {c.INCIDENT_TIME_TO_RESOLVE}_count >= 1'
        await until_async(lambda: query(session, prom_url, closed), 30, "the incident closed, time to resolve recorded")
        assert not sinks.of("duty-manager")
    print(json.dumps([(n.receiver, n.status) for n in sinks.received]))


async def nothing(pending: Awaitable[list[dict[str, Any]]]) -> bool:
    """Whether a query's answer is empty (no series)."""
    return not await pending


async def until_async(probe: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll an async check (a coroutine function returning something truthy) until it holds."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
