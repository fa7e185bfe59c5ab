"""The running exporter: current config, scheduled jobs, result store, reload."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slaprobe.config import Config, ConfigError, ConfigIssue, Probe, Service, load_config
from slaprobe.exporter.blackbox import Module, read_module_file
from slaprobe.exporter.guard import AllowList, ProbeGuard
from slaprobe.exporter.heartbeats import Heartbeats
from slaprobe.exporter.hours import Hours
from slaprobe.exporter.logs import LogPipeline
from slaprobe.exporter.maintenance import AdhocMaintenance
from slaprobe.exporter.scheduler import Job, Scheduler, spread_offset
from slaprobe.exporter.sharding import ALL, Shard
from slaprobe.exporter.store import ProbeKey, ProbeMeta, ProbeSeries, ResultStore, scheduled_samples
from slaprobe.maintenance import Calendar
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult
from slaprobe.probes.runner import run_probe
from slaprobe.redact import Redactor
from slaprobe.schedule import CronExpression, Schedule, zone
from slaprobe.specs import HeartbeatSpec

log = logging.getLogger("slaprobe.exporter")


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the config comes from (either may be None, not both)."""

    config: str | None = None
    modules: str | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A checked config and what it means for the exporter, ready to swap in."""

    config: Config
    modules: dict[str, Module]
    redact: Redactor
    metas: list[ProbeMeta]
    jobs: list[Job]
    guard: ProbeGuard
    due: dict[Hashable, float] = field(default_factory=dict)  # first slots, computed with the plan
    series: dict[ProbeKey, ProbeSeries] = field(default_factory=dict)  # empty series for new metas
    beats: list[tuple[ProbeMeta, HeartbeatSpec]] = field(default_factory=list)  # pushed, not scheduled
    calendars: dict[str, Calendar] = field(default_factory=dict)  # services with maintenance windows
    refused: list[ConfigIssue] = field(default_factory=list)  # problems of the modules left out
    refused_modules: tuple[str, ...] = ()


@dataclass(slots=True)
class ReloadStatus:
    """Outcome of the last (re)load, for /metrics and the status page."""

    successful: bool = False
    last_success: float = 0.0  # unix seconds
    last_attempt: float = 0.0  # unix seconds
    issues: list[ConfigIssue] = field(default_factory=list)
    source: str = ""
    refused_modules: tuple[str, ...] = ()  # left out of a loaded module file (the others are served)


class Exporter:
    """Owns the config and turns it into scheduled jobs and stored results."""

    def __init__(
        self,
        sources: Sources,
        *,
        shard: Shard = ALL,
        probe_allow: Sequence[str] = (),
        state_dir: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
        self.shard = shard
        self.clock = clock
        self.config: Config = Config(version="v1")
        self.modules: dict[str, Module] = {}
        self.redact = Redactor()
        self.store = ResultStore()
        self.hours = Hours()  # per service, by hour: for the status page
        self.started = clock()  # unix seconds: the store's counters count from here
        self.status = ReloadStatus()
        self.scheduler: Scheduler | None = None
        self.probe_allow = list(probe_allow)  # --probe-allow; global.probe_allow adds to it
        self.guard = ProbeGuard((), AllowList.parse(self.probe_allow))
        self.freeze_gc = False  # serve sets it: a process-wide choice, not a library one
        self.logs = LogPipeline(Path(state_dir) if state_dir else None, clock)
        self.calendars: dict[str, Calendar] = {}  # service -> its maintenance windows (with the global ones)
        self.heartbeats = Heartbeats(
            self.record,
            clock=clock,
            state_dir=Path(state_dir) if state_dir else None,
            locate=lambda key, location: self.store.located(key, location) is not None,
        )
        self.adhoc = AdhocMaintenance(clock=clock, state_dir=Path(state_dir) if state_dir else None)
        self._reload_lock = asyncio.Lock()
        self._retired: list[object] = []  # what the last swap replaced, until it is freed

    # ------------------------------------------------------------------ config

    def reload(self) -> ReloadStatus:
        """Load the sources; apply them if valid, keep the running config otherwise."""
        self.status.last_attempt = self.clock()
        with _no_full_collections(self.freeze_gc):
            try:
                plan = self._plan_sources()
            except ConfigError as exc:
                return self._rejected(exc)
            for _ in self._swap(plan):
                pass
            self._retired = []
            return self._loaded(plan)

    async def reload_async(self) -> ReloadStatus:
        """``reload`` for a running server, without holding the event loop for long.

        Reading and checking 5,000 probes takes a second or more of Python: it runs in a
        thread, where the loop still gets the GIL every switch interval (5 ms), so /metrics,
        /probe and the scheduler keep going. The swap runs on the loop in steps of tens of
        milliseconds (bench/reload_stall.py measures it). One reload at a time.
        """
        async with self._reload_lock:
            self.status.last_attempt = self.clock()
            with _no_full_collections(self.freeze_gc):
                try:
                    with _short_switch_interval():
                        plan = await asyncio.to_thread(self._plan_sources)
                except ConfigError as exc:
                    return self._rejected(exc)
                for _ in self._swap(plan):
                    await asyncio.sleep(0)
                # Freeing 5,000 probes' old config takes 20-45 ms: in a thread, the loop gets the
                # GIL back every switch interval meanwhile.
                retired, self._retired = self._retired, []
                with _short_switch_interval():
                    await asyncio.to_thread(retired.clear)
                return self._loaded(plan)

    def _plan_sources(self) -> _Plan:
        config = load_config(self.sources.config) if self.sources.config else Config(version="v1")
        modules: dict[str, Module] = {}
        refused: list[ConfigIssue] = []
        refused_modules: tuple[str, ...] = ()
        if self.sources.modules:
            # One module that cannot run does not take the others down: it is left out (its
            # running version, if any, is kept) and named; a broken file keeps the old one.
            read = read_module_file(self.sources.modules)
            if not read.usable:
                raise read.error()
            modules, refused, refused_modules = read.modules, read.issues, read.refused
            for name in refused_modules:
                if name in self.modules:
                    modules[name] = self.modules[name]
        try:
            plan = self._plan(config, modules)
        except ValueError as exc:
            raise ConfigError([ConfigIssue("global.probe_allow", str(exc))], self.sources.config) from None
        plan.refused.extend(refused)
        plan = dataclasses.replace(plan, refused_modules=refused_modules)
        # Made here, off the event loop, for what the swap will not keep.
        now = self.clock()
        plan.due.update((job.key, job.schedule.next_due(now)) for job in plan.jobs)
        for meta in plan.metas:
            current = self.store.get(meta.key)
            if current is None or current.meta != meta:
                plan.series[meta.key] = ProbeSeries(meta)
        return plan

    def _rejected(self, exc: ConfigError) -> ReloadStatus:
        self.status.successful = False
        self.status.issues = exc.issues
        self.status.source = exc.source or ""
        # Before the first good config there is no running one to keep: the caller exits.
        outcome = "keeping the running one" if self.status.last_success else "no config loaded"
        for issue in exc.issues:
            log.error("config rejected, %s: %s: %s", outcome, exc.source, issue)
        return self.status

    def _loaded(self, plan: _Plan) -> ReloadStatus:
        if self.freeze_gc:
            # The config is long-lived: keep it out of every collection (full passes of 60-110 ms
            # otherwise stall /probe and the scheduler about once a second at 10,000 probes).
            # The old config is freed by reference counting: it holds no cycles (the reload
            # tests check that reading a config leaves none), so no full pass is needed, and a
            # full pass over 5,000 probes would hold the loop for 0.3-1 s.
            gc.freeze()
        self.status.successful = True
        self.status.last_success = self.status.last_attempt
        self.status.issues = list(plan.refused)
        self.status.refused_modules = plan.refused_modules
        for issue in plan.refused:
            log.error("module refused, serving the others: %s: %s", self.sources.modules, issue)
        if plan.refused_modules:
            log.error("modules refused: %s", ", ".join(plan.refused_modules))
        log.info("config loaded: %s", plan.config.summary())
        return self.status

    def apply(self, config: Config, modules: dict[str, Module] | None = None) -> None:
        """Make ``config`` the running config: store series and jobs follow it."""
        for _ in self._swap(self._plan(config, modules or {})):
            pass
        self._retired = []

    def _plan(self, config: Config, modules: dict[str, Module]) -> _Plan:
        """What ``config`` means for this exporter, built without touching the running state."""
        redact = Redactor(config.secrets)
        metas = []
        jobs = []
        beats = []
        for service_name, service, probe in config.probes():
            if not self.shard.owns(service_name, probe.name):
                continue
            meta = self._meta(config, redact, service_name, service, probe)
            metas.append(meta)
            if probe.heartbeat is not None:
                beats.append((meta, probe.heartbeat))
                continue
            schedule = self._schedule(config, meta, probe)
            run = _ProbeRun(self, meta, probe, config.secrets)
            jobs.append(
                Job(
                    key=meta.key,
                    schedule=schedule,
                    run=run,
                    # A digest of the spec, not its JSON: 50,000 probes' JSON held 39 MB for a comparison.
                    version=(_digest(probe.model_dump_json()), meta, schedule),
                    on_slot=run.slot,
                )
            )
        calendars = {name: calendar for name, s in config.services.items() if (calendar := config.maintenance_of(s))}
        return _Plan(
            config, dict(modules), redact, metas, jobs, self._guard_for(config), beats=beats, calendars=calendars
        )

    def _swap(self, plan: _Plan) -> Iterator[None]:
        """Make the plan the running state, pausing (yield) between steps of tens of ms each."""
        # Freed in a step of their own: releasing 5,000 probes' config and jobs takes 30-45 ms.
        retired = [self.config, getattr(self, "_jobs", None)]
        config = plan.config
        self.config = config
        self.modules = plan.modules
        self.redact = plan.redact
        self.guard = plan.guard
        self.calendars = plan.calendars
        self.store.sync(plan.metas, made=plan.series)
        self.hours.sync((name, s.sla.window) for name, s in config.services.items())
        self.heartbeats.sync(plan.beats)
        yield
        # Logs are read by the first shard only: every replica sees the same files.
        self.logs.apply(config if self.shard.index == 0 else Config(version="v1"))
        yield
        if self.scheduler is not None:
            self.scheduler.set_concurrency(config.global_.concurrency)
            yield from self.scheduler.replace_jobs(plan.jobs, due=plan.due)
        self._jobs = plan.jobs
        yield
        self._retired = retired  # freed by the caller: in a thread when the loop is running

    def _meta(self, config: Config, redact: Redactor, service_name: str, service: Service, probe: Probe) -> ProbeMeta:
        return ProbeMeta(
            service=service_name,
            probe=probe.name,
            kind=probe.kind,
            target=redact(probe.spec.target),
            location=config.global_.location,
            interval=config.interval_of(probe),
            timeout=config.timeout_of(probe),
            buckets=config.buckets_of(service),
            latency_threshold=service.sla.latency.threshold if service.sla.latency else None,
            degraded_after=probe.degraded_duration,
            maintenance=bool(config.global_.maintenance or service.maintenance),
            phase_histograms=config.phase_histograms_of(service),
        )

    def _schedule(self, config: Config, meta: ProbeMeta, probe: Probe) -> Schedule:
        # cron slots are spread within their minute; fixed intervals over the interval
        spread = min(meta.interval, 60.0) if probe.schedule else meta.interval
        return Schedule(
            interval=meta.interval,
            offset=spread_offset(meta.key, spread),
            cron=CronExpression.parse(probe.schedule) if probe.schedule else None,
            tz=zone(config.global_.timezone),
            during=config.time_intervals_of(probe.during),
        )

    def schedules(self) -> dict[ProbeKey, Schedule]:
        """The schedule of every scheduled probe (heartbeats have none), for the status page."""
        return {job.key: job.schedule for job in getattr(self, "_jobs", []) if isinstance(job.key, tuple)}

    def _slot(self, key: ProbeKey) -> None:
        series = self.store.get(key)
        if series is not None and not self.in_maintenance(key[0]):  # planned work is not a planned run
            series.slot()

    def in_maintenance(self, service: str, now: float | None = None) -> bool:
        """Whether a maintenance window of ``service`` is open (now, or at unix time ``now``)."""
        when = self.clock() if now is None else now
        calendar = self.calendars.get(service)
        return (calendar is not None and calendar.active(when)) or self.adhoc.active(service, when)

    def today(self, now: float | None = None) -> int:
        """Today's date ordinal in the config's time zone ('today' of the compliance rate)."""
        when = dt.datetime.fromtimestamp(self.clock() if now is None else now, zone(self.config.global_.timezone))
        return when.toordinal()

    def _job(self, meta: ProbeMeta, probe: Probe, secrets: frozenset[str]) -> Callable[[], Awaitable[None]]:
        # secrets: the config's ${env:}/${file:} values; a header holding one stays with its host
        return _ProbeRun(self, meta, probe, secrets)

    def record(
        self,
        key: ProbeKey,
        result: ProbeResult,
        *,
        first_attempt: FailureReason | None = None,
        maintenance: bool | None = None,
        location: str | None = None,
    ) -> None:
        """Store a finished run (redacted) and log when the probe changes state.

        ``maintenance``: whether the run started inside a maintenance window (None: judged now);
        ``location``: where a remote agent ran it (None: here).
        """
        # The store keeps the last result of every probe: without the blackbox samples, which
        # only /probe shows (they were a fifth of the memory of 10,000 scheduled probes), but ICMP loss and jitter.
        if result.detail or result.samples:
            detail = self.redact(result.detail) if result.detail else ""
            result = dataclasses.replace(result, detail=detail, samples=scheduled_samples(result.samples))
        series = self.store.get(key)
        was_up = series.last.success if series is not None and series.last is not None else None
        now = self.clock()
        if maintenance is None:
            maintenance = self.in_maintenance(key[0], now)
        store, day = self.store, self.today(now)
        store.record(key, result, now, day=day, first_attempt=first_attempt, maintenance=maintenance, location=location)
        if series is not None and not maintenance:  # the status page's hourly strip and SLA-window figure
            self.hours.record(key[0], first_attempt is not None or not result.success, now, day)
        if location is not None:
            return  # a remote location's state changes are the agent's to log
        if was_up is not result.success:  # a change, or the first run
            if not result.success:
                log.warning("probe %s/%s is DOWN: %s: %s", key[0], key[1], result.reason, result.detail)
            elif was_up is not None:
                log.info("probe %s/%s is UP again (%.3fs)", key[0], key[1], result.duration)

    # ------------------------------------------------------------------ lifecycle

    def start_scheduler(self) -> Scheduler:
        """Create the scheduler (inside the running loop) with the current jobs."""
        self.scheduler = Scheduler(self.config.global_.concurrency)
        self.scheduler.set_jobs(getattr(self, "_jobs", []))
        return self.scheduler

    def allow_probes(self, entries: Sequence[str]) -> None:
        """Set the --probe-allow entries (CIDRs, hostname globs) of ``/probe``."""
        self.probe_allow = list(entries)
        self._rebuild_guard()

    def _rebuild_guard(self) -> None:
        # Once per (re)load, not per /probe request: walking 10,000 probes per request is slow.
        self.guard = self._guard_for(self.config)

    def _guard_for(self, config: Config) -> ProbeGuard:
        """The /probe guard of ``config`` (ValueError for an allow-list entry the guard refuses)."""
        entries = [*self.probe_allow, *config.global_.probe_allow]
        return ProbeGuard(configured_hosts(config), AllowList.parse(entries))


class _ProbeRun:
    """One scheduled probe's run (called by the scheduler) and its slot counter (``slot``).

    A slotted object, not closures: at 50,000 probes, two functions, their cells and a
    ``partial`` per probe held ~50 MB.
    """

    __slots__ = ("exporter", "meta", "probe", "secrets")

    def __init__(self, exporter: Exporter, meta: ProbeMeta, probe: Probe, secrets: frozenset[str]) -> None:
        self.exporter = exporter
        self.meta = meta
        self.probe = probe
        self.secrets = secrets  # the config's ${env:}/${file:} values; a header holding one stays with its host

    def attempt(self) -> Awaitable[ProbeResult]:
        # Only /probe shows blackbox's samples: a scheduled run does not build them.
        meta = self.meta
        ctx = ProbeContext(timeout=meta.timeout, want_samples=False, secrets=self.secrets)
        return run_probe(PROBERS[self.probe.kind], self.probe.spec, ctx, name=f"{meta.service}/{meta.probe}")

    async def __call__(self) -> None:
        exporter, meta = self.exporter, self.meta
        maintenance = exporter.in_maintenance(meta.service)  # a run belongs to the window it starts in
        result = await self.attempt()
        first_attempt = result.reason
        for retry in range(self.probe.retries):
            if result.success:
                break
            log.debug(
                "%s/%s failed (%s), retry %d of %d",
                meta.service,
                meta.probe,
                result.reason,
                retry + 1,
                self.probe.retries,
            )
            result = await self.attempt()
        exporter.record(meta.key, result, first_attempt=first_attempt, maintenance=maintenance)

    def slot(self) -> None:
        self.exporter._slot(self.meta.key)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


RELOAD_SWITCH_INTERVAL = 0.0005
"""Seconds: the GIL switch interval while a reload is planned in its thread (Python's default:
5 ms). Every system call of the loop (epoll, send, recv, connect) lets the planning thread
take the GIL, and the loop then waits a whole interval to get it back: with probes running
that is a wait per call, and the loop fell behind by 140-790 ms per reload of 5,000 probes
(bench/reload_stall.py, 04:13 UTC). A shorter interval only while planning bounds each wait."""


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, RELOAD_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def _no_full_collections(pause: bool) -> Iterator[None]:
    """No full (generation 2) collection while a config is read and swapped in, until it is
    frozen: each would walk every object of the config being built, 100-300 ms at 5,000
    probes, holding the GIL. Young collections still run, so the cycles of the requests
    served meanwhile are still freed."""
    if not pause:
        yield
        return
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def configured_hosts(config: Config) -> set[str]:
    """Every target (host with its port, or URL) named by a probe in ``config``."""
    hosts = set()
    for _, _, probe in config.probes():
        if probe.flow is not None:
            for step in (*probe.flow.steps, *probe.flow.finally_):
                hosts.add(step.spec.target)  # with its port: the guard opens that port only
        elif probe.heartbeat is None and not (probe.dns is not None and probe.dns.server is None):
            hosts.add(probe.spec.target)
    return hosts
