"""A flood of client connections cannot take the exporter's last file descriptor.

Issue 13: 1500 connections at ``ulimit -n 1024`` made a new ``/metrics`` connection take
15.4 s, because ``accept()`` failed with EMFILE and asyncio paused accepting. ``serve``
now admits a bounded number of connections, a quarter of them per client address.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slaprobe.exporter.connlimit import (
    REFUSED_PEER,
    REFUSED_TOTAL,
    ConnectionLimiter,
    default_limit,
    default_per_peer,
)
from tests.support.served import Serve

FLOOD = 1500
LOW_LIMIT = 1024


def test_the_limiter_admits_up_to_its_cap_and_refuses_beyond_it() -> None:
    limiter = ConnectionLimiter(limit=3, per_peer=2)
    assert [limiter.admit("10.0.0.1"), limiter.admit("10.0.0.1"), limiter.admit("10.0.0.1")] == [True, True, False]
    assert limiter.admit("10.0.0.2") is True
    assert limiter.admit("10.0.0.3") is False
    assert limiter.refused == {REFUSED_PEER: 1, REFUSED_TOTAL: 1}
    limiter.release("10.0.0.1")
    assert limiter.admit("10.0.0.3") is True
    assert limiter.open == 3


def test_released_addresses_leave_no_entry_behind() -> None:
    limiter = ConnectionLimiter(limit=10, per_peer=10)
    for n in range(5):
        assert limiter.admit(f"10.0.0.{n}")
    for n in range(5):
        limiter.release(f"10.0.0.{n}")
    assert limiter.open == 0
    assert not limiter.by_peer


def test_the_default_cap_keeps_a_reserve_of_descriptors_below_the_open_file_limit() -> None:
    assert default_limit(1024) == 768
    assert default_limit(65536) == 49152
    assert default_per_peer(768) == 192
    assert default_per_peer(20) == 8


def test_serve_raises_its_soft_open_file_limit_to_the_hard_one() -> None:
    code = (
        "import resource\n"
        "from slaprobe.exporter.connlimit import raise_open_file_limit\n"
        "print(*raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_LIMIT, 4096))

    out = subprocess.run([sys.executable, "-c", code], preexec_fn=limit, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1024", "4096", "4096"]


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_LIMIT, LOW_LIMIT))


@pytest.fixture
def serve_at_1024(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``slaprobe serve`` with both its open-file limits at 1024, so the soft one cannot be raised."""
    (tmp_path / "modules.yml").write_text("modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n")
    serve = Serve(tmp_path, args=["--modules", str(tmp_path / "modules.yml")], preexec_fn=_low_file_limit)
    serve.start()
    try:
        yield serve.port, tmp_path / "serve.log"
    finally:
        serve.stop()


def _metrics_from(source: str, port: int) -> str:
    """GET /metrics over a new connection whose client address is ``source``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    return body.decode()


def _sample(text: str, head: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))


def test_a_flood_from_one_address_beyond_the_file_limit_leaves_metrics_reachable_from_another(
    serve_at_1024: tuple[int, Path],
) -> None:
    port, log = serve_at_1024
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):  # idle connections from 127.0.0.1, more than the server has descriptors
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        share = default_per_peer(default_limit(LOW_LIMIT))
        deadline = time.monotonic() + 30
        while True:  # until the server has accepted (and reset) every connection over the flooder's share
            text = _metrics_from("127.0.0.2", port)
            refused = _sample(text, 'slaprobe_http_connections_refused_total{reason="peer"}')
            if refused >= FLOOD - share or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # The readiness check's keep-alive connection may still hold one of 127.0.0.1's share.
        assert FLOOD - share <= refused <= FLOOD - share + 1
        assert _sample(text, "slaprobe_http_connections_open ") == share + 1  # and this scrape
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 30
    while True:  # the flooder's share comes back as the server sees its connections close
        try:
            assert "slaprobe_http_connections_open" in _metrics_from("127.0.0.1", port)
            break
        except (ConnectionError, AssertionError):
            assert time.monotonic() < deadline, "the flooder's address never got a connection back"
            time.sleep(0.1)
    assert "Too many open files" not in log.read_text()
