"""Acknowledgements from Alertmanager's silences, and incident metrics from its webhook.

An acknowledgement is a silence: ``serve`` polls the configured Alertmanager
(``alertmanager.url``) for active silences and the alerts they silence, and exports
``slaprobe_alert_acknowledged{service,alertname} 1`` for each incident covered, which the
escalation rules exclude. A silence acknowledges (service, alertname) when its matchers say
so by equality, or when it silences a firing alert with those labels (so a silence on the
level-1 alert alone is enough). Polling errors keep the last known acknowledgements.

``POST /alertmanager/webhook`` takes Alertmanager's webhook notifications (the generated
routing copies every alert there when ``alertmanager.webhook_url`` is set; ``webhook``
says which posts it refuses). An incident is one (service, alertname): it opens with its
first firing alert, reaches the highest escalation level notified, and closes when its last
alert resolves. Time to acknowledge (first acknowledgement minus start) and time to resolve
(the level-1 alerts' end minus start) are histograms by priority; open incidents are
counted by priority and level.

Alertmanager sends no resolved notification for an alert that is silenced when it resolves
(prometheus/alertmanager#226), so an acknowledged incident would stay open: the poll also
reads the active alerts, and an open incident whose level-1 alert two polls in a row do not
find (and about which no notification arrived meanwhile) closes, its time to resolve
measured to the first of them (within one ``poll_interval``). With ``--state-dir`` the
open incidents are saved (``incidents.json``) and survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from slaprobe import conventions as c
from slaprobe.atomicfile import write_atomically
from slaprobe.exporter.exposition import MetricFamily
from slaprobe.exporter.runtime import Exporter
from slaprobe.exporter.webhook import REFUSALS, webhook_handler
from slaprobe.probes.tally import Histogram
from slaprobe.text import sanitize_text

log = logging.getLogger("slaprobe.incidents")

WEBHOOK_PATH = "/alertmanager/webhook"
# Seconds: from a minute to three days (acknowledgement is minutes, resolution can be days).
INCIDENT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
                    86400.0, 259200.0)  # fmt: skip
FORGET_AFTER = 7 * 86400.0  # an incident without any notification for this long is dropped
MAX_INCIDENTS = 10_000
MAX_FINGERPRINTS = 100_000  # firing alerts remembered over all incidents (a post cannot grow memory past it)
STATE_FILE = "incidents.json"
_FRACTION = re.compile(r"(\.\d{6})\d+")

AckKey = tuple[str, str]  # (service, alertname)


def parse_time(text: str | None) -> float | None:
    """Alertmanager's RFC 3339 time (nanoseconds allowed) as unix seconds; None for none or year 1."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class Incident:
    """One (service, alertname) while any of its alerts fires."""

    priority: str
    started: float  # unix seconds: start of its earliest alert
    level: int = 1  # highest escalation level notified
    firing: set[str] = field(default_factory=set)  # fingerprints of its firing alerts
    acknowledged: float | None = None  # unix seconds of the first acknowledgement
    resolved: float = 0.0  # latest end of a level-1 alert
    ended: float = 0.0  # latest end of any of its alerts
    seen: float = 0.0  # unix seconds of the last notification about it
    missing: float = 0.0  # start of the first poll that found its level-1 alert gone from Alertmanager (0: none)


