"""The status page in a real browser: Debian's headless Chromium, at a phone's and a desktop's size.

A ``slaprobe serve`` probes a loopback target for two services, one of them inside a planned
maintenance window. Chromium loads the page at 390x844 (a phone) and 1280x900 (a desktop);
the rendered DOM must hold every service's figures, its 24-hour strip, the maintenance
banner and the probe table, and each screenshot must be the window's size and show the
strip's green and the banner's blue, so the stylesheet was applied. The screenshots are
kept for CI's artefacts under ``$SLAPROBE_ARTIFACTS/status-page`` (default: the test's
temporary directory); the test prints where.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.exporter.test_status_page import target  # noqa: F401 - the loopback target fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

PHONE = (390, 844)
DESKTOP = (1280, 900)
GREEN = (0x2D, 0xA4, 0x4E)  # .h-ok and .ok cells
BANNER_BLUE = (0xDD, 0xF4, 0xFF)  # the maintenance banner's background


def chromium(*args: str, profile: Path) -> str:
    """Run headless Chromium with no network features; its stdout."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode(errors="replace")


def png_pixels(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the distinct RGB colours of an 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + predictor) & 0xFF
        colours.update(
            (line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels * 2)
        )  # every other pixel is plenty
        previous = line
    return width, height, colours


@pytest.fixture
def status_url(tmp_path: Path, target: str) -> Iterator[str]:  # noqa: F811 - the fixture imported above
    """The status page of a serve whose probes have run, one service in maintenance."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, end = (now - dt.timedelta(hours=1)).isoformat(), (now + dt.timedelta(hours=1)).isoformat()
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        f"""version: v1
global: {{interval: 1s, timeout: 500ms, location: lab}}
services:
  billing:
    tier: high
    sla: {{window: 7d, availability: 99}}
    maintenance: [{{name: upgrade, start: '{start}', end: '{end}'}}]
    probes:
      - {{name: api, http: {{url: '{target}/ok'}}}}
  shop:
    tier: critical
    sla: {{window: 1d, availability: 99.5}}
    probes:
      - {{name: home, http: {{url: '{target}/ok'}}}}
      - {{name: catalog-with-a-long-name, http: {{url: '{target}/ok?page=1&sort=price&filter=everything'}}}}
"""
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaprobe", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/?refresh=0"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if len(re.findall(r"% of [2-9]\d*", requests.get(url, timeout=5).text)) >= 3:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not run every probe twice"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    """Where the screenshots go (kept by CI when SLAPROBE_ARTIFACTS names its artefact directory)."""
    out = Path(os.environ.get("SLAPROBE_ARTIFACTS", tmp_path)) / "status-page"
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nstatus page screenshots: {out}")
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("device", "size"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_the_status_page_renders_every_service_on_a_phone_and_a_desktop(
    status_url: str, artefacts: Path, tmp_path: Path, device: str, size: tuple[int, int]
) -> None:
    window = f"--window-size={size[0]},{size[1]}"
    dom = chromium(window, "--dump-dom", status_url, profile=tmp_path / "profile-dom")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in dom
    sections = re.findall(r'<section class="service" id="service-(\w+)">(.*?)</section>', dom, re.S)
    assert [name for name, _ in sections] == ["billing", "shop"]  # in maintenance first: its banner in view
    for name, body in sections:
        assert "availability today" in body and "error budget left" in body, name
        assert len(re.findall(r'<span class="h-\w+" title="', body)) == 24, name
        assert '<div class="wide"><table>' in body, name  # the table scrolls inside its box on a phone
    billing, shop = (body for _, body in sections)
    assert "Maintenance window open." in billing and "Maintenance window open." not in shop
    assert "catalog-with-a-long-name" in shop

    shot = artefacts / f"status-{device}.png"
    chromium(window, f"--screenshot={shot}", status_url, profile=tmp_path / "profile-shot")
    width, height, colours = png_pixels(shot)
    assert (width, height) == size
    assert GREEN in colours, "no green cell: the strip or the run marks were not drawn"
    assert BANNER_BLUE in colours, "no maintenance banner drawn"
