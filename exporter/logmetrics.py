"""Log events into metrics: per-service HTTP requests and durations, user-defined mappings, tickets.

Each object here counts parsed events (``probes.logevent.Event``) and renders its series
as Prometheus text, cached until the next change, in the style of ``store.ProbeSeries``:
``render()`` maps each family of its ``FAMILIES`` table that has series to their text, and
the caller writes each family's header once.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from slaprobe import conventions as c
from slaprobe.config import LogMetric, MatchCondition
from slaprobe.exporter.exposition import LabelSet, MetricFamily, label_set, render_text
from slaprobe.probes.feedback import KeyStats, TicketTracker
from slaprobe.probes.logevent import Event
from slaprobe.probes.parsers import parse_duration_text
from slaprobe.probes.tally import Histogram, LabelCap
from slaprobe.units import UNIT_SECONDS

MAX_SERIES_PER_METRIC = 1000
"""Series one user-defined metric keeps (its known ``values`` combinations always count):
``max_label_values`` caps each label, and three labels capped at 100 could still make
10^6 series; past this, new combinations go to one series with every label ``__other__``."""

Texts = Mapping[MetricFamily, str]  # a part's series text of each family it has series of


def render_families(families: Sequence[MetricFamily], parts: Iterable[Texts]) -> str:
    """Each family's header once, followed by every part's text for it; empty families left out."""
    return render_text(families, parts)


# ---------------------------------------------------------------------------- access logs


HTTP_REQUESTS = MetricFamily(
    c.HTTP_REQUESTS,
    "counter",
    "Requests in the service's access logs, by HTTP status code (0: no response).",
    (c.LABEL_SERVICE, c.LABEL_CODE),
)
HTTP_REQUEST_DURATION = MetricFamily(
    c.HTTP_REQUEST_DURATION,
    "histogram",
    "Request duration logged in the service's access logs, in seconds; SLA thresholds are bucket bounds.",
    (c.LABEL_SERVICE,),
)
HTTP_FAMILIES: tuple[MetricFamily, ...] = (HTTP_REQUESTS, HTTP_REQUEST_DURATION)


class HttpMetrics:
    """Requests by status and the duration histogram of one service, from all its access logs."""

    def __init__(self, service: str, buckets: tuple[float, ...]) -> None:
        self.service = service
        self.buckets = buckets
        self.codes: Counter[int] = Counter()
        self.histogram = Histogram(buckets)
        self._labels = label_set((c.LABEL_SERVICE,), (service,))
        self._text: Texts | None = None

    def add(self, events: Iterable[Event]) -> None:
        """Count a batch of parsed access-log events (the hot path: keep it lean)."""
        codes = self.codes
        counts = self.histogram.counts
        bounds = self.buckets
        where = bisect.bisect_left
        total = 0.0
        for event in events:
            status = event.status
            if status is not None:
                codes[status] += 1
            duration = event.duration
            if duration is not None:
                counts[where(bounds, duration)] += 1
                total += duration
        self.histogram.total += total
        self._text = None

    def add_counts(self, codes: Mapping[int, int], durations: Mapping[float, int]) -> None:
        """Count a tallied batch: requests by status, and by duration (``parsers.Tally``)."""
        self.codes.update(codes)
        counts = self.histogram.counts
        bounds = self.buckets
        where = bisect.bisect_left
        total = 0.0
        for duration, n in durations.items():
            counts[where(bounds, duration)] += n
            total += duration * n
        self.histogram.total += total
        self._text = None

    def render(self) -> Texts:
        """Lines of each family in ``HTTP_FAMILIES``, cached until the next batch."""
        if self._text is None:
            lb = self._labels
            requests = "".join(
                HTTP_REQUESTS.sample(count, str(code), base=lb) for code, count in sorted(self.codes.items())
            )
            self._text = {
                HTTP_REQUESTS: requests,
                HTTP_REQUEST_DURATION: HTTP_REQUEST_DURATION.histogram(self.histogram, base=lb),
            }
        return self._text


# ---------------------------------------------------------------------------- user-defined metrics


Predicate = Callable[[str], bool]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not math.isnan(value) else None


def compile_condition(condition: MatchCondition) -> Predicate:
    """One predicate over a field's text that holds when every part of ``condition`` does."""
    checks: list[Predicate] = []
    if condition.equals is not None:
        allowed = frozenset(condition.equals)
        checks.append(allowed.__contains__)
    if condition.not_equals is not None:
        refused = frozenset(condition.not_equals)
        checks.append(lambda text: text not in refused)
    if condition.regex is not None:
        search = re.compile(condition.regex).search
        checks.append(lambda text: search(text) is not None)
    bounds = [(op, limit) for op in ("gt", "ge", "lt", "le") if (limit := getattr(condition, op)) is not None]
    if bounds:

        def numeric(text: str) -> bool:
            value = _number(text)
            if value is None:
                return False
            for op, limit in bounds:
                if not (
                    (op == "gt" and value > limit)
                    or (op == "ge" and value >= limit)
                    or (op == "lt" and value < limit)
                    or (op == "le" and value <= limit)
                ):
                    return False
            return True

        checks.append(numeric)
    if len(checks) == 1:
        return checks[0]
    return lambda text: all(check(text) for check in checks)


