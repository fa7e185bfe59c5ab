"""The log pipeline: every log and feedback source of the config, tailed, parsed, counted, rendered.

``LogPipeline.apply(config)`` makes the running sources match the config; ``run()``
polls them every ``poll_interval``, and ``BUSY_POLL_INTERVAL`` after a poll that read lines
(reading and parsing in a worker thread of each source, counting in the event loop, so
scrapes never see a half-counted batch); ``render()`` is their Prometheus text.

Counting in blocks: a source whose lines feed only its service's HTTP metrics (no
``match:``, no user metrics) and whose format and wrapper have a tally
(``parsers.TALLIES``: nginx_combined, plain or CRI) is counted a block of lines per regex
call, without an Event per line; the parts of a batch the tally refuses (a line it does
not take, a CRI partial line being joined) are parsed line by line as before. A jsonl
source whose user metrics are counters and histograms is counted the same way by a
``parsers.JsonlTally``: only the fields its metrics read, by field combination, in the
order each first appears. A tallied source reads up to ``TALLY_BATCH_BYTES`` per trip to
its worker thread and keeps the lines until they are counted (a reload in between that
changes what the source feeds parses them after all).

Stuck sources: each source reads in its own daemon thread. A read (or save) that has not
returned after ``stuck_after`` seconds (a hung NFS mount, a FIFO, a dying disk) shows as
``slaprobe_log_source_stuck{source} 1``; the source is skipped by later polls until it
returns (never queued twice), the other sources go on, and ``close()`` waits for it at most
``close_timeout`` seconds, then leaves it to its thread (its lines since the last commit
are read again by the next run).

Restarts: a tailer's offsets are committed only after the lines it returned have been
counted, and a feedback source's open tickets are written (atomically) before its
offsets are committed, so a restart resumes after the last counted line. A crash re-reads
at most the lines of the tailer's last save interval; replayed ticket events are
recognised as duplicates, so ticket state never counts one twice. A graceful stop
(``close()``, also after ``run()`` is cancelled in the middle of a poll) waits for the
reads in flight (up to ``close_timeout``), commits what was counted and nothing else, and logs one line per source
with what it counted (``log source 'x' closed: N lines counted since the source started``),
so a restart neither repeats nor skips a line and each run's final counts are known.

Reloads: a source keeps its tailer and line counters while its file settings (path,
format, regex, start) are unchanged, each user metric keeps its series while its own
definition, service and buckets are unchanged, the HTTP metrics of a service live as long
as it has an access log and the same buckets, and a feedback source keeps its counters
while its settings are unchanged (its open tickets are carried over in any case).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from slaprobe import conventions as c
from slaprobe.atomicfile import write_atomically
from slaprobe.config import ACCESS_LOG_FORMATS, Config, FeedbackSource, LogSource
from slaprobe.exporter.exposition import MetricFamily, label_set
from slaprobe.exporter.logmetrics import (
    FEEDBACK_FAMILIES,
    HTTP_FAMILIES,
    LINE_FAMILIES,
    STATE_SAVE_FAILURES,
    HttpMetrics,
    LineStats,
    Texts,
    TicketMetrics,
    UserMetric,
    compile_condition,
    render_families,
)
from slaprobe.probes.feedback import TicketTracker
from slaprobe.probes.logevent import Event
from slaprobe.probes.parsers import TALLIES, BlockTally, JsonlTally, LineParser, parser_for
from slaprobe.probes.tailer import Tailer
from slaprobe.probes.wrappers import Unwrapper, Wrapper, parse_unwrapped, split_cri

log = logging.getLogger("slaprobe.logs")

POLL_INTERVAL = 0.25  # seconds between polls of every source (as mtail polls its files)
BUSY_POLL_INTERVAL = 0.1  # seconds to the next poll after one that read lines (more are likely on the way)
BATCH_BYTES = 1 << 20  # read per batch, at most; a batch is parsed in the worker thread
MAX_BATCHES = 256  # per source and poll, so one busy source cannot starve the others
STUCK_AFTER = 10.0  # seconds a read or save may run before its source counts as stuck
POLL_WAIT = 1.0  # seconds a poll waits for a slow source before the others are polled again
CLOSE_TIMEOUT = 5.0  # seconds close() waits for reads in flight before leaving them to their threads
TALLY_LINES = 1024  # a batch a tally refuses is tried again in parts of this many lines
TALLY_BATCH_BYTES = 4 << 20  # read per worker trip, at most, by a tallied source (in BATCH_BYTES polls)

T = TypeVar("T")


def state_file_name(prefix: str, name: str) -> str:
    """A file name for ``name`` (a source label, maybe a path): safe characters, unique by a hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100]
    if safe != name:
        safe += "-" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{prefix}-{safe}.json"


