"""The generated boards: goldens, determinism, uids, variables, links, config-driven thresholds, JSON shape."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slaprobe.config import Config, load_config, parse_config
from slaprobe.dashboards import build_boards, generate_dashboards
from slaprobe.dashboards.panels import board_uid
from slaprobe.dashboards.render import SCHEMA_VERSION

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXAMPLE = HERE / "example.yaml"
GOLDEN = HERE / "golden"
DEMO = ROOT / "examples" / "demo.yaml"
STACK = ROOT / "examples" / "stack" / "dashboards"
BOARD_FILES = ["sla-overview.json", "service-detail.json", "incidents.json", "feedback.json", "exporter-health.json"]


@pytest.fixture(scope="module")
def example() -> Config:
    """The config of the goldens."""
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def boards(example: Config) -> dict[str, dict[str, Any]]:
    """The example's boards as parsed JSON, by file name."""
    return {name: json.loads(text) for name, text in generate_dashboards(example).items()}


def _compare_or_update(path: Path, text: str, update: bool) -> None:
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run pytest tests/dashboards --update-dashboard-golden"
    assert path.read_text(encoding="utf-8") == text, (
        f"{path.name} differs from the generator's output; if the change is intended, "
        "run pytest tests/dashboards --update-dashboard-golden and review the diff"
    )


@pytest.mark.parametrize("name", BOARD_FILES)
def test_each_board_matches_its_golden_file(example: Config, name: str, update_golden: bool) -> None:
    _compare_or_update(GOLDEN / name, generate_dashboards(example)[name], update_golden)


@pytest.mark.parametrize("name", BOARD_FILES)
def test_examples_stack_holds_the_boards_of_the_demo_config(name: str, update_golden: bool) -> None:
    _compare_or_update(STACK / name, generate_dashboards(load_config(DEMO))[name], update_golden)


def test_generation_is_deterministic_across_processes(example: Config) -> None:
    code = (
        "import sys, json; from slaprobe.config import load_config; "
        "from slaprobe.dashboards import generate_dashboards; "
        f"json.dump(generate_dashboards(load_config({str(EXAMPLE)!r})), sys.stdout)"
    )
    other = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert other == generate_dashboards(example)


def test_uids_are_derived_from_board_names(boards: dict[str, dict[str, Any]]) -> None:
    uids = {name: board["uid"] for name, board in boards.items()}
    assert uids == {name: board_uid(name.removesuffix(".json")) for name in BOARD_FILES}
    assert uids["sla-overview.json"] == "slaprobe-sla-overview"
    assert all(len(uid) <= 40 for uid in uids.values())
    assert len(board_uid("x" * 100)) == 40
    assert board_uid("x" * 100) == board_uid("x" * 100) != board_uid("x" * 99 + "y")


def test_uids_do_not_depend_on_the_config(boards: dict[str, dict[str, Any]]) -> None:
    other = generate_dashboards(load_config(DEMO))
    assert {n: json.loads(t)["uid"] for n, t in other.items()} == {n: b["uid"] for n, b in boards.items()}


def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def test_every_board_has_a_prometheus_datasource_variable_that_every_query_uses(
    boards: dict[str, dict[str, Any]],
) -> None:
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for name, board in boards.items():
        variables = _variables(board)
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"] == ref, (name, variable["name"])
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert panel["datasource"] == ref == target["datasource"], (name, panel["title"])
        for annotation in board["annotations"]["list"][1:]:
            assert annotation["datasource"] == ref


def test_service_and_location_variables_where_the_series_have_those_labels(boards: dict[str, dict[str, Any]]) -> None:
    for name in ("sla-overview.json", "service-detail.json"):
        variables = _variables(boards[name])
        assert {"service", "location"} <= set(variables), name
        assert "slaprobe_service_info" in variables["service"]["query"]
        assert "location" in variables["location"]["query"]
    assert "service" in _variables(boards["incidents.json"])
    assert "service" in _variables(boards["feedback.json"])
    # Self-metrics carry no service or location: the health board filters by job and instance.
    assert {"job", "instance"} <= set(_variables(boards["exporter-health.json"]))
    assert _variables(boards["service-detail.json"])["service"]["multi"] is False


def _all_links(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        found += defaults.get("links", [])
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    found += prop["value"]
        found += panel.get("links", [])
    return found


def test_overview_links_to_the_service_detail_carrying_the_service(boards: dict[str, dict[str, Any]]) -> None:
    detail = boards["service-detail.json"]["uid"]
    links = [link["url"] for link in _all_links(boards["sla-overview.json"])]
    to_detail = [url for url in links if f"/d/{detail}?" in url]
    assert to_detail, links
    assert all("var-service=${__" in url and "${datasource:queryparam}" in url for url in to_detail)
    assert all("${__url_time_range}" in url for url in to_detail)
    for board in boards.values():
        dropdown = board["links"][0]
        assert dropdown["type"] == "dashboards" and dropdown["tags"] == ["slaprobe"]
        assert dropdown["includeVars"] and dropdown["keepTime"]
        assert "slaprobe" in board["tags"]


def _thresholds_for(panel: dict[str, Any], display_name: str) -> list[float | None]:
    """The threshold values Grafana applies to the series shown as ``display_name`` (overrides in order)."""
    found = None
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        hit = (matcher["id"] == "byName" and matcher["options"] == display_name) or (
            matcher["id"] == "byRegexp" and re.search(matcher["options"], display_name)
        )
        for prop in override["properties"]:
            if hit and prop["id"] == "thresholds":
                found = [step["value"] for step in prop["value"]["steps"]]
    assert found is not None, (panel["title"], display_name)
    return found


def _panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in board["panels"] if p["title"] == title)


