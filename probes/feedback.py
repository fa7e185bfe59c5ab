"""Complaint tickets: response and resolution times against deadlines, breaches, open tickets.

``TicketTracker`` is pure: the caller feeds it ticket events (the fields of one log line:
``id``, ``event`` in opened / first_response / resolved, ``time``, ``category``,
``urgency``, ``service``, ``channel``; names configurable) and calls ``tick()`` so that
deadlines passing while a ticket is still open are counted. The exporter renders its
counters. No prometheus code here.

Deadlines. A ticket is held to its category's deadlines (``sla:``) and to its
urgency's (``urgency:``); both are commitments to the same customer, so the earlier of
the two applies at each stage. A stage without any deadline is never breached.

Breaches are counted once per ticket and stage: when the response or resolution comes
in late, or as soon as ``tick`` sees the deadline pass while the ticket is still open,
whichever is first. A resolution without an earlier response counts as the first
response too (the customer got an answer then).

Odd input is counted, never fatal: a second ``opened`` or ``first_response`` of a
ticket is a duplicate; an event for a ticket not (yet) opened is held for a while
(``PENDING_TTL``) and applied as out of order when its ``opened`` arrives, or dropped as
an unknown ticket; a step dated before its ticket was opened counts as taking 0 s.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import math
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slaprobe import conventions as c
from slaprobe.config import Deadlines, FeedbackSource
from slaprobe.probes.tally import Histogram, LabelCap

log = logging.getLogger("slaprobe.feedback")

Step = Literal["opened", "first_response", "resolved"]
STAGES = (c.STAGE_FIRST_RESPONSE, c.STAGE_RESOLUTION)  # also the attribute names of config.Deadlines

# Histogram bounds for response and resolution times: 15 min to 14 days. Every
# configured deadline is added, so "within the deadline" is always a bucket.
TICKET_BUCKETS: tuple[float, ...] = tuple(h * 3600.0 for h in (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48, 72, 120, 168, 336))
PENDING_TTL = 3600.0  # seconds an event for a ticket not yet opened waits for its opened event
PENDING_LIMIT = 10_000  # such events held, at most
STATE_VERSION = 1


@dataclass(slots=True)
class Ticket:
    """An open ticket: when it was opened, its labels, and what it has been through."""

    id: str
    opened: float  # unix seconds
    category: str
    urgency: str
    service: str
    channel: str
    responded: float | None = None  # unix seconds of the first response
    response_breached: bool = False
    resolution_breached: bool = False


def parse_ticket_time(value: object) -> float | None:
    """Unix seconds from a number (milliseconds if above 1e11, as the parsers read it) or ISO 8601 text."""
    if value is None or isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.timestamp()
    if number is None or not math.isfinite(number):
        return None
    return number / 1000.0 if number > 1e11 else number


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.strip() if isinstance(value, str) else str(value)


def effective_deadlines(source: FeedbackSource, category: str, urgency: str) -> Deadlines:
    """The deadlines a ticket is held to: per stage, the earlier of its category's and its urgency's."""
    found = [d for d in (source.sla.get(category), source.urgency.get(urgency)) if d is not None]

    def earliest(stage: str) -> float | None:
        limits = [getattr(d, stage) for d in found if getattr(d, stage) is not None]
        return min(limits) if limits else None

    return Deadlines.model_construct(
        first_response=earliest(c.STAGE_FIRST_RESPONSE), resolution=earliest(c.STAGE_RESOLUTION)
    )


class TicketTracker:
    """Open tickets of one feedback source and the counters the exporter renders."""

    def __init__(self, source: FeedbackSource, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self.version = 0  # bumped on every change, so renderers can cache
        self.open: dict[str, Ticket] = {}
        self.tickets: Counter[tuple[str, str, str]] = Counter()  # (service, category, urgency)
        self.by_channel: Counter[str] = Counter()
        self.quality: Counter[str] = Counter()  # by service
        self.breaches: Counter[tuple[str, str, str]] = Counter()  # (category, urgency, stage)
        self.events: Counter[str] = Counter()  # by result (conventions.EVENT_*)
        self.open_counts: Counter[tuple[str, str]] = Counter()  # (category, urgency)
        self.bounds = tuple(sorted({*TICKET_BUCKETS, *self._deadline_values()}))
        self.first_response: dict[tuple[str, str], Histogram] = {}
        self.resolution: dict[tuple[str, str], Histogram] = {}
        self.evicted = 0  # open tickets forgotten to stay under max_open_tickets
        self._steps: dict[str, Step] = {}
        steps: tuple[Step, ...] = ("opened", "first_response", "resolved")
        for step in steps:
            for word in getattr(source.events, step):
                self._steps[word] = step
        self._quality = frozenset(source.quality_categories)
        limit = source.max_label_values
        self._category = LabelCap(limit, {*source.sla, *source.quality_categories, source.defaults.category})
        self._urgency = LabelCap(limit, {*source.urgency, source.defaults.urgency})
        self._service = LabelCap(limit, {source.service or ""})
        self._channel = LabelCap(limit, {source.defaults.channel})
        self._limits: dict[tuple[str, str], Deadlines] = {}
        self._due: list[tuple[float, str, str, float]] = []  # heap of (due, stage, id, opened)
        self._closed: OrderedDict[str, None] = OrderedDict()  # recently resolved ids, for duplicates
        self._pending: OrderedDict[str, list[tuple[Step, float, float]]] = OrderedDict()  # id -> (step, when, held at)
        self._oldest: tuple[int, float | None] = (-1, None)
        self._known_pairs = frozenset(self.known_pairs())

    def _deadline_values(self) -> set[float]:
        values: set[float] = set()
        for table in (self.source.sla, self.source.urgency):
            for deadlines in table.values():
                values.update(v for v in (deadlines.first_response, deadlines.resolution) if v)
        return values

    # ------------------------------------------------------------------ labels and deadlines

    def known_pairs(self) -> list[tuple[str, str]]:
        """(category, urgency) pairs from the config, whose series are exported before any ticket."""
        categories = sorted({*self.source.sla, *self.source.quality_categories, self.source.defaults.category})
        urgencies = sorted({*self.source.urgency, self.source.defaults.urgency})
        return [(cat, urg) for cat in categories for urg in urgencies]

    def deadlines(self, category: str, urgency: str) -> Deadlines:
        """The effective deadlines of a (category, urgency), cached."""
        key = (category, urgency)
        found = self._limits.get(key)
        if found is None:
            found = self._limits[key] = effective_deadlines(self.source, category, urgency)
        return found

    def stages_of(self, category: str, urgency: str) -> list[str]:
        """The stages that have a deadline for a (category, urgency)."""
        limits = self.deadlines(category, urgency)
        return [stage for stage in STAGES if getattr(limits, stage) is not None]

    def _histogram(self, table: dict[tuple[str, str], Histogram], key: tuple[str, str]) -> Histogram:
        found = table.get(key)
        if found is None:
            found = table[key] = Histogram(self.bounds)
        return found

    # ------------------------------------------------------------------ events

    def consume(self, fields: Mapping[str, object], *, time: float | None = None) -> None:
        """Apply one ticket event; ``time`` (e.g. the parsed line's) is used when the event has none."""
        names = self.source.fields
        ticket_id = _text(fields.get(names.id))
        step = self._steps.get(_text(fields.get(names.event)))
        if not ticket_id or step is None:
            self._count(c.EVENT_INVALID)
            return
        when = parse_ticket_time(fields.get(names.time))
        if when is None:
            when = time if time is not None else self.clock()
        if step == "opened":
            self._open(ticket_id, when, fields)
        elif ticket_id in self.open:
            self._count(self._apply(self.open[ticket_id], step, when))
        elif ticket_id in self._closed:
            self._count(c.EVENT_DUPLICATE)
        else:
            self._hold(ticket_id, step, when)

    def _count(self, result: str) -> None:
        self.events[result] += 1
        self.version += 1

    def _open(self, ticket_id: str, when: float, fields: Mapping[str, object]) -> None:
        if ticket_id in self.open or ticket_id in self._closed:
            self._count(c.EVENT_DUPLICATE)
            return
        names, defaults = self.source.fields, self.source.defaults
        ticket = Ticket(
            id=ticket_id,
            opened=when,
            category=self._category(_text(fields.get(names.category)) or defaults.category),
            urgency=self._urgency(_text(fields.get(names.urgency)) or defaults.urgency),
            service=self._service(_text(fields.get(names.service)) or self.source.service or ""),
            channel=self._channel(_text(fields.get(names.channel)) or defaults.channel),
        )
        self.tickets[(ticket.service, ticket.category, ticket.urgency)] += 1
        self.by_channel[ticket.channel] += 1
        if ticket.category in self._quality:
            self.quality[ticket.service] += 1
        self._track(ticket)
        self._count(c.EVENT_APPLIED)
        for step, at, _held in self._pending.pop(ticket_id, ()):
            if ticket_id in self.open:
                self._apply(self.open[ticket_id], step, at)
            self._count(c.EVENT_OUT_OF_ORDER)
        while len(self.open) > self.source.max_open_tickets:
            self._evict_oldest()

    def _track(self, ticket: Ticket) -> None:
        """Make ``ticket`` open: counted in the gauges, its deadlines scheduled."""
        self.open[ticket.id] = ticket
        self.open_counts[(ticket.category, ticket.urgency)] += 1
        limits = self.deadlines(ticket.category, ticket.urgency)
        for stage in STAGES:
            limit = getattr(limits, stage)
            done = ticket.responded is not None if stage == c.STAGE_FIRST_RESPONSE else False
            if limit is not None and not done and not self._breached(ticket, stage):
                heapq.heappush(self._due, (ticket.opened + limit, stage, ticket.id, ticket.opened))

    def _untrack(self, ticket: Ticket) -> None:
        del self.open[ticket.id]
        key = (ticket.category, ticket.urgency)
        self.open_counts[key] -= 1
        if self.open_counts[key] <= 0 and key not in self._known_pairs:
            del self.open_counts[key]

    def _evict_oldest(self) -> None:
        oldest = next(iter(self.open.values()))  # first opened, in the order the log told
        self._untrack(oldest)
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                "feedback %s: more than %d open tickets; forgot the oldest (%d so far)",
                self.source.name,
                self.source.max_open_tickets,
                self.evicted,
            )

    def _apply(self, ticket: Ticket, step: Step, when: float) -> str:
        """A first response or resolution of an open ticket; returns the result to count."""
        result = c.EVENT_APPLIED
        elapsed = when - ticket.opened
        if elapsed < 0:
            elapsed, result = 0.0, c.EVENT_OUT_OF_ORDER
        key = (ticket.category, ticket.urgency)
        if step == "first_response" or (step == "resolved" and ticket.responded is None):
            if ticket.responded is not None:
                return c.EVENT_DUPLICATE
            ticket.responded = when
            self._histogram(self.first_response, key).observe(elapsed)
            self._check(ticket, c.STAGE_FIRST_RESPONSE, elapsed)
        if step == "resolved":
            self._histogram(self.resolution, key).observe(elapsed)
            self._check(ticket, c.STAGE_RESOLUTION, elapsed)
            self._untrack(ticket)
            self._closed[ticket.id] = None
            while len(self._closed) > self.source.max_open_tickets:
                self._closed.popitem(last=False)
        return result

    def _check(self, ticket: Ticket, stage: str, elapsed: float) -> None:
        """Count a breach of ``stage`` if it took longer than allowed and was not counted yet."""
        limit = getattr(self.deadlines(ticket.category, ticket.urgency), stage)
        if limit is not None and elapsed > limit and not self._breached(ticket, stage):
            self._breach(ticket, stage)

    @staticmethod
    def _breached(ticket: Ticket, stage: str) -> bool:
        return ticket.response_breached if stage == c.STAGE_FIRST_RESPONSE else ticket.resolution_breached

    def _breach(self, ticket: Ticket, stage: str) -> None:
        if stage == c.STAGE_FIRST_RESPONSE:
            ticket.response_breached = True
        else:
            ticket.resolution_breached = True
        self.breaches[(ticket.category, ticket.urgency, stage)] += 1
        self.version += 1

    def _hold(self, ticket_id: str, step: Step, when: float) -> None:
        """Keep an event of a ticket not opened yet, in case its opened event comes later."""
        self._pending.setdefault(ticket_id, []).append((step, when, self.clock()))
        self._pending.move_to_end(ticket_id)
        while len(self._pending) > PENDING_LIMIT:
            _, dropped = self._pending.popitem(last=False)
            for _ in dropped:
                self._count(c.EVENT_UNKNOWN_TICKET)

    # ------------------------------------------------------------------ time passing

    def tick(self, now: float | None = None) -> int:
        """Count the deadlines of open tickets that have passed by ``now``; returns how many were new."""
        now = self.clock() if now is None else now
        new = 0
        due = self._due
        while due and due[0][0] < now:
            _, stage, ticket_id, opened = heapq.heappop(due)
            ticket = self.open.get(ticket_id)
            if ticket is None or ticket.opened != opened or self._breached(ticket, stage):
                continue  # resolved (or a newer ticket with the same id) meanwhile
            if stage == c.STAGE_FIRST_RESPONSE and ticket.responded is not None:
                continue
            self._breach(ticket, stage)
            new += 1
        while self._pending:
            ticket_id, held = next(iter(self._pending.items()))
            if held[-1][2] > now - PENDING_TTL:
                break
            del self._pending[ticket_id]
            for _ in held:
                self._count(c.EVENT_UNKNOWN_TICKET)
        return new

    def oldest_open_age(self, now: float | None = None) -> float:
        """Seconds since the oldest open ticket was opened; 0 without open tickets."""
        version, oldest = self._oldest
        if version != self.version:
            oldest = min((t.opened for t in self.open.values()), default=None)
            self._oldest = (self.version, oldest)
        if oldest is None:
            return 0.0
        return max(0.0, (self.clock() if now is None else now) - oldest)

    # ------------------------------------------------------------------ state across restarts

    def state(self) -> dict[str, Any]:
        """Open tickets, recently resolved ids and held events, as JSON-able data."""
        return {
            "version": STATE_VERSION,
            "source": self.source.name,
            "open": [
                [
                    t.id,
                    t.opened,
                    t.category,
                    t.urgency,
                    t.service,
                    t.channel,
                    t.responded,
                    t.response_breached,
                    t.resolution_breached,
                ]
                for t in self.open.values()
            ],
            "closed": list(self._closed),
            "pending": [[i, [list(e) for e in events]] for i, events in self._pending.items()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the open tickets of ``state()`` (of this or an earlier config of the source)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown ticket state version {state.get('version')!r}")
        for row in state.get("open", []):
            tid, opened, category, urgency, service, channel, responded, rb, sb = row
            ticket = Ticket(
                id=str(tid),
                opened=float(opened),
                category=self._category(str(category)),
                urgency=self._urgency(str(urgency)),
                service=self._service(str(service)),
                channel=self._channel(str(channel)),
                responded=None if responded is None else float(responded),
                response_breached=bool(rb),
                resolution_breached=bool(sb),
            )
            if ticket.id in self.open:
                self._untrack(self.open[ticket.id])
            self._track(ticket)
        for tid in state.get("closed", []):
            self._closed[str(tid)] = None
        for tid, events in state.get("pending", []):
            self._pending[str(tid)] = [(step, float(when), float(held)) for step, when, held in events]
        self.version += 1

    def save(self, path: Path) -> None:
        """Write the open-ticket state to ``path`` atomically (a crash leaves the old file or the new)."""
        write_atomically(path, json.dumps(self.state(), separators=(",", ":")).encode())

    def load(self, path: Path) -> bool:
        """Take over the state saved at ``path``; False if there is none or it cannot be read (logged)."""
        try:
            state = json.loads(path.read_bytes())
            self.restore(state)
        except FileNotFoundError:
            return False
        except (OSError, ValueError, TypeError) as exc:
            log.warning("feedback %s: ignoring unreadable ticket state %s: %s", self.source.name, path, exc)
            return False
        return True

    def open_tickets(self) -> Iterator[Ticket]:
        """The open tickets, in the order they were opened."""
        return iter(list(self.open.values()))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: write a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
