"""A real ``slaprobe serve`` reading a node's pod logs: CRI-wrapped ingress-nginx lines under /var/log/pods.

The directory is shaped as the kubelet lays it out (``<ns>_<pod>_<uid>/<container>/N.log``),
the lines are wrapped as containerd writes them (long lines split into ``P`` chunks, stdout
and stderr interleaved), and the log is rotated as the kubelet rotates it (``0.log`` renamed
to ``0.log.<time>``, a new ``0.log`` opened). ``/metrics`` must count every request once, by
status code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

POD = "ingress-nginx_ingress-nginx-controller-7c9f8d6b5-x2k4q_5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
TS = "2026-12-04T01:02:03.123456789Z"


def access_line(status: int, path: str = "/cart", upstream: str = "shop-checkout-80") -> str:
    """An access line in ingress-nginx's default format, for the Service ``upstream`` names."""
    return (
        f'10.244.0.1 - - [04/Dec/2026:01:02:03 +0000] "GET {path} HTTP/1.1" {status} 612 "-" "kube-probe/1.31" '
        f"83 0.004 [{upstream}] [] 10.244.1.7:8080 612 0.004 {status} 6f1c0b0f3e2a4c4c9c7b0a1d2e3f4a5b"
    )


def cri(text: str, stream: str = "stdout", chunk: int = 0) -> str:
    """``text`` as containerd writes it: one F line, or P chunks of ``chunk`` characters and a last F."""
    if not chunk:
        return f"{TS} {stream} F {text}\n"
    parts = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    return "".join(f"{TS} {stream} {'F' if i == len(parts) - 1 else 'P'} {p}\n" for i, p in enumerate(parts))


def write_config(path: Path, pods: Path) -> None:
    path.write_text(
        "version: v1\n"
        "services:\n"
        "  shop:\n"
        "    logs:\n"
        f"      - name: ingress\n"
        f"        path: {pods}/ingress-nginx_*/controller/*.log\n"
        "        format: ingress_nginx\n"
        "        wrapper: cri\n"
        "        start: beginning\n"
        "        match: {proxy_upstream_name: shop-checkout-80}\n"
        "        metrics:\n"
        "          - name: ingress_pod_requests_total\n"
        "            type: counter\n"
        "            match: {k8s_container: controller}\n"
        "            labels: [k8s_namespace, k8s_pod, proxy_upstream_name]\n"
        # The same controller log, for another Service behind the same ingress.
        "  search:\n"
        "    logs:\n"
        f"      - name: ingress-search\n"
        f"        path: {pods}/ingress-nginx_*/controller/*.log\n"
        "        format: ingress_nginx\n"
        "        start: beginning\n"
        "        match: {proxy_upstream_name: shop-search-80}\n",
        encoding="utf-8",
    )


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def until(port: int, want: dict[str, float], process: subprocess.Popen[bytes], log: Path) -> dict[str, float]:
    deadline = time.monotonic() + 30
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            seen = scrape(port)
        except OSError:
            seen = {}
        if all(seen.get(k) == v for k, v in want.items()):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"/metrics never showed {want}: { ({k: seen.get(k) for k in want}) }")


def test_serve_counts_cri_wrapped_ingress_nginx_lines_of_pod_logs_by_code_across_a_rotation(tmp_path: Path) -> None:
    pods = tmp_path / "var" / "log" / "pods"
    container = pods / POD / "controller"
    container.mkdir(parents=True)
    log = container / "0.log"
    log.write_text(
        cri(access_line(200))
        + cri("I1204 01:02:03.123456 7 controller.go:190] Configuration changes detected", "stderr")
        + cri(access_line(200, "/cart?" + "x" * 300), chunk=100)
        + cri(access_line(503))
        + cri(access_line(500, "/q", "shop-search-80")),
        encoding="utf-8",
    )
    config = tmp_path / "slaprobe.yaml"
    write_config(config, pods)
    port = free_port()
    out = tmp_path / "serve.log"
    args = [sys.executable, "-m", "slaprobe", "serve", f"--config={config}", f"--listen=127.0.0.1:{port}"]
    with out.open("wb") as sink:
        process = subprocess.Popen([*args, f"--state-dir={tmp_path / 'state'}"], stdout=sink, stderr=subprocess.STDOUT)
        try:
            codes = 'slaprobe_http_requests_total{service="shop",code="%s"}'
            until(port, {codes % "200": 2, codes % "503": 1}, process, out)
            # The kubelet's rotation, in the middle of a split line: the rest goes to the new 0.log.
            with log.open("a", encoding="utf-8") as f:
                f.write(cri(access_line(404, "/" + "y" * 150), chunk=100).split("\n", 1)[0] + "\n")
            os.rename(log, container / "0.log.20261204-010204")
            log.write_text(
                cri(access_line(404, "/" + "y" * 150), chunk=100).split("\n", 1)[1] + cri(access_line(200)),
                encoding="utf-8",
            )
            seen = until(port, {codes % "200": 3, codes % "503": 1, codes % "404": 1}, process, out)
            assert seen['slaprobe_log_lines_total{source="ingress",result="unparsed"}'] == 1  # the stderr line
            assert seen['slaprobe_log_lines_total{source="ingress",result="parsed"}'] == 6
            # Each service counts the requests of its own upstream only.
            assert seen['slaprobe_http_requests_total{service="search",code="500"}'] == 1
            assert 'slaprobe_http_requests_total{service="shop",code="500"}' not in seen
            assert 'slaprobe_http_requests_total{service="search",code="200"}' not in seen
            # Namespace and pod from the kubelet's path, the Service's upstream from the line.
            by_pod = (
                'ingress_pod_requests_total{service="shop",k8s_namespace="ingress-nginx",'
                'k8s_pod="ingress-nginx-controller-7c9f8d6b5-x2k4q",proxy_upstream_name="shop-checkout-80"}'
            )
            assert seen[by_pod] == 5
            # $request_time is the duration: 0.004 s each.
            assert seen['slaprobe_http_request_duration_seconds_count{service="shop"}'] == 5
            assert round(seen['slaprobe_http_request_duration_seconds_sum{service="shop"}'], 6) == 0.02
        finally:
            process.terminate()
            process.wait(10)
