"""The scheduler: spread start times, bounded concurrency, no overlap, live job changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from slaprobe.exporter.scheduler import Job, Scheduler, spread_offset


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def _nothing() -> None:
    return None


def test_start_offsets_spread_evenly_over_the_interval() -> None:
    offsets = [spread_offset(("svc", f"probe{i}"), 30.0) for i in range(10_000)]
    counts = [0] * 10
    for offset in offsets:
        assert 0 <= offset < 30
        counts[int(offset // 3)] += 1
    assert min(counts) > 900 and max(counts) < 1100  # each 3 s slice holds ~10%


def test_the_offset_of_a_probe_is_the_same_after_a_restart() -> None:
    assert spread_offset(("a", "b"), 60) == spread_offset(("a", "b"), 60)
    due = Job.every(("a", "b"), 60, _nothing).schedule.next_due(1000.0)
    assert 1000.0 <= due < 1060.0 and (due - spread_offset(("a", "b"), 60)) % 60 == pytest.approx(0, abs=1e-6)


async def test_a_slow_job_never_runs_twice_at_once_and_its_skipped_slots_count_as_missed() -> None:
    running = 0
    most = 0
    finished = 0

    async def slow() -> None:
        nonlocal running, most, finished
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.12)
        running -= 1
        finished += 1

    scheduler = Scheduler(concurrency=10)
    scheduler.set_jobs([Job.every("slow", 0.03, slow)])
    task = asyncio.create_task(scheduler.run())
    await until(lambda: finished >= 2)
    task.cancel()
    assert most == 1
    assert scheduler.stats.missed_overrun >= 3


async def test_no_more_jobs_run_at_once_than_the_concurrency_limit() -> None:
    running = 0
    most = 0
    done = 0

    async def work() -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        done += 1

    scheduler = Scheduler(concurrency=3)
    scheduler.set_jobs([Job.every(i, 0.2, work) for i in range(12)])
    task = asyncio.create_task(scheduler.run())
    await until(lambda: done >= 12)
    task.cancel()
    assert most <= 3


async def test_removed_jobs_stop_and_kept_jobs_keep_running_after_set_jobs() -> None:
    counts = {"kept": 0, "removed": 0}

    def counter(name: str) -> Callable[[], asyncio.Future[None]]:
        async def run() -> None:
            counts[name] += 1

        return run  # type: ignore[return-value]

    kept = Job.every("kept", 0.02, counter("kept"))
    scheduler = Scheduler(concurrency=4)
    scheduler.set_jobs([kept, Job.every("removed", 0.02, counter("removed"))])
    task = asyncio.create_task(scheduler.run())
    await until(lambda: counts["removed"] >= 2 and counts["kept"] >= 2)
    scheduler.set_jobs([kept])
    await asyncio.sleep(0)  # let a dispatched run of the removed job start, if any
    removed_at_reload = counts["removed"]
    kept_at_reload = counts["kept"]
    await until(lambda: counts["kept"] >= kept_at_reload + 3)
    task.cancel()
    assert counts["removed"] <= removed_at_reload + 1


async def test_every_started_run_records_its_start_lag() -> None:
    async def nothing() -> None:
        return None

    scheduler = Scheduler(concurrency=4)
    scheduler.set_jobs([Job.every(i, 0.05, nothing) for i in range(5)])
    task = asyncio.create_task(scheduler.run())
    await until(lambda: scheduler.stats.started >= 10)
    task.cancel()
    assert scheduler.stats.lag.count == scheduler.stats.started
    assert scheduler.stats.lag.total / scheduler.stats.started < 0.05


async def test_jobs_replaced_in_steps_run_on_their_new_schedule_while_the_rest_keep_their_old_one() -> None:
    runs: dict[str, int] = {}

    def counter(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            runs[name] = runs.get(name, 0) + 1

        return run

    scheduler = Scheduler(concurrency=8)
    scheduler.set_jobs([Job.every(i, 0.02, counter(f"old{i}")) for i in range(4)])
    task = asyncio.create_task(scheduler.run())
    await until(lambda: all(runs.get(f"old{i}", 0) >= 1 for i in range(4)))
    steps = scheduler.replace_jobs([Job.every(i, 0.02, counter(f"new{i}")) for i in range(3)], step=1)
    next(steps)  # job 0 replaced; jobs 1 and 2 not yet, job 3 still there
    seen = {name: runs.get(name, 0) for name in ("old1", "old3")}
    await until(lambda: runs.get("new0", 0) >= 2 and runs["old1"] > seen["old1"] and runs["old3"] > seen["old3"])
    for _ in steps:
        pass
    await asyncio.sleep(0)  # a run of job 3 dispatched before the end may still start
    stopped = dict(runs)
    await until(lambda: all(runs.get(f"new{i}", 0) >= stopped.get(f"new{i}", 0) + 2 for i in range(3)))
    task.cancel()
    assert runs["old0"] <= stopped["old0"] and runs["old3"] <= stopped["old3"] + 1
