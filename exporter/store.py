"""The result store: counters, histogram and recent history of every scheduled probe.

One ``ProbeSeries`` per (service, probe). Recording a result updates the counters and
drops the series' cached text, which ``render`` rebuilds on the next scrape. A reload
calls ``ResultStore.sync`` with the probes that should exist: removed ones disappear
(no stale series), kept ones keep their counters.
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from slaprobe import conventions as c
from slaprobe.exporter.exposition import LabelSet, MetricFamily, label_set
from slaprobe.probes.result import FailureReason, ProbeResult, Sample
from slaprobe.probes.tally import Histogram

ProbeKey = tuple[str, str]  # (service, probe)
HISTORY_LENGTH = 10
MAX_REMOTE_LOCATIONS = 32  # locations per probe that pushed results may add (each a set of series)


@dataclass(frozen=True, slots=True)
class ProbeMeta:
    """What a series is about; a change of buckets resets its histogram."""

    service: str
    probe: str
    kind: str
    target: str  # already redacted
    location: str
    interval: float  # seconds
    timeout: float  # seconds
    buckets: tuple[float, ...]  # seconds, ascending, SLA threshold included
    latency_threshold: float | None  # seconds: a run within SLA is faster than this
    degraded_after: float | None = None  # seconds: a slower success counts as degraded
    maintenance: bool = False  # the service has maintenance windows (its maintenance runs are exported)
    phase_histograms: bool = False  # phase and flow-step duration histograms are kept (global.phase_histograms)
    # (service, probe), made once: the store, the scheduler and the jobs all key by it.
    key: ProbeKey = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.service, self.probe))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One past run, for the status page."""

    timestamp: float  # unix seconds at the end of the run
    success: bool
    duration: float  # seconds
    reason: FailureReason | None
    detail: str
    degraded: bool = False
    maintenance: bool = False  # started inside a maintenance window: not counted in the SLIs
    first_attempt: FailureReason | None = None  # a success: why its first attempt failed (passed on retry)


_REASONS: tuple[FailureReason, ...] = tuple(FailureReason)
_REASON_CODES = {reason: i + 1 for i, reason in enumerate(_REASONS)}  # 0: no reason
_SUCCESS, _DEGRADED, _MAINTENANCE = 0x80, 0x40, 0x20  # flag bits of a run's code; the low bits: its reason
assert len(_REASONS) < _MAINTENANCE
_DETAILS: dict[str, str] = {}  # one copy of each failure detail, shared by every probe that gives it
_MAX_SHARED_DETAILS = 10_000


def _shared(detail: str) -> str:
    """``detail``, as the one copy already kept if another run gave the same text."""
    if not detail:
        return ""
    kept = _DETAILS.get(detail)
    if kept is not None:
        return kept
    if len(_DETAILS) < _MAX_SHARED_DETAILS:
        _DETAILS[detail] = detail
    return detail


class History:
    """The last ``HISTORY_LENGTH`` runs of one probe, packed in space taken up front.

    Two floats and one byte per run, in arrays allocated when the probe is configured, and
    the failure details, shared between probes that give the same text: a full history of
    10,000 probes costs the same as an empty one, plus the distinct details. Iterating gives
    ``HistoryEntry`` objects, oldest first.
    """

    __slots__ = ("_codes", "_details", "_next", "_numbers", "_size")

    def __init__(self) -> None:
        self._numbers = array("d", bytes(16 * HISTORY_LENGTH))  # (timestamp, duration) per run
        self._codes = bytearray(HISTORY_LENGTH)
        self._details: list[str] = [""] * HISTORY_LENGTH
        self._next = 0  # the slot the next run goes to
        self._size = 0

    def append(
        self,
        timestamp: float,
        result: ProbeResult,
        degraded: bool,
        maintenance: bool = False,
        first_attempt: FailureReason | None = None,
    ) -> None:
        """Keep one run (unix seconds at its end), dropping the oldest when full.

        A success keeps ``first_attempt`` (the failure its retries hid) in its reason bits.
        """
        slot = self._next
        self._numbers[2 * slot] = timestamp
        self._numbers[2 * slot + 1] = result.duration
        shown = first_attempt if result.success else result.reason
        reason = 0 if shown is None else _REASON_CODES[shown]
        flags = _SUCCESS if result.success else 0
        flags |= (_DEGRADED if degraded else 0) | (_MAINTENANCE if maintenance else 0)
        self._codes[slot] = reason | flags
        self._details[slot] = _shared(result.detail)
        self._next = (slot + 1) % HISTORY_LENGTH
        self._size = min(self._size + 1, HISTORY_LENGTH)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[HistoryEntry]:
        first = (self._next - self._size) % HISTORY_LENGTH
        for i in range(self._size):
            slot = (first + i) % HISTORY_LENGTH
            code = self._codes[slot]
            code_reason = code & ~(_SUCCESS | _DEGRADED | _MAINTENANCE)
            reason = _REASONS[code_reason - 1] if code_reason else None
            success = bool(code & _SUCCESS)
            yield HistoryEntry(
                timestamp=self._numbers[2 * slot],
                success=success,
                duration=self._numbers[2 * slot + 1],
                reason=None if success else reason,
                first_attempt=reason if success else None,
                detail=self._details[slot],
                degraded=bool(code & _DEGRADED),
                maintenance=bool(code & _MAINTENANCE),
            )