_SOURCE = (c.LABEL_SOURCE,)
LOG_SOURCE_STUCK = MetricFamily(
    c.LOG_SOURCE_STUCK,
    "gauge",
    "1 while a read or save of the source has not returned for longer than the stuck threshold; "
    "the source is skipped until it returns, the other sources go on.",
    _SOURCE,
)
LOG_SOURCE_LAST_POLL = MetricFamily(
    c.LOG_SOURCE_LAST_POLL,
    "gauge",
    "Unix time at which the last poll of the source (read, counted, committed) ended.",
    _SOURCE,
)
SOURCE_FAMILIES: tuple[MetricFamily, ...] = (LOG_SOURCE_STUCK, LOG_SOURCE_LAST_POLL)


class _Worker:
    """One source's reading thread. A daemon: a read that never returns cannot hold up the exit."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        job: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((job, fn, args))
        return job

    def stop(self) -> None:
        """End the thread once the jobs queued so far have run."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, fn, args = item
            if not job.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting side, as an executor does
                job.set_exception(exc)
            else:
                job.set_result(result)


@dataclass(slots=True)
class _Batch:
    """What one read of a source yields: parsed events, and the lines a tally counted without events."""

    events: list[Event]
    lines: int  # lines read (after unwrapping; malformed wrapped lines included)
    parsed: int  # of those: parsed (the events, and the tallied lines)
    codes: dict[int, int] = field(default_factory=dict)  # tallied requests by status
    durations: dict[float, int] = field(default_factory=dict)  # tallied requests by duration
    tallied: list[list[bytes]] = field(default_factory=list)  # the tallied lines as read, in parts
    used: object = None  # the tally that counted them
    # A field tally's parts, in line order: (None, events) parsed line by line, or (lines, per
    # metric: [(fields, count)]) tallied, each metric's combinations of the fields it reads.
    parts: list[tuple[list[bytes] | None, list[Any]]] = field(default_factory=list)

    def _parse(self, src: _Source, lines: list[bytes]) -> list[Event]:
        events = []
        cri = src.unwrapper.wrapper == "cri"
        for line in lines:
            split = split_cri(line) if cri else None
            event = src.parse(split[3] if split is not None else line)
            if event is not None:
                events.append(event)
        return events

    def tallied_events(self, src: _Source) -> list[Event]:
        """Every event of the batch, tallied lines parsed after all (a reload made the source need them)."""
        if not self.parts:
            return self.events + [e for part in self.tallied for e in self._parse(src, part)]
        events: list[Event] = []
        for lines, entries in self.parts:
            events += self._parse(src, lines) if lines is not None else entries
        return events


K = TypeVar("K")


def _merge(counts: dict[K, int], more: dict[K, int]) -> None:
    """Add ``more`` to ``counts``."""
    if not counts:
        counts.update(more)
        return
    get = counts.get
    for key, n in more.items():
        counts[key] = get(key, 0) + n


class SourceView(NamedTuple):
    """One source's figures as the status page shows them."""

    label: str
    parsed: int
    unparsed: int
    lag_bytes: int
    service: str | None
    tracker: TicketTracker | None  # feedback sources only


