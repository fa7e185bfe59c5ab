"""Maintenance in the running exporter: ``slaprobe_maintenance_active{service}`` and ad hoc windows.

The gauge is exported for the services that have windows (their own, global ones, or an ad
hoc one); the level-1 alerts of a service are withheld while it is 1 (``slaprobe.maintenance``
says what else a window does).

Ad hoc windows are declared at run time, for work nobody planned: ``POST /-/maintenance``
with a JSON body ``{"service": "shop", "start": "2026-11-20T22:00:00Z", "end": ...}`` (or
``"duration": "2h"``; ``start`` defaults to now) and a ``reason``; ``GET /-/maintenance``
lists them, ``DELETE /-/maintenance/<id>`` ends one. They count exactly like planned
windows, are kept in ``--state-dir`` across restarts, and follow the rules of ``/-/reload``:
no cross-site requests (``cross_site_problem``), no DNS-rebound Host (``host_guard``). A
window mutes a service's alerts and leaves its runs out of the SLA, so adding or ending one
needs the credentials of ``global.maintenance_auth`` (a bearer token or basic auth, compared
on hashes); without them in the config, POST and DELETE answer 403. The listing is read-only
and open, like the status page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from slaprobe import conventions as c
from slaprobe.atomicfile import write_atomically
from slaprobe.config import MaintenanceAuth
from slaprobe.exporter.exposition import MetricFamily
from slaprobe.exporter.webhook import Refused, check_credentials
from slaprobe.maintenance import Calendar
from slaprobe.text import sanitize_text
from slaprobe.units import parse_duration

if TYPE_CHECKING:
    from slaprobe.exporter.runtime import Exporter

log = logging.getLogger("slaprobe.maintenance")

MAINTENANCE_ACTIVE = MetricFamily(
    c.MAINTENANCE_ACTIVE,
    "gauge",
    "Whether a maintenance window of the service is open (1) or not (0); its alerts are muted while open.",
    (c.LABEL_SERVICE,),
)


def maintenance_text(calendars: Mapping[str, Calendar], now: float, adhoc: AdhocMaintenance | None = None) -> str:
    """The gauge of each service with maintenance windows (planned or ad hoc), at unix time ``now``."""
    names = list(calendars)
    if adhoc is not None:
        names += sorted(adhoc.services - set(calendars))
    if not names:
        return ""
    lines = [MAINTENANCE_ACTIVE.header]
    for name in names:
        calendar = calendars.get(name)
        active = (calendar is not None and calendar.active(now)) or (adhoc is not None and adhoc.active(name, now))
        lines.append(MAINTENANCE_ACTIVE.sample(int(active), name))
    return "".join(lines)


# ---------------------------------------------------------------------------- ad hoc windows

MAX_WINDOWS = 1000  # ad hoc windows held at once, at most
MAX_BODY = 16 * 1024  # bytes of a POST /-/maintenance body, at most
MAX_REASON = 200  # characters of a reason kept
MAX_LENGTH = 90 * 86400.0  # seconds: an ad hoc window longer than this is a planned one (put it in the config)
STATE_FILE = "maintenance.json"


@dataclass(frozen=True, slots=True)
class AdhocWindow:
    """Maintenance declared at run time (``POST /-/maintenance``): one service, ``[start, end)``."""

    id: str
    service: str
    start: float  # unix seconds
    end: float  # unix seconds, excluded
    reason: str
    created: float  # unix seconds

    def as_json(self) -> dict[str, Any]:
        """The window as ``GET /-/maintenance`` lists it (times RFC 3339, UTC)."""
        return {
            "id": self.id,
            "service": self.service,
            "start": _rfc3339(self.start),
            "end": _rfc3339(self.end),
            "duration_seconds": self.end - self.start,
            "reason": self.reason,
            "created": _rfc3339(self.created),
        }


def _rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")


class AdhocMaintenance:
    """The ad hoc windows: added, listed, deleted; ended ones dropped; kept in ``--state-dir``.

    A window counts like a planned one (``slaprobe.maintenance``): runs starting in it are
    maintenance runs, and ``slaprobe_maintenance_active`` is 1 for its service while it is
    open, which withholds the service's alerts.
    """

    def __init__(self, *, clock: Callable[[], float], state_dir: Path | None = None) -> None:
        self._clock = clock
        self._state = state_dir / STATE_FILE if state_dir is not None else None
        self._windows: dict[str, AdhocWindow] = {}
        self.services: set[str] = set()  # every service that had one: its gauge stays (0) once it ends
        self.save_failures = 0
        self._load()

    def add(self, service: str, start: float, end: float, reason: str) -> AdhocWindow:
        """A new window (ValueError when it is empty, too long, over or too many)."""
        now = self._clock()
        if end <= start:
            raise ValueError("end must be after start")
        if end <= now:
            raise ValueError("the window is over already")
        if end - start > MAX_LENGTH:
            raise ValueError(f"at most {MAX_LENGTH / 86400:g} days (longer work belongs in the config's maintenance)")
        self._prune(now)
        if len(self._windows) >= MAX_WINDOWS:
            raise ValueError(f"at most {MAX_WINDOWS} ad hoc windows at once")
        window = AdhocWindow(secrets.token_hex(8), service, start, end, reason, now)
        self._windows[window.id] = window
        self.services.add(service)
        self.save()
        return window

    def remove(self, window_id: str) -> AdhocWindow | None:
        """Delete a window (its end is now); the window, or None if there is none of that id."""
        window = self._windows.pop(window_id, None)
        if window is not None:
            self.save()
        return window

    def windows(self) -> list[AdhocWindow]:
        """The windows not yet over, by start."""
        self._prune(self._clock())
        return sorted(self._windows.values(), key=lambda w: (w.start, w.service, w.id))

    def active(self, service: str, now: float) -> bool:
        """Whether an ad hoc window of ``service`` is open at unix time ``now``."""
        return any(w.service == service and w.start <= now < w.end for w in self._windows.values())

    def _prune(self, now: float) -> None:
        over = [key for key, w in self._windows.items() if w.end <= now]
        for key in over:
            del self._windows[key]
        if over:
            self.save()

    def _load(self) -> None:
        if self._state is None:
            return
        try:
            entries = json.loads(self._state.read_text(encoding="utf-8"))
            for e in entries:
                window = AdhocWindow(
                    str(e["id"]),
                    str(e["service"]),
                    float(e["start"]),
                    float(e["end"]),
                    str(e["reason"]),
                    float(e["created"]),
                )
                self._windows[window.id] = window
                self.services.add(window.service)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("cannot read ad hoc maintenance %s: %s; starting without", self._state, exc)

    def save(self) -> None:
        """Write the windows to the state dir, when there is one (a few hundred bytes: on the loop)."""
        if self._state is None:
            return
        entries = [dataclasses.asdict(w) for w in self._windows.values()]
        try:
            write_atomically(self._state, json.dumps(entries).encode())
        except OSError as exc:
            self.save_failures += 1
            log.warning("cannot save ad hoc maintenance to %s: %s", self._state, exc)


def _when(value: Any, what: str) -> float:
    """An RFC 3339 time with an offset, or unix seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: an RFC 3339 time (2026-11-20T22:00:00Z) or unix seconds")
    if isinstance(value, (int, float)) or re.fullmatch(r"[0-9]+(\.[0-9]*)?", value):
        seconds = float(value)
    else:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what}: not a time: {value[:40]!r} (e.g. 2026-11-20T22:00:00Z)") from None
        if moment.tzinfo is None:
            raise ValueError(f"{what}: give the UTC offset (e.g. 2026-11-20T22:00:00Z)")
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{what}: not a finite time")
    return seconds


