"""Shared pieces of the boards: uids, variables, links, colours and config-derived thresholds."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from slaprobe import conventions as c
from slaprobe.config import Config, Service
from slaprobe.dashboards.model import Link, Override, Panel, Query, Step, Variable
from slaprobe.dashboards.promql import LOCATION_VAR, SERVICE_VAR, regex_of, selector

# One definition for rules, boards and report; re-exported (the boards call p.budget).
from slaprobe.promql import budget as budget
from slaprobe.promql import ratio as ratio

H = TypeVar("H", bound=Hashable)

TAGS = ("slaprobe", "sla")
UID_PREFIX = "slaprobe-"
UID_MAX = 40  # Grafana's limit

# Colour of each business-impact tier (overview tables and legends).
TIER_COLORS: Mapping[str, str] = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue"}

# Board names; each module's board has the uid derived from its name.
OVERVIEW = "sla-overview"
SERVICE_DETAIL = "service-detail"
INCIDENTS = "incidents"
FEEDBACK = "feedback"
EXPORTER_HEALTH = "exporter-health"


def board_uid(name: str) -> str:
    """A stable Grafana uid for a board name: ``slaprobe-<slug>``, hashed when too long."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    uid = UID_PREFIX + slug
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - 9]}-{digest}"


def board_url(name: str) -> str:
    """The path of a board in Grafana (``/d/<uid>``); Grafana redirects to the slugged URL."""
    return f"/d/{board_uid(name)}"


def service_detail_link(service_ref: str, title: str = "Service detail") -> Link:
    """A link to the service detail board for the service ``service_ref`` (a Grafana ``${...}``)."""
    url = f"{board_url(SERVICE_DETAIL)}?var-service={service_ref}&${{datasource:queryparam}}&${{__url_time_range}}"
    return Link(title=f"{title}: {service_ref}", url=url)


# ---------------------------------------------------------------- variables


def datasource_variable() -> Variable:
    """The ``datasource`` variable: any Prometheus data source."""
    return Variable("datasource", "Data source", "datasource", "prometheus")


def service_variable(*, multi: bool = True) -> Variable:
    """The ``service`` variable: services the exporter describes in its info series."""
    query = f"label_values({c.SERVICE_INFO}, {c.LABEL_SERVICE})"
    if multi:
        return Variable("service", "Service", "query", query, multi=True, include_all=True, all_value=".*")
    return Variable("service", "Service", "query", query)


def location_variable() -> Variable:
    """The ``location`` variable: probe locations of the chosen services."""
    query = f"label_values({selector(c.PROBE_RUNS, SERVICE_VAR)}, {c.LABEL_LOCATION})"
    return Variable("location", "Location", "query", query, multi=True, include_all=True, all_value=".*")


def probe_variable() -> Variable:
    """The ``probe`` variable: probes of the chosen service and locations."""
    inner = selector(c.PROBE_RUNS, SERVICE_VAR, LOCATION_VAR)
    query = f"label_values({inner}, {c.LABEL_PROBE})"
    return Variable("probe", "Probe", "query", query, multi=True, include_all=True, all_value=".*")


# ---------------------------------------------------------------- panels


def row(title: str) -> Panel:
    """A row header spanning the board."""
    return Panel("row", title)


