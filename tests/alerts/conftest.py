"""Fixtures of the generator tests: test configs, golden files (``--update-golden``), promtool and amtool."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from slaprobe.config import Config, load_config

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
GOLDEN = HERE / "golden"
CONFIG_NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-golden``: rewrite the golden files from the generators instead of comparing."""
    with contextlib.suppress(ValueError):  # another conftest registered it already
        parser.addoption(
            "--update-golden",
            action="store_true",
            default=False,
            help="rewrite golden files of generated output instead of comparing with them",
        )


def load(name: str) -> Config:
    """A test config by name (tests/alerts/configs/<name>.yaml)."""
    return load_config(CONFIGS / f"{name}.yaml")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Compare text with golden/<path>, or write it there under --update-golden."""
    update = bool(request.config.getoption("--update-golden", default=False))

    def check(path: str, text: str) -> None:
        file = GOLDEN / path
        if update:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            return
        assert file.exists(), f"no golden file {file}: run pytest tests/alerts --update-golden"
        expected = file.read_text(encoding="utf-8")
        assert text == expected, (
            f"{path} differs from its golden file: review, then pytest tests/alerts --update-golden"
        )

    return check


def tool(name: str) -> str:
    """The path of a binary, or skip the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: prometheus / prometheus-alertmanager)")
    return path


def run(args: Sequence[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output."""
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
