"""The probe scheduler: runs on each job's schedule, spread out, with bounded concurrency.

A job's slots come from its ``Schedule``: every ``interval`` seconds at a stable offset
derived from its key (like Prometheus spreads scrapes, so 10,000 probes with the same
interval do not start together), or at cron times, and only inside its ``during``
windows. A global semaphore bounds runs in flight; a job never overlaps itself: when
its previous run is still going at the next slot, that slot is a *missed run*. A run
that could not start before its next slot was due is also missed. *Lag* is how late a
run started (semaphore wait included) relative to its slot. Times are unix seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from slaprobe.probes.tally import Histogram
from slaprobe.schedule import Schedule

log = logging.getLogger("slaprobe.scheduler")


@dataclass(frozen=True, slots=True)
class Job:
    """Something to run at the slots of ``schedule``; equal jobs survive a reload untouched."""

    key: Hashable
    schedule: Schedule
    run: Callable[[], Awaitable[None]] = field(compare=False, hash=False)
    version: Hashable = None  # a change (e.g. a new spec) makes it a different job
    on_slot: Callable[[], None] | None = field(default=None, compare=False, hash=False)  # every slot, run or not

    @classmethod
    def every(cls, key: Hashable, interval: float, run: Callable[[], Awaitable[None]]) -> Job:
        """A job every ``interval`` seconds at the key's spread offset."""
        return cls(key, Schedule(interval, spread_offset(key, interval)), run)


LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # seconds


@dataclass(slots=True)
class SchedulerStats:
    """Counters the scheduler exports about itself."""

    started: int = 0
    missed_overrun: int = 0  # previous run of the same job still in flight
    missed_late: int = 0  # could not start before its next slot was due
    in_flight: int = 0
    lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))  # seconds

    @property
    def missed(self) -> int:
        return self.missed_overrun + self.missed_late


DISPATCH_TICK = 0.02
"""Seconds: jobs due within this much of the first due job start in the same wake-up (so up
to 20 ms early). Runs started together share event-loop iterations for their connects and
reads: at 500 probes/s this takes a fifth off the CPU per probe, for a spread that is still
20 ms fine."""


REPLACE_STEP = 500
"""Jobs ``replace_jobs`` handles between two pauses: 3-7 ms of the event loop's time (1,000
took 6-14 ms, and up to 30 ms on a busy host)."""