class Durations:
    """One histogram per name (a phase, a flow step), all with the same bounds, packed in arrays.

    Counts and sums live in two flat arrays (not tracked by the garbage collector, unlike a
    list per histogram); a new name appends one row. Only the names seen so far have a row.
    """

    __slots__ = ("_counts", "_index", "_sums", "bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._index: dict[str, int] = {}  # name -> row, in the order first seen
        self._counts = array("q")  # row * (len(bounds) + 1) + bucket: observations (not cumulative)
        self._sums = array("d")  # row: sum of observations

    def observe(self, name: str, value: float) -> None:
        """Count ``value`` (seconds) into the histogram of ``name``; equal to a bound: that bucket."""
        width = len(self.bounds) + 1
        row = self._index.get(name)
        if row is None:
            row = self._index[name] = len(self._index)
            self._counts.extend(array("q", bytes(8 * width)))
            self._sums.append(0.0)
        self._counts[row * width + bisect.bisect_left(self.bounds, value)] += 1
        self._sums[row] += value

    def histograms(self) -> Iterator[tuple[str, Histogram]]:
        """Each name's histogram (a copy), in the order the names were first seen."""
        width = len(self.bounds) + 1
        for name, row in self._index.items():
            counts = self._counts[row * width : (row + 1) * width].tolist()
            yield name, Histogram(self.bounds, counts, self._sums[row])

    def texts(self, family: MetricFamily, base: LabelSet) -> str:
        """Every name's histogram lines of ``family`` (its last label: the name), first seen first."""
        width = len(self.bounds) + 1
        counts, sums, bounds = self._counts, self._sums, self.bounds
        return "".join(
            [
                family.histogram_of(bounds, counts[row * width : (row + 1) * width], sums[row], name, base=base)
                for name, row in self._index.items()
            ]
        )

    def __len__(self) -> int:
        return len(self._index)


_KEPT_SAMPLES = frozenset({c.BB_ICMP_LOSS_RATIO, c.BB_ICMP_RTT})


def scheduled_samples(samples: Iterable[Sample]) -> tuple[Sample, ...]:
    """The blackbox samples a scheduled run keeps for ``/metrics``: ICMP loss ratio and jitter."""
    return tuple(
        s for s in samples if s.name in _KEPT_SAMPLES and (s.name != c.BB_ICMP_RTT or s.labels == (("stat", "jitter"),))
    )


@dataclass(slots=True)
class ProbeSeries:
    """Counters and last result of one scheduled probe."""

    meta: ProbeMeta
    runs: int = 0
    within_sla: int = 0
    degraded: int = 0
    planned: int = 0  # slots due so far (run or missed)
    maintenance_runs: int = 0  # runs started inside a maintenance window (in no other counter)
    failures: Counter[str] = field(default_factory=Counter)  # of the final attempt
    first_attempt_failures: Counter[str] = field(default_factory=Counter)  # what a user would have seen
    day: int = 0  # local date (ordinal) the *_today counters belong to
    runs_today: int = 0
    within_sla_today: int = 0
    durations: Histogram = field(init=False)  # seconds, bounds from meta.buckets
    last: ProbeResult | None = None
    last_time: float = 0.0
    history: History = field(default_factory=History)
    step_failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    phase_durations: Durations | None = None  # seconds by phase, bounds from meta.buckets; made at the first phase
    step_durations: Durations | None = None  # seconds by flow step, likewise
    # Kept as a str and a dict of str -> bytes, which the garbage collector does not track:
    # 10,000 series' worth of tracked objects made every full collection (and its pause) longer.
    _labels: str = ""  # service, probe and location, escaped
    _text: dict[str, bytes] | None = None  # family name -> this series' lines of it

    def __post_init__(self) -> None:
        self._labels = label_set(c.PROBE_LABELS, (self.meta.service, self.meta.probe, self.meta.location)).text
        self.durations = Histogram(self.meta.buckets)

    def describe(self, meta: ProbeMeta) -> None:
        """Take ``meta`` as this series' description; its counters stay (same buckets and threshold)."""
        if meta.location != self.meta.location:  # service and probe are the key: the same
            self._labels = label_set(c.PROBE_LABELS, (meta.service, meta.probe, meta.location)).text
        if not meta.phase_histograms:  # turned off: the histograms go from /metrics
            self.phase_durations = self.step_durations = None
        self.meta = meta
        self._text = None

    def record(
        self,
        result: ProbeResult,
        now: float,
        *,
        day: int = 0,
        first_attempt: FailureReason | None = None,
        maintenance: bool = False,
    ) -> None:
        """Count one finished run that ended at unix time ``now`` on local date ordinal ``day``.

        ``first_attempt`` is the failure reason of the first attempt when retries hid it. A
        ``maintenance`` run is shown (last result, history) but counted in no SLI counter.
        """
        if maintenance:
            self.maintenance_runs += 1
            self.last, self.last_time = result, now
            self.history.append(now, result, self.is_degraded(result), maintenance=True)
            self._text = None
            return
        if day != self.day:
            self.day, self.runs_today, self.within_sla_today = day, 0, 0
        self.runs += 1
        self.runs_today += 1
        if result.success:
            threshold = self.meta.latency_threshold
            if threshold is None or result.duration <= threshold:
                self.within_sla += 1
                self.within_sla_today += 1
            degraded_after = self.meta.degraded_after
            if degraded_after is not None and result.duration > degraded_after:
                self.degraded += 1
        else:
            self.failures[(result.reason or FailureReason.INTERNAL).value] += 1
        first_failure = first_attempt or (None if result.success else result.reason or FailureReason.INTERNAL)
        if first_failure is not None:
            self.first_attempt_failures[first_failure.value] += 1
        self.durations.observe(result.duration)
        if result.phases and self.meta.phase_histograms:
            phases = self.phase_durations
            if phases is None:
                phases = self.phase_durations = Durations(self.meta.buckets)
            for phase, seconds in result.phases.items():
                phases.observe(phase, seconds)
        if result.steps and self.meta.phase_histograms:
            steps = self.step_durations
            if steps is None:
                steps = self.step_durations = Durations(self.meta.buckets)
            for step in result.steps:
                steps.observe(step.name, step.duration)
        for step in result.steps:
            if not step.success:
                self.step_failures[(step.name, (step.reason or FailureReason.INTERNAL).value)] += 1
        self.last = result
        self.last_time = now
        self.history.append(now, result, self.is_degraded(result), first_attempt=first_attempt)
        self._text = None

    @property
    def passed_on_retry(self) -> int:
        """Runs that succeeded only on a retry (their first attempt failed)."""
        return sum(self.first_attempt_failures.values()) - sum(self.failures.values())

    def slot(self) -> None:
        """Count one slot of the schedule that fell due (whether or not it ran)."""
        self.planned += 1
        self._text = None

    def is_degraded(self, result: ProbeResult) -> bool:
        """Whether ``result`` succeeded but slower than the degraded threshold."""
        limit = self.meta.degraded_after
        return result.success and limit is not None and result.duration > limit

    def compliance_today(self, day: int) -> float | None:
        """Share of today's runs within SLA (0..1); None before the first run of ``day``."""
        if day != self.day or not self.runs_today:
            return None
        return self.within_sla_today / self.runs_today

    def render(self) -> Mapping[str, bytes]:
        """This series' lines of each family of ``FAMILIES`` that has any, by family name (cached
        until the next run)."""
        if self._text is None:
            self._text = {family.name: text.encode() for family, text in self._render().items() if text}
        return self._text

    def _render(self) -> dict[MetricFamily, str]:
        lb = LabelSet(c.PROBE_LABELS, self._labels)
        text = {
            RUNS: RUNS.sample(self.runs, base=lb),
            FAILURES: "".join([FAILURES.sample(n, reason, base=lb) for reason, n in sorted(self.failures.items())]),
            WITHIN_SLA: WITHIN_SLA.sample(self.within_sla, base=lb),
            DURATION: DURATION.histogram(self.durations, base=lb),
        }
        last = self.last
        if last is not None:
            text[SUCCESS] = SUCCESS.sample(int(last.success), base=lb)
            text[LAST_RUN] = LAST_RUN.sample(self.last_time, base=lb)
            text[PHASE] = "".join([PHASE.sample(seconds, phase, base=lb) for phase, seconds in last.phases.items()])
            if last.cert is not None:
                text[CERT_EXPIRY] = CERT_EXPIRY.sample(last.cert.leaf_expiry, base=lb)
                if last.cert.chain_expiry is not None:
                    text[CHAIN_EXPIRY] = CHAIN_EXPIRY.sample(last.cert.chain_expiry, base=lb)
            if last.steps:
                text[STEP_DURATION] = "".join([STEP_DURATION.sample(s.duration, s.name, base=lb) for s in last.steps])
            if last.samples:
                loss = last.sample(c.BB_ICMP_LOSS_RATIO)
                if loss is not None:
                    text[ICMP_LOSS] = ICMP_LOSS.sample(loss, base=lb)
                jitter = last.sample(c.BB_ICMP_RTT)
                if jitter is not None:
                    text[ICMP_JITTER] = ICMP_JITTER.sample(jitter, base=lb)
        if self.phase_durations:
            text[PHASE_DURATION] = self.phase_durations.texts(PHASE_DURATION, lb)
        if self.step_durations:
            text[STEP_RUN_DURATION] = self.step_durations.texts(STEP_RUN_DURATION, lb)
        if self.step_failures:
            text[STEP_FAILURES] = "".join(
                [
                    STEP_FAILURES.sample(n, step, reason, base=lb)
                    for (step, reason), n in sorted(self.step_failures.items())
                ]
            )
        if self.first_attempt_failures:
            text[FIRST_ATTEMPT_FAILURES] = "".join(
                [
                    FIRST_ATTEMPT_FAILURES.sample(n, reason, base=lb)
                    for reason, n in sorted(self.first_attempt_failures.items())
                ]
            )
        if self.meta.degraded_after is not None:
            text[DEGRADED] = DEGRADED.sample(self.degraded, base=lb)
        text[PLANNED] = PLANNED.sample(self.planned, base=lb)
        if self.meta.maintenance or self.maintenance_runs:
            text[MAINTENANCE_RUNS] = MAINTENANCE_RUNS.sample(self.maintenance_runs, base=lb)
        return text


_PROBE = c.PROBE_LABELS
RUNS = MetricFamily(c.PROBE_RUNS, "counter", "Scheduled probe runs finished.", _PROBE)
FAILURES = MetricFamily(
    c.PROBE_FAILURES, "counter", "Scheduled probe runs that failed, by failure reason.", (*_PROBE, c.LABEL_REASON)
)
WITHIN_SLA = MetricFamily(
    c.PROBE_WITHIN_SLA,
    "counter",
    "Runs that succeeded within the service's latency threshold (compliance rate numerator).",
    _PROBE,
)
DURATION = MetricFamily(
    c.PROBE_DURATION,
    "histogram",
    "Duration of scheduled probe runs in seconds; SLA thresholds are bucket bounds.",
    _PROBE,
)
SUCCESS = MetricFamily(c.PROBE_SUCCESS, "gauge", "Whether the last run succeeded (1) or failed (0).", _PROBE)
LAST_RUN = MetricFamily(c.PROBE_LAST_RUN, "gauge", "Unix time in seconds at which the last run finished.", _PROBE)
PHASE = MetricFamily(
    c.PROBE_PHASE, "gauge", "Duration of each phase of the last run in seconds.", (*_PROBE, c.LABEL_PHASE)
)
CERT_EXPIRY = MetricFamily(
    c.TLS_CERT_EXPIRY,
    "gauge",
    "Unix time in seconds at which the leaf certificate seen by the last run expires.",
    _PROBE,
)
CHAIN_EXPIRY = MetricFamily(
    c.TLS_CHAIN_EARLIEST_EXPIRY,
    "gauge",
    "Unix time in seconds at which the first certificate of the chain verified by the last run expires"
    " (absent when no chain was verified).",
    _PROBE,
)
STEP_DURATION = MetricFamily(
    c.FLOW_STEP_DURATION, "gauge", "Duration of each step of the last flow run in seconds.", (*_PROBE, c.LABEL_STEP)
)
STEP_FAILURES = MetricFamily(
    c.FLOW_STEP_FAILURES,
    "counter",
    "Flow steps that failed, by step and failure reason.",
    (*_PROBE, c.LABEL_STEP, c.LABEL_REASON),
)
PHASE_DURATION = MetricFamily(
    c.PROBE_PHASE_DURATION,
    "histogram",
    "Duration of each phase of scheduled probe runs in seconds; SLA thresholds are bucket bounds.",
    (*_PROBE, c.LABEL_PHASE),
)
STEP_RUN_DURATION = MetricFamily(
    c.FLOW_STEP_RUN_DURATION,
    "histogram",
    "Duration of each step of scheduled flow runs in seconds; SLA thresholds are bucket bounds.",
    (*_PROBE, c.LABEL_STEP),
)
ICMP_LOSS = MetricFamily(
    c.ICMP_LOSS_RATIO, "gauge", "Share of the ICMP echo requests of the last run left without a reply.", _PROBE
)
ICMP_JITTER = MetricFamily(
    c.ICMP_JITTER,
    "gauge",
    "Mean difference between consecutive ICMP round-trip times of the last run in seconds.",
    _PROBE,
)
FIRST_ATTEMPT_FAILURES = MetricFamily(
    c.PROBE_FIRST_ATTEMPT_FAILURES,
    "counter",
    "Runs whose first attempt failed, by reason (what a user saw; retries do not hide it).",
    (*_PROBE, c.LABEL_REASON),
)
DEGRADED = MetricFamily(
    c.PROBE_DEGRADED, "counter", "Runs that succeeded but slower than expect.degraded_duration.", _PROBE
)
PLANNED = MetricFamily(
    c.PROBE_PLANNED_RUNS, "counter", "Schedule slots that fell due, whether or not the run happened.", _PROBE
)
MAINTENANCE_RUNS = MetricFamily(
    c.PROBE_MAINTENANCE_RUNS,
    "counter",
    "Runs started inside a maintenance window; counted in no other probe counter (the SLIs exclude them).",
    _PROBE,
)

FAMILIES: tuple[MetricFamily, ...] = (
    RUNS,
    FAILURES,
    WITHIN_SLA,
    DURATION,
    SUCCESS,
    LAST_RUN,
    PHASE,
    CERT_EXPIRY,
    CHAIN_EXPIRY,
    STEP_DURATION,
    STEP_FAILURES,
    FIRST_ATTEMPT_FAILURES,
    DEGRADED,
    PLANNED,
    MAINTENANCE_RUNS,
    PHASE_DURATION,
    STEP_RUN_DURATION,
    ICMP_LOSS,
    ICMP_JITTER,
)
"""The families of every probe series, in the order ``/metrics`` writes them."""


class ResultStore:
    """All probe series, keyed by (service, probe)."""

    def __init__(self) -> None:
        self._series: dict[ProbeKey, ProbeSeries] = {}
        # Pushed results of remote agents (heartbeats' JSON body): a series per other location.
        self._remote: dict[tuple[str, str, str], ProbeSeries] = {}

    def sync(self, metas: Iterable[ProbeMeta], *, made: Mapping[ProbeKey, ProbeSeries] | None = None) -> None:
        """Make the store hold exactly these probes; keep the counters of unchanged ones.

        ``made``: empty series for (some of) these metas, made beforehand off the event loop
        (5,000 of them take 100 ms or more), used instead of making them here.
        """
        made = made or {}
        fresh: dict[ProbeKey, ProbeSeries] = {}
        for meta in metas:
            old = self._series.get(meta.key)
            if old is not None and old.meta == meta:
                fresh[meta.key] = old
                continue
            if old is not None and _same_counters(old.meta, meta):
                # Counters carry over; only the description changed (target, interval...): the
                # series is kept and described anew (copying its counters into a new series held
                # the loop for 40-55 ms at 5,000 probes).
                old.describe(meta)
                fresh[meta.key] = old
                continue
            series = made.get(meta.key)
            if series is None or series.meta is not meta:
                series = ProbeSeries(meta)
            fresh[meta.key] = series
        self._series = fresh
        remote: dict[tuple[str, str, str], ProbeSeries] = {}
        for (service, probe, location), old in self._remote.items():
            local = fresh.get((service, probe))
            if local is None:
                continue  # its probe is gone: so are its other locations
            meta = replace(local.meta, location=location)
            if old.meta != meta:
                if _same_counters(old.meta, meta):
                    old.describe(meta)
                else:
                    old = ProbeSeries(meta)
            remote[(service, probe, location)] = old
        self._remote = remote

    def located(self, key: ProbeKey, location: str) -> ProbeSeries | None:
        """The series of ``key`` at another ``location`` (made on first use, at most
        ``MAX_REMOTE_LOCATIONS`` per probe); None for an unknown probe or one location too many."""
        local = self._series.get(key)
        if local is None:
            return None
        if location == local.meta.location:
            return local
        found = self._remote.get((*key, location))
        if found is None:
            if sum(1 for k in self._remote if k[:2] == key) >= MAX_REMOTE_LOCATIONS:
                return None
            found = self._remote[(*key, location)] = ProbeSeries(replace(local.meta, location=location))
        return found

    def record(
        self,
        key: ProbeKey,
        result: ProbeResult,
        now: float | None = None,
        *,
        day: int = 0,
        first_attempt: FailureReason | None = None,
        maintenance: bool = False,
        location: str | None = None,
    ) -> None:
        """Count a finished run (at ``location``: a remote agent's); a run of a probe removed meanwhile is dropped."""
        series = self._series.get(key) if location is None else self.located(key, location)
        if series is not None:
            when = time.time() if now is None else now
            series.record(result, when, day=day, first_attempt=first_attempt, maintenance=maintenance)

    def get(self, key: ProbeKey) -> ProbeSeries | None:
        """The series of one probe, if it exists."""
        return self._series.get(key)

    def series(self) -> list[ProbeSeries]:
        """Every series, in the order they were configured."""
        return list(self._series.values())

    def remote_series(self) -> list[ProbeSeries]:
        """The series of runs pushed from other locations (``located``), first pushed first."""
        return list(self._remote.values())

    def render(self) -> str:
        """Every family of every series as Prometheus text."""
        return b"".join(piece for pieces in self.render_families() for piece in pieces).decode()

    def render_families(self) -> Iterator[list[bytes]]:
        """Each family with text: its header, then every series' cached text of it.

        References to the cached text, not copies: a scrape can hold the whole page (to
        send its status line only once it is complete) for the price of the lists.
        """
        parts = [s.render() for s in (*self._series.values(), *self._remote.values())]
        for family in FAMILIES:
            pieces = [family.header_bytes]
            name = family.name
            pieces.extend([text for part in parts if (text := part.get(name)) is not None])
            if len(pieces) > 1:
                yield pieces

    def __len__(self) -> int:
        return len(self._series)


def _same_counters(old: ProbeMeta, new: ProbeMeta) -> bool:
    """Counters stay meaningful when the histogram bounds and SLA threshold are unchanged."""
    return old.buckets == new.buckets and old.latency_threshold == new.latency_threshold


SERVICE_INFO = MetricFamily(
    c.SERVICE_INFO,
    "gauge",
    "Service metadata from the config; always 1.",
    (c.LABEL_SERVICE, c.LABEL_TIER, c.LABEL_OWNER),
)


def service_info_text(services: Mapping[str, tuple[str, str]]) -> str:
    """``slaprobe_service_info{service,tier,owner} 1`` for each service."""
    if not services:
        return ""
    lines = [SERVICE_INFO.header]
    lines.extend(SERVICE_INFO.sample(1, name, tier, owner) for name, (tier, owner) in services.items())
    return "".join(lines)
