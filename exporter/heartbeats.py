"""Heartbeats: runs pushed to ``/push/<service>/<probe>``, and a failed run per period without one.

A ``heartbeat:`` probe is not run by slaprobe: a cron job, a batch job or a remote dial-test
agent pings it. Each ping is one run (``status=up|down``, ``duration=``, ``msg=``), counted
in the same ``slaprobe_probe_*`` series as a probed run. A ping sets the deadline to
``every + grace`` later; when a deadline passes without one, a failed run with reason
``missed_heartbeat`` is counted and the deadline moves on by ``every``, once per missed
period. So the heartbeat's availability, ``1 - increase(failures) / increase(runs)``, is
over the periods that were due, like that of a probe over its runs. A late ping (after its
period was counted missed) is a run of its own.

A remote dial-test agent posts its result as JSON instead (``pushed_json``: success, duration,
phases, reason, location, msg): the same run a local probe would make, counted in the
series of its ``location`` (``ResultStore.located``; the exporter's own location when
absent). Any push, from any location, is the ping that moves the deadline.

With ``--state-dir`` the deadlines survive a restart; a deadline that passed while the
exporter was down moves on by whole periods without counting them (the pings of that time
had nowhere to go). Without it, a restart gives every heartbeat a fresh ``every + grace``.

The token is compared in constant time (hashes of equal length) and never logged, exported
or shown: it is in the config's secrets, so a ``msg`` quoting it is redacted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from slaprobe.atomicfile import write_atomically
from slaprobe.exporter.store import ProbeKey, ProbeMeta
from slaprobe.probes.result import FailureReason, ProbeResult
from slaprobe.specs import HeartbeatSpec
from slaprobe.text import sanitize_text
from slaprobe.units import format_duration, parse_duration

log = logging.getLogger("slaprobe.heartbeats")

MAX_MESSAGE = 200  # characters of a ping's msg kept (the status page shows it; it is never a label)
MAX_PUSH_BYTES = 64 * 1024  # a ping's body, at most (read only when it is JSON: a remote agent's result)
MAX_MISSED_PER_CHECK = 100_000  # periods counted at once, at most (a clock jump of years)
STATE_FILE = "heartbeats.json"
SAVE_INTERVAL = 1.0  # seconds between state writes, at least (plus one on shutdown)


class Record(Protocol):
    """Count a run: ``Exporter.record`` (``location``: a remote agent's; None: here)."""

    def __call__(self, key: ProbeKey, result: ProbeResult, *, location: str | None = None) -> None: ...


Locate = Callable[[ProbeKey, str], bool]  # whether a run of ``key`` at that location can be counted


@dataclass(slots=True)
class Beat:
    """One heartbeat probe: its spec and when its next ping is due at the latest."""

    meta: ProbeMeta
    spec: HeartbeatSpec
    deadline: float  # unix seconds: no ping by then is a missed period

    @property
    def period(self) -> tuple[float, float]:
        return (self.spec.every, self.spec.grace)


class Heartbeats:
    """The heartbeats of the running config: pings in, missed periods out."""

    def __init__(
        self,
        record: Record,
        *,
        clock: Callable[[], float],
        state_dir: Path | None = None,
        locate: Locate = lambda _key, _location: True,
    ) -> None:
        self._record = record
        self.locate = locate
        self._clock = clock
        self._state = state_dir / STATE_FILE if state_dir is not None else None
        self._beats: dict[ProbeKey, Beat] = {}
        self._saved: dict[ProbeKey, float] | None = None  # deadlines read from the state file, until used
        self._dirty = False
        self.save_failures = 0  # writes of the state file that failed (logged; retried at the next save)
        self._wake = asyncio.Event()

    def sync(self, beats: Iterable[tuple[ProbeMeta, HeartbeatSpec]]) -> None:
        """Hold exactly these heartbeats; an unchanged ``every``/``grace`` keeps its deadline."""
        now = self._clock()
        saved = self._load()
        fresh: dict[ProbeKey, Beat] = {}
        for meta, spec in beats:
            old = self._beats.get(meta.key)
            if old is not None and old.period == (spec.every, spec.grace):
                old.meta, old.spec = meta, spec
                fresh[meta.key] = old
                continue
            deadline = now + spec.every + spec.grace
            if old is None and meta.key in saved:
                deadline = saved[meta.key]
                if deadline <= now:  # passed while the exporter was down: not counted
                    deadline += math.ceil((now - deadline) / spec.every + 1e-9) * spec.every
            fresh[meta.key] = Beat(meta, spec, deadline)
        self._beats = fresh
        self._dirty = True
        self._wake.set()

    def get(self, key: ProbeKey) -> Beat | None:
        """The heartbeat of ``key``, if the config has one."""
        return self._beats.get(key)

    def ping(self, key: ProbeKey, result: ProbeResult, location: str | None = None) -> None:
        """Count a pushed run (``location``: the remote agent's); the next ping is due within ``every + grace``."""
        beat = self._beats.get(key)
        if beat is None:
            return
        self._record(key, result, location=location)
        beat.deadline = self._clock() + beat.spec.every + beat.spec.grace
        self._dirty = True
        self._wake.set()

    def check(self, now: float) -> float:
        """Count a failed run for each period whose deadline passed by ``now``; the next deadline."""
        for key, beat in self._beats.items():
            every = beat.spec.every
            for _ in range(MAX_MISSED_PER_CHECK):
                if beat.deadline > now:
                    break
                detail = f"no ping within {format_duration(every)} + {format_duration(beat.spec.grace)} grace"
                self._record(key, ProbeResult(False, 0.0, FailureReason.MISSED_HEARTBEAT, detail))
                beat.deadline += every
                self._dirty = True
            else:
                beat.deadline += math.ceil((now - beat.deadline) / every + 1e-9) * every
        return min((beat.deadline for beat in self._beats.values()), default=math.inf)

    async def run(self) -> None:
        """Count missed periods as their deadlines pass, until cancelled (the state is saved).

        The state is written off the event loop, at most once per ``SAVE_INTERVAL`` (a ping a
        millisecond costs no disk write each), and once more on the way out.
        """
        last_save = -math.inf
        try:
            while True:
                self._wake.clear()
                next_deadline = self.check(self._clock())
                delay = min(next_deadline - self._clock(), 3600.0)
                if self._dirty and self._state is not None:
                    due = last_save + SAVE_INTERVAL - self._clock()
                    if due <= 0 or due > SAVE_INTERVAL:  # due, or the clock went back
                        last_save = self._clock()
                        await self.save_off_loop()
                    else:
                        delay = min(delay, due)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(delay, 0.0)):
                        await self._wake.wait()
        finally:
            self.save()  # shutdown: the last deadlines, written before the loop closes

    # ------------------------------------------------------------------ state

    def _load(self) -> dict[ProbeKey, float]:
        if self._saved is not None:
            return {}  # read once, at the first sync (the start): later syncs have the live state
        self._saved = {}
        if self._state is None:
            return self._saved
        try:
            entries = json.loads(self._state.read_text(encoding="utf-8"))
            self._saved = {(str(e["service"]), str(e["probe"])): float(e["deadline"]) for e in entries}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("cannot read heartbeat state %s: %s; every heartbeat starts afresh", self._state, exc)
        return self._saved

    def _snapshot(self) -> bytes | None:
        """The state file's new content, if there is a state dir and the deadlines changed."""
        if self._state is None or not self._dirty:
            return None
        self._dirty = False  # a change from now on is written by the next save
        entries = [{"service": k[0], "probe": k[1], "deadline": b.deadline} for k, b in self._beats.items()]
        return json.dumps(entries).encode()

    def _write(self, data: bytes) -> None:
        assert self._state is not None
        try:
            write_atomically(self._state, data)  # fsync, rename; a planted symlink is not followed
        except OSError as exc:
            self._dirty = True
            self.save_failures += 1
            log.warning("cannot save heartbeat state to %s: %s; trying again later", self._state, exc)

    def save(self) -> None:
        """Write the deadlines to the state dir (when there is one and they changed), here and now."""
        data = self._snapshot()
        if data is not None:
            self._write(data)

    async def save_off_loop(self) -> None:
        """``save``, with the disk write in a worker thread (the event loop keeps serving)."""
        data = self._snapshot()
        if data is not None:
            await asyncio.to_thread(self._write, data)


