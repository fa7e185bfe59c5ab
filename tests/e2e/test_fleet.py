"""End to end: a fleet of 2 locations x 3 shards gives the alerts and SLIs of one unsharded prober per location.

Six real ``slaprobe serve`` processes (``--shard i/3`` in ``dc-a`` and ``dc-b``) probe a loopback
target every second; one real Prometheus scrapes all six every second with the generated rules.
Beside them, the reference: one unsharded ``serve`` per location, scraped by a second
Prometheus with the same rules. The target answers per location, so a failure can be seen
from one location only. In order:

1. a shard is killed: "prober shard down" fires, and no page nor probe-down alert;
2. every probe fails in ``dc-a`` only: probe-down tickets, no page, as the reference says;
3. every probe fails in both: probe-down pages and their level 2, as the reference says;
4. everything recovers; each location is re-sharded from 3 shards to 2 (stop three, start two);
5. no shard is down and no probe lacks data after the re-shard, and the run counts and error
   ratios (rates and exact counts) of the fleet are those of the reference: nothing counted
   twice, nothing lost but the runs no process made while the fleet was restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
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
from slaprobe import sli
from slaprobe.alerts import generate_rules
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import load_config
from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus")

LOCATIONS = ("dc-a", "dc-b")
SHOP_PROBES = ("home", "cart", "search", "login", "pay", "track")
API_PROBES = ("v1", "v2", "auth", "feed")
LEVEL_2_AFTER = 8  # seconds
NO_DATA_FOR = 5  # seconds: "prober shard down" and no-data alerts wait this long
# A 90% objective: no burn-rate pair can page (14.4 x 10% > 1), so the pages are the probe-down
# alerts' (the burn-rate pages' quorum is tested by promtool in tests/alerts/test_quorum.py), and
# a probe that times out now and then on a busy runner burns no page.
SLA = {"availability": 90}
DEADLINE = 60.0  # seconds to wait for any one state of the fleet
STARTUP = 180.0  # seconds for 8 Python processes and 2 Prometheus servers to start on a busy CI runner


class Target:
    """A loopback HTTP service answering ``/<location>/<probe>``: 503 from the failing locations."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            down = request.match_info["location"] in self.failing
            return web.Response(status=503 if down else 200, text="ok")

        app = web.Application()
        app.router.add_get("/{location}/{probe}", answer)
        return app


def fleet_config(location: str, target: int) -> dict[str, Any]:
    """One location's config: the same services and rules everywhere, its own URLs."""

    def probes(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"name": n, "http": {"url": f"http://127.0.0.1:{target}/{location}/{n}"}} for n in names]

    return {
        "version": "v1",
        "global": {"interval": "1s", "timeout": "900ms", "location": location},
        "services": {
            "shop": {"tier": "critical", "quorum": 2, "sla": SLA, "probes": probes(SHOP_PROBES)},
            "api": {"tier": "critical", "quorum": "60%", "sla": SLA, "probes": probes(API_PROBES)},
        },
        "escalation": {
            "P1": [{"after": "0s", "notify": "oncall"}, {"after": f"{LEVEL_2_AFTER}s", "notify": "team-lead"}],
            "P3": [{"after": "0s", "notify": "tickets"}],
        },
        "receivers": {
            name: {"webhook_configs": [{"url": "http://127.0.0.1:9/"}]} for name in ("oncall", "team-lead", "tickets")
        },
        "alerting": {"probe_down_runs": 3, "no_data_for": f"{NO_DATA_FOR}s", "escalation_bridge": "4s"},
    }


@dataclass
class Prober:
    """One ``slaprobe serve`` process."""

    location: str
    shard: str  # "i/N", or "" for the unsharded reference
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


_SAMPLE = re.compile(
    r"^(slaprobe_probe_runs_total|slaprobe_probe_first_attempt_failures_total)\{([^}]*)\} (\S+)$", re.M
)
_SERVICE = re.compile(r'service="([^"]*)"')
Counts = Counter[tuple[str, str, str]]  # (metric, service, location) -> runs or failures


async def own_counts(session: aiohttp.ClientSession, prober: Prober) -> Counts:
    """What one prober counted itself, from its /metrics: runs and first-attempt failures by service."""
    async with session.get(f"http://{prober.address}/metrics") as response:
        text = await response.text()
    counts: Counts = Counter()
    for metric, labels, value in _SAMPLE.findall(text):
        service = _SERVICE.search(labels)
        assert service is not None
        counts[(metric, service.group(1), prober.location)] += int(float(value))
    return counts


