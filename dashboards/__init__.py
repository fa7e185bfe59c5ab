"""Pure grafanalib generators: one module per board plus shared panels.

``build_boards(cfg)`` describes every board (``model.Board``); ``generate_dashboards(cfg)``
renders them to Grafana JSON text, keyed by file name. Nothing here does I/O; the CLI
writes the files. ``report`` (the SLA report) is the one module that talks to Prometheus.
"""

from __future__ import annotations

from slaprobe.config import Config
from slaprobe.dashboards.feedback import feedback_board
from slaprobe.dashboards.health import exporter_health_board
from slaprobe.dashboards.incidents import incidents_board
from slaprobe.dashboards.model import Board
from slaprobe.dashboards.overview import overview_board
from slaprobe.dashboards.render import dump_board
from slaprobe.dashboards.service import service_detail_board

BUILDERS = (overview_board, service_detail_board, incidents_board, feedback_board, exporter_health_board)


def build_boards(cfg: Config) -> dict[str, Board]:
    """Every board of a config, keyed by board name, in a fixed order."""
    boards = [build(cfg) for build in BUILDERS]
    return {board.name: board for board in boards}


def generate_dashboards(cfg: Config) -> dict[str, str]:
    """Grafana dashboard JSON of every board, keyed by file name (``sla-overview.json``...)."""
    return {f"{name}.json": dump_board(board) for name, board in build_boards(cfg).items()}


__all__ = ["Board", "build_boards", "generate_dashboards"]
