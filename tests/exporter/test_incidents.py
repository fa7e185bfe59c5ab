"""Acknowledgements from Alertmanager silences and incident metrics from its webhook."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from slaprobe import conventions as c
from slaprobe.exporter import incidents as incidents_module
from slaprobe.exporter.app import make_app
from slaprobe.exporter.incidents import (
    INCIDENT_BUCKETS,
    INCIDENTS_KEY,
    MAX_FINGERPRINTS,
    STATE_FILE,
    Incidents,
    StateSaver,
    acknowledgements,
    active_level_1,
    install_incidents,
    load_state,
    parse_time,
    save_state,
)
from slaprobe.exporter.runtime import Exporter, Sources

T0 = 1_700_000_000.0
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def iso(seconds: float) -> str:
    """Alertmanager's time format, with nanoseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1e9):09d}Z"


def alert(
    status: str, level: int = 1, *, service: str = "shop", name: str = "SLAProbeDown", start: float = T0, end=None
) -> dict[str, Any]:
    labels = {"alertname": name, "service": service, "priority": "P1", "escalation_level": str(level)}
    return {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": iso(start),
        "endsAt": iso(end) if end else "0001-01-01T00:00:00Z",
        "fingerprint": f"{service}-{name}-{level}",
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text, by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_times_from_alertmanager_parse_with_nanoseconds_and_year_one_means_none() -> None:
    assert parse_time("2023-11-14T22:13:20.123456789Z") == pytest.approx(T0 + 0.123456, abs=1e-6)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("garbage") is None


def test_a_silence_with_service_and_alertname_matchers_acknowledges_that_pair() -> None:
    silences = [
        {
            "id": "a",
            "status": {"state": "active"},
            "startsAt": iso(T0),
            "matchers": [
                {"name": "alertname", "value": "SLAProbeDown", "isRegex": False, "isEqual": True},
                {"name": "service", "value": "shop", "isRegex": False},
            ],
        },
        {
            "id": "old",
            "status": {"state": "expired"},
            "startsAt": iso(T0),
            "matchers": [{"name": "alertname", "value": "X"}, {"name": "service", "value": "y"}],
        },
        {
            "id": "re",
            "status": {"state": "active"},
            "startsAt": iso(T0 + 5),
            "matchers": [{"name": "alertname", "value": "SLA.*", "isRegex": True}, {"name": "service", "value": "db"}],
        },
    ]
    assert acknowledgements(silences, []) == {("shop", "SLAProbeDown"): T0}


def test_a_silence_of_any_shape_acknowledges_the_alerts_it_silences() -> None:
    silences = [{"id": "re", "status": {"state": "active"}, "startsAt": iso(T0 + 5), "matchers": []}]
    alerts = [
        {"labels": {"alertname": "SLAErrorBudgetBurn", "service": "db"}, "status": {"silencedBy": ["re"]}},
        {"labels": {"alertname": "SLAProbeDown", "service": "db"}, "status": {"silencedBy": []}},
        {"labels": {"alertname": "Other"}, "status": {"silencedBy": ["re"]}},
    ]
    assert acknowledgements(silences, alerts) == {("db", "SLAErrorBudgetBurn"): T0 + 5}


def test_an_incident_records_its_level_time_to_acknowledge_and_time_to_resolve() -> None:
    clock = Clock()
    incidents = Incidents(clock=clock)
    incidents.configure({"P1": 3})
    incidents.receive({"alerts": [alert("firing")]})
    got = samples(incidents.render())
    assert got[(c.INCIDENTS_OPEN, (("escalation_level", "1"), ("priority", "P1")))] == 1
    assert got[(c.INCIDENTS_OPEN, (("escalation_level", "3"), ("priority", "P1")))] == 0

    clock.now = T0 + 900
    incidents.receive({"alerts": [alert("firing", 2, start=T0 + 900)]})
    got = samples(incidents.render())
    assert got[(c.INCIDENTS_OPEN, (("escalation_level", "1"), ("priority", "P1")))] == 0
    assert got[(c.INCIDENTS_OPEN, (("escalation_level", "2"), ("priority", "P1")))] == 1

    clock.now = T0 + 1000
    incidents.set_acknowledged({("shop", "SLAProbeDown"): T0 + 950})
    incidents.set_acknowledged({("shop", "SLAProbeDown"): T0 + 950})  # counted once
    got = samples(incidents.render())
    assert got[(c.ALERT_ACKNOWLEDGED, (("alertname", "SLAProbeDown"), ("service", "shop")))] == 1
    tta = c.INCIDENT_TIME_TO_ACKNOWLEDGE
    assert got[(f"{tta}_count", (("priority", "P1"),))] == 1
    assert got[(f"{tta}_sum", (("priority", "P1"),))] == 950
    assert got[(f"{tta}_bucket", (("le", "900"), ("priority", "P1")))] == 0
    assert got[(f"{tta}_bucket", (("le", "1800"), ("priority", "P1")))] == 1

    # The acknowledgement resolves level 2; the incident stays open until level 1 resolves.
    incidents.receive({"alerts": [alert("resolved", 2, start=T0 + 900, end=T0 + 1005)]})
    assert samples(incidents.render())[(c.INCIDENTS_OPEN, (("escalation_level", "2"), ("priority", "P1")))] == 1
    incidents.receive({"alerts": [alert("resolved", 1, end=T0 + 3600)]})
    got = samples(incidents.render())
    assert got[(c.INCIDENTS_OPEN, (("escalation_level", "2"), ("priority", "P1")))] == 0
    ttr = c.INCIDENT_TIME_TO_RESOLVE
    assert got[(f"{ttr}_count", (("priority", "P1"),))] == 1
    assert got[(f"{ttr}_sum", (("priority", "P1"),))] == 3600
    assert got[(c.ALERTMANAGER_NOTIFICATIONS, (("status", "firing"),))] == 2
    assert got[(c.ALERTMANAGER_NOTIFICATIONS, (("status", "resolved"),))] == 2


def test_an_incident_that_opens_already_acknowledged_takes_zero_seconds_to_acknowledge() -> None:
    incidents = Incidents(clock=Clock())
    incidents.set_acknowledged({("shop", "SLAProbeDown"): T0 - 600})
    incidents.receive({"alerts": [alert("firing")]})
    got = samples(incidents.render())
    assert got[(f"{c.INCIDENT_TIME_TO_ACKNOWLEDGE}_sum", (("priority", "P1"),))] == 0
    assert got[(f"{c.INCIDENT_TIME_TO_ACKNOWLEDGE}_count", (("priority", "P1"),))] == 1


def test_repeated_notifications_from_several_receivers_count_one_incident() -> None:
    incidents = Incidents(clock=Clock())
    for _ in range(3):
        incidents.receive({"alerts": [alert("firing"), alert("firing", name="SLAErrorBudgetBurn")]})
    assert len(incidents.open) == 2
    incidents.receive({"alerts": [alert("resolved", end=T0 + 60)]})
    incidents.receive({"alerts": [alert("resolved", end=T0 + 60)]})  # again: ignored
    got = samples(incidents.render())
    assert got[(f"{c.INCIDENT_TIME_TO_RESOLVE}_count", (("priority", "P1"),))] == 1


def test_alerts_without_service_or_alertname_and_unknown_resolutions_are_ignored() -> None:
    incidents = Incidents(clock=Clock())
    assert incidents.receive({"alerts": [{"status": "firing", "labels": {"alertname": "Watchdog"}}, "junk"]}) == 0
    incidents.receive({"alerts": [alert("resolved", end=T0)]})
    assert incidents.open == {}
    text = incidents.render()
    assert c.INCIDENTS_OPEN not in text
    assert c.INCIDENT_TIME_TO_RESOLVE not in text
    with pytest.raises(ValueError):
        incidents.receive({"version": "4"})


def test_the_rendered_text_has_every_bucket_of_the_histograms() -> None:
    incidents = Incidents(clock=Clock())
    incidents.configure({"P2": 2})
    text = incidents.render()
    buckets = [line for line in text.splitlines() if line.startswith(f"{c.INCIDENT_TIME_TO_RESOLVE}_bucket")]
    assert len(buckets) == len(INCIDENT_BUCKETS) + 1
    assert 'le="+Inf"' in buckets[-1]


# ---------------------------------------------------------------------------- web and polling


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class FakeAlertmanager:
    """Serves /api/v2/silences and /api/v2/alerts from lists a test changes."""

    def __init__(self) -> None:
        self.silences: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.fail = False
        self.polls = 0

    def app(self) -> web.Application:
        async def silences(_request: web.Request) -> web.Response:
            self.polls += 1
            if self.fail:
                return web.Response(status=503)
            return web.json_response(self.silences)

        async def alerts(_request: web.Request) -> web.Response:
            return web.json_response(self.alerts)

        app = web.Application()
        app.router.add_get("/api/v2/silences", silences)
        app.router.add_get("/api/v2/alerts", alerts)
        return app


@pytest.fixture
async def alertmanager() -> AsyncIterator[tuple[FakeAlertmanager, str]]:
    fake = FakeAlertmanager()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}"
    await server.close()


