"""Shared fixtures: a test CA, free loopback ports, the CRD models imported on first use; no
name the tests use is ever looked up by the system resolver (``pytest_configure``)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.certs import Authority, make_authority

TESTS = Path(__file__).resolve().parent
LONG_TIMEOUT = 900  # seconds: pyproject's timeout (120 s) is for unit tests, not for these folders
LONG_RUNNING = ("e2e", "reliability")


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_system_getaddrinfo = socket.getaddrinfo


def _is_literal(host: object) -> bool:
    if host is None or isinstance(host, int):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(text)  # legacy IPv4 spellings (0x7f000001, 2130706433, 127.1): numeric, no query
    except OSError:
        return text.lower().rstrip(".") in LOOPBACK_NAMES
    return True


def _loopback_only_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    """``socket.getaddrinfo`` for IP literals and localhost only: any other name fails as a name
    that does not exist, without a query (the tests' names, ``*.invalid`` and ``*.example``
    included, never reach the system resolver, so nothing leaves loopback even outside
    ``unshare -n``). Probe code that must resolve names takes the loopback DNS server of
    tests/support or ``ProbeContext.lookup``."""
    if not _is_literal(host):
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: not resolved in tests (loopback only)")
    return _system_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.getaddrinfo = _loopback_only_getaddrinfo


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the end-to-end and reliability tests their longer timeout (when pytest-timeout runs
    and no ``--timeout`` was given on the command line, which then holds for every test)."""
    if not config.pluginmanager.hasplugin("timeout") or config.getoption("timeout", default=None) is not None:
        return
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if folder in LONG_RUNNING and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A CA that signs the test certificates of this session."""
    return make_authority(Path(tmp_path_factory.mktemp("ca")))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def operator_models() -> ModuleType:
    """cloudcoil's prometheus-operator CRD models: imported by the first test that needs them,
    not at collection (the import takes 4-10 s)."""
    return pytest.importorskip("cloudcoil.models.prometheus_operator")
