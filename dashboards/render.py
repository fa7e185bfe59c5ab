"""Board -> Grafana dashboard JSON, through grafanalib: the only module that imports it.

grafanalib 0.7.1 writes ``schemaVersion: 12`` and a few legacy keys that Grafana's
import migration then rewrites. We write the modern shape instead (object data source
references, ``gridPos``, ``fieldConfig``, table ``cellOptions``, no ``time_options``) and
declare ``SCHEMA_VERSION`` 39 (Grafana 10.3/10.4): Grafana 10.4 takes the JSON as it is,
and Grafana 11/12 only run migrations 40-42, which find nothing to change here (``refresh``
is a string, the time picker has no ``time_options``, no field is hidden from the
visualisation only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import grafanalib.core as gl

from slaprobe.dashboards.model import Annotation, Board, Link, Override, Panel, Query, Step, Variable

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
REFRESH_INTERVALS = ["30s", "1m", "5m", "15m", "30m", "1h"]


class _FieldPanel(gl.Panel):
    """A panel of the current field-config shape, for types grafanalib writes in an old one.

    Its ``type``, ``options`` and ``fieldConfig`` come in through grafanalib's ``extraJson``.
    """

    def to_json_data(self) -> dict[str, Any]:
        """The panel JSON."""
        result: dict[str, Any] = self.panel_json({})
        return result


def _target_json(target: gl.Target) -> dict[str, Any]:
    """A grafanalib target in the shape Grafana's Prometheus query editor saves today."""
    data: dict[str, Any] = target.to_json_data()
    return {
        "datasource": data["datasource"],
        "editorMode": "code",
        "expr": data["expr"],
        "format": data["format"],
        "instant": data["instant"],
        "legendFormat": data["legendFormat"] or "__auto",
        "range": not data["instant"],
        "refId": data["refId"],
    }


def _ref_id(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"Q{index}"


def _targets(queries: Iterable[Query]) -> list[dict[str, Any]]:
    return [
        _target_json(
            gl.Target(
                expr=q.expr,
                legendFormat=q.legend,
                instant=q.instant,
                format=q.format,
                refId=_ref_id(i),
                datasource=DATASOURCE,
            )
        )
        for i, q in enumerate(queries)
    ]


def _steps(steps: Iterable[Step]) -> list[dict[str, Any]]:
    # Durations parsed from the config carry binary noise (350ms -> 0.35000000000000003).
    return [{"color": s.color, "value": None if s.value is None else round(s.value, 9)} for s in steps]


def _links(links: Iterable[Link]) -> list[dict[str, Any]]:
    return [{"title": link.title, "url": link.url, "targetBlank": False} for link in links]


def _override(override: Override) -> dict[str, Any]:
    properties = []
    for prop_id, value in override.properties:
        if prop_id == "thresholds":
            value = {"mode": "absolute", "steps": _steps(value)}
        elif prop_id == "links":
            value = _links(value)
        properties.append({"id": prop_id, "value": value})
    return {"matcher": {"id": override.matcher, "options": override.value}, "properties": properties}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _field_defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "decimals": panel.decimals,
        "min": panel.min,
        "max": panel.max,
        "mappings": list(panel.mappings),
        "links": _links(panel.field_links),
        "thresholds": {"mode": "absolute", "steps": _steps(panel.steps or (Step(None, "green"),))},
    }
    if panel.kind in ("stat", "bargauge", "table"):
        defaults["color"] = {"mode": "thresholds"}
    custom = dict(panel.custom)
    if panel.kind == "timeseries":
        custom.setdefault("thresholdsStyle", {"mode": panel.threshold_style})
    if panel.kind == "table":
        custom.setdefault("cellOptions", {"type": "auto"})
    if custom:
        defaults["custom"] = custom
    return {k: v for k, v in defaults.items() if v is not None}


def _grafanalib_panel(panel: Panel, grid: gl.GridPos) -> gl.Panel:
    common: dict[str, Any] = {
        "title": panel.title,
        "description": panel.description or None,
        "gridPos": grid,
        "maxDataPoints": None,
        "links": _links(panel.links),
        "timeFrom": panel.time_from,
        "transformations": list(panel.transformations),
    }
    if panel.kind == "row":
        return gl.RowPanel(title=panel.title, gridPos=grid, maxDataPoints=None)
    if panel.kind == "text":
        return gl.Text(content=panel.content, **common)
    common["dataSource"] = DATASOURCE
    common["targets"] = _targets(panel.queries)
    extra: dict[str, Any] = {
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": [_override(o) for o in panel.overrides]},
        "options": dict(panel.options),
    }
    built: gl.Panel
    if panel.kind == "timeseries":
        built = gl.TimeSeries(tooltipMode="multi", extraJson=extra, **common)
    elif panel.kind == "stat":
        built = gl.Stat(reduceCalc="lastNotNull", graphMode="none", extraJson=extra, **common)
    elif panel.kind == "table":
        built = gl.Table(extraJson=extra, **common)
    elif panel.kind == "state-timeline":
        built = gl.StateTimeline(extraJson=extra, **common)
    else:
        built = _FieldPanel(extraJson={"type": panel.kind, **extra}, **common)
    return built