def incidents_config(url: str, auth: str = f"{{bearer_token: {TOKEN}}}") -> str:
    """A config with one P1 service, two levels and an Alertmanager polled every 100 ms."""
    return (
        "version: v1\n"
        "services: {shop: {tier: critical}}\n"
        "escalation: {P1: [{after: 0m, notify: oncall}, {after: 15m, notify: lead}]}\n"
        "receivers: {oncall: {}, lead: {}}\n"
        f"alertmanager: {{url: '{url}', poll_interval: 100ms" + (f", webhook_auth: {auth}" if auth else "") + "}\n"
    )


async def started_client(config: Path, state_dir: Path | None = None, *, whole_app: bool = False) -> TestClient:
    """The webhook and the poller alone, or (``whole_app``) within serve's whole app, /metrics included."""
    exporter = Exporter(Sources(config=str(config)), state_dir=str(state_dir) if state_dir else None)
    assert exporter.reload().successful
    if whole_app:
        app = make_app(exporter)
    else:
        app = web.Application()
        install_incidents(app, exporter)
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    return test_client


@pytest.fixture
async def client(tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]) -> AsyncIterator[TestClient]:
    _, url = alertmanager
    config = tmp_path / "slaprobe.yaml"
    config.write_text(incidents_config(url))
    test_client = await started_client(config, tmp_path / "state")
    yield test_client
    await test_client.close()