@dataclass
class Fleet:
    """The processes of the simulation and the two Prometheus servers that read them."""

    tmp: Path
    target: Target
    configs: dict[str, Path]
    fleet_url: str
    reference_url: str
    probers: list[Prober] = field(default_factory=list)
    retired: Counts = field(default_factory=Counter)  # what the stopped shards had counted

    def start(self, location: str, shard: str = "") -> Prober:
        port = free_port()
        name = f"{location}-{shard.replace('/', 'of') or 'reference'}"
        log = self.tmp / f"{name}.log"
        args = [sys.executable, "-m", "slaprobe", "serve", f"--config={self.configs[location]}"]
        args += [f"--listen=127.0.0.1:{port}"] + ([f"--shard={shard}"] if shard else [])
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        prober = Prober(location, shard, port, process, log)
        self.probers.append(prober)
        return prober

    def stop(self, prober: Prober, sig: int = signal.SIGTERM) -> None:
        if prober.process.poll() is None:
            prober.process.send_signal(sig)
            try:
                prober.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prober.process.kill()
                prober.process.wait()
        self.probers.remove(prober)

    async def retire(self, session: aiohttp.ClientSession, prober: Prober, sig: int = signal.SIGTERM) -> None:
        """Stop a shard, keeping what it counted (read just before: it may count one more run meanwhile)."""
        self.retired += await own_counts(session, prober)
        self.stop(prober, sig)

    async def counted(self, session: aiohttp.ClientSession) -> Counts:
        """Everything the shards counted, stopped and running."""
        total = Counter(self.retired)
        for prober in self.probers:
            if prober.shard:
                total += await own_counts(session, prober)
        return total

    def sharded(self, location: str) -> list[Prober]:
        return [p for p in self.probers if p.location == location and p.shard]

    def write_scrape_configs(self) -> None:
        """Each Prometheus reads its targets from a file it re-reads: the fleet's shards, the references."""
        for name, sharded in (("fleet", True), ("reference", False)):
            groups = [
                {"targets": [p.address], "labels": {"pod": f"{p.location}-{p.shard or 'reference'}"}}
                for p in self.probers
                if bool(p.shard) == sharded
            ]
            path = self.tmp / f"{name}-targets.yaml"
            path.with_suffix(".tmp").write_text(yaml.safe_dump(groups))
            path.with_suffix(".tmp").replace(path)


def prometheus_config(targets: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {"job_name": "slaprobe", "file_sd_configs": [{"files": [targets], "refresh_interval": "1s"}]}
        ],
    }


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


