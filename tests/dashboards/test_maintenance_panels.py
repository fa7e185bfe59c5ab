"""The boards list the maintenance windows: planned ones from the config, open and ad hoc ones from the exporter."""

from __future__ import annotations

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import build_boards
from slaprobe.dashboards.maintenance import planned_windows

CFG = Config.model_validate(
    {
        "version": "v1",
        "global": {
            "maintenance": [
                {
                    "name": "sunday-patch",
                    "time_intervals": [
                        {"weekdays": ["sunday"], "times": [{"start_time": "02:00", "end_time": "04:00"}]}
                    ],
                }
            ]
        },
        "services": {
            "shop": {
                "maintenance": [{"name": "db-upgrade", "start": "2026-11-20T22:00:00Z", "end": "2026-11-21T02:00:00Z"}],
                "probes": [{"name": "home", "http": {"url": "http://127.0.0.1:9/"}}],
            }
        },
    }
)


def test_the_planned_windows_of_the_config_are_listed_with_their_services() -> None:
    assert planned_windows(CFG) == [
        ("sunday-patch", "all services", "recurring", "times: 02:00-04:00, weekdays: sunday"),
        ("db-upgrade", "shop", "one-off", "2026-11-20T22:00:00Z to 2026-11-21T02:00:00Z"),
    ]


def test_the_overview_and_service_boards_list_and_draw_the_windows() -> None:
    boards = build_boards(CFG)
    for name in ("sla-overview", "service-detail"):
        board = boards[name]
        text = next(panel for panel in board.panels if panel.title == "Planned maintenance windows (config)")
        assert "| db-upgrade | shop | one-off | 2026-11-20T22:00:00Z to 2026-11-21T02:00:00Z |" in text.content
        table = next(panel for panel in board.panels if panel.title == "Maintenance now and in the time range")
        exprs = " ".join(query.expr for query in table.queries)
        assert c.MAINTENANCE_ACTIVE in exprs and c.PROBE_MAINTENANCE_RUNS in exprs
        (annotation,) = [a for a in board.annotations if a.name == "Maintenance windows"]
        assert c.MAINTENANCE_ACTIVE in annotation.query.expr


def test_a_config_without_windows_says_so_and_points_to_the_ad_hoc_ones() -> None:
    board = build_boards(Config.model_validate({"version": "v1", "services": {"shop": {}}}))["sla-overview"]
    text = next(panel for panel in board.panels if panel.title == "Planned maintenance windows (config)")
    assert text.content.startswith("No planned maintenance windows in the config.")