async def test_the_poller_exports_acknowledgements_and_keeps_them_while_alertmanager_is_unreachable(
    client: TestClient, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, _ = alertmanager
    incidents = client.app[INCIDENTS_KEY]
    fake.silences = [
        {
            "id": "s1",
            "status": {"state": "active"},
            "startsAt": iso(T0),
            "matchers": [{"name": "service", "value": "shop"}, {"name": "alertname", "value": "SLAProbeDown"}],
        }
    ]
    await until(lambda: incidents.acknowledged)
    assert incidents.poll_successful is True
    assert 'slaprobe_alert_acknowledged{service="shop",alertname="SLAProbeDown"} 1' in incidents.render()
    fake.fail = True
    polls = fake.polls
    await until(lambda: fake.polls > polls + 1)
    assert incidents.poll_successful is False
    assert incidents.acknowledged  # kept: an unreachable Alertmanager is no reason to escalate
    assert f"{c.ALERTMANAGER_POLL_SUCCESS} 0" in incidents.render()
    fake.fail = False
    fake.silences = []
    await until(lambda: not incidents.acknowledged)


async def post(client: TestClient, body: object, headers: dict[str, str] | None = None) -> int:
    data = body if isinstance(body, str) else json.dumps(body)
    response = await client.post("/alertmanager/webhook", data=data, headers=AUTH if headers is None else headers)
    return response.status


async def test_the_webhook_takes_authenticated_notifications_and_refuses_anything_else(
    client: TestClient, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    alertmanager[0].alerts = [{"labels": alert("firing")["labels"], "status": {}}]  # held: the poll keeps it open
    incidents = client.app[INCIDENTS_KEY]
    assert await post(client, {"version": "4", "alerts": [alert("firing")]}) == 200
    assert ("shop", "SLAProbeDown") in incidents.open
    forged = {"version": "4", "alerts": [alert("resolved", end=T0 + 1)]}
    refusals = [
        (forged, {"Content-Type": "application/json"}, 401),
        (forged, {**AUTH, "Authorization": "Bearer wrong"}, 401),
        (forged, {**AUTH, "Authorization": f"Basic {TOKEN}"}, 401),
        (forged, {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}, 415),
        (forged, {**AUTH, "Content-Type": "text/plain"}, 415),
        (forged, {**AUTH, "Origin": "https://evil.example"}, 403),
        (forged, {**AUTH, "Sec-Fetch-Site": "cross-site"}, 403),
        ("{not json", AUTH, 400),
        ([1, 2], AUTH, 400),
        ("[" * 100_000 + "]" * 100_000, AUTH, 400),  # deeper than json's recursion limit: 400, not a 500
        ({"alerts": [{**alert("firing"), "labels": {**alert("firing")["labels"], "priority": "P9"}}]}, AUTH, 422),
        ({"alerts": [alert("firing", service="nosuch")]}, AUTH, 422),
        ({"alerts": [alert("firing", 3)]}, AUTH, 422),  # P1 has two levels
        ({"alerts": [{**alert("firing"), "labels": {**alert("firing")["labels"], "x": "y" * 2000}}]}, AUTH, 422),
        ({"alerts": [{**alert("firing"), "status": "weird"}]}, AUTH, 422),
        ({"alerts": [{**alert("firing"), "labels": {**alert("firing")["labels"], "priority": "\udcff"}}]}, AUTH, 422),
    ]
    for body, headers, status in refusals:
        assert await post(client, body, headers) == status, (
            body if isinstance(body, dict) else str(body)[:40],
            headers,
        )
    assert ("shop", "SLAProbeDown") in incidents.open, "a refused post changed an incident"
    got = samples(incidents.render())
    refused = {dict(labels)["reason"]: value for (name, labels), value in got.items() if name.startswith(
        c.ALERTMANAGER_WEBHOOK_REFUSED)}  # fmt: skip
    assert refused == {
        "cross_site": 2, "not_configured": 0, "unauthenticated": 3, "content_type": 2, "malformed": 3,
        "invalid_labels": 6,
    }  # fmt: skip


async def test_without_webhook_auth_in_the_config_the_webhook_answers_403(
    tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(incidents_config(alertmanager[1], auth=""))
    client = await started_client(config)
    try:
        assert await post(client, {"version": "4", "alerts": [alert("firing")]}) == 403
        assert client.app[INCIDENTS_KEY].open == {}
    finally:
        await client.close()


async def test_basic_auth_is_taken_as_configured(tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(incidents_config(alertmanager[1], auth="{basic_auth: {username: am, password: pw}}"))
    client = await started_client(config)
    try:
        body = {"version": "4", "alerts": [alert("firing")]}
        wrong = {"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(b"am:no").decode()}
        assert await post(client, body, wrong) == 401
        right = {**wrong, "Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
        assert await post(client, body, right) == 200
    finally:
        await client.close()


def test_fingerprints_held_stay_below_the_cap_whatever_is_posted() -> None:
    incidents = Incidents(clock=Clock())
    for n in range(MAX_FINGERPRINTS + 50):
        incidents.receive({"alerts": [{**alert("firing"), "fingerprint": f"f{n}"}]})
    assert incidents.fingerprints == MAX_FINGERPRINTS == sum(len(i.firing) for i in incidents.open.values())


def test_an_acknowledged_incident_closes_once_alertmanager_no_longer_holds_its_level_1_alert() -> None:
    """Alertmanager sends no resolved notification of a silenced alert (its issue 226): the poll closes it."""
    clock = Clock()
    incidents = Incidents(clock=clock)
    incidents.receive({"alerts": [alert("firing"), alert("firing", name="SLAErrorBudgetBurn")]})
    clock.now = T0 + 60
    incidents.set_acknowledged({("shop", "SLAProbeDown"): T0 + 60})
    held = [{"labels": alert("firing")["labels"], "endsAt": iso(T0 + 400)}]
    assert incidents.close_resolved(active_level_1(held, T0 + 100), polled_at=T0 + 100) == []  # missed once
    assert incidents.close_resolved(active_level_1(held, T0 + 130), polled_at=T0 + 130) == [
        ("shop", "SLAErrorBudgetBurn")
    ]
    clock.now = T0 + 300
    incidents.receive({"alerts": [alert("firing", 2)]})  # a notification after the poll began: kept open
    assert incidents.close_resolved(set(), polled_at=T0 + 299) == []
    assert incidents.close_resolved(set(), polled_at=T0 + 600) == []
    assert incidents.close_resolved(set(), polled_at=T0 + 630) == [("shop", "SLAProbeDown")]
    got = samples(incidents.render())
    ttr = c.INCIDENT_TIME_TO_RESOLVE
    assert got[(f"{ttr}_count", (("priority", "P1"),))] == 2
    assert got[(f"{ttr}_sum", (("priority", "P1"),))] == 100 + 600  # resolved at the first poll that missed it
    assert incidents.fingerprints == 0


def test_resolved_alerts_alertmanager_still_lists_are_not_active() -> None:
    alerts = [
        {"labels": alert("firing")["labels"], "endsAt": iso(T0 - 1)},
        {"labels": alert("firing", 2, name="Other")["labels"], "endsAt": iso(T0 + 100)},
    ]
    assert active_level_1(alerts, T0) == set()


def test_open_incidents_survive_a_save_and_load_and_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    incidents = Incidents(clock=Clock())
    incidents.receive({"alerts": [alert("firing"), alert("firing", 2)]})
    incidents.set_acknowledged({("shop", "SLAProbeDown"): T0 + 5})
    path = tmp_path / STATE_FILE
    save_state(incidents, path)
    again = Incidents(clock=Clock())
    load_state(again, path)
    assert again.open == incidents.open
    assert again.fingerprints == 2
    path.write_text('["not", "an", "object"]')
    load_state(Incidents(), path)
    assert not path.exists() and path.with_name(STATE_FILE + ".corrupt").exists()


async def test_the_poller_closes_a_muted_incident_and_a_restart_keeps_the_open_ones(
    tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    config = tmp_path / "slaprobe.yaml"
    config.write_text(incidents_config(url))
    fake.alerts = [{"labels": alert("firing")["labels"], "endsAt": iso(time.time() + 3600), "status": {}}]
    client = await started_client(config, tmp_path / "state")
    now = time.time()
    body = {"alerts": [alert("firing", start=now), alert("firing", name="SLAErrorBudgetBurn", start=now)]}
    assert await post(client, body) == 200
    incidents = client.app[INCIDENTS_KEY]
    await until(lambda: list(incidents.open) == [("shop", "SLAProbeDown")])  # the other one is not held
    await client.close()
    assert (tmp_path / "state" / STATE_FILE).exists()

    client = await started_client(config, tmp_path / "state")
    try:
        incidents = client.app[INCIDENTS_KEY]
        assert list(incidents.open) == [("shop", "SLAProbeDown")]
        fake.alerts = []  # resolved while silenced: no notification comes
        await until(lambda: not incidents.open)
        assert incidents.time_to_resolve["P1"].count == 1
    finally:
        await client.close()


async def test_a_save_that_fails_in_any_way_is_counted_on_metrics_and_leaves_the_poller_polling(
    tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = alertmanager
    config = tmp_path / "slaprobe.yaml"
    config.write_text(incidents_config(url))
    fake.alerts = [{"labels": alert("firing")["labels"], "endsAt": iso(time.time() + 3600), "status": {}}]
    client = await started_client(config, tmp_path / "state", whole_app=True)
    try:
        incidents = client.app[INCIDENTS_KEY]
        real_state, real_write = incidents.state, incidents_module.write_atomically
        walks: list[None] = []

        def changing_state() -> dict[str, Any]:  # what walking the sets while a post changes them raises
            walks.append(None)
            if len(walks) == 1:
                raise RuntimeError("Set changed size during iteration")
            return real_state()

        writes: list[None] = []

        def failing_write(path: Path, data: bytes) -> None:
            writes.append(None)
            if len(writes) == 1:
                raise ValueError("not an OSError")
            real_write(path, data)

        monkeypatch.setattr(incidents, "state", changing_state)
        monkeypatch.setattr(incidents_module, "write_atomically", failing_write)
        assert await post(client, {"alerts": [alert("firing", start=time.time())]}) == 200
        saved = tmp_path / "state" / STATE_FILE
        await until(lambda: saved.exists())
        assert incidents.save_failures == 2  # the walk, then the write; the third save landed
        page = await (await client.get("/metrics")).text()
        assert f'{c.STATE_SAVE_FAILURES}{{source="{c.STATE_INCIDENTS}"}} 2' in page.splitlines()
        polls = fake.polls
        await until(lambda: fake.polls > polls + 1)  # and the poller polls on
        assert [e["alertname"] for e in json.loads(saved.read_bytes())["open"]] == ["SLAProbeDown"]
    finally:
        await client.close()


async def test_the_final_save_waits_for_a_cancelled_write_and_leaves_a_valid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    incidents = Incidents(clock=Clock())
    incidents.receive({"alerts": [alert("firing")]})
    path = tmp_path / STATE_FILE
    entered, release = threading.Event(), threading.Event()
    real_write = incidents_module.write_atomically

    def slow_write(target: Path, data: bytes) -> None:
        entered.set()
        release.wait(30)
        real_write(target, data)

    monkeypatch.setattr(incidents_module, "write_atomically", slow_write)
    saver = StateSaver(incidents, path)
    first = asyncio.create_task(saver.save())
    await asyncio.to_thread(entered.wait, 30)
    first.cancel()  # as shutdown cancels the poller mid-save; the thread writes on
    with pytest.raises(asyncio.CancelledError):
        await first
    incidents.receive({"alerts": [alert("firing", 2)]})
    closing = asyncio.create_task(saver.close())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not closing.done()  # the final save waits for the write still running
    release.set()
    await closing
    saved = json.loads(path.read_bytes())
    assert [sorted(e["firing"]) for e in saved["open"]] == [["shop-SLAProbeDown-1", "shop-SLAProbeDown-2"]]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert incidents.save_failures == 0