# ---------------------------------------------------------------------------- /push


_NO_BEAT = "\0" * 32  # compared against for an unknown name, which no token matches as it answers 403 anyway


def _token_of(request: web.Request) -> str | None:
    """The token of a ping: ``Authorization: Bearer <token>``, else ``?token=``."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("token") or None


def token_matches(given: str | bytes, expected: str | bytes) -> bool:
    """Whether ``given`` is ``expected``, in time independent of both (their hashes are compared).

    The one credential check of slaprobe: heartbeat tokens and the webhook's credentials.
    An empty ``expected`` matches nothing (a secret that resolved to "" lets no one in).
    """
    if not expected:
        return False
    given_bytes = given.encode() if isinstance(given, str) else given
    expected_bytes = expected.encode() if isinstance(expected, str) else expected
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given_bytes).digest(), digest(expected_bytes).digest())


def _parse_duration(text: str) -> float:
    """``1.5`` (seconds) or a Prometheus duration (``1500ms``); ValueError otherwise."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_duration(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a finite, non-negative number of seconds")
    return seconds


def pushed_result(query: Any) -> ProbeResult:
    """The run a ping reports (``status``, ``duration``, ``msg``); ValueError for a bad parameter."""
    status = query.get("status", "up")
    if status not in ("up", "down"):
        raise ValueError("status must be up or down")
    duration = _parse_duration(query["duration"]) if query.get("duration") else 0.0
    message = " ".join(sanitize_text(query.get("msg", "")).split())[:MAX_MESSAGE]  # one line
    if status == "up":
        return ProbeResult(True, duration, detail=message)
    return ProbeResult(False, duration, FailureReason.REPORTED_DOWN, message or "the pinger reported down")