@dataclass(slots=True)
class UserMetric:
    """One ``metrics:`` entry of a log source: its matching, labels, value and series."""

    spec: LogMetric
    service: str
    service_buckets: tuple[float, ...]  # a histogram without buckets of its own uses these
    source: str
    conditions: tuple[tuple[str, Predicate], ...] = ()
    labels: tuple[tuple[str, str, LabelCap], ...] = ()  # (label, field, cap)
    factor: float | None = None  # unit -> seconds; None: a plain number
    buckets: tuple[float, ...] = ()  # of histograms: the metric's own, else the service's
    values: dict[tuple[str, ...], float] = field(default_factory=dict)  # counters and gauges
    histograms: dict[tuple[str, ...], Histogram] = field(default_factory=dict)
    max_series: int = MAX_SERIES_PER_METRIC  # more than this: the overflow series (known combinations kept)
    metric_family: MetricFamily = field(init=False)
    _prefix: LabelSet = field(init=False)
    _text: str | None = None

    def __post_init__(self) -> None:
        spec = self.spec
        self.buckets = tuple(spec.buckets) if spec.buckets else self.service_buckets
        self.conditions = tuple((name, compile_condition(cond)) for name, cond in spec.match.items())
        self.labels = tuple(
            (label, source_field, LabelCap(spec.max_label_values, spec.values.get(label, ())))
            for label, source_field in spec.labels.items()
        )
        if spec.value is not None and spec.value.unit is not None:
            self.factor = UNIT_SECONDS[spec.value.unit]
        self._prefix = label_set((c.LABEL_SERVICE,), (self.service,))
        self.metric_family = MetricFamily(
            spec.name,
            spec.type,
            spec.help or f"User-defined {spec.type} from log source {self.source}.",
            (c.LABEL_SERVICE, *(label for label, _, _ in self.labels)),
        )
        if spec.type != "gauge" and all(label in spec.values for label in spec.labels):
            # Known label values: their series exist (at 0) before the first match.
            combos = itertools.product(*(dict.fromkeys(spec.values[label]) for label in spec.labels))
            for combo in combos:
                if spec.type == "histogram":
                    self.histograms[combo] = Histogram(self.buckets)
                else:
                    self.values[combo] = 0.0
        self.max_series = max(self.max_series, len(self.values) + len(self.histograms))

    @property
    def settings(self) -> tuple[LogMetric, str, Sequence[float]]:
        """What the series depend on (definition, service, bounds): a reload that keeps all three keeps them."""
        return (self.spec, self.service, self.spec.buckets or self.service_buckets)

    @property
    def fields(self) -> tuple[str, ...]:
        """The event fields this metric reads: its match, its labels' fields, its value."""
        spec = self.spec
        value = (spec.value.field,) if spec.value is not None else ()
        return (*spec.match, *(source_field for _, source_field, _ in self.labels), *value)

    def observe(self, event: Event) -> None:
        """Count ``event`` if it passes ``match``."""
        self.add(event.fields)

    def add(self, fields: Mapping[str, str], n: int = 1) -> None:
        """Count ``n`` events with these fields, if they pass ``match`` (a gauge takes the value once)."""
        for name, check in self.conditions:
            text = fields.get(name)
            if text is None or not check(text):
                return
        value = 1.0
        spec_value = self.spec.value
        if spec_value is not None:
            text = fields.get(spec_value.field)
            if text is None:
                return
            parsed = _number(text) if self.factor is None else parse_duration_text(text, self.factor)
            if parsed is None or math.isinf(parsed):
                return
            value = parsed
        key = tuple(cap(fields.get(source_field, "")) for _, source_field, cap in self.labels)
        kind = self.spec.type
        series = self.histograms if kind == "histogram" else self.values
        if key not in series and len(series) >= self.max_series:
            key = (c.OVERFLOW_LABEL_VALUE,) * len(key)
        if kind == "counter":
            if value < 0:
                return
            self.values[key] = self.values.get(key, 0.0) + (value * n if n != 1 else value)
        elif kind == "gauge":
            self.values[key] = value
        else:
            histogram = self.histograms.get(key)
            if histogram is None:
                histogram = self.histograms[key] = Histogram(self.buckets)
            value = max(value, 0.0)
            if n == 1:
                histogram.observe(value)
            else:
                histogram.counts[bisect.bisect_left(histogram.bounds, value)] += n
                histogram.total += value * n
        self._text = None

    def render(self) -> str:
        """This metric's series (without the header), cached until the next match."""
        if self._text is None:
            family, base = self.metric_family, self._prefix
            if self.spec.type == "histogram":
                out = [family.histogram(h, *key, base=base) for key, h in sorted(self.histograms.items())]
            else:
                out = [family.sample(float(v), *key, base=base) for key, v in sorted(self.values.items())]
            self._text = "".join(out)
        return self._text