def test_sla_targets_and_thresholds_come_from_the_config(example: Config) -> None:
    text = EXAMPLE.read_text().replace("availability: 99.9", "availability: 99.95").replace("300ms", "350ms")
    changed = {n: json.loads(t) for n, t in generate_dashboards(parse_config(text)).items()}
    before = {n: json.loads(t) for n, t in generate_dashboards(example).items()}
    title = "Availability over the SLA window"
    assert _thresholds_for(_panel(before["sla-overview.json"], title), "checkout") == [None, 0.999]
    assert _thresholds_for(_panel(changed["sla-overview.json"], title), "checkout") == [None, 0.9995]
    assert _thresholds_for(_panel(before["sla-overview.json"], title), "search") == [None, 0.995]
    assert _thresholds_for(_panel(before["sla-overview.json"], title), "status-page") == [None, 0.999]
    assert _thresholds_for(_panel(changed["sla-overview.json"], title), "status-page") == [None, 0.999]
    compliance = _panel(before["sla-overview.json"], "Compliance rate, 7 days")
    assert _thresholds_for(compliance, "search") == [None, 0.98]  # sla.compliance, not availability
    latency = _panel(changed["service-detail.json"], "Probe duration vs latency threshold")
    assert _thresholds_for(latency, "checkout p95") == [None, 0.35]
    tls = _panel(before["service-detail.json"], "TLS certificate days left")
    assert _thresholds_for(tls, "checkout/home @ dc1") == [None, 14, 28]
    assert _thresholds_for(tls, "search/certificate @ dc1") == [None, 21, 42]
    deadlines = _panel(before["feedback.json"], "First response time p50 / p90 vs deadline (time range)")
    assert _thresholds_for(deadlines, "tickets technical/general p90") == [None, 64800, 86400]
    assert _thresholds_for(deadlines, "hotline billing/urgent p50") == [None, 2700, 3600]  # urgency is earlier
    health = _panel(before["exporter-health.json"], "Probes in flight")
    assert health["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 128
    summary = _panel(before["sla-overview.json"], "SLA summary")
    windows = summary["targets"][1]["expr"]
    assert "[30d]" in windows and "[7d]" in windows


def test_burn_rate_lines_are_the_workbook_factors_whatever_the_sla_window(boards: dict[str, dict[str, Any]]) -> None:
    panel = _panel(boards["service-detail.json"], "Burn rate by window")
    assert _thresholds_for(panel, "checkout availability 1h")[1:] == [1, 3, 6, 14.4]  # 30 days
    assert _thresholds_for(panel, "search latency 5m")[1:] == [1, 3, 6, 14.4]  # 7 days: the windows scale instead
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_json_has_the_shape_grafana_migrates_cleanly(boards: dict[str, dict[str, Any]]) -> None:
    assert SCHEMA_VERSION == 39
    for name, board in boards.items():
        assert board["schemaVersion"] == SCHEMA_VERSION
        assert isinstance(board["refresh"], str)  # migration 40
        assert "time_options" not in board["timepicker"]  # migration 41
        assert "rows" not in board and "style" not in board
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            hide = custom.get("hideFrom", {})
            assert not hide.get("viz") or hide.get("tooltip"), (name, panel["title"])  # migration 42
            if panel["type"] == "table":
                assert "displayMode" not in custom and "cellOptions" in custom  # migration 38
            for target in panel.get("targets", []):
                assert target["expr"] and target["refId"]
                assert target["range"] is not target["instant"]


def test_panels_do_not_overlap(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, (name, panel["title"], cells.get((x, y)))
                    cells[(x, y)] = panel["title"]


def test_json_and_board_models_hold_the_same_queries(example: Config, boards: dict[str, dict[str, Any]]) -> None:
    for name, board in build_boards(example).items():
        data = boards[f"{name}.json"]
        exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
        exprs += [a["expr"] for a in data["annotations"]["list"][1:]]
        assert exprs == [q.expr for _, q in board.queries()]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_renderer_knows_grafanalib_and_boards_use_the_core_only() -> None:
    for path in sorted((ROOT / "dashboards").glob("*.py")):
        imports = _imports(path)
        uses_grafanalib = any(name.split(".")[0] == "grafanalib" for name in imports)
        assert uses_grafanalib == (path.name == "render.py"), path.name
        for name in imports:
            assert not name.startswith(("slaprobe.exporter", "slaprobe.probes", "slaprobe.alerts")), (path.name, name)
        if path.name != "report.py":
            assert "requests" not in imports, path.name


def test_generate_dashboards_command_writes_every_board(tmp_path: Path, example: Config) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "slaprobe", "generate", "dashboards", "--config", str(EXAMPLE), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BOARD_FILES)
    for name, text in generate_dashboards(example).items():
        assert (tmp_path / name).read_text() == text


def test_generate_dashboards_reports_config_errors_by_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nservices:\n  x:\n    tier: urgent\n")
    done = subprocess.run(
        [sys.executable, "-m", "slaprobe", "generate", "dashboards", "--config", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: services.x.tier:")


def test_overrides_are_grouped_by_value_not_one_per_service() -> None:
    services = {
        f"svc{i}": {
            "sla": {"availability": [99, 99.5, 99.9][i % 3]},
            "probes": [{"name": "p", "tcp": {"address": "h:1"}}],
        }
        for i in range(60)
    }
    cfg = parse_config(json.dumps({"version": "v1", "services": services}))
    panel = _panel(json.loads(generate_dashboards(cfg)["sla-overview.json"]), "Availability over the SLA window")
    assert len(panel["fieldConfig"]["overrides"]) == 3
    assert _thresholds_for(panel, "svc4") == [None, 0.995]
    assert _thresholds_for(panel, "svc41") == [None, 0.999]  # svc4's group is anchored: no prefix match
