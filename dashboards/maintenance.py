"""Maintenance windows on the boards: the planned ones from the config, the open and ad hoc ones from the exporter.

Three pieces, shared by the SLA overview and the service detail board:

- an annotation drawing every stretch in which ``slaprobe_maintenance_active`` was 1 (planned
  and ad hoc windows alike: the exporter exports both) on every time axis of the board;
- a table of each service: in maintenance now, and its maintenance runs in the time range
  (counted in no SLI: what the board's availability leaves out);
- a text panel listing the config's planned windows (one-off ranges and recurring intervals).
"""

from __future__ import annotations

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards.model import Annotation, Panel, Step
from slaprobe.maintenance import MaintenanceWindow

SERVICES = f'{c.LABEL_SERVICE}=~"$service"'


def _per_service(expr: str) -> str:
    """``expr`` by service, 0 for the services it has no series of (every service has a row)."""
    zero = f"0 * group by ({c.LABEL_SERVICE}) ({c.SERVICE_INFO}{{{SERVICES}}})"
    return f"({expr}) or on ({c.LABEL_SERVICE}) {zero}"


def maintenance_annotation() -> Annotation:
    """Every maintenance window of the selected services (planned or ad hoc) as a region on the time axes."""
    return Annotation(
        "Maintenance windows",
        # 0 or 1 for every service: Grafana draws a Prometheus annotation only where the value is 1 (as
        # for ALERTS), so the 0s of services without a window open (or without windows) draw nothing.
        p.q(_per_service(f"max by ({c.LABEL_SERVICE}) ({c.MAINTENANCE_ACTIVE}{{{SERVICES}}})")),
        title="maintenance: {{service}}",
        text="{{service}} in maintenance: its runs are counted apart, its alerts muted",
        color="blue",
    )


def maintenance_table(height: int) -> Panel:
    """Each selected service: in maintenance now (planned or ad hoc window), maintenance runs in the time range."""
    active = f"max by ({c.LABEL_SERVICE}) ({c.MAINTENANCE_ACTIVE}{{{SERVICES}}})"
    runs = f"sum by ({c.LABEL_SERVICE}) (increase({c.PROBE_MAINTENANCE_RUNS}{{{SERVICES}}}[$__range]))"
    return Panel(
        "table",
        "Maintenance now and in the time range",
        (p.q(_per_service(active), table=True), p.q(_per_service(runs), table=True)),
        description=(
            "Whether a maintenance window of the service is open now (planned in the config, or ad hoc via "
            "POST /-/maintenance), and its runs inside windows in the time range: counted apart and excluded "
            "from every SLI on the boards. The blue regions on the time axes are the windows."
        ),
        mappings=(
            {
                "type": "value",
                "options": {"0": {"text": "no", "index": 0}, "1": {"text": "in maintenance", "index": 1}},
            },
        ),
        overrides=(
            p.by_name("service", ("links", (p.service_detail_link("${__value.raw}"),))),
            p.by_name(
                "now",
                ("custom.cellOptions", {"type": "color-background"}),
                ("thresholds", (Step(None, "transparent"), Step(1, "blue"))),
            ),
            p.by_name("maintenance runs", ("decimals", 0)),
        ),
        transformations=p.merge_table(
            {"Value #A": "now", "Value #B": "maintenance runs"}, ("service", "Value #A", "Value #B")
        ),
        options={"showHeader": True, "cellHeight": "sm"},
        width=10,
        height=height,
    )


def _when(window: MaintenanceWindow) -> str:
    if window.start is not None and window.end is not None:
        start = window.start.isoformat().replace("+00:00", "Z")
        end = window.end.isoformat().replace("+00:00", "Z")
        return f"{start} to {end}"
    parts = []
    for item in window.time_intervals or ():
        if isinstance(item, str):
            parts.append(f"`{item}`")
            continue
        fields = ", ".join(f"{k}: {_text(v)}" for k, v in sorted(item.items()))
        parts.append(fields)
    return "; ".join(parts)


def _text(value: object) -> str:
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        if set(value) == {"start_time", "end_time"}:
            return f"{value['start_time']}-{value['end_time']}"
        return " ".join(f"{k}={_text(v)}" for k, v in sorted(value.items()))
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def planned_windows(cfg: Config) -> list[tuple[str, str, str, str]]:
    """(window, services, kind, when) of each planned window of the config."""
    rows = [("all services", w) for w in cfg.global_.maintenance]
    rows += [(name, w) for name, s in cfg.services.items() for w in s.maintenance]
    return [(w.name, scope, "recurring" if w.recurring else "one-off", _when(w)) for scope, w in rows]


def planned_windows_text(cfg: Config, height: int) -> Panel:
    """The config's planned maintenance windows as a Markdown table."""
    rows = planned_windows(cfg)
    if rows:
        lines = ["| window | services | kind | when |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        content = "\n".join(lines) + "\n"
    else:
        content = "No planned maintenance windows in the config. Ad hoc ones (POST /-/maintenance) show on the left.\n"
    return Panel("text", "Planned maintenance windows (config)", content=content, width=14, height=height)


def maintenance_panels(cfg: Config) -> list[Panel]:
    """The maintenance row of a board: open windows and maintenance runs, and the planned windows."""
    height = 3 + max(len(cfg.services), len(planned_windows(cfg)), 1)
    return [p.row("Maintenance windows"), maintenance_table(height), planned_windows_text(cfg, height)]