def q(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Query:
    """A query; ``table`` makes it an instant query in table format."""
    if table:
        return Query(expr, legend, instant=True, format="table")
    return Query(expr, legend, instant=instant)


def target_steps(target: float, *, warn: float | None = None) -> tuple[Step, ...]:
    """Red below ``target``, green from it (orange from ``warn`` when given)."""
    steps = [Step(None, "red")]
    if warn is not None and warn < target:
        steps.append(Step(warn, "orange"))
    steps.append(Step(target, "green"))
    return tuple(steps)


def ceiling_steps(limit: float, *, warn: float | None = None) -> tuple[Step, ...]:
    """Green below ``limit``, red from it (orange from ``warn`` when given)."""
    steps = [Step(None, "green")]
    if warn is not None and warn < limit:
        steps.append(Step(warn, "orange"))
    steps.append(Step(limit, "red"))
    return tuple(steps)


def by_name(name: str, *properties: tuple[str, Any]) -> Override:
    """Override for the field displayed as ``name``."""
    return Override("byName", name, tuple(properties))


def by_regexp(pattern: str, *properties: tuple[str, Any]) -> Override:
    """Override for the fields whose display name matches ``pattern``."""
    return Override("byRegexp", pattern, tuple(properties))


def grouped(
    values: Mapping[str, H], suffix: str, properties: Callable[[H], Iterable[tuple[str, Any]]]
) -> tuple[Override, ...]:
    """One override per distinct value, for the series named ``<name><suffix>...`` of every name with it.

    500 services with three targets make three overrides, not 500. With ``suffix`` ``$``
    the names must match whole; a single name with ``$`` is a plain ``byName`` override.
    """
    groups: dict[H, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(name)
    found = []
    for value, names in sorted(groups.items(), key=lambda group: min(group[1])):
        props = tuple(properties(value))
        if suffix == "$" and len(names) == 1:
            found.append(by_name(names[0], *props))
        elif len(names) == 1:
            found.append(by_regexp(f"^{regex_of(names)}{suffix}", *props))
        else:
            found.append(by_regexp(f"^(?:{regex_of(names)}){suffix}", *props))
    return tuple(found)


def per_service_targets(targets: Mapping[str, float]) -> tuple[Override, ...]:
    """Thresholds per series named after a service: red below that service's target."""
    return grouped(targets, "$", lambda target: [("thresholds", target_steps(target))])


def tier_mappings() -> tuple[Mapping[str, Any], ...]:
    """Value mapping that colours a tier name by business impact."""
    options = {tier: {"color": color, "index": i, "text": tier} for i, (tier, color) in enumerate(TIER_COLORS.items())}
    return ({"type": "value", "options": options},)


def up_down_mappings(up: str = "OK", down: str = "FAIL") -> tuple[Mapping[str, Any], ...]:
    """Value mapping of a 0/1 gauge: 1 green ``up``, 0 red ``down``."""
    options = {"0": {"color": "red", "index": 0, "text": down}, "1": {"color": "green", "index": 1, "text": up}}
    return ({"type": "value", "options": options},)


def bargauge_options(*, limit: int | None = None) -> dict[str, Any]:
    """Options of a horizontal bar gauge that shows the last value of each series."""
    options: dict[str, Any] = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
    }
    if limit is not None:
        options["reduceOptions"]["limit"] = limit
    return options


def stat_options(*, color_mode: str = "value", text_mode: str = "auto") -> dict[str, Any]:
    """Options of a stat panel showing the last value of each series."""
    return {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }


def legend_options(*calcs: str, placement: str = "bottom", display: str = "list") -> dict[str, Any]:
    """Legend and tooltip options of a time series panel."""
    return {
        "legend": {"calcs": list(calcs), "displayMode": display, "placement": placement, "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def merge_table(rename: Mapping[str, str], order: Iterable[str], hide: Iterable[str] = ("Time",)) -> tuple[Any, ...]:
    """Transformations joining instant table queries on their labels, with readable column names."""
    return (
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {name: True for name in hide},
                "indexByName": {name: i for i, name in enumerate(order)},
                "renameByName": dict(rename),
            },
        },
    )


# ---------------------------------------------------------------- config facts


def availability_targets(cfg: Config) -> dict[str, float]:
    """Each service's availability objective as a ratio."""
    return {name: ratio(s.sla.availability) for name, s in cfg.services.items()}


def compliance_target(service: Service) -> float:
    """A service's dial-test compliance target as a ratio (default: its availability objective)."""
    return ratio(service.sla.compliance_percent)


def services_by_window(cfg: Config) -> dict[float, list[str]]:
    """Service names grouped by SLA window (seconds), windows ascending."""
    groups: dict[float, list[str]] = {}
    for name, service in cfg.services.items():
        groups.setdefault(service.sla.window, []).append(name)
    return dict(sorted(groups.items()))
