"""``slaprobe serve`` as a user runs it, in its own process, for tests that need the real thing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port


class Serve:
    """``slaprobe serve`` in its own process, restartable on the same port and state dir."""

    def __init__(
        self, tmp: Path, *, args: Sequence[str] | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        """``args``: serve's arguments other than ``--listen`` (default: the config and state dir in ``tmp``);
        ``preexec_fn`` runs in the child before serve starts (e.g. to lower its open-file limit)."""
        self.tmp = tmp
        self.args = list(args) if args is not None else [
            "--config", str(tmp / "slaprobe.yaml"), "--state-dir", str(tmp / "state")
        ]  # fmt: skip
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment: loopback only
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        """The command line of this serve, for a test that runs it itself (one expected to exit)."""
        return [sys.executable, "-m", "slaprobe", "serve", *self.args, "--listen", f"127.0.0.1:{self.port}"]

    def start(self) -> None:
        with (self.tmp / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}, preexec_fn=self.preexec_fn
            )
        self.until(lambda: self.get("/-/ready").status_code == 200)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base}{path}", timeout=10)

    def until(self, condition: Callable[[], object], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except requests.ConnectionError:
                pass
            assert self.proc is None or self.proc.poll() is None, (self.tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)


def promtool_accepts(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