# ---------------------------------------------------------------------------- source health


_SOURCE = (c.LABEL_SOURCE,)
LOG_LINES = MetricFamily(
    c.LOG_LINES,
    "counter",
    "Lines read from log and feedback sources: parsed, unparsed, or too_long (skipped).",
    (*_SOURCE, c.LABEL_RESULT),
)
LOG_BYTES_READ = MetricFamily(
    c.LOG_BYTES_READ, "counter", "Bytes read from the files of a log or feedback source.", _SOURCE
)
LOG_LAG = MetricFamily(
    c.LOG_LAG, "gauge", "Bytes written to the files of a source but not read yet, at the last poll.", _SOURCE
)
LOG_ROTATIONS = MetricFamily(
    c.LOG_ROTATIONS,
    "counter",
    "Rotations seen (renamed, truncated, or replaced files) of a log or feedback source.",
    _SOURCE,
)
STATE_SAVE_FAILURES = MetricFamily(
    c.STATE_SAVE_FAILURES,
    "counter",
    "Saves of a source's state (ticket state, read offsets) to the state dir that failed; they are retried.",
    _SOURCE,
)
LINE_FAMILIES: tuple[MetricFamily, ...] = (LOG_LINES, LOG_BYTES_READ, LOG_LAG, LOG_ROTATIONS, STATE_SAVE_FAILURES)


@dataclass(slots=True)
class LineStats:
    """What a source has read: lines by result, bytes, rotations, and its lag at the last poll."""

    source: str
    parsed: int = 0
    unparsed: int = 0
    too_long: int = 0
    bytes_read: int = 0
    rotations: int = 0
    lag: int = 0
    save_failures: int = 0

    def render(self) -> Texts:
        """Lines of each family in ``LINE_FAMILIES``."""
        lb = label_set(_SOURCE, (self.source,))
        lines = "".join(
            LOG_LINES.sample(count, result, base=lb)
            for result, count in (
                (c.LINE_PARSED, self.parsed),
                (c.LINE_UNPARSED, self.unparsed),
                (c.LINE_TOO_LONG, self.too_long),
            )
        )
        return {
            LOG_LINES: lines,
            LOG_BYTES_READ: LOG_BYTES_READ.sample(self.bytes_read, base=lb),
            LOG_LAG: LOG_LAG.sample(self.lag, base=lb),
            LOG_ROTATIONS: LOG_ROTATIONS.sample(self.rotations, base=lb),
            STATE_SAVE_FAILURES: STATE_SAVE_FAILURES.sample(self.save_failures, base=lb),
        }