async def ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers 200 (Prometheus has loaded its rules)."""
    deadline = time.monotonic() + STARTUP
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not ready: {log.read_text()[-2000:]}")


async def until(check: Callable[[], Awaitable[object]], what: str, fleet: Fleet, timeout: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` (with the probers' logs)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        for prober in fleet.probers:
            if prober.process.poll() is not None:
                raise AssertionError(f"{prober.log.name} exited: {prober.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.25)


async def query(session: aiohttp.ClientSession, url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
    async with session.get(f"{url}/api/v1/query", params=params) as response:
        body = await response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


Alert = tuple[str, str, str, str, str]  # alertname, service, probe, severity, escalation level
BOOKKEEPING = (c.ALERT_SHARD_DOWN, c.ALERT_PROBE_NO_DATA)  # about the probers, compared on their own


async def firing(session: aiohttp.ClientSession, url: str) -> set[Alert]:
    """The firing alerts about the services (not about the probers themselves)."""
    result = await query(session, url, f'{c.ALERTS_SERIES}{{alertstate="firing"}}')
    return {
        (
            m["alertname"],
            m.get(c.LABEL_SERVICE, ""),
            m.get(c.LABEL_PROBE, ""),
            m.get(c.LABEL_SEVERITY, ""),
            m.get(c.LABEL_ESCALATION_LEVEL, ""),
        )
        for m in (r["metric"] for r in result)
        if m["alertname"] not in BOOKKEEPING
    }


def probe_down(severity: str, level: str = "1") -> set[Alert]:
    """A probe-down alert of every probe of both services."""
    every = [("shop", p) for p in SHOP_PROBES] + [("api", p) for p in API_PROBES]
    return {(c.ALERT_PROBE_DOWN, s, p, severity, level) for s, p in every}


def pages(alerts: set[Alert]) -> set[Alert]:
    return {a for a in alerts if a[3] == c.SEVERITY_PAGE}


def of(alerts: set[Alert], name: str) -> set[Alert]:
    return {a for a in alerts if a[0] == name}


async def values(
    session: aiohttp.ClientSession, url: str, promql: str, *labels: str, at: float | None = None
) -> dict[tuple[str, ...], float]:
    result = await query(session, url, promql, at)
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """The target, 2 x 3 shards and 2 references, and both Prometheus servers, all on loopback."""
    assert PROMETHEUS is not None
    target = Target()
    server = TestServer(target.app(), host="127.0.0.1")
    await server.start_server()
    configs = {}
    for location in LOCATIONS:
        configs[location] = tmp_path / f"{location}.yaml"
        configs[location].write_text(yaml.safe_dump(fleet_config(location, server.port or 0), sort_keys=False))
    generated = {dump_yaml(generate_rules(load_config(path))) for path in configs.values()}
    assert len(generated) == 1, "the rules do not depend on the location"
    rules = generated.pop()
    ports = {"fleet": free_port(), "reference": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    fleet = Fleet(tmp_path, target, configs, urls["fleet"], urls["reference"])
    for location in LOCATIONS:
        fleet.start(location)
        for index in range(3):
            fleet.start(location, f"{index}/3")
    fleet.write_scrape_configs()
    try:
        with contextlib.ExitStack() as stack:
            for name, port in ports.items():
                home = tmp_path / name
                home.mkdir()
                (home / "rules.yaml").write_text(rules)
                targets = str(tmp_path / f"{name}-targets.yaml")
                (home / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(targets)))
                args = [
                    PROMETHEUS,
                    f"--config.file={home / 'prometheus.yml'}",
                    f"--storage.tsdb.path={home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ]
                log = tmp_path / f"prometheus-{name}.log"
                await ready(f"http://127.0.0.1:{port}/-/ready", stack.enter_context(started(args, log)), log)
            yield fleet
    finally:
        for prober in list(fleet.probers):
            fleet.stop(prober)
        await server.close()


async def test_two_locations_of_three_shards_alert_and_count_as_one_prober_per_location(fleet: Fleet) -> None:
    started_at = time.monotonic()
    fleet_url, reference_url = fleet.fleet_url, fleet.reference_url
    both = (fleet_url, reference_url)
    async with aiohttp.ClientSession() as session:
        # Every prober scraped, every probe run a few times, in both.
        everyone = f"count(count by (service, probe, location) ({c.PROBE_RUNS} > 2))"
        n_probes = len(LOCATIONS) * (len(SHOP_PROBES) + len(API_PROBES))
        for url in both:

            async def all_running(url: str = url) -> bool:
                return [r["value"][1] for r in await query(session, url, everyone)] == [str(n_probes)]

            await until(all_running, f"every probe running, seen by {url}", fleet, STARTUP)
        all_up = time.time()  # Prometheus' clock: the wall clock
        shards = await values(session, fleet_url, c.SHARD_INFO, c.LABEL_LOCATION, c.LABEL_SHARD, c.LABEL_SHARDS)
        assert sorted(shards) == [(loc, str(i), "3") for loc in LOCATIONS for i in range(3)]

        # 1. One shard killed: its own alert, and no outage.
        killed = fleet.sharded("dc-b")[1]
        await fleet.retire(session, killed, signal.SIGKILL)
        shard_down = f'{c.ALERTS_SERIES}{{alertname="{c.ALERT_SHARD_DOWN}", alertstate="firing"}}'

        async def shard_is_down() -> list[tuple[str, ...]]:
            found = await values(session, fleet_url, shard_down, c.LABEL_LOCATION, c.LABEL_SHARD, c.LABEL_SHARDS)
            return sorted(found)

        assert await until(shard_is_down, "prober shard down", fleet) == [("dc-b", "1", "3")]
        for url in both:
            assert not await firing(session, url), f"{url}: a dead shard is not an outage"
        fleet.start("dc-b", "1/3")
        fleet.write_scrape_configs()

        async def shard_is_back() -> bool:
            return not await shard_is_down()

        await until(shard_is_back, "prober shard down resolved", fleet)

        # 2. Every probe fails in dc-a only: tickets, no page, in the fleet as in the reference.
        fleet.target.failing = {"dc-a"}
        tickets = probe_down(c.SEVERITY_TICKET)
        for url in both:

            async def ticketed(url: str = url) -> bool:
                return of(await firing(session, url), c.ALERT_PROBE_DOWN) == tickets

            await until(ticketed, f"probe-down tickets at {url}", fleet)
        for url in both:
            assert not pages(await firing(session, url)), f"{url}: one location failing pages"

        # 3. Every probe fails in both locations: pages, and level 2 after its delay.
        fleet.target.failing = set(LOCATIONS)
        paged = probe_down(c.SEVERITY_PAGE) | probe_down(c.SEVERITY_PAGE, "2")
        for url in both:

            async def escalated(url: str = url) -> bool:
                return paged <= of(await firing(session, url), c.ALERT_PROBE_DOWN)

            await until(escalated, f"probe-down pages at level 2 at {url}", fleet)
        # 4. Recovery, then the re-shard from 3 to 2 in each location.
        fleet.target.failing = set()
        for url in both:

            async def recovered(url: str = url) -> bool:
                return not of(await firing(session, url), c.ALERT_PROBE_DOWN)

            await until(recovered, f"probes recovered at {url}", fleet)
        before_reshard = time.time()
        for location in LOCATIONS:
            for prober in fleet.sharded(location):
                await fleet.retire(session, prober)
            for index in range(2):
                fleet.start(location, f"{index}/2")
        fleet.write_scrape_configs()
        reshard = f'{c.SHARD_INFO}{{shards="2"}}'

        async def resharded() -> bool:
            return len(await query(session, fleet_url, reshard)) == 2 * len(LOCATIONS)

        await until(resharded, "the two new shards of each location scraped", fleet, STARTUP)
        # Every probe has run in the new shards for longer than the alerts wait.
        await asyncio.sleep(2 * NO_DATA_FOR)

        # 5. No shard down, no probe without data: the old shards retired, the probes moved.
        bookkeeping = f'{c.ALERTS_SERIES}{{alertname=~"{c.ALERT_SHARD_DOWN}|{c.ALERT_PROBE_NO_DATA}"}}'
        assert await query(session, fleet_url, bookkeeping) == []

        # The SLIs count what the shards ran, neither twice nor less: the exact counts of the SLA
        # window against the shards' own counters (a shard may run once more between its last
        # scrape and its stop, or its /metrics read: at most a few runs per probe and stop).
        counted = await fleet.counted(session)
        seen_counts: dict[str, dict[tuple[str, ...], float]] = {}
        whole = f"{int(time.monotonic() - started_at) + 60}s"
        labels = [c.LABEL_SERVICE, c.LABEL_LOCATION]
        for metric, events in (
            (c.PROBE_RUNS, sli.Events(c.PROBE_RUNS)),
            (c.PROBE_FIRST_ATTEMPT_FAILURES, sli.Events(c.PROBE_FIRST_ATTEMPT_FAILURES)),
        ):
            seen = await values(session, fleet_url, events.count(whole, ('service=~".+"',), labels), *labels)
            seen_counts[metric] = seen
            for (service, location), value in seen.items():
                probes = len(SHOP_PROBES if service == "shop" else API_PROBES)
                own = counted[(metric, service, location)]
                assert own - 3 * 3 * probes <= value <= own, (metric, service, location, value, own)
            assert sorted(seen) == [(s, loc) for s in ("api", "shop") for loc in LOCATIONS], (metric, seen)
        recorded = f'{c.slo_sli_error("30d")}{{sloth_slo="{c.SLO_AVAILABILITY}"}}'
        fleet_ratio = await values(session, fleet_url, recorded, c.LABEL_SERVICE)
        for (service,), ratio in fleet_ratio.items():
            runs = sum(n for (m, s, _), n in counted.items() if m == c.PROBE_RUNS and s == service)
            failed = sum(n for (m, s, _), n in counted.items() if m == c.PROBE_FIRST_ATTEMPT_FAILURES and s == service)
            # within the few runs per probe a stopped shard made after its last scrape
            assert abs(ratio - failed / runs) <= 0.02, (service, ratio, failed, runs)
        # And the reference, one unsharded prober per location, saw the same error ratios from
        # when every prober ran until the re-shard (while the fleet restarts, only the reference
        # measures; the fleet also lost the killed shard's runs until it was back).
        since = f"{int(before_reshard - all_up)}s"
        ratios = {}
        for url in both:
            indicator = sli.availability()
            assert indicator.bad is not None
            failures = indicator.bad.count(since, ('service=~".+"',), ["service"])
            total = indicator.total.count(since, ('service=~".+"',), ["service"])
            ratios[url] = await values(session, url, f"({failures}) / ({total})", c.LABEL_SERVICE, at=before_reshard)
        assert sorted(ratios[fleet_url]) == sorted(ratios[reference_url]) == [("api",), ("shop",)]
        for key, reference in ratios[reference_url].items():
            assert 0 < reference < 1
            assert abs(ratios[fleet_url][key] - reference) <= 0.05, (key, ratios[fleet_url][key], reference)
    print(f"fleet simulation: {time.monotonic() - started_at:.0f}s; error ratios (fleet, reference) {ratios}")
    print(f"30d error ratio recorded {fleet_ratio}; runs and failures the shards counted {dict(counted)}")
    print(f"seen by the SLIs: {seen_counts}")