@dataclass(eq=False)
class _Source:
    """One tailed log or feedback source and what its events feed."""

    label: str
    reading: tuple[Any, ...]  # what the tailer depends on; a change means a new tailer
    pattern: str
    start: Literal["end", "beginning"]
    parse: LineParser
    unwrapper: Unwrapper  # the source's ``wrapper:``: CRI/Docker lines unwrapped before parsing
    tailer: Tailer | None = None  # opened at the first poll (after a replaced one is closed)
    stats: LineStats = field(init=False)
    service: str | None = None
    keep: Callable[[Event], bool] | None = None  # the source's match:, if any
    tally: BlockTally | None = None  # counts whole blocks, when the HTTP metrics are all the source feeds
    field_tally: JsonlTally | None = None  # counts the field combinations its user metrics read
    http: HttpMetrics | None = None
    metrics: list[UserMetric] = field(default_factory=list)
    tracker: TicketTracker | None = None
    tickets: TicketMetrics | None = None
    saved_version: int = -1  # tracker version last written to the state dir
    busy: bool = False  # a poll of the source is under way (its reads and saves in its worker)
    worker: _Worker | None = None  # its thread, started at the first poll
    job: concurrent.futures.Future[Any] | None = None  # the last read or save handed to the worker
    job_started: float = 0.0  # time.monotonic() when it was handed over
    waited_out: bool = False  # a poll stopped waiting for that job (stuck_after passed)
    task: asyncio.Task[None] | None = None  # the poll of the source under way in the event loop
    last_poll: float | None = None  # clock time the last poll of the source ended
    uncommitted: bool = False  # a batch was counted and its offsets not committed yet
    retired: bool = False  # removed or replaced by a reload

    def __post_init__(self) -> None:
        self.stats = LineStats(self.label)

    def line_text(self) -> Texts:
        """This source's lines of ``LINE_FAMILIES``, with the tailer's figures as of now."""
        if self.tailer is not None:
            tailer = self.tailer.stats
            self.stats.too_long = tailer.too_long + self.unwrapper.too_long
            self.stats.bytes_read = tailer.bytes_read
            self.stats.rotations = sum(tailer.rotations.values())
            self.stats.lag = tailer.lag_bytes
        return self.stats.render()


def _event_filter(source: LogSource) -> Callable[[Event], bool] | None:
    """The predicate of a log source's ``match:`` (every condition holds; a missing field fails), or None."""
    if not source.match:
        return None
    conditions = tuple((name, compile_condition(cond)) for name, cond in source.match.items())

    def keep(event: Event) -> bool:
        fields = event.fields
        for name, check in conditions:
            text = fields.get(name)
            if text is None or not check(text):
                return False
        return True

    return keep


