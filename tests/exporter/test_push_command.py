"""``slaprobe push``: a script reports a run to a real exporter on loopback; the token never shows."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources

TOKEN = "cron-t0ken-0123456789"
CONFIG = f"""version: v1
global: {{location: dc1}}
services:
  batch:
    probes:
      - name: nightly
        heartbeat: {{every: 1d, grace: 1h, token: "{TOKEN}"}}
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Exporter]]:
    path = tmp_path / "slaprobe.yaml"
    path.write_text(CONFIG)
    exporter = Exporter(Sources(config=str(path)))
    assert exporter.reload().successful
    server = TestServer(make_app(exporter), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}/push/batch/nightly", exporter
    await server.close()


async def slaprobe_push(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slaprobe",
        "push",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if k != "SLAPROBE_PUSH_TOKEN"}, **(env or {})},
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_script_pushes_up_and_down_runs_with_the_token_from_the_environment_or_a_file(
    served, tmp_path: Path
) -> None:
    url, exporter = served
    code, out = await slaprobe_push(url, "--duration", "2.5", env={"SLAPROBE_PUSH_TOKEN": TOKEN})
    assert (code, out) == (0, f"pushed up to {url}: OK\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    code, out = await slaprobe_push(
        url, "--status", "down", "--msg", "dump failed", "--token-file", str(tmp_path / "token")
    )
    assert code == 0, out
    series = exporter.store.get(("batch", "nightly"))
    assert series is not None and series.runs == 2 and series.failures == {"reported_down": 1}
    assert series.last is not None and series.last.detail == "dump failed"


async def test_a_remote_agent_pushes_a_result_with_its_location(served) -> None:
    url, exporter = served
    args = (url, "--status", "down", "--reason", "timeout", "--duration", "10s", "--location", "branch")
    code, out = await slaprobe_push(*args, env={"SLAPROBE_PUSH_TOKEN": TOKEN})
    assert code == 0, out
    series = exporter.store.located(("batch", "nightly"), "branch")
    assert series is not None and series.failures == {"timeout": 1}
    assert series.last is not None and series.last.duration == 10


async def test_no_token_a_wrong_token_and_a_dead_server_fail_without_showing_the_token(served) -> None:
    url, _ = served
    code, out = await slaprobe_push(url)
    assert code == 1 and "no token: set SLAPROBE_PUSH_TOKEN" in out
    code, out = await slaprobe_push(url + "?token=" + TOKEN, env={"SLAPROBE_PUSH_TOKEN": TOKEN[::-1]})
    assert code == 1 and "HTTP 403" in out
    assert TOKEN not in out and TOKEN[::-1] not in out
    code, out = await slaprobe_push("http://127.0.0.1:9/push/a/b", env={"SLAPROBE_PUSH_TOKEN": TOKEN})
    assert code == 1 and "cannot reach http://127.0.0.1:9/push/a/b" in out and TOKEN not in out
