"""Escalation meta-alerts: level N > 1 fires once the level-1 alert has fired for that level's ``after``.

One rule per (alert name, priority, level). It keeps the alert's name and labels and sets
``escalation_level``, so Alertmanager routes it to that level's receiver. ``max_over_time``
over ``alerting.escalation_bridge`` bridges short flaps (the ``for`` clock survives a gap
shorter than the bridge); an acknowledgement (``slaprobe_alert_acknowledged``, exported
from Alertmanager's silences) removes the incident from the expression, which withholds
further levels and resolves the ones that fired. The price of the bridge: a level N alert
resolves up to one bridge after the alert itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.policy import alert_annotations, levels_of, ordered_priorities
from slaprobe.alerts.promql import selector
from slaprobe.config import Config
from slaprobe.units import format_duration

Rule = dict[str, Any]


def escalation_expr(alertname: str, priority: str, bridge: float) -> str:
    """The level-1 alert, firing within the last ``bridge``, unless it is acknowledged."""
    alerts = selector(
        c.ALERTS_SERIES,
        {
            c.LABEL_ALERTNAME: alertname,
            c.LABEL_ALERTSTATE: c.ALERT_FIRING,
            c.LABEL_ESCALATION_LEVEL: "1",
            c.LABEL_PRIORITY: priority,
        },
    )
    return (
        f"max without ({c.LABEL_ALERTSTATE}) (\n  max_over_time({alerts}[{format_duration(bridge)}])\n)\n"
        f"unless on ({c.LABEL_SERVICE}, {c.LABEL_ALERTNAME})\n"
        f"({c.ALERT_ACKNOWLEDGED} == 1)"
    )


def escalation_annotations(level: int, after: float, receiver: str) -> dict[str, str]:
    """Annotations of a level-``level`` meta-alert; they use labels only (the value is always 1)."""
    waited = format_duration(after)
    return alert_annotations(
        f"Escalated to level {level} ({{{{ $labels.priority }}}}): {{{{ $labels.alertname }}}} on "
        f"{{{{ $labels.service }}}}, unacknowledged for {waited}",
        f"{{{{ $labels.alertname }}}} ({{{{ $labels.severity }}}}) on {{{{ $labels.service }}}} has been firing "
        f"for {waited} without an acknowledgement, so {receiver} is notified (escalation level {level}). "
        "Acknowledge it with a silence on the alert in Alertmanager.",
        f"{{{{ $labels.{c.LABEL_RUNBOOK_URL} }}}}",
    )


def escalation_rules(cfg: Config, alert_priorities: Iterable[tuple[str, str]]) -> list[Rule]:
    """Meta-alerts for every (alert name, priority) that occurs and every level above 1 of that priority."""
    present = set(alert_priorities)
    bridge = cfg.alerting.escalation_bridge
    rules: list[Rule] = []
    for priority in ordered_priorities(cfg):
        levels = levels_of(cfg, priority)
        for alertname in sorted(name for name, p in present if p == priority):
            for number, level in enumerate(levels[1:], start=2):
                rule: Rule = {"alert": alertname, "expr": escalation_expr(alertname, priority, bridge)}
                rule["for"] = format_duration(level.after)
                # priority as well (the series has it): rules of one name need distinct static labels
                rule["labels"] = {c.LABEL_PRIORITY: priority, c.LABEL_ESCALATION_LEVEL: str(number)}
                rule["annotations"] = escalation_annotations(number, level.after, level.notify)
                rules.append(rule)
    return rules
