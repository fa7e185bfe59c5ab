"""The Alertmanager webhook against an outsider, on a real ``slaprobe serve`` over loopback (issue 13).

Reproductions of the report: a forged firing alert without credentials opened a P1 incident
at level 3; 20 posts with new ``priority`` values took ``/metrics`` from 13 KB to 67.5 MB; new
fingerprints (and 450 KB label values) grew memory without bound. Each is refused or bounded now.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from slaprobe import conventions as c
from tests.conftest import free_port

TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def notification(labels: dict[str, str], fingerprint: str = "0123456789abcdef") -> dict[str, Any]:
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-12-04T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}  # fmt: skip
    return {"version": "4", "status": "firing", "receiver": "slaprobe-incidents", "alerts": [alert]}


LABELS = {"alertname": c.ALERT_PROBE_DOWN, "service": "shop", "priority": "P1", "escalation_level": "1"}


class Serve:
    """``slaprobe serve`` in its own process on a free loopback port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.base = f"http://127.0.0.1:{free_port()}"
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, no proxy from the environment
        config = {
            "version": "v1",
            "services": {"shop": {"tier": "critical"}},
            "escalation": {
                "P1": [
                    {"after": "0m", "notify": "oncall"},
                    {"after": "15m", "notify": "lead"},
                    {"after": "30m", "notify": "manager"},
                ]
            },
            "receivers": {"oncall": {}, "lead": {}, "manager": {}},
            "alertmanager": {"url": "http://127.0.0.1:9", "webhook_auth": {"bearer_token": TOKEN}},
        }
        (tmp / "slaprobe.yaml").write_text(yaml.safe_dump(config))
        argv = [sys.executable, "-m", "slaprobe", "serve", "--config", str(tmp / "slaprobe.yaml"),
                "--listen", self.base.removeprefix("http://")]  # fmt: skip
        with (tmp / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        self.until(lambda: self.session.get(f"{self.base}/-/ready", timeout=5).status_code == 200)

    def until(self, condition: Callable[[], object], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, (self.tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)

    def post(self, body: object, headers: dict[str, str] = AUTH) -> int:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.session.post(
            f"{self.base}/alertmanager/webhook", data=data, headers=headers, timeout=30
        ).status_code

    def metrics(self) -> str:
        return self.session.get(f"{self.base}/metrics", timeout=30).text

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(Path(tmp_path_factory.mktemp("hostile-webhook")))
    try:
        yield serve
    finally:
        serve.stop()


def refused(text: str, reason: str) -> float:
    prefix = f'{c.ALERTMANAGER_WEBHOOK_REFUSED}{{reason="{reason}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).removeprefix(prefix))


def test_a_forged_firing_alert_without_credentials_opens_no_incident(served: Serve) -> None:
    forged = notification({**LABELS, "escalation_level": "3"})
    assert served.post(forged, {"Content-Type": "application/json"}) == 401
    assert served.post(forged, {**AUTH, "Authorization": "Bearer guessed"}) == 401
    # A browser page posting cross-site, as a form or as JSON with an Origin, is refused too.
    assert served.post("alerts=x", {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}) == 415
    assert served.post(forged, {**AUTH, "Origin": "http://attacker.example"}) == 403
    text = served.metrics()
    assert f'{c.INCIDENTS_OPEN}{{priority="P1",escalation_level="3"}} 0' in text
    assert refused(text, "unauthenticated") >= 2


def test_twenty_new_priorities_do_not_grow_metrics(served: Serve) -> None:
    before = served.metrics()
    for n in range(20):
        assert served.post(notification({**LABELS, "priority": f"P{100 + n}" + "x" * 1000})) == 422
    after = served.metrics()
    assert refused(after, "invalid_labels") >= 20
    names = lambda text: {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}  # noqa: E731
    assert names(after) == names(before)  # the same series, only counter values moved
    assert abs(len(after) - len(before)) < 200


def test_a_hundred_and_twenty_new_fingerprints_do_not_grow_memory_without_bound(served: Serve) -> None:
    baseline = served.rss_bytes()
    big = "v" * 450_000
    for n in range(120):
        # 450 KB label values are refused whole; valid alerts with new fingerprints are capped.
        assert served.post(notification({**LABELS, "summary": big}, fingerprint=f"{n:016x}")) == 422
        assert served.post(notification({**LABELS, "alertname": f"Forged{n}"}, fingerprint=f"{n + 10**6:016x}")) == 200
    grown = served.rss_bytes() - baseline
    assert grown < 40 * 2**20, f"serve grew by {grown / 2**20:.1f} MiB"
    assert len(served.metrics()) < 64 * 1024
    assert served.post("[" * 200_000 + "]" * 200_000) == 400  # deep JSON: a 400, not a 500 RecursionError


def _serve_exits(tmp: Path, auth: dict[str, Any], env: dict[str, str]) -> str:
    config = {"version": "v1", "services": {"shop": {"tier": "critical"}},
              "alertmanager": {"url": "http://127.0.0.1:9", "webhook_auth": auth}}  # fmt: skip
    (tmp / "empty.yaml").write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "slaprobe", "serve", "--config", str(tmp / "empty.yaml"),
            "--listen", f"127.0.0.1:{free_port()}"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_an_empty_bearer_token_from_the_environment_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    out = _serve_exits(tmp_path, {"bearer_token": "${env:SLAPROBE_HOOK_TOKEN}"}, {"SLAPROBE_HOOK_TOKEN": ""})
    assert "alertmanager.webhook_auth.bearer_token must not be empty" in out


def test_an_empty_basic_auth_password_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    out = _serve_exits(tmp_path, {"basic_auth": {"username": "am", "password": ""}}, {})
    assert "alertmanager.webhook_auth.basic_auth.password must not be empty" in out


def test_an_empty_expected_credential_lets_no_one_in_even_past_the_model() -> None:
    from aiohttp.test_utils import make_mocked_request

    from slaprobe.exporter.webhook import Refused, check_credentials
    from slaprobe.model import WebhookAuth

    unchecked = {"require_secrets": False}  # as the generators read it: no refusal in the model
    for auth, header in [
        (WebhookAuth.model_validate({"bearer_token": ""}, context=unchecked), "Bearer "),
        (WebhookAuth.model_validate({"basic_auth": {"username": "am"}}, context=unchecked), "Basic YW06"),  # am:
    ]:
        with pytest.raises(Refused) as refusal:
            check_credentials(make_mocked_request("POST", "/", headers={"Authorization": header}), auth)
        assert refusal.value.status == 401


def test_webhook_credentials_written_in_the_config_are_secrets() -> None:
    from slaprobe.config import parse_config

    cfg = parse_config(yaml.safe_dump({"version": "v1", "alertmanager": {"url": "http://127.0.0.1:9",
                       "webhook_auth": {"basic_auth": {"username": "am", "password": "pw-in-the-file"}}}}))  # fmt: skip
    assert "pw-in-the-file" in cfg.secrets
    cfg = parse_config(yaml.safe_dump({"version": "v1", "alertmanager": {"url": "http://127.0.0.1:9",
                       "webhook_auth": {"bearer_token": "token-in-the-file"}}}))  # fmt: skip
    assert "token-in-the-file" in cfg.secrets
