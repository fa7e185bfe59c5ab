"""What a board is, independent of the library that writes its JSON.

Board modules describe boards with these frozen values; ``render`` turns them into
Grafana dashboard JSON (through grafanalib today). This is the seam: a switch to
grafana-foundation-sdk replaces ``render`` and leaves every board module as it is. The
vocabulary is Grafana's own (units, field-config property ids, panel types), which
both libraries share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PanelKind = Literal["stat", "timeseries", "table", "bargauge", "heatmap", "state-timeline", "piechart", "text", "row"]
QueryFormat = Literal["time_series", "table", "heatmap"]


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query of a panel; ``$variables`` are Grafana template variables."""

    expr: str
    legend: str = ""
    instant: bool = False
    format: QueryFormat = "time_series"


@dataclass(frozen=True, slots=True)
class Step:
    """One threshold step: from ``value`` upwards (``None``: the base) the colour is ``color``."""

    value: float | None
    color: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link on a panel or a field; Grafana interpolates ``${...}`` in ``url``."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Override:
    """Field-config properties for the fields a matcher selects (``byName``, ``byRegexp``...)."""

    matcher: str
    value: str
    properties: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel; ``width``/``height`` in grid units (24 columns), placed left to right."""

    kind: PanelKind
    title: str
    queries: tuple[Query, ...] = ()
    description: str = ""
    unit: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: tuple[Step, ...] = ()
    threshold_style: Literal["off", "line", "area", "line+area", "dashed"] = "off"
    overrides: tuple[Override, ...] = ()
    mappings: tuple[Mapping[str, Any], ...] = ()
    links: tuple[Link, ...] = ()
    field_links: tuple[Link, ...] = ()
    transformations: tuple[Mapping[str, Any], ...] = ()
    time_from: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    content: str = ""
    width: int = 12
    height: int = 8


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard variable: the data source, a label's values, or a fixed list."""

    name: str
    label: str
    kind: Literal["datasource", "query", "custom"]
    query: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    default: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Annotation:
    """Events drawn on every time axis of a board: one per series of ``query`` while it has values."""

    name: str
    query: Query
    title: str
    text: str
    color: str = "red"


@dataclass(frozen=True, slots=True)
class Board:
    """A whole dashboard; ``uid`` is derived from its name and never changes."""

    name: str
    title: str
    uid: str
    description: str
    tags: tuple[str, ...]
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    links: tuple[Link, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    time_from: str = "now-24h"
    refresh: str = "1m"
    timezone: str = ""  # IANA zone of the board's time axes and of "today"; "" is the viewer's browser

    def queries(self) -> list[tuple[str, Query]]:
        """Every (panel or annotation title, query) of the board, in order."""
        found = [(panel.title, query) for panel in self.panels for query in panel.queries]
        return found + [(f"annotation: {a.name}", a.query) for a in self.annotations]