# ---------------------------------------------------------------------------- feedback tickets


_CAT_URG = (c.LABEL_SOURCE, c.LABEL_CATEGORY, c.LABEL_URGENCY)
FEEDBACK_TICKETS = MetricFamily(
    c.FEEDBACK_TICKETS,
    "counter",
    "Tickets opened, by service, category and urgency.",
    (c.LABEL_SOURCE, c.LABEL_SERVICE, c.LABEL_CATEGORY, c.LABEL_URGENCY),
)
FEEDBACK_TICKETS_BY_CHANNEL = MetricFamily(
    c.FEEDBACK_TICKETS_BY_CHANNEL,
    "counter",
    "Tickets opened, by the channel they came in through.",
    (c.LABEL_SOURCE, c.LABEL_CHANNEL),
)
FEEDBACK_QUALITY_TICKETS = MetricFamily(
    c.FEEDBACK_QUALITY_TICKETS,
    "counter",
    "Tickets opened in a product-quality category (quality_categories); over all tickets: the complaint share.",
    (c.LABEL_SOURCE, c.LABEL_SERVICE),
)
FEEDBACK_FIRST_RESPONSE = MetricFamily(
    c.FEEDBACK_FIRST_RESPONSE,
    "histogram",
    "Time from a ticket's opening to its first response, in seconds.",
    _CAT_URG,
)
FEEDBACK_RESOLUTION = MetricFamily(
    c.FEEDBACK_RESOLUTION, "histogram", "Time from a ticket's opening to its resolution, in seconds.", _CAT_URG
)
FEEDBACK_CLOSE_TIME = MetricFamily(
    c.FEEDBACK_CLOSE_TIME,
    "histogram",
    "Time from a ticket's opening to its close after a resolution (confirmed, or auto-closed at the end of "
    "reopen_window), in seconds; once per ticket.",
    _CAT_URG,
)
FEEDBACK_SLA_BREACHES = MetricFamily(
    c.FEEDBACK_SLA_BREACHES,
    "counter",
    "Tickets whose first response or resolution deadline passed, counted when it passes (also while open).",
    (*_CAT_URG, c.LABEL_STAGE),
)
FEEDBACK_OPEN_TICKETS = MetricFamily(c.FEEDBACK_OPEN_TICKETS, "gauge", "Tickets opened and not resolved yet.", _CAT_URG)
FEEDBACK_OLDEST_OPEN_AGE = MetricFamily(
    c.FEEDBACK_OLDEST_OPEN_AGE,
    "gauge",
    "Seconds since the oldest open ticket was opened; 0 without open tickets.",
    (c.LABEL_SOURCE,),
)
FEEDBACK_EVENTS = MetricFamily(
    c.FEEDBACK_EVENTS,
    "counter",
    "Ticket events read, by result: applied, duplicate, out_of_order, unknown_ticket, invalid.",
    (c.LABEL_SOURCE, c.LABEL_RESULT),
)
# Satisfaction, repeats and the closed loop: by service, category and channel.
_DESK = (c.LABEL_SOURCE, c.LABEL_SERVICE, c.LABEL_CATEGORY, c.LABEL_CHANNEL)
FEEDBACK_RATED = MetricFamily(
    c.FEEDBACK_RATED, "counter", "Satisfaction ratings received (rated events), one per ticket and resolution.", _DESK
)
FEEDBACK_SATISFIED = MetricFamily(
    c.FEEDBACK_SATISFIED,
    "counter",
    "Ratings at or above the satisfied minimum of their scale (satisfied:); over rated: CSAT.",
    _DESK,
)
FEEDBACK_RATING = MetricFamily(
    c.FEEDBACK_RATING,
    "histogram",
    "Ratings on their scale (2: thumbs down 0, up 1; 5: stars; 10: 0-10 points). "
    "NPS on scale 10: (count - le=8 - le=6) / count.",
    (*_DESK, c.LABEL_SCALE),
)
FEEDBACK_REPEATS = MetricFamily(
    c.FEEDBACK_REPEATS,
    "counter",
    "Tickets opened by a customer who opened one about the same service and category within repeat_window; "
    "over tickets: the repeat rate.",
    _DESK,
)
FEEDBACK_REOPENED = MetricFamily(
    c.FEEDBACK_REOPENED, "counter", "Resolved or closed tickets reopened; over resolutions: the reopen rate.", _DESK
)
FEEDBACK_CLOSED = MetricFamily(
    c.FEEDBACK_CLOSED,
    "counter",
    "Tickets closed, by outcome: confirmed (closed after a resolution), auto_closed (resolved and not reopened "
    "within reopen_window), unresolved; confirmed and auto_closed over all: the resolution rate.",
    (*_DESK, c.LABEL_OUTCOME),
)
FEEDBACK_CLOSED_LOOP = MetricFamily(
    c.FEEDBACK_CLOSED_LOOP,
    "counter",
    "Tickets closed having been received, classified, answered, resolved, then confirmed or auto-closed; "
    "over closed: the closed-loop rate.",
    _DESK,
)
FEEDBACK_LOOP_STAGE = MetricFamily(
    c.FEEDBACK_LOOP_STAGE,
    "counter",
    "Tickets that reached each stage of the closed loop (the funnel), counted once per ticket and stage.",
    (*_DESK, c.LABEL_STAGE),
)
DESK_FAMILIES = (
    FEEDBACK_RATED,
    FEEDBACK_SATISFIED,
    FEEDBACK_RATING,
    FEEDBACK_REPEATS,
    FEEDBACK_REOPENED,
    FEEDBACK_CLOSED,
    FEEDBACK_CLOSED_LOOP,
    FEEDBACK_LOOP_STAGE,
)
FEEDBACK_FAMILIES: tuple[MetricFamily, ...] = (
    FEEDBACK_TICKETS,
    FEEDBACK_TICKETS_BY_CHANNEL,
    FEEDBACK_QUALITY_TICKETS,
    FEEDBACK_FIRST_RESPONSE,
    FEEDBACK_RESOLUTION,
    FEEDBACK_CLOSE_TIME,
    FEEDBACK_SLA_BREACHES,
    FEEDBACK_OPEN_TICKETS,
    FEEDBACK_OLDEST_OPEN_AGE,
    FEEDBACK_EVENTS,
    *DESK_FAMILIES,
)
_EVENT_RESULTS = (c.EVENT_APPLIED, c.EVENT_DUPLICATE, c.EVENT_OUT_OF_ORDER, c.EVENT_UNKNOWN_TICKET, c.EVENT_INVALID)


