"""Shared fixtures: a test CA, free loopback ports, the CRD models imported on first use."""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.certs import Authority, make_authority


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
