"""Complaint tickets: deadlines, the closed loop, satisfaction and repeats of one feedback source.

``TicketTracker`` is pure: the caller feeds it ticket events (the fields of one log line:
``id``, ``event``, ``time``, ``category``, ``urgency``, ``service``, ``channel``,
``customer``, ``rating``, ``scale``; names configurable) and calls ``tick()`` so that
deadlines and reopen windows passing while nothing is logged are counted. The exporter
renders its counters. No prometheus code here.

A ticket's life. ``opened`` (received; classified by its own category or by the
``classify:`` rules, see ``probes.classify``), ``first_response`` (answered),
``resolved``, then ``closed`` (the customer confirmed) or ``reopened`` (open again, then
resolved again); a resolved ticket not reopened within ``reopen_window`` is auto-closed.
``rated`` carries a satisfaction rating (``probes.rating``) at any point, one per
resolution. A ``closed`` event for a ticket never resolved closes it unresolved.

Deadlines. A ticket is held to its category's deadlines (``sla:``) and to its
urgency's (``urgency:``); both are commitments to the same customer, so the earlier of
the two applies at each stage. A stage without any deadline is never breached.

Breaches are counted once per ticket and stage: when the response or resolution comes
in late, or as soon as ``tick`` sees the deadline pass while the ticket is still open,
whichever is first. A resolution without an earlier response counts as the first
response too (the customer got an answer then). Response and resolution times are
measured once per ticket: a reopened ticket's second resolution is not timed again.

The closed loop. Each ticket is counted once at each stage it reaches: received,
classified, answered, resolved, closed (confirmed or auto-closed after a resolution); it
is *closed loop* when it closes having gone through all of them. Every closing is counted
by its outcome (confirmed, auto_closed, unresolved); a ticket reopened after it closed
counts as reopened and, when it closes again, as a second closing.

Surveys. A ``survey`` event (a survey result, e.g. from a log of its own: a feedback source
whose lines are all surveys) carries a score (``score`` field, else ``rating``) on a scale,
and a service, category and channel like an opened ticket (its own fields, the rules, the
defaults); it is counted as a rating of that key, no ticket needed. One with an id counts
once.

Repeats. The customer id is hashed at once (``probes.repeats``); a ticket opened by the
same customer about the same service and category within ``repeat_window`` of an
earlier one counts as a repeat.

Odd input is counted, never fatal: a second ``opened`` or ``first_response`` of a
ticket is a duplicate; an event for a ticket not (yet) opened is held for a while
(``PENDING_TTL``) and applied as out of order when its ``opened`` arrives, or dropped as
an unknown ticket; a step dated before its ticket was opened counts as taking 0 s; a
rating of a ticket not known is counted with the labels its own event gives.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slaprobe import conventions as c
from slaprobe.atomicfile import write_atomically
from slaprobe.config import Deadlines, FeedbackSource
from slaprobe.probes.classify import Classifier, classifier_for
from slaprobe.probes.rating import RATING_BOUNDS, read_rating
from slaprobe.probes.repeats import RepeatWindow, customer_key
from slaprobe.probes.tally import Histogram, LabelCap
from slaprobe.text import sanitize_text

log = logging.getLogger("slaprobe.feedback")

Step = Literal["opened", "first_response", "resolved", "reopened", "rated", "closed", "survey"]
STEPS: tuple[Step, ...] = ("opened", "first_response", "resolved", "reopened", "rated", "closed", "survey")
STAGES = (c.STAGE_FIRST_RESPONSE, c.STAGE_RESOLUTION)  # also the attribute names of config.Deadlines
_AUTO_CLOSE = "auto_close"  # the heap entry of a resolved ticket's reopen window

# Histogram bounds for response and resolution times: 15 min to 14 days. Every
# configured deadline is added, so "within the deadline" is always a bucket.
TICKET_BUCKETS: tuple[float, ...] = tuple(h * 3600.0 for h in (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48, 72, 120, 168, 336))
PENDING_TTL = 3600.0  # seconds an event for a ticket not yet opened waits for its opened event
PENDING_LIMIT = 10_000  # such events held, at most
MAX_SERIES = 1000  # distinct (service, category, channel) of the satisfaction and loop counters; then one overflow key
STATE_VERSION = 2

Key = tuple[str, str, str]  # (service, category, channel) of the satisfaction and loop counters
_OVERFLOW_KEY: Key = (c.OVERFLOW_LABEL_VALUE,) * 3


_APPLIED, _DUPLICATE = c.EVENT_APPLIED, c.EVENT_DUPLICATE
_FIRST_RESPONSE = c.STAGE_FIRST_RESPONSE
_STAGE_INDEX = {stage: i for i, stage in enumerate(c.LOOP_STAGES)}
_OUTCOME_INDEX = {outcome: i for i, outcome in enumerate(c.CLOSED_OUTCOMES)}


@dataclass(slots=True, eq=False)
class KeyStats:
    """The satisfaction, repeat and closed-loop counters of one (service, category, channel)."""

    rated: int = 0
    satisfied: int = 0
    repeats: int = 0
    reopened: int = 0
    closed_loop: int = 0
    stages: list[int] = field(default_factory=lambda: [0] * len(c.LOOP_STAGES))  # by c.LOOP_STAGES
    closed: list[int] = field(default_factory=lambda: [0] * len(c.CLOSED_OUTCOMES))  # by c.CLOSED_OUTCOMES
    ratings: dict[int, Histogram] = field(default_factory=dict)  # by scale

    def rating(self, scale: int) -> Histogram:
        """The rating histogram of ``scale``, made at its first rating."""
        found = self.ratings.get(scale)
        if found is None:
            found = self.ratings[scale] = Histogram(RATING_BOUNDS)
        return found


_RECEIVED, _CLASSIFIED, _ANSWERED, _RESOLVED, _CLOSED = (_STAGE_INDEX[s] for s in c.LOOP_STAGES)


@dataclass(slots=True)
class Ticket:
    """A known ticket: when it was opened, its labels, and what it has been through."""

    id: str
    opened: float  # unix seconds
    category: str
    urgency: str
    service: str
    channel: str
    responded: float | None = None  # unix seconds of the first response
    response_breached: bool = False
    resolution_breached: bool = False
    classified: bool = False  # its category came from the event or a classification rule, not the default
    resolved_at: float | None = None  # unix seconds of the latest resolution
    resolutions: int = 0
    rated: bool = False  # rated since its latest resolution (or opening)
    loop_closed: bool = False  # counted at the closed stage of the loop
    stats: KeyStats | None = None  # the counters of its (service, category, channel), set when tracked


@dataclass(frozen=True, slots=True)
class DeskSettings:
    """What a tracker reads from its source besides the deadlines, resolved once."""

    customer_field: str
    rating_field: str
    scale_field: str
    satisfied: Mapping[int, float]
    default_scale: int
    repeat_window: float
    reopen_window: float
    max_customers: int
    salt: bytes
    classifier: Classifier

    @classmethod
    def of(cls, source: FeedbackSource) -> DeskSettings:
        """The settings of ``source``."""
        return cls(
            customer_field=source.fields.customer,
            rating_field=source.fields.rating,
            scale_field=source.fields.scale,
            satisfied=dict(source.satisfied),
            default_scale=source.scale,
            repeat_window=source.repeat_window,
            reopen_window=source.reopen_window,
            max_customers=source.max_customers,
            salt=source.customer_salt.encode(),
            classifier=classifier_for(source.classify),
        )


def parse_ticket_time(value: object) -> float | None:
    """Unix seconds from a number (milliseconds if above 1e11, as the parsers read it) or ISO 8601 text."""
    if value.__class__ is float and math.isfinite(value):  # the usual case, first
        return value / 1000.0 if value > 1e11 else value
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
    if value.__class__ is str:
        return value.strip()  # the usual case, first
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return sanitize_text(value.strip() if isinstance(value, str) else str(value))  # "\ud800" from JSON


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
    """Known tickets of one feedback source and the counters the exporter renders."""

    def __init__(self, source: FeedbackSource, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self.settings = settings = DeskSettings.of(source)
        self.version = 0  # bumped on every change, so renderers can cache
        self.open: dict[str, Ticket] = {}
        self.resolved: OrderedDict[str, Ticket] = OrderedDict()  # resolved, neither reopened nor closed yet
        self.tickets: Counter[tuple[str, str, str]] = Counter()  # (service, category, urgency)
        self.by_channel: Counter[str] = Counter()
        self.quality: Counter[str] = Counter()  # by service
        self.breaches: Counter[tuple[str, str, str]] = Counter()  # (category, urgency, stage)
        self.events: Counter[str] = Counter()  # by result (conventions.EVENT_*)
        self.open_counts: Counter[tuple[str, str]] = Counter()  # (category, urgency)
        self.bounds = tuple(sorted({*TICKET_BUCKETS, *self._deadline_values()}))
        self.first_response: dict[tuple[str, str], Histogram] = {}
        self.resolution: dict[tuple[str, str], Histogram] = {}
        self.closing: dict[tuple[str, str], Histogram] = {}  # opening to confirmation or auto-close, once a ticket
        # Satisfaction, repeats and the closed loop, by (service, category, channel): at most MAX_SERIES keys.
        self.stats: dict[Key, KeyStats] = {}
        self.customers = RepeatWindow(settings.repeat_window, settings.max_customers)
        self.evicted = 0  # open or resolved tickets forgotten to stay under max_open_tickets
        self._names = (source.fields.id, source.fields.event, source.fields.time)
        names = source.fields
        self._label_fields = (names.category, names.urgency, names.service, names.channel)
        self._steps: dict[str, Step] = {}
        for step in STEPS:
            for word in getattr(source.events, step):
                self._steps[word] = step
        self._quality = frozenset(source.quality_categories)
        limit = source.max_label_values
        self._category = LabelCap(limit, {*source.sla, *source.quality_categories, source.defaults.category})
        self._urgency = LabelCap(limit, {*source.urgency, source.defaults.urgency})
        self._service = LabelCap(limit, {source.service or ""})
        self._channel = LabelCap(limit, {source.defaults.channel})
        self._limits: dict[tuple[str, str], Deadlines] = {}
        self._stage_limits: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {}  # stages with a deadline
        self._due: list[tuple[float, str, str, float]] = []  # heap of (due, stage or _AUTO_CLOSE, id, opened)
        self._closed: OrderedDict[str, Ticket] = OrderedDict()  # recently closed tickets, for duplicates and reopens
        self._rated_unknown: OrderedDict[str, None] = OrderedDict()  # ids rated while not known, for duplicates
        self._surveyed: OrderedDict[str, None] = OrderedDict()  # ids of survey results counted, for duplicates
        self.surveys = 0  # survey results counted
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

    def known_keys(self) -> list[Key]:
        """(service, category, channel) keys from the config, exported before any ticket (with a service)."""
        if not self.source.service:
            return []
        categories = sorted({*self.source.sla, *self.source.quality_categories, self.source.defaults.category})
        return [(self.source.service, cat, self.source.defaults.channel) for cat in categories]

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

    def stats_of(self, key: Key) -> KeyStats:
        """The counters of ``key``; past MAX_SERIES keys, those of the overflow key."""
        found = self.stats.get(key)
        if found is None:
            if len(self.stats) >= MAX_SERIES:
                key = _OVERFLOW_KEY
                found = self.stats.get(key)
            if found is None:
                found = self.stats[key] = KeyStats()
        return found

    def _stats(self, ticket: Ticket) -> KeyStats:
        found = ticket.stats
        if found is None:
            found = ticket.stats = self.stats_of((ticket.service, ticket.category, ticket.channel))
        return found

    # Views of the counters by key (nonzero values only), for tests and the status page.

    @property
    def rated(self) -> dict[Key, int]:
        """Ratings counted, by (service, category, channel)."""
        return {k: s.rated for k, s in self.stats.items() if s.rated}

    @property
    def satisfied(self) -> dict[Key, int]:
        """Ratings counted as satisfied, by (service, category, channel)."""
        return {k: s.satisfied for k, s in self.stats.items() if s.satisfied}

    @property
    def repeats(self) -> dict[Key, int]:
        """Repeat tickets, by (service, category, channel)."""
        return {k: s.repeats for k, s in self.stats.items() if s.repeats}

    @property
    def reopened(self) -> dict[Key, int]:
        """Reopens, by (service, category, channel)."""
        return {k: s.reopened for k, s in self.stats.items() if s.reopened}

    @property
    def closed_loop(self) -> dict[Key, int]:
        """Tickets closed having gone through every stage of the loop, by (service, category, channel)."""
        return {k: s.closed_loop for k, s in self.stats.items() if s.closed_loop}

    @property
    def closed(self) -> dict[tuple[str, str, str, str], int]:
        """Closings, by (service, category, channel, outcome)."""
        return {
            (*k, o): n for k, s in self.stats.items() for o, n in zip(c.CLOSED_OUTCOMES, s.closed, strict=True) if n
        }

    @property
    def loop_stages(self) -> Counter[tuple[str, str, str, str]]:
        """Tickets that reached each stage of the loop, by (service, category, channel, stage)."""
        return Counter(
            {(*k, st): n for k, s in self.stats.items() for st, n in zip(c.LOOP_STAGES, s.stages, strict=True) if n}
        )

    @property
    def ratings(self) -> dict[tuple[str, str, str, int], Histogram]:
        """Rating histograms, by (service, category, channel, scale)."""
        return {(*k, scale): h for k, s in self.stats.items() for scale, h in s.ratings.items()}

    def _labels(self, fields: Mapping[str, object]) -> tuple[str, str, str, str, bool]:
        """(category, urgency, service, channel, classified) of an event: its own fields, the rules, the defaults."""
        category_field, urgency_field, service_field, channel_field = self._label_fields
        defaults = self.source.defaults
        get = fields.get
        category, urgency, service = get(category_field), get(urgency_field), get(service_field)
        category = category.strip() if category.__class__ is str else _text(category)
        urgency = urgency.strip() if urgency.__class__ is str else _text(urgency)
        service = service.strip() if service.__class__ is str else _text(service)
        classifier = self.settings.classifier
        if classifier and not (category and urgency and service):
            ruled_category, ruled_urgency, ruled_service = classifier.classify(fields)
            category = category or ruled_category or ""
            urgency = urgency or ruled_urgency or ""
            service = service or ruled_service or ""
        channel = get(channel_field)
        channel = (channel.strip() if channel.__class__ is str else _text(channel)) or defaults.channel
        classified = bool(category)
        # The label caps, their usual case (a value already seen) inline.
        category = category or defaults.category
        if category not in self._category.seen:
            category = self._category(category)
        urgency = urgency or defaults.urgency
        if urgency not in self._urgency.seen:
            urgency = self._urgency(urgency)
        service = service or self.source.service or ""
        if service not in self._service.seen:
            service = self._service(service)
        if channel not in self._channel.seen:
            channel = self._channel(channel)
        return category, urgency, service, channel, classified

    # ------------------------------------------------------------------ events

    def consume(self, fields: Mapping[str, object], *, time: float | None = None) -> None:
        """Apply one ticket event; ``time`` (e.g. the parsed line's) is used when the event has none."""
        id_field, event_field, time_field = self._names
        get = fields.get
        ticket_id = get(id_field)
        ticket_id = ticket_id.strip() if ticket_id.__class__ is str else _text(ticket_id)
        word = get(event_field)
        step = self._steps.get(word) if word.__class__ is str else None
        if step is None:
            step = self._steps.get(_text(word))
        if step == "survey":
            self._count(self._survey(ticket_id, fields))
            return
        if not ticket_id or step is None:
            self._count(c.EVENT_INVALID)
            return
        value = get(time_field)
        if value.__class__ is float and 0.0 < value <= 1e11:  # the usual case: unix seconds, finite
            when: float | None = value
        else:
            when = parse_ticket_time(value)
        if when is None:
            when = time if time is not None else self.clock()
        if step == "opened":
            self._open(ticket_id, when, fields)
            return
        result = self._rate(ticket_id, fields) if step == "rated" else self._advance(ticket_id, step, when)
        if result is None:
            self._hold(ticket_id, step, when)
        else:
            self.events[result] += 1
            self.version += 1

    def _count(self, result: str) -> None:
        self.events[result] += 1
        self.version += 1

    def _open(self, ticket_id: str, when: float, fields: Mapping[str, object]) -> None:
        if ticket_id in self.open or ticket_id in self.resolved or ticket_id in self._closed:
            self._count(c.EVENT_DUPLICATE)
            return
        category, urgency, service, channel, classified = self._labels(fields)
        stats = self.stats.get((service, category, channel)) or self.stats_of((service, category, channel))
        ticket = Ticket(ticket_id, when, category, urgency, service, channel, classified=classified, stats=stats)
        self.tickets[(service, category, urgency)] += 1
        self.by_channel[channel] += 1
        if category in self._quality:
            self.quality[service] += 1
        stages = stats.stages
        stages[_RECEIVED] += 1
        if classified:
            stages[_CLASSIFIED] += 1
        settings = self.settings
        customer = fields.get(settings.customer_field)
        if customer is not None and customer != "":
            customer = customer.strip() if customer.__class__ is str else _text(customer)
            if self.customers.visit(customer_key(settings.salt, customer, service, category), when):
                stats.repeats += 1
        self._track(ticket)
        self.events[_APPLIED] += 1
        self.version += 1
        if self._pending:
            for step, at, _held in self._pending.pop(ticket_id, ()):
                self._advance(ticket_id, step, at)
                self._count(c.EVENT_OUT_OF_ORDER)
        while len(self.open) > self.source.max_open_tickets:
            self._evict_oldest()

    def _advance(self, ticket_id: str, step: Step, when: float) -> str | None:
        """A step of a known ticket; returns the result to count, None if the ticket is not known."""
        ticket = self.open.get(ticket_id)
        if ticket is not None:
            if step == "reopened":
                return c.EVENT_DUPLICATE
            if step == "closed":
                del self.open[ticket_id]
                self._untrack_counts(ticket)
                self._close(ticket, c.CLOSED_UNRESOLVED, when)
                return c.EVENT_APPLIED
            return self._apply(ticket, step, when)
        ticket = self.resolved.get(ticket_id) or self._closed.get(ticket_id)
        if ticket is None:
            return None
        if step == "reopened":
            self._reopen(ticket)
            return c.EVENT_APPLIED
        if step == "closed" and ticket_id in self.resolved:
            del self.resolved[ticket_id]
            self._close(ticket, c.CLOSED_CONFIRMED, when)
            return c.EVENT_APPLIED
        return c.EVENT_DUPLICATE

    def _track(self, ticket: Ticket) -> None:
        """Make ``ticket`` open: counted in the gauges, its deadlines scheduled."""
        self.open[ticket.id] = ticket
        key = (ticket.category, ticket.urgency)
        self.open_counts[key] += 1
        limits = self._stage_limits.get(key)
        if limits is None:
            deadlines = self.deadlines(*key)
            limits = self._stage_limits[key] = tuple(
                (stage, getattr(deadlines, stage)) for stage in STAGES if getattr(deadlines, stage) is not None
            )
        for stage, limit in limits:
            if stage == c.STAGE_FIRST_RESPONSE:
                if ticket.responded is not None or ticket.response_breached:
                    continue
            elif ticket.resolutions > 0 or ticket.resolution_breached:
                continue
            heapq.heappush(self._due, (ticket.opened + limit, stage, ticket.id, ticket.opened))

    def _untrack(self, ticket: Ticket) -> None:
        del self.open[ticket.id]
        self._untrack_counts(ticket)

    def _untrack_counts(self, ticket: Ticket) -> None:
        key = (ticket.category, ticket.urgency)
        self.open_counts[key] -= 1
        if self.open_counts[key] <= 0 and key not in self._known_pairs:
            del self.open_counts[key]

    def _evict_oldest(self) -> None:
        oldest = next(iter(self.open.values()))  # first opened, in the order the log told
        self._untrack(oldest)
        self._evicted()

    def _evicted(self) -> None:
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                "feedback %s: more than %d open or resolved tickets; forgot the oldest (%d so far)",
                self.source.name,
                self.source.max_open_tickets,
                self.evicted,
            )

    def _apply(self, ticket: Ticket, step: Step, when: float) -> str:
        """A first response or resolution of an open ticket; returns the result to count."""
        result = _APPLIED
        elapsed = when - ticket.opened
        if elapsed < 0:
            elapsed, result = 0.0, c.EVENT_OUT_OF_ORDER
        key = (ticket.category, ticket.urgency)
        limits = self._limits.get(key) or self.deadlines(*key)
        stats = ticket.stats or self._stats(ticket)
        if step == "first_response" or (step == "resolved" and ticket.responded is None):
            if ticket.responded is not None:
                return _DUPLICATE
            ticket.responded = when
            (self.first_response.get(key) or self._histogram(self.first_response, key)).observe(elapsed)
            limit = limits.first_response
            if limit is not None and elapsed > limit and not ticket.response_breached:
                self._breach(ticket, _FIRST_RESPONSE)
            stats.stages[_ANSWERED] += 1
        if step == "resolved":
            if ticket.resolutions == 0:
                (self.resolution.get(key) or self._histogram(self.resolution, key)).observe(elapsed)
                limit = limits.resolution
                if limit is not None and elapsed > limit and not ticket.resolution_breached:
                    self._breach(ticket, c.STAGE_RESOLUTION)
                stats.stages[_RESOLVED] += 1
            ticket.resolutions += 1
            ticket.resolved_at = when
            del self.open[ticket.id]
            self._untrack_counts(ticket)
            resolved = self.resolved
            resolved[ticket.id] = ticket
            heapq.heappush(self._due, (when + self.settings.reopen_window, _AUTO_CLOSE, ticket.id, when))
            if len(resolved) > self.source.max_open_tickets:
                while len(resolved) > self.source.max_open_tickets:
                    resolved.popitem(last=False)
                    self._evicted()
        return result

    def _reopen(self, ticket: Ticket) -> None:
        """A resolved or closed ticket opened again: counted, and open until it is resolved again."""
        self.resolved.pop(ticket.id, None)
        self._closed.pop(ticket.id, None)
        ticket.rated = False
        self._stats(ticket).reopened += 1
        self._track(ticket)

    def _close(self, ticket: Ticket, outcome: str, when: float) -> None:
        """Count a closing of ``ticket`` (no longer open or resolved) at ``when`` and remember it for a while."""
        stats = self._stats(ticket)
        stats.closed[_OUTCOME_INDEX[outcome]] += 1
        if outcome != c.CLOSED_UNRESOLVED and not ticket.loop_closed:
            ticket.loop_closed = True
            stats.stages[_CLOSED] += 1
            self._histogram(self.closing, (ticket.category, ticket.urgency)).observe(max(0.0, when - ticket.opened))
            if ticket.classified and ticket.responded is not None:
                stats.closed_loop += 1
        self._closed[ticket.id] = ticket
        while len(self._closed) > self.source.max_open_tickets:
            self._closed.popitem(last=False)
        self.version += 1

    def _rate(self, ticket_id: str, fields: Mapping[str, object]) -> str:
        """A satisfaction rating, of a known ticket or of one this tracker never saw opened."""
        settings = self.settings
        rating = read_rating(
            fields.get(settings.rating_field),
            fields.get(settings.scale_field),
            satisfied=settings.satisfied,
            default_scale=settings.default_scale,
        )
        if rating is None:
            return c.EVENT_INVALID
        ticket = self.open.get(ticket_id) or self.resolved.get(ticket_id) or self._closed.get(ticket_id)
        if ticket is not None:
            if ticket.rated:
                return _DUPLICATE
            ticket.rated = True
            stats = ticket.stats or self._stats(ticket)
        else:
            if ticket_id in self._rated_unknown:
                return c.EVENT_DUPLICATE
            self._rated_unknown[ticket_id] = None
            while len(self._rated_unknown) > self.source.max_open_tickets:
                self._rated_unknown.popitem(last=False)
            category, _urgency, service, channel, _classified = self._labels(fields)
            stats = self.stats_of((service, category, channel))
        stats.rated += 1
        value, scale, satisfied = rating
        if satisfied:
            stats.satisfied += 1
        (stats.ratings.get(scale) or stats.rating(scale)).observe(value)
        return _APPLIED

    def _survey(self, survey_id: str, fields: Mapping[str, object]) -> str:
        """A survey result: counted as a rating of its own (service, category, channel), no ticket needed.

        A survey with an id is counted once (a second result of the same id is a duplicate).
        """
        settings = self.settings
        score = fields.get(self.source.fields.score)
        rating = read_rating(
            fields.get(settings.rating_field) if score is None else score,
            fields.get(settings.scale_field),
            satisfied=settings.satisfied,
            default_scale=settings.default_scale,
        )
        if rating is None:
            return c.EVENT_INVALID
        if survey_id:
            if survey_id in self._surveyed:
                return _DUPLICATE
            self._surveyed[survey_id] = None
            while len(self._surveyed) > self.source.max_open_tickets:
                self._surveyed.popitem(last=False)
        category, _urgency, service, channel, _classified = self._labels(fields)
        stats = self.stats_of((service, category, channel))
        stats.rated += 1
        if rating.satisfied:
            stats.satisfied += 1
        stats.rating(rating.scale).observe(rating.value)
        self.surveys += 1
        return _APPLIED

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
        """Count deadlines passed and reopen windows ended by ``now``; returns how many breaches were new."""
        now = self.clock() if now is None else now
        new = 0
        due = self._due
        while due and due[0][0] < now:
            _, stage, ticket_id, since = heapq.heappop(due)
            if stage == _AUTO_CLOSE:
                ticket = self.resolved.get(ticket_id)
                if ticket is not None and ticket.resolved_at == since:
                    del self.resolved[ticket_id]
                    self._close(ticket, c.CLOSED_AUTO, since + self.settings.reopen_window)
                continue
            ticket = self.open.get(ticket_id)
            if ticket is None or ticket.opened != since or self._breached(ticket, stage):
                continue  # resolved (or a newer ticket with the same id) meanwhile
            if stage == c.STAGE_FIRST_RESPONSE and ticket.responded is not None:
                continue
            if stage == c.STAGE_RESOLUTION and ticket.resolutions > 0:
                continue  # reopened: held to its first resolution only
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
        """Known tickets, held events and customer hashes, as JSON-able data (no customer id in the clear)."""
        return {
            "version": STATE_VERSION,
            "source": self.source.name,
            "open": [_row(t) for t in self.open.values()],
            "resolved": [_row(t) for t in self.resolved.values()],
            "closed": [_row(t) for t in self._closed.values()],
            "rated_unknown": list(self._rated_unknown),
            "surveyed": list(self._surveyed),
            "pending": [[i, [list(e) for e in events]] for i, events in self._pending.items()],
            "customers": self.customers.state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the tickets of ``state()`` (of this or an earlier config of the source, version 1 or 2)."""
        version = state.get("version")
        if version not in (1, STATE_VERSION):
            raise ValueError(f"unknown ticket state version {state.get('version')!r}")
        for row in state.get("open", []):
            ticket = self._ticket(row)
            if ticket.id in self.open:
                self._untrack(self.open[ticket.id])
            self._track(ticket)
        for row in state.get("resolved", []):
            ticket = self._ticket(row)
            self.resolved[ticket.id] = ticket
            since = ticket.resolved_at if ticket.resolved_at is not None else ticket.opened
            heapq.heappush(self._due, (since + self.settings.reopen_window, _AUTO_CLOSE, ticket.id, since))
        for row in state.get("closed", []):
            if version == 1:  # only the id: the ticket was resolved, and its loop counted
                row = [row, 0.0, self.source.defaults.category, self.source.defaults.urgency, "", "", 0.0]
                row += [False, False, False, 0.0, 1, False, True]
            ticket = self._ticket(row)
            self._closed[ticket.id] = ticket
        for tid in state.get("rated_unknown", []):
            self._rated_unknown[str(tid)] = None
        for sid in state.get("surveyed", []):
            self._surveyed[str(sid)] = None
        for tid, events in state.get("pending", []):
            self._pending[str(tid)] = [(step, float(when), float(held)) for step, when, held in events]
        if "customers" in state:
            self.customers.restore(state["customers"])
        self.version += 1

    def _ticket(self, row: list[Any]) -> Ticket:
        tid, opened, category, urgency, service, channel, responded, rb, sb, *rest = row
        classified, resolved_at, resolutions, rated, loop_closed = rest or (True, None, 0, False, False)
        return Ticket(
            id=str(tid),
            opened=float(opened),
            category=self._category(str(category)),
            urgency=self._urgency(str(urgency)),
            service=self._service(str(service)),
            channel=self._channel(str(channel)),
            responded=None if responded is None else float(responded),
            response_breached=bool(rb),
            resolution_breached=bool(sb),
            classified=bool(classified),
            resolved_at=None if resolved_at is None else float(resolved_at),
            resolutions=int(resolutions),
            rated=bool(rated),
            loop_closed=bool(loop_closed),
        )

    def save(self, path: Path) -> None:
        """Write the ticket state to ``path`` atomically (a crash leaves the old file or the new)."""
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


def _row(t: Ticket) -> list[Any]:
    return [
        t.id,
        t.opened,
        t.category,
        t.urgency,
        t.service,
        t.channel,
        t.responded,
        t.response_breached,
        t.resolution_breached,
        t.classified,
        t.resolved_at,
        t.resolutions,
        t.rated,
        t.loop_closed,
    ]
