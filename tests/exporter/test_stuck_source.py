"""A log source stuck in a read (a hung NFS mount, a dying disk) stops neither the others nor shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from slaprobe.config import Config, parse_config
from slaprobe.exporter.logs import LogPipeline

T0 = 1_700_000_000.0
LINE = '10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.5" 0.120\n'
STUCK = 'slaprobe_log_source_stuck{source="%s"}'
LINES = 'slaprobe_log_lines_total{source="%s",result="parsed"}'


class StuckRead(LogPipeline):
    """A pipeline whose reads of the source ``slow`` block until the test releases them."""

    def __init__(self, state_dir: Path, stuck_after: float = 0.05, **options: Any) -> None:
        super().__init__(state_dir, lambda: T0, poll_interval=0.01, stuck_after=stuck_after, **options)
        self.reading = threading.Event()
        self.release = threading.Event()
        self.slow_reads = 0

    def _read(self, src: Any) -> Any:
        if src.label == "slow" and not self.release.is_set():
            self.slow_reads += 1
            self.reading.set()
            self.release.wait(30)
        return super()._read(src)


def two_sources(tmp_path: Path) -> Config:
    logs = [
        {"name": name, "path": str(tmp_path / f"{name}.log"), "format": "nginx_combined", "start": "beginning"}
        for name in ("slow", "fast")
    ]
    doc = {"version": "v1", "services": {"shop": {"sla": {"availability": 99}, "logs": logs}}}
    return parse_config(yaml.safe_dump(doc))


def series(pipeline: LogPipeline) -> dict[str, float]:
    out = {}
    for line in pipeline.render().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait for ``condition``, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    for name in ("slow", "fast"):
        (tmp_path / f"{name}.log").write_text(LINE)
    return tmp_path


async def test_the_other_sources_are_read_while_one_is_stuck_and_the_stuck_one_is_shown(logs: Path) -> None:
    pipeline = StuckRead(logs / "state")
    pipeline.apply(two_sources(logs))
    task = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: series(pipeline).get(LINES % "fast") == 1)
        with (logs / "fast.log").open("a") as out:
            out.write(LINE * 2)
        await until(lambda: series(pipeline).get(LINES % "fast") == 3)
        await until(lambda: series(pipeline)[STUCK % "slow"] == 1)
        s = series(pipeline)
        assert s[STUCK % "fast"] == 0
        assert s[LINES % "slow"] == 0
        assert s['slaprobe_log_source_last_poll_timestamp_seconds{source="fast"}'] == T0
        assert 'slaprobe_log_source_last_poll_timestamp_seconds{source="slow"}' not in s  # never polled to the end
        polls = pipeline.polls
        await until(lambda: pipeline.polls > polls + 3)
        assert pipeline.slow_reads == 1  # skipped while stuck, not queued again
        pipeline.release.set()
        await until(lambda: series(pipeline).get(LINES % "slow") == 1)
        assert series(pipeline)[STUCK % "slow"] == 0
    finally:
        pipeline.release.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_slow_read_below_the_stuck_threshold_lets_the_others_go_on_and_is_not_shown_stuck(
    logs: Path,
) -> None:
    pipeline = StuckRead(logs / "state", stuck_after=3600)
    pipeline.apply(two_sources(logs))
    task = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: pipeline.reading.is_set() and series(pipeline).get(LINES % "fast") == 1)
        with (logs / "fast.log").open("a") as out:
            out.write(LINE * 2)
        await until(lambda: series(pipeline).get(LINES % "fast") == 3)
        assert series(pipeline)[STUCK % "slow"] == 0
        assert pipeline.slow_reads == 1
    finally:
        pipeline.release.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_shutdown_with_a_stuck_read_ends_and_the_next_run_reads_its_lines(
    logs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = StuckRead(logs / "state", close_timeout=0.05)
    pipeline.apply(two_sources(logs))
    task = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: pipeline.reading.is_set() and series(pipeline).get(LINES % "fast") == 1)
        task.cancel()
        with caplog.at_level(logging.WARNING, logger="slaprobe.logs"), pytest.raises(asyncio.CancelledError):
            await task  # returns although the read of "slow" has not
        assert not pipeline.release.is_set()
        assert any("'slow': a read or save has not returned" in r.getMessage() for r in caplog.records)
        workers = [t for t in threading.enumerate() if t.name.startswith("slaprobe-logs-")]
        assert workers and all(t.daemon for t in workers)  # the stuck one cannot hold up the exit
    finally:
        pipeline.release.set()
    again = LogPipeline(logs / "state")
    again.apply(two_sources(logs))
    again.poll_now()
    s = series(again)
    assert s[LINES % "slow"] == 1  # never committed by the stuck run: read now
    assert s[LINES % "fast"] == 0  # committed by the first run: not counted twice
