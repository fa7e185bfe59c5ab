"""Heartbeats: pings are runs, each period without one is a failed run, the token stays secret."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from slaprobe.config import ConfigError, parse_config
from slaprobe.exporter.heartbeats import Heartbeats, pushed_result, token_matches
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.exporter.store import ProbeKey
from slaprobe.probes.result import FailureReason, ProbeResult
from tests.conftest import free_port

TOKEN = "hb-t0ken-0123456789abcdef"

CONFIG = """version: v1
services:
  batch:
    probes:
      - name: nightly
        heartbeat: {every: 1h, grace: 10m, token: "${env:HB_TOKEN}"}
      - name: fast
        heartbeat: {every: 1s, grace: 0s, token: "${env:HB_TOKEN}"}
"""


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def heartbeats_of(text: str, clock: FakeClock, state_dir: Path | None = None) -> tuple[Heartbeats, list]:
    """The heartbeats of a config on a fake clock, and the list of (key, result) they record."""
    recorded: list[tuple[ProbeKey, ProbeResult]] = []
    heartbeats = Heartbeats(
        lambda key, result, location=None: recorded.append((key, result)), clock=clock, state_dir=state_dir
    )
    exporter = Exporter(Sources(), clock=clock)
    exporter.apply(parse_config(text))
    heartbeats.sync(exporter._plan(exporter.config, {}).beats)
    return heartbeats, recorded


def test_a_heartbeat_config_is_one_probe_kind_and_its_token_a_secret(monkeypatch) -> None:
    monkeypatch.setenv("HB_TOKEN", TOKEN)
    cfg = parse_config(CONFIG)
    probe = cfg.services["batch"].probes[0]
    assert probe.kind == "heartbeat" and cfg.interval_of(probe) == 3600
    assert TOKEN in cfg.secrets and TOKEN not in probe.model_dump_json()


def test_written_out_tokens_are_secrets_too_and_schedule_keys_are_refused() -> None:
    text = "version: v1\nservices:\n  b:\n    probes:\n      - name: x\n        interval: 5s\n        heartbeat: {every: 1m, token: plain-token-1}\n"
    with pytest.raises(ConfigError, match=re.escape("probes[0].interval: a heartbeat is pushed, not run: use")):
        parse_config(text)
    cfg = parse_config(text.replace("        interval: 5s\n", ""))
    assert "plain-token-1" in cfg.secrets


def test_pings_are_runs_and_each_missed_period_is_one_failed_run(monkeypatch) -> None:
    monkeypatch.setenv("HB_TOKEN", TOKEN)
    clock = FakeClock()
    heartbeats, recorded = heartbeats_of(CONFIG.replace("every: 1s, grace: 0s", "every: 1m, grace: 30s"), clock)
    key = ("batch", "fast")
    clock.now += 60
    heartbeats.ping(key, ProbeResult(True, 0.5))  # on time
    clock.now += 89
    heartbeats.check(clock.now)  # within every + grace of the ping
    assert [r.success for _, r in recorded if _ == key] == [True]
    clock.now += 1 + 120  # the deadline passed, and two more periods
    heartbeats.check(clock.now)
    missed = [r for k, r in recorded if k == key and not r.success]
    assert [r.reason for r in missed] == [FailureReason.MISSED_HEARTBEAT] * 3
    assert missed[0].detail == "no ping within 1m + 30s grace"
    heartbeats.ping(key, ProbeResult(True, 0.0))  # late: a run of its own; the deadline starts again
    clock.now += 89
    assert heartbeats.check(clock.now) == clock.now + 1 and len(recorded) == 5


def test_deadlines_survive_a_restart_without_counting_the_time_down(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HB_TOKEN", TOKEN)
    clock = FakeClock()
    config = CONFIG.replace("every: 1s, grace: 0s", "every: 1m, grace: 0s")
    first, _ = heartbeats_of(config, clock, tmp_path)
    first.ping(("batch", "fast"), ProbeResult(True, 0.0))
    first.save()
    saved = {(e["service"], e["probe"]): e["deadline"] for e in json.loads((tmp_path / "heartbeats.json").read_text())}
    assert saved[("batch", "fast")] == clock.now + 60
    clock.now += 30  # restarted halfway through the period: the deadline is kept
    second, recorded = heartbeats_of(config, clock, tmp_path)
    assert second.check(clock.now) == clock.now + 30
    clock.now += 1000  # down for many periods: none is counted, the next is due within one
    third, recorded = heartbeats_of(config, clock, tmp_path)
    assert recorded == [] and clock.now < third.check(clock.now) <= clock.now + 60


def test_state_is_written_off_the_loop_once_a_second_and_on_shutdown_never_via_a_symlink(
    tmp_path: Path, monkeypatch
) -> None:
    import asyncio
    import threading

    import slaprobe.exporter.heartbeats as module

    monkeypatch.setenv("HB_TOKEN", TOKEN)
    clock = FakeClock()  # frozen: every ping below falls in the same second
    (tmp_path / "elsewhere").write_text("untouched")
    (tmp_path / "heartbeats.tmp").symlink_to(tmp_path / "elsewhere")  # planted
    heartbeats, _ = heartbeats_of(CONFIG.replace("every: 1s", "every: 1h"), clock, tmp_path)
    writes: list[str] = []
    real_write = module.write_atomically

    def counted(path: Path, data: bytes) -> None:
        writes.append(threading.current_thread().name)
        real_write(path, data)

    monkeypatch.setattr(module, "write_atomically", counted)

    async def pinged_fifty_times() -> None:
        task = asyncio.create_task(heartbeats.run())
        for _ in range(50):
            heartbeats.ping(("batch", "nightly"), ProbeResult(True, 0.0))
            for _ in range(5):
                await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(pinged_fifty_times())
    loop_thread = threading.current_thread().name
    assert len(writes) == 2  # the first within the second, then the one on shutdown
    assert writes[0] != loop_thread  # off the event loop
    assert (tmp_path / "elsewhere").read_text() == "untouched"
    saved = json.loads((tmp_path / "heartbeats.json").read_text())
    assert {e["probe"]: e["deadline"] for e in saved}["nightly"] == clock.now + 3600 + 600


def test_a_ping_reports_status_duration_and_a_short_message() -> None:
    down = pushed_result({"status": "down", "duration": "1500ms", "msg": "disk full\n" + "x" * 500})
    assert (down.success, down.reason, down.duration) == (False, FailureReason.REPORTED_DOWN, 1.5)
    assert len(down.detail) == 200 and "\n" not in down.detail
    assert pushed_result({"duration": "2.25"}).duration == 2.25
    for bad in ({"status": "ok"}, {"duration": "-1"}, {"duration": "nan"}, {"duration": "soon"}):
        with pytest.raises(ValueError):
            pushed_result(bad)


def test_tokens_compare_whole_and_an_empty_token_accepts_nothing() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN) and not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", "")


def sample(metrics: str, name: str, probe: str, reason: str | None = None) -> float:
    """The value of one series of the ``batch`` service in a /metrics page (0 when absent)."""
    labels = f'service="batch",probe="{probe}",location="default"' + (f',reason="{reason}"' if reason else "")
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_serve_counts_pings_and_missed_periods_and_never_shows_the_token(tmp_path: Path) -> None:
    config = tmp_path / "slaprobe.yaml"
    config.write_text(CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HB_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    push = f"{base}/push/batch/nightly"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 20
        while True:  # ready, and the never-pinged fast heartbeat has missed a period
            try:
                metrics = requests.get(f"{base}/metrics", timeout=1).text
                if sample(metrics, "slaprobe_probe_failures_total", "fast", "missed_heartbeat") >= 1:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve counted no missed heartbeat"
            time.sleep(0.05)
        answers = [
            requests.get(push, headers=bearer, timeout=5).status_code,
            requests.post(push, params={"token": TOKEN, "duration": "0.25"}, timeout=5).status_code,
            requests.post(
                push, params={"status": "down", "msg": f"job failed, token {TOKEN}"}, headers=bearer, timeout=5
            ).status_code,
            requests.get(push, timeout=5).status_code,
            requests.get(push, headers={"Authorization": "Bearer not-the-token"}, timeout=5).status_code,
            requests.get(push, params={"token": TOKEN[:-1]}, timeout=5).status_code,
            requests.get(f"{base}/push/batch/nope", headers=bearer, timeout=5).status_code,
            requests.get(f"{base}/push/nope/nightly", headers=bearer, timeout=5).status_code,
            requests.post(push, headers=bearer, data=b"x" * (65 * 1024), timeout=5).status_code,
            requests.get(push, params={"status": "maybe"}, headers=bearer, timeout=5).status_code,
            requests.get(f"{base}/probe", params={"module": "batch/nightly"}, timeout=5).status_code,
        ]
        assert answers == [200, 200, 200, 401, 403, 403, 403, 403, 413, 400, 400]  # unknown names: 403 too
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        status_page = requests.get(f"{base}/", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert sample(metrics, "slaprobe_probe_runs_total", "nightly") == 3
    assert sample(metrics, "slaprobe_probe_failures_total", "nightly", "reported_down") == 1
    assert sample(metrics, "slaprobe_probe_success", "nightly") == 0
    assert sample(metrics, "slaprobe_probe_duration_seconds_sum", "nightly") == 0.25
    assert sample(metrics, "slaprobe_probe_runs_total", "fast") >= 1
    assert "job failed, token &lt;secret&gt;" in status_page
    logs = out.decode(errors="replace")
    assert "job failed, token <secret>" in logs
    for where, text in (("/metrics", metrics), ("/", status_page), ("logs", logs)):
        assert TOKEN not in text and TOKEN[:-1] not in text, f"the token leaked into {where}"


def test_a_failed_save_of_the_deadlines_is_counted_and_retried(tmp_path: Path, monkeypatch) -> None:
    import slaprobe.exporter.heartbeats as module

    monkeypatch.setenv("HB_TOKEN", TOKEN)
    clock = FakeClock()
    heartbeats, _ = heartbeats_of(CONFIG, clock, tmp_path)
    real_write = module.write_atomically
    failures = iter([OSError(28, "No space left on device")])

    def full_disk_once(path: Path, data: bytes) -> None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        real_write(path, data)

    monkeypatch.setattr(module, "write_atomically", full_disk_once)
    heartbeats.ping(("batch", "nightly"), ProbeResult(True, 0.0))
    heartbeats.save()
    assert heartbeats.save_failures == 1
    assert not (tmp_path / "heartbeats.json").exists()
    heartbeats.save()  # still dirty: written now
    assert heartbeats.save_failures == 1
    assert (tmp_path / "heartbeats.json").exists()
