"""Shared fixtures: a test CA, free loopback ports, the CRD models imported on first use."""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.certs import Authority, make_authority

TESTS = Path(__file__).resolve().parent
LONG_TIMEOUT = 900  # seconds: pyproject's timeout (120 s) is for unit tests, not for these folders
LONG_RUNNING = ("e2e", "reliability")


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