def _fingerprint(alert: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    given = alert.get("fingerprint")
    if isinstance(given, str) and given:
        return given
    return hashlib.sha1(repr(sorted(labels.items())).encode(), usedforsecurity=False).hexdigest()


def _level(labels: Mapping[str, str]) -> int:
    try:
        return max(1, int(labels.get(c.LABEL_ESCALATION_LEVEL, "1")))
    except ValueError:
        return 1


class Incidents:
    """Acknowledgements and incidents, rendered as Prometheus text."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.acknowledged: dict[AckKey, float] = {}  # -> unix seconds since when
        self.open: dict[AckKey, Incident] = {}
        self.time_to_acknowledge: dict[str, Histogram] = {}
        self.time_to_resolve: dict[str, Histogram] = {}
        self.notifications: Counter[str] = Counter()
        self.poll_successful: bool | None = None  # None: no Alertmanager configured
        self.levels: dict[str, int] = {}  # priority -> number of escalation levels (exported as 0)
        self.refused: Counter[str] = Counter({reason: 0 for reason in REFUSALS})
        self.fingerprints = 0  # firing fingerprints held over all open incidents
        self.version = 0  # changes whenever the open incidents do (saved when it moved)
        self.saved_version = -1  # the version last written to the state dir
        self.save_failures = 0  # saves to the state dir that failed (logged; retried at the next poll)

    # ------------------------------------------------------------------ inputs

    def configure(self, levels: Mapping[str, int]) -> None:
        """Priorities and their number of levels, so open-incident series exist (as 0) before any incident."""
        self.levels = dict(levels)

    def set_acknowledged(self, acknowledged: Mapping[AckKey, float]) -> None:
        """Replace the acknowledgements (from a successful poll); record time to acknowledge of open incidents."""
        self.acknowledged = dict(acknowledged)
        for key, incident in self.open.items():
            if key in self.acknowledged:
                self._acknowledge(incident, self.acknowledged[key])

    def _acknowledge(self, incident: Incident, since: float) -> None:
        if incident.acknowledged is not None:
            return
        incident.acknowledged = max(since, incident.started)
        self.version += 1
        self._histogram(self.time_to_acknowledge, incident.priority).observe(incident.acknowledged - incident.started)

    @staticmethod
    def _histogram(table: dict[str, Histogram], priority: str) -> Histogram:
        histogram = table.get(priority)
        if histogram is None:
            histogram = table[priority] = Histogram(INCIDENT_BUCKETS)
        return histogram

    def receive(self, payload: Mapping[str, Any]) -> int:
        """Apply one webhook notification; return how many of its alerts were about incidents."""
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise ValueError("no alerts list")
        now = self.clock()
        used = 0
        for alert in alerts:
            if not isinstance(alert, Mapping) or not isinstance(alert.get("labels"), Mapping):
                continue
            labels = {sanitize_text(str(k)): sanitize_text(str(v)) for k, v in alert["labels"].items()}
            service, alertname = labels.get(c.LABEL_SERVICE), labels.get(c.LABEL_ALERTNAME)
            if not service or not alertname:
                continue
            used += 1
            status = "resolved" if alert.get("status") == "resolved" else "firing"
            self.notifications[status] += 1
            self._apply((service, alertname), labels, alert, status, now)
        self._forget(now)
        self.version += bool(used)
        return used

    def _apply(self, key: AckKey, labels: dict[str, str], alert: Mapping[str, Any], status: str, now: float) -> None:
        fingerprint = _fingerprint(alert, labels)
        level = _level(labels)
        starts = parse_time(alert.get("startsAt")) or now
        incident = self.open.get(key)
        if status == "firing":
            if incident is None:
                if len(self.open) >= MAX_INCIDENTS:
                    return
                incident = self.open[key] = Incident(priority=labels.get(c.LABEL_PRIORITY, ""), started=starts)
                self.version += 1
            incident.started = min(incident.started, starts)
            if fingerprint not in incident.firing and self.fingerprints < MAX_FINGERPRINTS:
                incident.firing.add(fingerprint)
                self.fingerprints += 1
            incident.level = max(incident.level, level)
            incident.seen = now
            if key in self.acknowledged:
                self._acknowledge(incident, self.acknowledged[key])
            return
        if incident is None:
            return  # resolved before we saw it fire (or before a restart): nothing to measure
        ends = parse_time(alert.get("endsAt")) or now
        if fingerprint in incident.firing:
            incident.firing.discard(fingerprint)
            self.fingerprints -= 1
        incident.ended = max(incident.ended, ends)
        if level == 1:
            incident.resolved = max(incident.resolved, ends)
        incident.seen = now
        if not incident.firing:
            self._close(key, incident.resolved or incident.ended)

    def _close(self, key: AckKey, end: float) -> None:
        incident = self.open.pop(key)
        self.fingerprints -= len(incident.firing)
        self.version += 1
        self._histogram(self.time_to_resolve, incident.priority).observe(max(0.0, end - incident.started))

    def _forget(self, now: float) -> None:
        stale = [key for key, incident in self.open.items() if now - incident.seen > FORGET_AFTER]
        for key in stale:
            self.fingerprints -= len(self.open.pop(key).firing)
            self.version += 1

    def close_resolved(self, active: set[AckKey], polled_at: float) -> list[AckKey]:
        """Close open incidents whose level-1 alert Alertmanager no longer holds (a muted resolution).

        ``active``: (service, alertname) of the level-1 alerts Alertmanager holds, read by a poll
        that began at ``polled_at``. An incident closes when two polls in a row miss its alert
        (one empty answer, as from an Alertmanager just restarted, is not enough) and no
        notification about it came since the first of them; it resolved at that first poll.
        """
        closed = []
        for key, incident in self.open.items():
            if key in active or incident.seen >= polled_at:
                incident.missing = 0.0
            elif not incident.missing:
                incident.missing = polled_at
            else:
                closed.append(key)
        for key in closed:
            incident = self.open[key]
            self._close(key, incident.resolved or incident.missing)
        return closed

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """The open incidents as JSON-ready data."""
        return {
            "version": 1,
            "open": [
                {"service": key[0], "alertname": key[1], **asdict(inc), "firing": sorted(inc.firing)}
                for key, inc in self.open.items()
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Open incidents from ``state()`` (of an earlier run); entries that do not fit are skipped."""
        for entry in state.get("open", []) if isinstance(state.get("open"), list) else []:
            try:
                firing = {str(f) for f in entry["firing"]}
                incident = Incident(
                    priority=str(entry["priority"]),
                    started=float(entry["started"]),
                    level=int(entry["level"]),
                    firing=firing,
                    acknowledged=None if entry["acknowledged"] is None else float(entry["acknowledged"]),
                    resolved=float(entry["resolved"]),
                    ended=float(entry["ended"]),
                    seen=float(entry["seen"]),
                    missing=float(entry.get("missing", 0.0)),
                )
                key = (str(entry["service"]), str(entry["alertname"]))
            except (KeyError, TypeError, ValueError):
                continue
            room = len(self.open) < MAX_INCIDENTS and self.fingerprints + len(firing) <= MAX_FINGERPRINTS
            if key not in self.open and room:
                self.open[key] = incident
                self.fingerprints += len(firing)

    # ------------------------------------------------------------------ output

    def render(self) -> str:
        """Every incident family as Prometheus text."""
        out: list[str] = []
        if self.acknowledged:
            out.append(ALERT_ACKNOWLEDGED.header)
            out.extend(ALERT_ACKNOWLEDGED.sample(1, *key) for key in sorted(self.acknowledged))
        for family, table in (
            (TIME_TO_ACKNOWLEDGE, self.time_to_acknowledge),
            (TIME_TO_RESOLVE, self.time_to_resolve),
        ):
            priorities = sorted(set(table) | set(self.levels))
            if priorities:
                out.append(family.header)
                out.extend(family.histogram(table.get(p) or Histogram(INCIDENT_BUCKETS), p) for p in priorities)
        counts: Counter[tuple[str, int]] = Counter(
            {(p, level): 0 for p, n in self.levels.items() for level in range(1, max(n, 1) + 1)}
        )
        counts.update((incident.priority, incident.level) for incident in self.open.values())
        if counts:
            out.append(INCIDENTS_OPEN.header)
            out.extend(INCIDENTS_OPEN.sample(n, p, str(level)) for (p, level), n in sorted(counts.items()))
        if self.notifications:
            out.append(NOTIFICATIONS.header)
            out.extend(NOTIFICATIONS.sample(n, status) for status, n in sorted(self.notifications.items()))
        out.append(WEBHOOK_REFUSED.header)
        out.extend(WEBHOOK_REFUSED.sample(n, reason) for reason, n in sorted(self.refused.items()))
        if self.poll_successful is not None:
            out.append(POLL_SUCCESS.header)
            out.append(POLL_SUCCESS.sample(int(self.poll_successful)))
        return "".join(out)


ALERT_ACKNOWLEDGED = MetricFamily(
    c.ALERT_ACKNOWLEDGED,
    "gauge",
    "1 while an Alertmanager silence covers the alert (an acknowledgement); escalation rules withhold further levels.",
    (c.LABEL_SERVICE, c.LABEL_ALERTNAME),
)
TIME_TO_ACKNOWLEDGE = MetricFamily(
    c.INCIDENT_TIME_TO_ACKNOWLEDGE,
    "histogram",
    "Seconds from an incident's start to its first acknowledgement (a silence), by priority.",
    (c.LABEL_PRIORITY,),
)
TIME_TO_RESOLVE = MetricFamily(
    c.INCIDENT_TIME_TO_RESOLVE,
    "histogram",
    "Seconds from an incident's start to the resolution of its level-1 alert, by priority.",
    (c.LABEL_PRIORITY,),
)
INCIDENTS_OPEN = MetricFamily(
    c.INCIDENTS_OPEN,
    "gauge",
    "Incidents firing now, by priority and highest escalation level reached.",
    (c.LABEL_PRIORITY, c.LABEL_ESCALATION_LEVEL),
)
NOTIFICATIONS = MetricFamily(
    c.ALERTMANAGER_NOTIFICATIONS,
    "counter",
    "Alerts received on /alertmanager/webhook, by status (firing, resolved).",
    ("status",),
)
WEBHOOK_REFUSED = MetricFamily(
    c.ALERTMANAGER_WEBHOOK_REFUSED,
    "counter",
    "Posts to /alertmanager/webhook refused, by reason (cross_site, not_configured, unauthenticated, "
    "content_type, malformed, invalid_labels).",
    (c.LABEL_REASON,),
)
POLL_SUCCESS = MetricFamily(
    c.ALERTMANAGER_POLL_SUCCESS,
    "gauge",
    "Whether the last poll of Alertmanager's silences (acknowledgements) succeeded.",
)


# ---------------------------------------------------------------------------- polling


def _equal_matchers(matchers: Iterable[Any]) -> dict[str, str]:
    """The plain equality matchers of a silence, by label name."""
    out = {}
    for m in matchers:
        if isinstance(m, Mapping) and not m.get("isRegex") and m.get("isEqual", True):
            out[str(m.get("name"))] = str(m.get("value"))
    return out


def acknowledgements(silences: Iterable[Any], alerts: Iterable[Any]) -> dict[AckKey, float]:
    """(service, alertname) -> since when, from Alertmanager's silences and the alerts they silence."""
    active: dict[str, float] = {}
    acks: dict[AckKey, float] = {}

    def add(key: AckKey, since: float) -> None:
        acks[key] = min(since, acks.get(key, since))

    for silence in silences:
        if not isinstance(silence, Mapping) or (silence.get("status") or {}).get("state") != "active":
            continue
        since = parse_time(silence.get("startsAt")) or 0.0
        active[str(silence.get("id"))] = since
        equal = _equal_matchers(silence.get("matchers") or ())
        if c.LABEL_SERVICE in equal and c.LABEL_ALERTNAME in equal:
            add((equal[c.LABEL_SERVICE], equal[c.LABEL_ALERTNAME]), since)
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = alert.get("labels") or {}
        service, alertname = labels.get(c.LABEL_SERVICE), labels.get(c.LABEL_ALERTNAME)
        ids = [i for i in (alert.get("status") or {}).get("silencedBy") or () if i in active]
        if service and alertname and ids:
            add((str(service), str(alertname)), min(active[i] for i in ids))
    return acks


def active_level_1(alerts: Iterable[Any], now: float) -> set[AckKey]:
    """(service, alertname) of the level-1 alerts Alertmanager holds unresolved (silenced ones included)."""
    keys: set[AckKey] = set()
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = alert.get("labels") or {}
        ends = parse_time(alert.get("endsAt"))
        if labels.get(c.LABEL_ESCALATION_LEVEL, "1") != "1" or (ends is not None and ends <= now):
            continue
        service, alertname = labels.get(c.LABEL_SERVICE), labels.get(c.LABEL_ALERTNAME)
        if service and alertname:
            keys.add((str(service), str(alertname)))
    return keys


@dataclass(frozen=True, slots=True)
class Poll:
    """What one poll of Alertmanager read: acknowledgements and the level-1 alerts it holds."""

    acknowledged: dict[AckKey, float]
    active: set[AckKey]
    started: float  # unix seconds, before the first request


async def fetch_alertmanager(
    session: aiohttp.ClientSession, url: str, timeout: float, clock: Callable[[], float] = time.time
) -> Poll:
    """Read active silences and the alerts (silenced, inhibited and unprocessed too) from Alertmanager's v2 API."""
    started = clock()
    base = url.rstrip("/")
    limit = aiohttp.ClientTimeout(total=timeout)
    async with session.get(f"{base}/api/v2/silences", timeout=limit) as response:
        response.raise_for_status()
        silences = await response.json()
    query = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
    async with session.get(f"{base}/api/v2/alerts", params=query, timeout=limit) as response:
        response.raise_for_status()
        alerts = await response.json()
    if not isinstance(silences, list) or not isinstance(alerts, list):
        raise ValueError("silences and alerts must be lists")
    return Poll(acknowledgements(silences, alerts), active_level_1(alerts, clock()), started)


def escalation_levels(exporter: Exporter) -> dict[str, int]:
    """Priority -> number of escalation levels of the running config."""
    return {priority: len(levels) for priority, levels in exporter.config.escalation.items()}


async def poll_forever(
    incidents: Incidents, exporter: Exporter, *, idle: float = 5.0, saver: StateSaver | None = None
) -> None:
    """Poll the running config's Alertmanager for acknowledgements and resolutions until cancelled."""

    async def save() -> None:
        if saver is not None:
            await saver.save()

    async with aiohttp.ClientSession() as session:
        while True:
            incidents.configure(escalation_levels(exporter))
            ref = exporter.config.alertmanager
            if ref is None:
                incidents.poll_successful = None
                incidents.set_acknowledged({})
                await save()
                await asyncio.sleep(idle)  # a reload may add one
                continue
            try:
                poll = await fetch_alertmanager(session, ref.url, min(ref.poll_interval, 10.0), incidents.clock)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                if incidents.poll_successful is not False:
                    log.warning("cannot read silences and alerts from %s: %s", ref.url, exc)
                incidents.poll_successful = False
            else:
                incidents.poll_successful = True
                incidents.set_acknowledged(poll.acknowledged)
                for service, alertname in incidents.close_resolved(poll.active, poll.started):
                    log.info("incident %s on %s closed: Alertmanager no longer holds its alert", alertname, service)
            await save()
            await asyncio.sleep(ref.poll_interval)


# ---------------------------------------------------------------------------- web


INCIDENTS_KEY = web.AppKey("incidents", Incidents)


def save_state(incidents: Incidents, path: Path, *, force: bool = False) -> None:
    """Write the open incidents to ``path`` if they changed since the last save; a failure is logged."""
    version = incidents.version
    if not force and incidents.saved_version == version:
        return
    try:
        write_atomically(path, serialise_state(incidents))
    except OSError as exc:
        log.warning("cannot save open incidents to %s: %s; trying again later", path, exc)
        return
    incidents.saved_version = version


def serialise_state(incidents: Incidents) -> bytes:
    """The open incidents as the bytes of the state file (on the event loop: it walks live sets)."""
    return json.dumps(incidents.state(), separators=(",", ":")).encode()


class StateSaver:
    """Saves the open incidents from the event loop, the file write in a worker thread.

    The bytes are built on the loop, where webhook posts change the incidents, so the
    walk never races them; only the write runs in a thread, and at most one is in flight
    (a save while one is running is skipped: the next poll saves the newer state). Any
    failure is logged and counted in ``incidents.save_failures``, never raised: the poller
    lives on.
    ``close()`` waits for a write still running (its caller may have been cancelled)
    before the final save, so the two never share the temporary file.
    """

    def __init__(self, incidents: Incidents, path: Path) -> None:
        self.incidents = incidents
        self.path = path
        self._writing: asyncio.Task[None] | None = None

    async def save(self) -> None:
        """Save the open incidents if they changed and no write is running."""
        if self._writing is not None and not self._writing.done():
            return
        version = self.incidents.version
        if self.incidents.saved_version == version:
            return
        try:
            data = serialise_state(self.incidents)
        except Exception as exc:
            self._failed(exc)
            return
        self._writing = asyncio.create_task(asyncio.to_thread(write_atomically, self.path, data))
        try:
            await asyncio.shield(self._writing)  # cancelled, the write goes on: close() waits for it
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._writing = None
            self._failed(exc)
            return
        self._writing = None
        self.incidents.saved_version = version

    async def close(self) -> None:
        """Wait for a write still running, then save the latest state (on the loop, nothing beside it)."""
        if self._writing is not None:  # its save() was cancelled before the write ended
            try:
                await self._writing
            except Exception as exc:
                self._failed(exc)
            self._writing = None
        version = self.incidents.version
        if self.incidents.saved_version == version:
            return
        try:
            write_atomically(self.path, serialise_state(self.incidents))
        except Exception as exc:
            self._failed(exc)
            return
        self.incidents.saved_version = version

    def _failed(self, exc: Exception) -> None:
        self.incidents.save_failures += 1
        if isinstance(exc, OSError):
            log.warning("cannot save open incidents to %s: %s; trying again later", self.path, exc)
        else:
            log.error("cannot save open incidents to %s; trying again later", self.path, exc_info=exc)


def load_state(incidents: Incidents, path: Path) -> None:
    """Restore open incidents saved by an earlier run; a corrupt file is moved aside with a warning."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return
    except (OSError, ValueError, RecursionError) as exc:
        aside = path.with_name(path.name + ".corrupt")
        log.warning("open incidents in %s unreadable (%s); moved to %s, starting without them", path, exc, aside)
        with contextlib.suppress(OSError):
            path.replace(aside)
        return
    incidents.restore(data)
    log.info("%d open incidents restored from %s", len(incidents.open), path)


def install_incidents(app: web.Application, exporter: Exporter) -> Incidents:
    """Add ``/alertmanager/webhook`` and the Alertmanager poller to ``app`` (before it starts); return the tracker."""
    incidents = Incidents()
    incidents.configure(escalation_levels(exporter))
    state = exporter.logs.state_dir / STATE_FILE if exporter.logs.state_dir is not None else None
    if state is not None:
        load_state(incidents, state)
    app[INCIDENTS_KEY] = incidents

    def refused(reason: str) -> None:
        incidents.refused[reason] += 1

    app.router.add_post(WEBHOOK_PATH, webhook_handler(lambda: exporter.config, incidents.receive, refused))

    async def poller(_app: web.Application) -> AsyncIterator[None]:
        saver = StateSaver(incidents, state) if state is not None else None
        task = asyncio.create_task(poll_forever(incidents, exporter, saver=saver), name="alertmanager-poller")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if saver is not None:
            await saver.close()

    app.cleanup_ctx.append(poller)
    return incidents
