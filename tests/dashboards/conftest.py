"""Options of the board tests: ``--update-dashboard-golden`` rewrites the golden files.

Run as ``pytest tests/dashboards --update-dashboard-golden`` (pytest reads this conftest's
options when the tests/dashboards folder is named on the command line).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--update-dashboard-golden``."""
    parser.addoption(
        "--update-dashboard-golden",
        action="store_true",
        default=False,
        help="rewrite tests/dashboards/golden/*.json and examples/stack/dashboards/*.json from the generators",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are to be rewritten instead of compared."""
    return bool(request.config.getoption("--update-dashboard-golden", default=False))
