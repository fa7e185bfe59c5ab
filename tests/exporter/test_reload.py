"""Reloading a running exporter: read off the event loop, swapped in without cycles left behind."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.result import ProbeResult

REPO = Path(__file__).resolve().parents[2]


def config_text(timeout: str = "5s") -> str:
    return (
        f"version: v1\nglobal: {{timeout: {timeout}}}\nservices:\n  shop:\n    probes:\n"
        "      - {name: home, http: {url: 'http://127.0.0.1:1/'}}\n"
        "      - {name: db, tcp: {address: '127.0.0.1:1'}}\n"
    )


async def write_when_read(fifo: Path, text: str, deadline: float = 10.0) -> None:
    """Write ``text`` into ``fifo`` from the event loop, once a reader has opened it."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            break
        except OSError:
            assert loop.time() < give_up, "nobody opened the config for reading"
            await asyncio.sleep(0.01)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


async def test_a_reload_reads_the_config_while_the_event_loop_keeps_running(tmp_path: Path) -> None:
    # The config is a FIFO: reading it blocks until the loop writes it. Read on the loop,
    # the reload would wait for a writer that can never run, and the test would time out.
    first = tmp_path / "first.yaml"
    first.write_text(config_text())
    exporter = Exporter(Sources(config=str(first)))
    assert exporter.reload().successful
    fifo = tmp_path / "slaprobe.yaml"
    os.mkfifo(fifo)
    exporter.sources = Sources(config=str(fifo))
    reload = asyncio.create_task(exporter.reload_async())
    await write_when_read(fifo, config_text(timeout="3s"))
    status = await reload
    assert status.successful, status.issues
    assert exporter.config.global_.timeout == 3.0


async def test_a_reload_that_changes_every_probe_keeps_their_counters(tmp_path: Path) -> None:
    path = tmp_path / "slaprobe.yaml"
    path.write_text(config_text())
    exporter = Exporter(Sources(config=str(path)))
    assert exporter.reload().successful
    exporter.record(("shop", "home"), ProbeResult(success=True, duration=0.01))
    path.write_text(config_text(timeout="3s"))
    assert (await exporter.reload_async()).successful
    series = exporter.store.get(("shop", "home"))
    assert series is not None and series.meta.timeout == 3.0 and series.runs == 1


def test_reading_a_config_leaves_no_garbage_that_only_a_full_collection_frees() -> None:
    # serve freezes the config instead of collecting after a reload (a full pass would hold
    # the loop for 0.3-1 s at 5,000 probes): the old config must go by reference counting.
    exporter = Exporter(Sources(config=str(REPO / "examples" / "demo.yaml")))
    assert exporter.reload().successful
    gc.collect()
    gc.disable()
    try:
        assert exporter.reload().successful
        assert exporter.reload().successful
        assert gc.collect() == 0
    finally:
        gc.enable()