class TicketMetrics:
    """Renders one ``TicketTracker``; the text is rebuilt only when the tracker changed."""

    def __init__(self, tracker: TicketTracker) -> None:
        self.tracker = tracker
        self._source = label_set((c.LABEL_SOURCE,), (tracker.source.name,))
        self._text: tuple[int, Texts] | None = None

    def render(self, now: float) -> Texts:
        """Lines of each family in ``FEEDBACK_FAMILIES``; the oldest-ticket age is as of ``now``."""
        tracker = self.tracker
        if self._text is None or self._text[0] != tracker.version:
            self._text = (tracker.version, self._render_counters())
        age = FEEDBACK_OLDEST_OPEN_AGE.sample(tracker.oldest_open_age(now), base=self._source)
        return {**self._text[1], FEEDBACK_OLDEST_OPEN_AGE: age}

    def _render_counters(self) -> Texts:
        t = self.tracker
        lb = self._source
        pairs = t.known_pairs()
        default_service = t.source.service or ""
        tickets = Counter({(default_service, cat, urg): 0 for cat, urg in pairs} if t.source.service else {})
        tickets.update(t.tickets)
        by_service_etc = "".join(
            FEEDBACK_TICKETS.sample(n, s, cat, urg, base=lb) for (s, cat, urg), n in sorted(tickets.items())
        )
        channels = Counter({t.source.defaults.channel: 0})
        channels.update(t.by_channel)
        by_channel = "".join(FEEDBACK_TICKETS_BY_CHANNEL.sample(n, ch, base=lb) for ch, n in sorted(channels.items()))
        quality_counts = Counter({default_service: 0} if t.source.service else {})
        quality_counts.update(t.quality)
        quality = "".join(FEEDBACK_QUALITY_TICKETS.sample(n, s, base=lb) for s, n in sorted(quality_counts.items()))
        histograms: dict[MetricFamily, str] = {}
        for table, family in (
            (t.first_response, FEEDBACK_FIRST_RESPONSE),
            (t.resolution, FEEDBACK_RESOLUTION),
            (t.closing, FEEDBACK_CLOSE_TIME),
        ):
            keys = sorted({*pairs, *table})
            histograms[family] = "".join(
                family.histogram(table.get((cat, urg)) or Histogram(t.bounds), cat, urg, base=lb) for cat, urg in keys
            )
        breaches_counts = Counter({(cat, urg, stage): 0 for cat, urg in pairs for stage in t.stages_of(cat, urg)})
        breaches_counts.update(t.breaches)
        breaches = "".join(
            FEEDBACK_SLA_BREACHES.sample(n, cat, urg, stage, base=lb)
            for (cat, urg, stage), n in sorted(breaches_counts.items())
        )
        open_counts = Counter(dict.fromkeys(pairs, 0))
        open_counts.update(t.open_counts)
        open_tickets = "".join(
            FEEDBACK_OPEN_TICKETS.sample(n, cat, urg, base=lb) for (cat, urg), n in sorted(open_counts.items())
        )
        events = Counter(dict.fromkeys(_EVENT_RESULTS, 0))
        events.update(t.events)
        event_lines = "".join(FEEDBACK_EVENTS.sample(n, result, base=lb) for result, n in events.items())
        return {
            FEEDBACK_TICKETS: by_service_etc,
            FEEDBACK_TICKETS_BY_CHANNEL: by_channel,
            FEEDBACK_QUALITY_TICKETS: quality,
            **histograms,
            FEEDBACK_SLA_BREACHES: breaches,
            FEEDBACK_OPEN_TICKETS: open_tickets,
            FEEDBACK_EVENTS: event_lines,
            **self._render_desk(),
        }

    def _render_desk(self) -> Texts:
        """Satisfaction, repeats and the closed loop: every key with counters, and the known keys at 0."""
        t = self.tracker
        name = t.source.name
        out: dict[MetricFamily, list[str]] = {family: [] for family in DESK_FAMILIES}
        empty = KeyStats()
        for scale in t.settings.satisfied:
            empty.rating(scale)  # known keys show every scale at 0 (CSAT and NPS panels have data)
        known = set(t.known_keys())
        for key in sorted({*known, *t.stats}):
            stats = t.stats.get(key) or empty
            lb = label_set(_DESK, (name, *key))
            out[FEEDBACK_RATED].append(FEEDBACK_RATED.sample(stats.rated, base=lb))
            out[FEEDBACK_SATISFIED].append(FEEDBACK_SATISFIED.sample(stats.satisfied, base=lb))
            ratings = {**empty.ratings, **stats.ratings} if key in known else stats.ratings
            for scale in sorted(ratings):
                out[FEEDBACK_RATING].append(FEEDBACK_RATING.histogram(ratings[scale], str(scale), base=lb))
            out[FEEDBACK_REPEATS].append(FEEDBACK_REPEATS.sample(stats.repeats, base=lb))
            out[FEEDBACK_REOPENED].append(FEEDBACK_REOPENED.sample(stats.reopened, base=lb))
            for outcome, n in zip(c.CLOSED_OUTCOMES, stats.closed, strict=True):
                out[FEEDBACK_CLOSED].append(FEEDBACK_CLOSED.sample(n, outcome, base=lb))
            out[FEEDBACK_CLOSED_LOOP].append(FEEDBACK_CLOSED_LOOP.sample(stats.closed_loop, base=lb))
            for stage, n in zip(c.LOOP_STAGES, stats.stages, strict=True):
                out[FEEDBACK_LOOP_STAGE].append(FEEDBACK_LOOP_STAGE.sample(n, stage, base=lb))
        return {family: "".join(lines) for family, lines in out.items() if lines}
