"""The result store: counters, histogram and recent history of every scheduled probe.

One ``ProbeSeries`` per (service, probe). Recording a result updates the counters and
drops the series' cached text, which ``render`` rebuilds on the next scrape. A reload
calls ``ResultStore.sync`` with the probes that should exist: removed ones disappear
(no stale series), kept ones keep their counters.
"""

from __future__ import annotations

import dataclasses
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from slaprobe import conventions as c
from slaprobe.exporter.exposition import (
    Family,
    escape_label,
    family_header,
    family_texts,
    format_labels,
    format_value,
    histogram_lines,
)
from slaprobe.probes.result import FailureReason, ProbeResult
from slaprobe.probes.tally import Histogram

ProbeKey = tuple[str, str]  # (service, probe)
HISTORY_LENGTH = 10


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

    @property
    def key(self) -> ProbeKey:
        return (self.service, self.probe)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One past run, for the status page."""

    timestamp: float  # unix seconds at the end of the run
    success: bool
    duration: float  # seconds
    reason: FailureReason | None
    detail: str
    degraded: bool = False


_REASONS: tuple[FailureReason, ...] = tuple(FailureReason)
_REASON_CODES = {reason: i + 1 for i, reason in enumerate(_REASONS)}  # 0: no reason
_SUCCESS, _DEGRADED = 0x80, 0x40  # flag bits of a run's code; the low bits are its reason code
assert len(_REASONS) < _DEGRADED
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

    def append(self, timestamp: float, result: ProbeResult, degraded: bool) -> None:
        """Keep one run (unix seconds at its end), dropping the oldest when full."""
        slot = self._next
        self._numbers[2 * slot] = timestamp
        self._numbers[2 * slot + 1] = result.duration
        reason = 0 if result.reason is None else _REASON_CODES[result.reason]
        self._codes[slot] = reason | (_SUCCESS if result.success else 0) | (_DEGRADED if degraded else 0)
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
            reason = code & ~(_SUCCESS | _DEGRADED)
            yield HistoryEntry(
                timestamp=self._numbers[2 * slot],
                success=bool(code & _SUCCESS),
                duration=self._numbers[2 * slot + 1],
                reason=_REASONS[reason - 1] if reason else None,
                detail=self._details[slot],
                degraded=bool(code & _DEGRADED),
            )


@dataclass(slots=True)
class ProbeSeries:
    """Counters and last result of one scheduled probe."""

    meta: ProbeMeta
    runs: int = 0
    within_sla: int = 0
    degraded: int = 0
    planned: int = 0  # slots due so far (run or missed)
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
    _labels: str = ""
    _text: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self._labels = format_labels(
            (
                (c.LABEL_SERVICE, self.meta.service),
                (c.LABEL_PROBE, self.meta.probe),
                (c.LABEL_LOCATION, self.meta.location),
            )
        )
        self.durations = Histogram(self.meta.buckets)

    def record(
        self, result: ProbeResult, now: float, *, day: int = 0, first_attempt: FailureReason | None = None
    ) -> None:
        """Count one finished run that ended at unix time ``now`` on local date ordinal ``day``.

        ``first_attempt`` is the failure reason of the first attempt when retries hid it.
        """
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
        for step in result.steps:
            if not step.success:
                self.step_failures[(step.name, (step.reason or FailureReason.INTERNAL).value)] += 1
        self.last = result
        self.last_time = now
        self.history.append(now, result, self.is_degraded(result))
        self._text = None

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

    def render(self) -> tuple[str, ...]:
        """This series' lines of each family in ``FAMILIES`` order (cached until the next run)."""
        if self._text is None:
            self._text = self._render()
        return self._text

    def _render(self) -> tuple[str, ...]:
        lb = self._labels
        runs = f"{c.PROBE_RUNS}{{{lb}}} {self.runs}\n"
        failures = "".join(
            f'{c.PROBE_FAILURES}{{{lb},reason="{reason}"}} {count}\n' for reason, count in sorted(self.failures.items())
        )
        within = f"{c.PROBE_WITHIN_SLA}{{{lb}}} {self.within_sla}\n"
        first_failures = "".join(
            f'{c.PROBE_FIRST_ATTEMPT_FAILURES}{{{lb},reason="{reason}"}} {count}\n'
            for reason, count in sorted(self.first_attempt_failures.items())
        )
        degraded = f"{c.PROBE_DEGRADED}{{{lb}}} {self.degraded}\n" if self.meta.degraded_after is not None else ""
        planned = f"{c.PROBE_PLANNED_RUNS}{{{lb}}} {self.planned}\n"
        hist = histogram_lines(c.PROBE_DURATION, lb, self.durations)
        last = self.last
        success = last_run = phases = cert = steps = step_failures = ""
        if last is not None:
            success = f"{c.PROBE_SUCCESS}{{{lb}}} {int(last.success)}\n"
            last_run = f"{c.PROBE_LAST_RUN}{{{lb}}} {format_value(self.last_time)}\n"
            phases = "".join(
                f'{c.PROBE_PHASE}{{{lb},phase="{phase}"}} {format_value(seconds)}\n'
                for phase, seconds in last.phases.items()
            )
            if last.cert is not None:
                cert = f"{c.TLS_CERT_EXPIRY}{{{lb}}} {format_value(last.cert.leaf_expiry)}\n"
            steps = "".join(
                f'{c.FLOW_STEP_DURATION}{{{lb},step="{escape_label(step.name)}"}} {format_value(step.duration)}\n'
                for step in last.steps
            )
        step_failures = "".join(
            f'{c.FLOW_STEP_FAILURES}{{{lb},step="{escape_label(step)}",reason="{reason}"}} {count}\n'
            for (step, reason), count in sorted(self.step_failures.items())
        )
        return (
            runs,
            failures,
            within,
            hist,
            success,
            last_run,
            phases,
            cert,
            steps,
            step_failures,
            first_failures,
            degraded,
            planned,
        )


