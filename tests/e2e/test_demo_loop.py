"""``slaprobe demo`` with real Prometheus and Alertmanager: the whole loop a newcomer should see.

The demo starts both on free loopback ports with the rules and routing it generated; the
edge service's health check always fails (its certificate is near expiry), so its P2 page
reaches on-call through the sample service's ``/hooks`` and, unacknowledged, escalates to
the team lead after the demo's one minute. The status page lists the levels notified,
links to Prometheus' alerts and serves the live report at ``/report``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from slaprobe import conventions as c
from slaprobe.config import load_config
from slaprobe.demo.loop import find_binaries, notified_levels
from tests.conftest import free_port

PROMETHEUS, ALERTMANAGER = find_binaries(shutil.which)
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None, reason="needs Debian's prometheus and prometheus-alertmanager"
)
LEVEL_2_AFTER = 60.0  # demo.yaml: P2 escalates to the team lead after 1m
SLACK = 120.0  # detection (3 failed runs), rule evaluation, group_wait and scrape delays, on a busy machine


@contextlib.contextmanager
def demo(workdir: Path, listen: str) -> Iterator[subprocess.Popen[bytes]]:
    """``slaprobe demo`` running until the block ends (then Ctrl-C, as a user stops it)."""
    log = (workdir.parent / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "demo", "--workdir", str(workdir), "--listen", listen],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def poll(get: Callable[[], Any], until: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    """``get()`` once it returns something truthy; fails when the demo exits or ``until`` passes."""
    while True:
        assert proc.poll() is None, f"the demo exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        with contextlib.suppress(requests.RequestException, OSError, ValueError):
            got = get()
            if got:
                return got
        assert time.monotonic() < until, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_the_demo_pages_on_call_and_escalates_to_the_team_lead_within_its_schedule(tmp_path: Path) -> None:
    workdir, listen, log = tmp_path / "work", f"127.0.0.1:{free_port()}", tmp_path / "demo.log"
    started = time.monotonic()
    with demo(workdir, listen) as proc:
        poll(lambda: "alerting loop (Prometheus" in log.read_text(), started + 60, "the demo's banner", proc, log)
        cfg = load_config(workdir / "slaprobe.yaml", require_secrets=False)
        oncall_url = cfg.receivers["oncall"]["webhook_configs"][0]["url"]
        hooks = re.sub(r"/hooks/oncall$", "/hooks", oncall_url)

        def levels() -> list[Any]:
            return notified_levels(requests.get(hooks, timeout=5).json())

        def reached(level: str, receiver: str) -> list[Any]:
            return [
                n
                for n in levels()
                if n.level == level
                and n.receiver == receiver
                and n.service == "edge"
                and n.alertname == c.ALERT_PROBE_DOWN
                and n.first
            ]

        deadline = started + LEVEL_2_AFTER + SLACK
        level_1 = poll(lambda: reached("1", "oncall"), deadline, "the level-1 page at on-call's hook", proc, log)[0]
        level_2 = poll(lambda: reached("2", "team-lead"), deadline, "level 2 at the team lead's hook", proc, log)[0]
        assert level_2.first > level_1.first  # escalated, not sent alongside the page
        assert not [n for n in levels() if n.receiver == "team-lead" and n.level == "1"]

        page = requests.get(f"http://{listen}/?refresh=0", timeout=10).text
        assert re.search(r"levels notified so far: <b>L1</b>, <b>L2</b>", page)
        prometheus = re.search(r"href='(http://127\.0\.0\.1:\d+)/alerts'>Prometheus alerts<", page)
        assert prometheus, page
        alerts = requests.get(f"{prometheus[1]}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        assert {a["labels"].get(c.LABEL_ESCALATION_LEVEL) for a in alerts if a["state"] == "firing"} >= {"1", "2"}

        report = requests.get(f"http://{listen}/report", timeout=300)  # many queries; slow on a busy machine
        assert report.status_code == 200, report.text[-2000:]
        assert "SLA report" in report.text and "edge" in report.text
    assert not [p for p in (PROMETHEUS, ALERTMANAGER) if _still_running(p, workdir)], "the demo left a binary running"


def _still_running(binary: str | None, workdir: Path) -> bool:
    """Whether a process of ``binary`` started for ``workdir`` still runs (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if args and binary and args[0] == binary.encode() and str(workdir).encode() in b" ".join(args):
                return True
    return False