def spread_offset(key: Hashable, interval: float) -> float:
    """A stable offset in [0, interval) for ``key``: the same on every start and reload."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


class Scheduler:
    """Runs jobs on their grid until stopped; ``set_jobs`` swaps the job list live."""

    def __init__(self, concurrency: int, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._jobs: dict[Hashable, Job] = {}
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = 0
        self._live: dict[Hashable, int] = {}  # key -> seq of its one current heap entry
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self.stats = SchedulerStats()

    def set_concurrency(self, concurrency: int) -> None:
        """Bound runs in flight; runs already waiting keep the old bound."""
        if concurrency != self._concurrency:
            self._semaphore = asyncio.Semaphore(concurrency)
            self._concurrency = concurrency

    def set_jobs(self, jobs: Iterable[Job], *, due: Mapping[Any, float] | None = None) -> None:
        """Replace the job list. Unchanged jobs keep their slot; new ones join their grid.

        ``due``: first slots computed beforehand (off the event loop); one that has passed
        by now is computed again.
        """
        for _ in self.replace_jobs(jobs, due=due):
            pass

    def replace_jobs(
        self, jobs: Iterable[Job], *, due: Mapping[Any, float] | None = None, step: int = REPLACE_STEP
    ) -> Iterator[None]:
        """``set_jobs`` ``step`` jobs at a time, pausing (yield) in between for the event loop.

        In a pause the jobs replaced so far run on their new schedule and the others on
        their old one; jobs that are gone stop at the end.
        """
        fresh = {job.key: job for job in jobs}
        now = self._clock()
        for done, (key, job) in enumerate(fresh.items()):
            if done and done % step == 0:
                self._wake.set()
                yield
                now = self._clock()
            if self._jobs.get(key) != job:
                first = due.get(key, -math.inf) if due is not None else -math.inf
                self._push(first if first >= now else job.schedule.next_due(now), job)
            self._jobs[key] = job
        for key in self._jobs.keys() - fresh.keys():
            del self._jobs[key]
            self._live.pop(key, None)
        dropped: list[tuple[float, int, Job]] = []
        if len(self._heap) > 2 * len(self._live):
            # Entries of replaced jobs wait for their slot before they are dropped; after a few
            # reloads of every job they would hold the old configs for up to an interval.
            live: list[tuple[float, int, Job]] = []
            for entry in self._heap:
                (live if self._live.get(entry[2].key) == entry[1] else dropped).append(entry)
            heapq.heapify(live)
            self._heap = live
        self._wake.set()
        while dropped:  # freed a step at a time: 5,000 replaced jobs take 40-70 ms to free
            yield
            del dropped[-step:]

    def _push(self, due: float, job: Job) -> None:
        self._seq += 1
        # Older entries of this key become stale, also when an edit is reverted before they
        # are due: the job is then equal to theirs again, but must not run twice per slot.
        self._live[job.key] = self._seq
        if due == math.inf:
            return  # no slot in the horizon (e.g. a window that never opens)
        heapq.heappush(self._heap, (due, self._seq, job))

    async def run(self) -> None:
        """Dispatch due jobs forever (cancel the task to stop; running jobs are cancelled too)."""
        loop = asyncio.get_running_loop()
        wake = self._wake
        try:
            while True:
                if not self._heap:
                    wake.clear()
                    await wake.wait()
                    continue
                delay = self._heap[0][0] - self._clock()
                if delay > DISPATCH_TICK:
                    # One timer per wake-up (not a wait_for task per job); set_jobs wakes us early.
                    wake.clear()
                    timer = loop.call_later(delay, wake.set)
                    try:
                        await wake.wait()
                    finally:
                        timer.cancel()
                    continue
                self._dispatch_due()
        finally:
            for task in list(self._running.values()):
                task.cancel()

    def _dispatch_due(self) -> None:
        """Start every job due within ``DISPATCH_TICK`` of now, in one go."""
        heap, jobs, live, running = self._heap, self._jobs, self._live, self._running
        horizon = self._clock() + DISPATCH_TICK
        while heap and heap[0][0] <= horizon:
            due, seq, job = heapq.heappop(heap)
            current = jobs.get(job.key)
            if current is None or live.get(job.key) != seq or (current is not job and current != job):
                continue  # removed or replaced by a reload
            job = current  # an equal job from a reload: keep its object, so the next slot compares by identity
            next_due = job.schedule.next_due(due + 1e-3)
            self._push(next_due, job)
            if job.on_slot is not None:
                job.on_slot()
            if job.key in running:
                self.stats.missed_overrun += 1
                continue
            running[job.key] = asyncio.create_task(self._start(job, due, next_due), name=f"probe {job.key}")

    async def _start(self, job: Job, due: float, next_due: float) -> None:
        try:
            async with self._semaphore:
                now = self._clock()
                lag = now - due
                if now >= next_due:
                    self.stats.missed_late += 1
                    return
                self.stats.lag.observe(max(lag, 0.0))
                self.stats.started += 1
                self.stats.in_flight += 1
                try:
                    await job.run()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a job's bug must not stop the scheduler
                    log.exception("job %s raised", job.key)
                finally:
                    self.stats.in_flight -= 1
        finally:
            # Here, not in a done callback (one more callback per run): the job never overlaps
            # itself, so the entry is this task's.
            self._running.pop(job.key, None)

    def running(self) -> int:
        """Jobs started or waiting for a slot right now."""
        return len(self._running)