FIELDS = frozenset({"service", "start", "end", "duration", "reason"})


def window_request(body: Any, services: Iterable[str], now: float) -> tuple[str, float, float, str]:
    """(service, start, end, reason) of a POST body; ValueError naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object: {service, start?, end | duration, reason}")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0][:40]!r} (known: {', '.join(sorted(FIELDS))})")
    service = body.get("service")
    if not isinstance(service, str) or not service:
        raise ValueError("service: required, the name of a configured service")
    if service not in set(services):
        raise ValueError(f"service: no service {service[:60]!r} in the config")
    start = _when(body["start"], "start") if body.get("start") is not None else now
    if (body.get("end") is None) == (body.get("duration") is None):
        raise ValueError("give end or duration (one of them)")
    if body.get("end") is not None:
        end = _when(body["end"], "end")
    else:
        duration = body["duration"]
        try:
            seconds = float(duration) if isinstance(duration, (int, float)) else parse_duration(str(duration))
        except ValueError:
            raise ValueError(f"duration: not a duration: {str(duration)[:40]!r} (e.g. 2h, 90m)") from None
        if isinstance(duration, bool) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError("duration: must be longer than 0s")
        end = start + seconds
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason: must be text")
    reason = " ".join(sanitize_text(reason).split())[:MAX_REASON]
    return service, start, end, reason


# ---------------------------------------------------------------------------- /-/maintenance

MAINTENANCE_PATH = "/-/maintenance"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=1) + "\n", content_type="application/json")


CrossSiteCheck = Callable[[web.Request], "tuple[int, str] | None"]


def _problem(request: web.Request) -> web.Response | None:
    """Why a change to the windows is refused: cross-site (the rule /-/reload follows), or no credentials."""
    problem = request.app[CROSS_SITE_KEY](request)
    if problem is not None:
        return web.Response(status=problem[0], text=f"{problem[1]}\n")
    auth = request.app[MAINTENANCE_EXPORTER_KEY].config.global_.maintenance_auth
    try:
        check_credentials(request, auth, key=MaintenanceAuth.KEY)
    except Refused as refused:
        headers = {"WWW-Authenticate": "Bearer" if auth is None or auth.bearer_token else "Basic"}
        return web.Response(status=refused.status, text=f"{refused}\n", headers=headers)
    return None


def _listing(exporter: Exporter) -> dict[str, Any]:
    now = exporter.clock()
    planned = sorted(name for name, calendar in exporter.calendars.items() if calendar.active(now))
    return {"windows": [w.as_json() for w in exporter.adhoc.windows()], "planned_open": planned}


async def handle_list(request: web.Request) -> web.Response:
    """``GET /-/maintenance``: the ad hoc windows not yet over, and the services in a planned one now."""
    return _json(_listing(request.app[MAINTENANCE_EXPORTER_KEY]))


async def handle_add(request: web.Request) -> web.Response:
    """``POST /-/maintenance`` with a JSON body: a new ad hoc window (201 with it, or 400 saying why)."""
    refused = _problem(request)
    if refused is not None:
        return refused
    exporter = request.app[MAINTENANCE_EXPORTER_KEY]
    if (request.content_length or 0) > MAX_BODY:
        return web.Response(status=413, text=f"at most {MAX_BODY} bytes of body\n")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return web.Response(status=413, text=f"at most {MAX_BODY} bytes of body\n")
    try:
        body = json.loads(raw)
    except ValueError:
        return web.Response(status=400, text="bad maintenance window: the body is not JSON\n")
    try:
        service, start, end, reason = window_request(body, exporter.config.services, exporter.clock())
        window = exporter.adhoc.add(service, start, end, reason)
    except ValueError as exc:
        return web.Response(status=400, text=f"bad maintenance window: {exc}\n")
    log.info(
        "ad hoc maintenance %s of %s from %s to %s: %s",
        window.id,
        service,
        _rfc3339(start),
        _rfc3339(end),
        reason,
    )
    return _json(window.as_json(), status=201)


async def handle_delete(request: web.Request) -> web.Response:
    """``DELETE /-/maintenance/<id>``: end an ad hoc window now (204, or 404)."""
    refused = _problem(request)
    if refused is not None:
        return refused
    window = request.app[MAINTENANCE_EXPORTER_KEY].adhoc.remove(request.match_info["id"])
    if window is None:
        return web.Response(status=404, text="no ad hoc maintenance window of that id\n")
    log.info("ad hoc maintenance %s of %s deleted", window.id, window.service)
    return web.Response(status=204)


MAINTENANCE_EXPORTER_KEY: web.AppKey[Exporter] = web.AppKey("maintenance_exporter")
CROSS_SITE_KEY: web.AppKey[CrossSiteCheck] = web.AppKey("maintenance_cross_site")


def install_maintenance(app: web.Application, exporter: Exporter, cross_site: CrossSiteCheck) -> None:
    """Serve ``GET|POST /-/maintenance`` and ``DELETE /-/maintenance/<id>`` (``cross_site``: /-/reload's check)."""
    app[MAINTENANCE_EXPORTER_KEY] = exporter
    app[CROSS_SITE_KEY] = cross_site
    app.router.add_get(MAINTENANCE_PATH, handle_list)
    app.router.add_post(MAINTENANCE_PATH, handle_add)
    app.router.add_delete(MAINTENANCE_PATH + "/{id}", handle_delete)
