"""``slaprobe demo``: free ports whatever is taken, the --workdir honoured, and what the
product generates (rules, routing, escalation) shown to the newcomer."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from slaprobe.config import load_config, parse_config
from slaprobe.demo import shop
from slaprobe.demo.run import escalation_table, free_listen, render_config
from tests.conftest import free_port

OLD_PORTS = (shop.DEMO_HTTP_PORT, shop.DEMO_HTTPS_PORT, shop.DEMO_TCP_PORT, shop.DEMO_DNS_PORT)


@contextlib.contextmanager
def taken(port: int) -> Iterator[None]:
    """Hold ``port`` on loopback (already held by someone else is just as taken)."""
    sock = socket.socket()
    try:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield
    finally:
        sock.close()


def run_demo_until_ready(workdir: Path, listen: str, *, path: str | None = None) -> tuple[str, str]:
    """Start ``slaprobe demo``, wait for its banner and the status page; its output and the page.

    ``path``: the PATH the demo sees (where it looks for prometheus and alertmanager).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "demo", "--workdir", str(workdir), "--listen", listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **({"PATH": path} if path is not None else {})},
    )
    page = ""
    try:
        deadline = time.monotonic() + 30
        while not page:
            assert proc.poll() is None, f"demo exited {proc.returncode}: {proc.stdout.read().decode()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the demo's status page did not answer"
            with contextlib.suppress(requests.ConnectionError):
                page = requests.get(f"http://{listen}/", timeout=1).text
            time.sleep(0.1)
        time.sleep(0.5)  # the banner follows readiness
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return out.decode(errors="replace"), page


def test_the_demo_runs_with_an_old_fixed_port_taken_and_writes_into_its_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "my demo"
    listen = f"127.0.0.1:{free_port()}"
    with taken(shop.DEMO_HTTP_PORT):
        out, page = run_demo_until_ready(workdir, listen)
    assert "slaprobe demo is running" in out and "error:" not in out
    assert "slaprobe" in page and "shop" in page
    config_text = (workdir / "slaprobe.yaml").read_text()
    assert str(shop.DEMO_WORKDIR) not in config_text
    cfg = load_config(workdir / "slaprobe.yaml")
    assert {log.path for s in cfg.services.values() for log in s.logs} == {str(workdir.resolve() / "access.log")}
    http_url = cfg.services["shop"].probes[0].spec.target
    http_port = int(re.search(r"127\.0\.0\.1:(\d+)", http_url)[1])  # type: ignore[index]
    assert http_port != shop.DEMO_HTTP_PORT
    assert (workdir / "ca.pem").exists() and (workdir / "access.log").exists()


def test_the_demo_shows_the_generated_rules_routing_and_escalation(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    out, _ = run_demo_until_ready(tmp_path, listen)
    generated = tmp_path / "generated"
    names = {p.name for p in generated.iterdir()}
    assert "alertmanager.yaml" in names and any(n.endswith(".json") for n in names)
    assert any("rules" in n for n in names)
    for name in names:
        assert str(generated / name) in out
    assert "escalation (level 1 is the alert" in out
    assert re.search(r"shop\s+critical\s+page\s+P1\s+L1 after 0s -> oncall, L2 after 1m -> team-lead", out)
    assert "slaprobe report --config" in out
    routing = (generated / "alertmanager.yaml").read_text()
    assert "/hooks/oncall" in routing and f"127.0.0.1:{shop.DEMO_HTTP_PORT}/" not in routing


def test_the_rendered_config_names_the_bound_ports_and_the_workdir_only(tmp_path: Path) -> None:
    ports = {"http": 20001, "https": 20002, "tcp": 20003, "dns": 20004}
    text = render_config(tmp_path, ports)
    for port in OLD_PORTS:
        assert f":{port}" not in text
    assert str(shop.DEMO_WORKDIR) not in text
    cfg = parse_config(text, require_secrets=False)
    assert cfg.receivers["oncall"]["webhook_configs"][0]["url"] == "http://127.0.0.1:20001/hooks/oncall"
    assert any("P1" in line for line in escalation_table(cfg))


def test_a_taken_or_zero_listen_port_becomes_a_free_one() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = f"127.0.0.1:{held.getsockname()[1]}"
        assert free_listen(busy) != busy
    assert not free_listen("127.0.0.1:0").endswith(":0")


def test_without_prometheus_and_alertmanager_the_demo_says_what_it_would_show_and_how_to_install_them(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    out, page = run_demo_until_ready(tmp_path / "work", listen, path=str(empty))
    assert "alerting loop: off (not found on PATH: prometheus, alertmanager)" in out
    assert "apt-get install prometheus prometheus-alertmanager" in out
    assert "Alerting loop: off" in page and "escalates to the team lead" in page
    assert "apt-get install prometheus prometheus-alertmanager" in page
    assert "alertmanager:" not in (tmp_path / "work" / "slaprobe.yaml").read_text()  # nothing to poll