def _layout(panels: Iterable[Panel]) -> list[tuple[Panel, gl.GridPos]]:
    """Place panels left to right in 24 columns; a row panel starts a new line."""
    placed: list[tuple[Panel, gl.GridPos]] = []
    x = y = line_height = 0
    for panel in panels:
        width = GRID_WIDTH if panel.kind == "row" else min(panel.width, GRID_WIDTH)
        height = 1 if panel.kind == "row" else panel.height
        if panel.kind == "row" or x + width > GRID_WIDTH:
            y += line_height
            x = line_height = 0
        placed.append((panel, gl.GridPos(h=height, w=width, x=x, y=y)))
        x += width
        line_height = max(line_height, height)
        if panel.kind == "row":
            y += height
            x = line_height = 0
    return placed


def _variable(variable: Variable) -> dict[str, Any]:
    template = gl.Template(
        name=variable.name,
        label=variable.label,
        query=variable.query,
        type=variable.kind,
        dataSource=DATASOURCE if variable.kind == "query" else None,
        includeAll=variable.include_all,
        multi=variable.multi,
        allValue=variable.all_value,
        default=variable.default,
        refresh=gl.REFRESH_ON_TIME_RANGE_CHANGE if variable.kind == "query" else gl.REFRESH_ON_DASHBOARD_LOAD,
        sort=1,
    )
    data: dict[str, Any] = template.to_json_data()
    for legacy in ("auto", "auto_min", "auto_count", "useTags", "tagsQuery", "tagValuesQuery"):
        data.pop(legacy, None)
    data["description"] = variable.description or None
    if variable.kind == "query":
        data["definition"] = variable.query
    if variable.include_all and variable.default is None:
        text: Any = ["All"] if variable.multi else "All"
        value: Any = ["$__all"] if variable.multi else "$__all"
        data["current"] = {"selected": True, "text": text, "value": value}
    elif variable.default is None:
        data["current"] = {}
    if variable.kind == "custom":
        data["options"] = []
    return {k: v for k, v in data.items() if v is not None}


def _annotation(annotation: Annotation) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": annotation.query.expr,
        "iconColor": annotation.color,
        "name": annotation.name,
        "step": "1m",
        "textFormat": annotation.text,
        "titleFormat": annotation.title,
        "useValueForTime": False,
    }


_BUILTIN_ANNOTATION = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def _without_none(value: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None (Grafana reads a missing key as null)."""
    return {k: v for k, v in value.items() if v is not None}


def _panel_json(panel: Panel, grid: gl.GridPos, panel_id: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(_grafanalib_panel(panel, grid).to_json_data(), cls=_Encoder))
    data["id"] = panel_id
    for legacy in ("span", "minSpan", "height", "error", "editable", "repeatDirection", "maxPerRow", "columns"):
        data.pop(legacy, None)
    if panel.kind == "table":
        data.pop("mappings", None)
        data.pop("color", None)
        data.pop("fontSize", None)
        data["fieldConfig"]["defaults"]["custom"].pop("displayMode", None)
    if panel.kind == "stat":
        data["fieldConfig"]["defaults"].pop("noValue", None)
    if panel.kind in ("row", "text"):
        for unused in ("targets", "fieldConfig", "transformations", "links", "hideTimeOverride", "transparent"):
            data.pop(unused, None)
    data = _without_none(data)
    if "targets" in data:
        data["targets"] = [_without_none(t) for t in data["targets"]]
    return data


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        """grafanalib objects as their JSON data."""
        to_json = getattr(o, "to_json_data", None)
        if to_json is not None:
            return to_json()
        return super().default(o)


def render_board(board: Board) -> dict[str, Any]:
    """The Grafana dashboard JSON of one board (a plain dict, ready for ``json.dumps``)."""
    panels = [_panel_json(panel, grid, i) for i, (panel, grid) in enumerate(_layout(board.panels), start=1)]
    links = [
        gl.DashboardLink(
            title="slaprobe boards",
            type="dashboards",
            tags=["slaprobe"],
            asDropdown=True,
            includeVars=True,
            keepTime=True,
        )
    ] + [
        gl.DashboardLink(title=link.title, type="link", uri=link.url, icon="doc", keepTime=True) for link in board.links
    ]
    dashboard = gl.Dashboard(
        title=board.title,
        uid=board.uid,
        description=board.description,
        tags=list(board.tags),
        links=links,
        panels=[],
        templating=gl.Templating(list=[]),
        time=gl.Time(board.time_from, "now"),
        refresh=board.refresh,
        graphTooltip=1,
        timezone=board.timezone,
        schemaVersion=SCHEMA_VERSION,
        editable=True,
        version=1,
    )
    data: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), cls=_Encoder))
    for legacy in ("__inputs", "rows", "style", "hideControls", "sharedCrosshair", "gnetId"):
        data.pop(legacy, None)
    data["panels"] = panels
    data["templating"] = {"list": [_variable(v) for v in board.variables]}
    data["annotations"] = {"list": [_BUILTIN_ANNOTATION, *(_annotation(a) for a in board.annotations)]}
    data["timepicker"] = {"refresh_intervals": REFRESH_INTERVALS}
    data["fiscalYearStartMonth"] = 0
    data["liveNow"] = False
    data["weekStart"] = ""
    return data


def dump_board(board: Board) -> str:
    """Deterministic JSON text of one board: sorted keys, two-space indent, final newline."""
    return json.dumps(render_board(board), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