PUSH_FIELDS = frozenset({"success", "duration", "phases", "reason", "location", "msg"})
PUSHED_PHASES = ("resolve", "connect", "tls", "processing", "transfer")  # the HTTP probe's phases
LOCATION = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # as global.location
# Reasons only slaprobe itself gives: an agent cannot report a missed heartbeat, a refusal or a bug of ours.
NOT_PUSHED = frozenset({FailureReason.MISSED_HEARTBEAT, FailureReason.INTERNAL, FailureReason.FORBIDDEN})
PUSHED_REASONS = tuple(r.value for r in FailureReason if r not in NOT_PUSHED)


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: a finite, non-negative number of seconds")
    return float(value)


def pushed_json(body: Any) -> tuple[ProbeResult, str | None]:
    """The run a remote agent's JSON body reports, and its location; ValueError naming the bad field.

    ``{"success": false, "duration": 1.25, "phases": {"connect": 0.1, ...}, "reason": "timeout",
    "location": "branch-office", "msg": "..."}``: ``success`` is required; ``duration`` (seconds,
    default 0), ``phases`` (seconds by HTTP phase), ``reason`` (a failure reason, with
    ``success: false`` only; default ``reported_down``), ``location`` and ``msg`` are optional.
    """
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object with success, and duration, phases, reason, location, msg")
    unknown = sorted(str(k) for k in body if k not in PUSH_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0][:40]!r} (known: {', '.join(sorted(PUSH_FIELDS))})")
    success = body.get("success")
    if not isinstance(success, bool):
        raise ValueError("success: required, true or false")
    duration = _seconds(body.get("duration", 0), "duration")
    phases = body.get("phases", {})
    if not isinstance(phases, dict):
        raise ValueError("phases: an object of seconds by phase")
    for name in phases:
        if name not in PUSHED_PHASES:
            raise ValueError(f"phases: unknown phase {str(name)[:40]!r} (known: {', '.join(PUSHED_PHASES)})")
    timed = {name: _seconds(value, f"phases.{name}") for name, value in phases.items()}
    message = body.get("msg", "")
    if not isinstance(message, str):
        raise ValueError("msg: must be text")
    message = " ".join(sanitize_text(message).split())[:MAX_MESSAGE]
    location = body.get("location")
    if location is not None and (not isinstance(location, str) or not LOCATION.fullmatch(location)):
        raise ValueError("location: 1 to 64 of A-Z a-z 0-9 _ . -")
    reason_text = body.get("reason")
    if success:
        if reason_text is not None:
            raise ValueError("reason: only for success: false")
        return ProbeResult(True, duration, detail=message, phases=timed), location
    if reason_text is None:
        reason = FailureReason.REPORTED_DOWN
    elif reason_text in PUSHED_REASONS:
        reason = FailureReason(reason_text)
    else:
        raise ValueError(f"reason: one of {', '.join(PUSHED_REASONS)}")
    return ProbeResult(False, duration, reason, message or f"the agent reported {reason.value}", phases=timed), location


