"""``slaprobe_maintenance_active{service}``: whether a maintenance window of the service is open.

Exported for the services that have windows (their own or global ones); the level-1 alerts
of a service are withheld while it is 1 (``slaprobe.maintenance`` says what else a window does).
"""

from __future__ import annotations

from collections.abc import Mapping

from slaprobe import conventions as c
from slaprobe.exporter.exposition import MetricFamily
from slaprobe.maintenance import Calendar

MAINTENANCE_ACTIVE = MetricFamily(
    c.MAINTENANCE_ACTIVE,
    "gauge",
    "Whether a maintenance window of the service is open (1) or not (0); its alerts are muted while open.",
    (c.LABEL_SERVICE,),
)


def maintenance_text(calendars: Mapping[str, Calendar], now: float) -> str:
    """The gauge of each service with maintenance windows, at unix time ``now``."""
    if not calendars:
        return ""
    lines = [MAINTENANCE_ACTIVE.header]
    lines.extend(MAINTENANCE_ACTIVE.sample(int(calendar.active(now)), name) for name, calendar in calendars.items())
    return "".join(lines)