class LogPipeline:
    """Every log and feedback source of the running config."""

    def __init__(
        self,
        state_dir: Path | None,
        clock: Callable[[], float] = time.time,
        *,
        poll_interval: float = POLL_INTERVAL,
        batch_bytes: int = BATCH_BYTES,
        stuck_after: float = STUCK_AFTER,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.clock = clock
        self.poll_interval = poll_interval
        self.batch_bytes = batch_bytes
        self.stuck_after = stuck_after
        self.close_timeout = close_timeout
        self._sources: dict[str, _Source] = {}
        self._http: dict[str, HttpMetrics] = {}
        self.polls = 0  # poll rounds completed
        self._busy = False  # a source read lines since run() last slept
        self._retiring: list[_Source] = []  # retired while being read: closed when the read returns

    # ------------------------------------------------------------------ config

    def apply(self, config: Config) -> None:
        """Make the sources follow ``config``; unchanged ones keep their tailers and counters."""
        old, fresh = self._sources, {}
        http: dict[str, HttpMetrics] = {}
        for service_name, service in config.services.items():
            buckets = config.buckets_of(service)
            for source in service.logs:
                src = self._keep_or_open(old, source.label, source)
                src.service = service_name
                src.keep = _event_filter(source)
                src.http = None
                if source.format in ACCESS_LOG_FORMATS:
                    src.http = http.get(service_name) or self._http_metrics(service_name, buckets)
                    http[service_name] = src.http
                before = old[source.label].metrics if source.label in old else []
                src.metrics = [
                    next((m for m in before if m.settings == (spec, service_name, spec.buckets or buckets)), None)
                    or UserMetric(spec, service_name, buckets, source.label)
                    for spec in source.metrics
                ]
                simple = src.http is not None and src.keep is None and not src.metrics
                src.tally = TALLIES.get((source.format, source.wrapper)) if simple else None
                src.field_tally = None
                if (
                    src.http is None
                    and source.format == "jsonl"
                    and source.wrapper in ("none", "auto")
                    and src.metrics
                    and all(m.spec.type != "gauge" for m in src.metrics)
                ):
                    wanted = dict.fromkeys([*source.match, *(f for m in src.metrics for f in m.fields)])
                    src.field_tally = JsonlTally(tuple(wanted), docker=source.wrapper == "auto")
                fresh[source.label] = src
        for feedback in config.feedback:
            src = self._keep_or_open(old, feedback.name, feedback)
            previous = old[feedback.name].tracker if feedback.name in old else None
            tracker = previous
            if tracker is None or tracker.source != feedback:
                if previous is not None:
                    tracker = TicketTracker(feedback, self.clock)
                    tracker.restore(previous.state())  # open tickets outlive a change of deadlines
                else:
                    tracker = self._saved_tracker(feedback)
            if src.tracker is not tracker:
                src.tracker, src.tickets, src.saved_version = tracker, TicketMetrics(tracker), -1
            fresh[feedback.name] = src
        self._sources, self._http = fresh, http
        for label, src in old.items():
            if fresh.get(label) is not src:
                self._retire(src)

    def _saved_tracker(self, feedback: FeedbackSource) -> TicketTracker:
        """A tracker with the open tickets of the state dir; a state file that holds no ticket
        state (corrupt, or valid JSON of another shape) is renamed aside with a warning."""
        tracker = TicketTracker(feedback, self.clock)
        if self.state_dir is None:
            return tracker
        path = self._ticket_path(feedback.name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return tracker
        except OSError as exc:
            log.warning("feedback %s: cannot read ticket state %s: %s; starting without it", feedback.name, path, exc)
            return tracker
        try:
            state = json.loads(data)
            if not isinstance(state, dict):
                raise ValueError(f"a JSON {type(state).__name__}, not an object")
            tracker.restore(state)
        except Exception as exc:  # whatever the file holds, a bad one must not stop the exporter
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            try:
                os.replace(path, aside)
            except OSError as move_exc:
                aside = Path(f"(not moved: {move_exc})")
            log.warning(
                "feedback %s: ticket state %s is not valid (%s: %s); moved aside to %s, starting without it",
                feedback.name,
                path,
                type(exc).__name__,
                exc,
                aside,
            )
            return TicketTracker(feedback, self.clock)
        return tracker

    def _keep_or_open(self, old: dict[str, _Source], label: str, source: LogSource | FeedbackSource) -> _Source:
        kind = "feedback" if isinstance(source, FeedbackSource) else "log"
        reading = (kind, source.path, source.format, source.regex, source.start)
        wrapper: Wrapper = "none" if isinstance(source, FeedbackSource) else source.wrapper
        src = old.get(label)
        if src is not None and src.reading == reading:
            if src.unwrapper.wrapper != wrapper:
                src.unwrapper = Unwrapper(wrapper)
            return src
        return _Source(label, reading, source.path, source.start, parser_for(source), Unwrapper(wrapper))

    def _http_metrics(self, service: str, buckets: tuple[float, ...]) -> HttpMetrics:
        kept = self._http.get(service)
        return kept if kept is not None and kept.buckets == buckets else HttpMetrics(service, buckets)

    def _retire(self, src: _Source) -> None:
        """Close a source that left the config; one being read is closed by its poll instead."""
        src.retired = True
        if src.busy:
            self._retiring.append(src)
        else:
            self._close_source(src)
            self._stop_worker(src)

    def _ticket_path(self, name: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / state_file_name("tickets", name)

    # ------------------------------------------------------------------ reading

    def _open_tailer(self, src: _Source) -> Tailer:
        return Tailer(src.label, src.pattern, start=src.start, state_dir=self.state_dir)

    def _read(self, src: _Source) -> _Batch:
        """Read and parse one batch (runs in the worker thread)."""
        if src.tailer is None:
            src.tailer = self._open_tailer(src)
        tailer = src.tailer
        tally, field_tally = src.tally, src.field_tally
        if tally is None and field_tally is None:
            lines = tailer.poll(self.batch_bytes)
            events, count = self._parse_files(src, lines, tailer.last_spans)
            return _Batch(events, count, len(events))
        # Tallied, a batch holds little but its lines: read up to TALLY_BATCH_BYTES in one trip.
        batch = _Batch([], 0, 0, used=tally or field_tally)
        start = tailer.stats.bytes_read
        while lines := tailer.poll(self.batch_bytes):
            spans = tailer.last_spans
            if len(spans) != 1:  # a rotation in the middle: line by line
                events, count = self._parse_files(src, lines, spans)
                if field_tally is not None:
                    batch.parts.append((None, events))
                else:
                    batch.events += events
                batch.lines += count
                batch.parsed += len(events)
            elif tally is not None:
                self._tally(batch, src, tally, lines, spans[0][0])
            elif field_tally is not None:
                self._tally_fields(batch, src, field_tally, lines, spans[0][0])
            if tailer.stats.lag_bytes == 0 or tailer.stats.bytes_read - start >= TALLY_BATCH_BYTES:
                break
        return batch

    def _parse_files(self, src: _Source, lines: list[bytes], spans: list[tuple[str, int]]) -> tuple[list[Event], int]:
        """The events of one poll's lines, line by line, and the number of lines (malformed included)."""
        unwrapper = src.unwrapper
        malformed = unwrapper.malformed
        inner, times, spans = unwrapper.unwrap_files(lines, spans)
        return parse_unwrapped(src.parse, inner, times, spans), len(inner) + unwrapper.malformed - malformed

    def _tally(self, batch: _Batch, src: _Source, tally: BlockTally, lines: list[bytes], path: str) -> None:
        """Add the lines of one file counted by ``tally``; the parts it refuses are parsed line by line.

        A CRI line completes the partial line its stream holds: while one is held, the lines
        go through the unwrapper (and the tally takes only whole lines, tag ``F``).
        """
        unwrapper = src.unwrapper
        cri = unwrapper.wrapper == "cri"
        if not (cri and unwrapper.pending()[0]) and self._tally_part(batch, tally, lines):
            return
        whole = len(lines) <= TALLY_LINES  # refused as a whole already: parsed line by line
        for i in range(0, len(lines), TALLY_LINES):
            part = lines[i : i + TALLY_LINES]
            if whole or (cri and unwrapper.pending()[0]) or not self._tally_part(batch, tally, part):
                malformed = unwrapper.malformed
                inner, times = unwrapper.unwrap(part, path)
                events = parse_unwrapped(src.parse, inner, times, [(path, len(inner))])
                batch.events += events
                batch.lines += len(inner) + unwrapper.malformed - malformed
                batch.parsed += len(events)

    def _tally_fields(self, batch: _Batch, src: _Source, tally: JsonlTally, lines: list[bytes], path: str) -> None:
        """Add the lines of one file counted by a field tally; the parts it refuses are parsed line by line."""
        if self._tally_fields_part(src, batch, tally, lines):
            return
        whole = len(lines) <= TALLY_LINES  # refused as a whole already (its shape learnt for the next)
        for i in range(0, len(lines), TALLY_LINES):
            part = lines[i : i + TALLY_LINES]
            if whole or not self._tally_fields_part(src, batch, tally, part):
                unwrapper = src.unwrapper
                malformed = unwrapper.malformed
                inner, times = unwrapper.unwrap(part, path)
                events = parse_unwrapped(src.parse, inner, times, [(path, len(inner))])
                batch.parts.append((None, events))
                batch.lines += len(inner) + unwrapper.malformed - malformed
                batch.parsed += len(events)

    def _tally_fields_part(self, src: _Source, batch: _Batch, tally: JsonlTally, part: list[bytes]) -> bool:
        """Tally a part; per metric, the combinations of just the fields it reads, in first-seen order."""
        counted = tally(b"\n".join(part), len(part))
        if counted is None:
            return False
        keep = src.keep
        reads = [metric.fields for metric in src.metrics]
        projected: list[dict[tuple[str | None, ...], list[Any]]] = [{} for _ in reads]
        for fields, n in counted:
            if keep is not None and not keep(Event(fields)):
                continue
            get = fields.get
            for names, combos in zip(reads, projected, strict=True):
                key = tuple(map(get, names))
                entry = combos.get(key)
                if entry is None:
                    combos[key] = [fields, n]
                else:
                    entry[1] += n
        batch.parts.append((part, [list(combos.values()) for combos in projected]))
        batch.lines += len(part)
        batch.parsed += len(part)
        return True

    def _tally_part(self, batch: _Batch, tally: BlockTally, part: list[bytes]) -> bool:
        counted = tally(b"\n".join(part), len(part))
        if counted is None:
            return False
        codes, durations = counted
        _merge(batch.codes, codes)
        _merge(batch.durations, durations)
        batch.lines += len(part)
        batch.parsed += len(part)
        batch.tallied.append(part)
        return True

    def _count(self, src: _Source, batch: _Batch) -> None:
        """Feed a parsed batch to everything that counts it (in the event loop)."""
        self._busy = self._busy or batch.lines > 0
        src.stats.parsed += batch.parsed
        src.stats.unparsed += batch.lines - batch.parsed
        events = batch.events
        parts = batch.parts
        if batch.used is not None and batch.used is not src.tally and batch.used is not src.field_tally:
            events = batch.tallied_events(src)  # a reload changed what the source feeds
            parts = []
        elif batch.tallied and src.http is not None:
            src.http.add_counts(batch.codes, batch.durations)
        for lines, entries in parts:
            if lines is None:
                self._observe(src, entries)
                continue
            for metric, combos in zip(src.metrics, entries, strict=True):
                add = metric.add
                for fields, n in combos:
                    add(fields, n)
        self._observe(src, events)

    def _observe(self, src: _Source, events: list[Event]) -> None:
        """Feed events to everything that counts them."""
        if src.keep is not None:
            events = [e for e in events if src.keep(e)]
        if not events:
            return
        if src.http is not None:
            src.http.add(events)
        for metric in src.metrics:
            observe = metric.observe
            for event in events:
                observe(event)
        tracker = src.tracker
        if tracker is not None:
            for event in events:
                tracker.consume(event.fields, time=event.time)

    def _caught_up(self, src: _Source, lines: int) -> bool:
        return lines == 0 or (src.tailer is not None and src.tailer.stats.lag_bytes == 0)

    def _ticket_snapshot(self, src: _Source) -> bytes | None:
        """The tracker's state to write before the offsets are committed, if it changed."""
        tracker = src.tracker
        if tracker is None or self.state_dir is None or tracker.version == src.saved_version:
            return None
        src.saved_version = tracker.version
        return json.dumps(tracker.state(), separators=(",", ":")).encode()

    def _persist(self, src: _Source, snapshot: bytes | None, *, force: bool = False) -> None:
        """Write ticket state, then commit the counted lines (worker thread or shutdown).

        A save that fails (disk full, permissions, something in the way) is counted in
        ``slaprobe_state_save_failures_total`` and logged; the offsets are not committed past
        ticket state that was not written, and both are written again with the next batch.
        """
        if snapshot is not None and not self._save_tickets(src, snapshot):
            return
        if src.tailer is not None:
            try:
                src.tailer.commit(force=force)
            except OSError as exc:
                self._save_failed(src, "read offsets", exc)

    def _save_tickets(self, src: _Source, snapshot: bytes) -> bool:
        try:
            write_atomically(self._ticket_path(src.label), snapshot)
        except OSError as exc:
            src.saved_version = -1  # written again at the next batch
            self._save_failed(src, "ticket state", exc)
            return False
        return True

    def _save_failed(self, src: _Source, what: str, exc: OSError) -> None:
        src.stats.save_failures += 1
        log.warning("source %r: cannot save its %s to %s: %s; trying again later", src.label, what, self.state_dir, exc)

    def _close_source(self, src: _Source) -> None:
        """Commit a counted batch a cancelled poll left, save the offsets, close the files, log the counts."""
        tailer = src.tailer
        if tailer is None:
            return
        if src.uncommitted:  # run() was cancelled between counting a batch and committing it
            src.saved_version = -1  # the cancelled commit may not have written the tickets either
            self._persist(src, self._ticket_snapshot(src))
            src.uncommitted = False
        tailer.close()  # saves the committed offsets only: an uncounted batch is read again
        stats = src.stats
        log.info(
            "log source %r closed: %d lines counted since the source started (%d parsed, %d unparsed), "
            "%d too long skipped, %d rotations, %d bytes unread at the last poll; %s",
            src.label,
            stats.parsed + stats.unparsed,
            stats.parsed,
            stats.unparsed,
            tailer.stats.too_long,
            sum(tailer.stats.rotations.values()),
            tailer.stats.lag_bytes,
            "offsets saved" if self.state_dir is not None else "offsets not kept (no state dir)",
        )

    def poll_now(self) -> None:
        """One poll of every source, synchronously (tests, benchmarks): read, count, tick, save."""
        for src in list(self._sources.values()):
            for _ in range(MAX_BATCHES):
                batch = self._read(src)
                self._count(src, batch)
                self._persist(src, self._ticket_snapshot(src))
                if self._caught_up(src, batch.lines):
                    break
            self._tick(src)
            src.last_poll = self.clock()
        self.polls += 1

    async def poll(self) -> None:
        """One poll of every source, each in its own worker thread, counting here.

        Waits for the polls it starts up to ``POLL_WAIT`` (or ``stuck_after``, if shorter)
        seconds. A source still in a read or save then is left to finish on its own, later
        polls skip it until it has returned (``slaprobe_log_source_stuck`` shows it once it has
        run ``stuck_after``), so it holds up neither the others nor shutdown.
        A source that replaces one still being read (a reload) starts once that one closed.
        """
        replaced = {s.label for s in self._retiring}
        started: list[asyncio.Task[None]] = []
        for src in list(self._sources.values()):
            if src.retired or src.label in replaced:
                continue
            if src.task is not None and not src.task.done():
                continue  # still reading since an earlier poll: not queued again
            src.task = asyncio.ensure_future(self._poll_source(src))
            started.append(src.task)
        if started:
            wait = min(self.stuck_after, POLL_WAIT)
            done, pending = await asyncio.wait(started, timeout=wait)
            for src in self._sources.values():
                if src.task in pending and wait == self.stuck_after:
                    src.waited_out = True
            if any(task.cancelled() for task in done):
                raise asyncio.CancelledError  # a source's poll was cancelled: so is this one
        self.polls += 1

    async def _poll_source(self, src: _Source) -> None:
        """Read, count and commit one source's new lines, up to ``MAX_BATCHES`` batches."""
        src.busy = True
        try:
            snapshot: bytes | None = None
            if src.uncommitted:  # a poll that failed after counting: its commit writes the tickets too
                src.saved_version = -1
                snapshot = self._ticket_snapshot(src)
            for _ in range(MAX_BATCHES):
                # One trip to the worker per batch: commit the batch counted last, then read the next.
                batch = await self._in_worker(self._commit_then_read, src, snapshot)
                if src.retired:
                    break
                self._count(src, batch)
                src.uncommitted = True  # until its commit: close() commits it if we are cancelled
                snapshot = self._ticket_snapshot(src)
                if src.retired or self._caught_up(src, batch.lines):
                    break
            if src.uncommitted:
                await self._in_worker(self._persist, src, snapshot)
                src.uncommitted = False
            if src.retired:
                if src in self._retiring:
                    self._retiring.remove(src)
                    await self._in_worker(self._close_source, src)
                self._stop_worker(src)
                return
            self._tick(src)
            src.last_poll = self.clock()
        except Exception:
            log.exception("log source %r: poll failed; trying again at the next poll", src.label)
        finally:
            src.busy = False

    def _commit_then_read(self, src: _Source, snapshot: bytes | None) -> _Batch:
        """Commit the batch counted last, if any (worker thread), then read the next one."""
        if src.uncommitted:
            self._persist(src, snapshot)
            src.uncommitted = False
        return self._read(src)

    def _tick(self, src: _Source) -> None:
        """Count ticket deadlines that passed, once the source has read everything written so far."""
        if src.tracker is not None and src.tailer is not None and src.tailer.stats.lag_bytes == 0:
            src.tracker.tick(self.clock())

    async def _in_worker(self, fn: Callable[..., T], src: _Source, *args: Any) -> T:
        """Run ``fn(src, *args)`` in the source's worker thread (started on first use)."""
        if src.worker is None:
            src.worker = _Worker(f"slaprobe-logs-{src.label}")
        job = src.worker.submit(fn, src, *args)
        src.job, src.job_started, src.waited_out = job, time.monotonic(), False
        return await asyncio.wrap_future(job)

    def _in_flight(self, src: _Source) -> bool:
        return src.job is not None and not src.job.done()

    def _stuck(self, src: _Source) -> bool:
        """A read or save of the source has run for ``stuck_after`` seconds and not returned."""
        return self._in_flight(src) and (src.waited_out or time.monotonic() - src.job_started >= self.stuck_after)

    def _stop_worker(self, src: _Source) -> None:
        if src.worker is not None:
            src.worker.stop()
            src.worker = None

    async def run(self) -> None:
        """Poll every source every ``poll_interval`` (sooner after lines) until cancelled; then save and close all."""
        try:
            while True:
                try:
                    await self.poll()
                except Exception:
                    log.exception("log pipeline: poll failed; trying again")
                busy, self._busy = self._busy, False
                await asyncio.sleep(min(self.poll_interval, BUSY_POLL_INTERVAL) if busy else self.poll_interval)
        finally:
            self.close()

    def close(self) -> None:
        """Save ticket state and committed offsets, close every file (the pipeline can be polled again).

        Reads and commits still running in the worker threads (``run()`` cancelled in the middle
        of a poll) are waited for first, up to ``close_timeout`` seconds: an uncounted batch is
        then read again by the next run, and a counted one is committed, so no line is lost or
        counted twice across the restart. A source whose read has still not returned is left to
        its (daemon) thread unsaved: its offsets stay as last committed, and the next run reads
        its lines since then again.
        """
        sources = [*self._sources.values(), *self._retiring]
        for src in sources:
            if src.task is not None and not src.task.done():
                src.task.cancel()
            src.task = None
        in_flight = [src.job for src in sources if src.job is not None and self._in_flight(src)]
        if in_flight:
            concurrent.futures.wait(in_flight, timeout=self.close_timeout)
        for src in self._sources.values():
            if self._abandoned(src):
                continue
            snapshot = self._ticket_snapshot(src)
            if snapshot is not None:
                self._save_tickets(src, snapshot)
            self._close_source(src)
            src.tailer = None
        for src in self._retiring:
            if not self._abandoned(src):
                self._close_source(src)
        self._retiring.clear()

    def _abandoned(self, src: _Source) -> bool:
        """Stop the source's worker; True if its read is still running (the source is left unsaved)."""
        stuck = self._in_flight(src)
        self._stop_worker(src)
        if stuck:
            log.warning(
                "log source %r: a read or save has not returned after %.1f s; closing without it "
                "(its offsets stay as last committed, the lines since are read again next time)",
                src.label,
                time.monotonic() - src.job_started,
            )
            src.tailer, src.job = None, None
        return stuck

    # ------------------------------------------------------------------ output

    def render(self, other_save_failures: Mapping[str, int] | None = None) -> str:
        """Every log-derived and feedback series as Prometheus text.

        ``other_save_failures`` adds the failed state saves of the exporter's other state
        files (incidents, heartbeats) to the same family, by their ``source`` label.
        """
        sources = list(self._sources.values())
        others = [
            {STATE_SAVE_FAILURES: STATE_SAVE_FAILURES.sample(n, base=label_set(_SOURCE, (name,)))}
            for name, n in sorted((other_save_failures or {}).items())
        ]
        out = [
            render_families(LINE_FAMILIES, [*(s.line_text() for s in sources), *others]),
            render_families(SOURCE_FAMILIES, [self._source_text(s) for s in sources]),
            render_families(HTTP_FAMILIES, [h.render() for h in self._http.values()]),
        ]
        for src in sources:
            for metric in src.metrics:
                out.append(metric.metric_family.header)
                out.append(metric.render())
        now = self.clock()
        out.append(render_families(FEEDBACK_FAMILIES, [s.tickets.render(now) for s in sources if s.tickets]))
        return "".join(out)

    def _source_text(self, src: _Source) -> Texts:
        """The source's lines of ``SOURCE_FAMILIES``; a source waiting for a stuck one it replaces is stuck too."""
        lb = label_set(_SOURCE, (src.label,))
        stuck = self._stuck(src) or any(self._stuck(r) for r in self._retiring if r.label == src.label)
        text = {LOG_SOURCE_STUCK: LOG_SOURCE_STUCK.sample(1 if stuck else 0, base=lb)}
        if src.last_poll is not None:
            text[LOG_SOURCE_LAST_POLL] = LOG_SOURCE_LAST_POLL.sample(src.last_poll, base=lb)
        return text

    def sources(self) -> list[str]:
        """The ``source`` labels of the running sources, in config order."""
        return list(self._sources)

    def source_views(self) -> list[SourceView]:
        """What each running source has read so far, for the status page."""
        return [
            SourceView(
                s.label,
                s.stats.parsed,
                s.stats.unparsed,
                s.tailer.stats.lag_bytes if s.tailer is not None else 0,
                s.service or (s.tracker.source.service if s.tracker is not None else None),
                s.tracker,
            )
            for s in self._sources.values()
        ]

    def tracker(self, name: str) -> TicketTracker | None:
        """The ticket tracker of a feedback source (status page, tests)."""
        src = self._sources.get(name)
        return src.tracker if src is not None else None