def _is_json(request: web.Request) -> bool:
    return request.method == "POST" and request.content_type == "application/json"


async def handle_push(request: web.Request) -> web.Response:
    """``GET|POST /push/<service>/<probe>``: one pushed run of a heartbeat probe (token required).

    The run is in the query (``status``, ``duration``, ``msg``), or, posted as
    ``application/json``, in the body (``pushed_json``: a remote dial-test agent's result).
    """
    heartbeats = request.app[HEARTBEATS_KEY]
    key = (request.match_info["service"], request.match_info["probe"])
    beat = heartbeats.get(key)
    if (request.content_length or 0) > MAX_PUSH_BYTES:
        return web.Response(status=413, text=f"a ping carries at most {MAX_PUSH_BYTES} bytes of body\n")
    token = _token_of(request)
    if token is None:
        return web.Response(
            status=401, text="a ping needs the heartbeat's token\n", headers={"WWW-Authenticate": "Bearer"}
        )
    # An unknown name is answered as a wrong token (and costs the same hash): no enumeration of names.
    expected = beat.spec.token.get_secret_value() if beat is not None else _NO_BEAT
    if beat is None or not token_matches(token, expected):
        return web.Response(status=403, text="no heartbeat of that name takes this token\n")
    location = None
    try:
        if _is_json(request):
            if set(request.query) & {"status", "duration", "msg"}:
                raise ValueError("give the run in the JSON body or in the query, not both")
            raw = await request.content.read(MAX_PUSH_BYTES + 1)
            if len(raw) > MAX_PUSH_BYTES:
                return web.Response(status=413, text=f"a ping carries at most {MAX_PUSH_BYTES} bytes of body\n")
            try:
                body = json.loads(raw)
            except ValueError:
                raise ValueError("the body is not JSON") from None
            result, location = pushed_json(body)
        else:
            result = pushed_result(request.query)
    except ValueError as exc:
        return web.Response(status=400, text=f"bad ping: {exc}\n")
    if location is not None and not heartbeats.locate(key, location):
        return web.Response(status=400, text="bad ping: location: this probe has as many locations as it may take\n")
    heartbeats.ping(key, result, location)
    return web.Response(text="OK\n")


HEARTBEATS_KEY = web.AppKey("heartbeats", Heartbeats)


def install_heartbeats(app: web.Application, heartbeats: Heartbeats) -> None:
    """Serve ``/push/<service>/<probe>`` and count missed periods while the app is up."""
    app[HEARTBEATS_KEY] = heartbeats
    app.router.add_get("/push/{service}/{probe}", handle_push)
    app.router.add_post("/push/{service}/{probe}", handle_push)

    async def missed_periods(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(heartbeats.run(), name="heartbeats")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(missed_periods)