# (name, type, help) in the order of ProbeSeries.render's tuple.
FAMILIES: tuple[Family, ...] = (
    (c.PROBE_RUNS, "counter", "Scheduled probe runs finished."),
    (c.PROBE_FAILURES, "counter", "Scheduled probe runs that failed, by failure reason."),
    (
        c.PROBE_WITHIN_SLA,
        "counter",
        "Runs that succeeded within the service's latency threshold (compliance rate numerator).",
    ),
    (c.PROBE_DURATION, "histogram", "Duration of scheduled probe runs in seconds; SLA thresholds are bucket bounds."),
    (c.PROBE_SUCCESS, "gauge", "Whether the last run succeeded (1) or failed (0)."),
    (c.PROBE_LAST_RUN, "gauge", "Unix time in seconds at which the last run finished."),
    (c.PROBE_PHASE, "gauge", "Duration of each phase of the last run in seconds."),
    (c.TLS_CERT_EXPIRY, "gauge", "Unix time in seconds at which the leaf certificate seen by the last run expires."),
    (c.FLOW_STEP_DURATION, "gauge", "Duration of each step of the last flow run in seconds."),
    (c.FLOW_STEP_FAILURES, "counter", "Flow steps that failed, by step and failure reason."),
    (
        c.PROBE_FIRST_ATTEMPT_FAILURES,
        "counter",
        "Runs whose first attempt failed, by reason (what a user saw; retries do not hide it).",
    ),
    (c.PROBE_DEGRADED, "counter", "Runs that succeeded but slower than expect.degraded_duration."),
    (c.PROBE_PLANNED_RUNS, "counter", "Schedule slots that fell due, whether or not the run happened."),
)


_CARRIED = tuple(f.name for f in dataclasses.fields(ProbeSeries) if f.name not in ("meta", "_labels", "_text"))


class ResultStore:
    """All probe series, keyed by (service, probe)."""

    def __init__(self) -> None:
        self._series: dict[ProbeKey, ProbeSeries] = {}

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
            series = made.get(meta.key)
            if series is None or series.meta is not meta:
                series = ProbeSeries(meta)
            if old is not None and _same_counters(old.meta, meta):
                # Counters carry over; only the description changed (target, interval...).
                for name in _CARRIED:
                    setattr(series, name, getattr(old, name))
            fresh[meta.key] = series
        self._series = fresh

    def record(
        self,
        key: ProbeKey,
        result: ProbeResult,
        now: float | None = None,
        *,
        day: int = 0,
        first_attempt: FailureReason | None = None,
    ) -> None:
        """Count a finished run; a run of a probe removed meanwhile is dropped."""
        series = self._series.get(key)
        if series is not None:
            series.record(result, time.time() if now is None else now, day=day, first_attempt=first_attempt)

    def get(self, key: ProbeKey) -> ProbeSeries | None:
        """The series of one probe, if it exists."""
        return self._series.get(key)

    def series(self) -> list[ProbeSeries]:
        """Every series, in the order they were configured."""
        return list(self._series.values())

    def render(self) -> str:
        """Every family of every series as Prometheus text."""
        return "".join(self.render_families())

    def render_families(self, chunk: int = 1000) -> Iterator[str]:
        """The text in pieces of at most ``chunk`` series of one family (a scrape never holds the page)."""
        yield from family_texts(FAMILIES, [s.render() for s in self._series.values()], chunk)

    def __len__(self) -> int:
        return len(self._series)


def _same_counters(old: ProbeMeta, new: ProbeMeta) -> bool:
    """Counters stay meaningful when the histogram bounds and SLA threshold are unchanged."""
    return old.buckets == new.buckets and old.latency_threshold == new.latency_threshold


def service_info_text(services: Mapping[str, tuple[str, str]]) -> str:
    """``slaprobe_service_info{service,tier,owner} 1`` for each service."""
    if not services:
        return ""
    lines = [family_header(c.SERVICE_INFO, "gauge", "Service metadata from the config; always 1.")]
    for name, (tier, owner) in services.items():
        labels = format_labels(((c.LABEL_SERVICE, name), (c.LABEL_TIER, tier), (c.LABEL_OWNER, owner)))
        lines.append(f"{c.SERVICE_INFO}{{{labels}}} 1\n")
    return "".join(lines)
