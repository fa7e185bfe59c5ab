"""Escalation: level N > 1 fires while the level-1 alert fires and has fired for that level's ``after``.

The policy (README, "Escalation"): the clock of a level-1 alert is the time it has been
firing in its current episode; a gap shorter than ``alerting.escalation_bridge`` pauses the
clock, a longer one ends the episode (the next firing starts from 0). Level N fires while
the level-1 alert fires *now* and its clock has reached that level's ``after``, unless the
incident is acknowledged. So a blip shorter than ``after`` never escalates, whatever the
bridge; nothing escalates once level 1 has resolved (a silence that expires after recovery
escalates nothing); and level N resolves with level 1.

The clock is one recording rule that reads its own previous value:
``slaprobe:escalation_clock:seconds`` per level-1 alert adds the time since its last sample
while the alert fires, holds its value while the alert fired within the bridge, and
disappears otherwise (0 again at the next firing). The meta-alerts (one per alert name,
priority and level) compare it with ``after`` without a ``for:``; they keep the alert's name
and labels and set ``escalation_level``, so Alertmanager routes them to that level's
receiver. An acknowledgement (``slaprobe_alert_acknowledged``, exported from Alertmanager's
silences) withholds further levels and resolves the ones that fired; it does not stop the
clock, so an incident whose silence ends while it still fires escalates at once to the
level its clock has reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.policy import alert_annotations, levels_of, ordered_priorities
from slaprobe.alerts.promql import any_of, number, selector
from slaprobe.config import Config
from slaprobe.units import format_duration

Rule = dict[str, Any]


def firing_level_1(priorities: Iterable[str], alertname: str | None = None) -> str:
    """The firing level-1 alerts of these priorities (of one name, if given), as ``ALERTS`` selects them."""
    matchers = {c.LABEL_ALERTSTATE: c.ALERT_FIRING, c.LABEL_ESCALATION_LEVEL: "1"}
    if alertname is not None:
        matchers = {c.LABEL_ALERTNAME: alertname, **matchers}
    return selector(c.ALERTS_SERIES, matchers, **{c.LABEL_PRIORITY: any_of(sorted(priorities))})


def clock_expr(priorities: Iterable[str], bridge: float) -> str:
    """The escalation clock: grows while the alert fires, holds through a gap shorter than ``bridge``."""
    clock = c.ESCALATION_CLOCK
    alerts = firing_level_1(priorities)
    now = f"max without ({c.LABEL_ALERTSTATE}) ({alerts})"
    recent = f"max without ({c.LABEL_ALERTSTATE}) (max_over_time({alerts}[{format_duration(bridge)}]))"
    return (
        f"(\n  {clock} + (time() - timestamp({clock}))\n  and {now}\n)\n"
        f"or\n(\n  {clock}\n  and {recent}\n)\n"
        f"or\n0 * {now}"
    )


def escalation_expr(alertname: str, priority: str, after: float) -> str:
    """The level-1 alert, firing now with a clock of at least ``after``, unless it is acknowledged."""
    clock = selector(c.ESCALATION_CLOCK, {c.LABEL_ALERTNAME: alertname, c.LABEL_PRIORITY: priority})
    return (
        f"{clock} >= {number(after)}\n"
        f"and ignoring ({c.LABEL_ALERTSTATE}) {firing_level_1([priority], alertname)}\n"
        f"unless on ({c.LABEL_SERVICE}, {c.LABEL_ALERTNAME})\n"
        f"({c.ALERT_ACKNOWLEDGED} == 1)"
    )


def escalation_annotations(level: int, after: float, receiver: str) -> dict[str, str]:
    """Annotations of a level-``level`` meta-alert; they use labels only (the value is the clock)."""
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
    """The clock, then meta-alerts for every (alert name, priority) that occurs and every level above 1."""
    present = set(alert_priorities)
    rules: list[Rule] = []
    escalating: list[str] = []
    for priority in ordered_priorities(cfg):
        levels = levels_of(cfg, priority)
        names = sorted(name for name, p in present if p == priority)
        if len(levels) < 2 or not names:
            continue
        escalating.append(priority)
        for alertname in names:
            for number_, level in enumerate(levels[1:], start=2):
                rules.append(
                    {
                        "alert": alertname,
                        "expr": escalation_expr(alertname, priority, level.after),
                        # priority as well (the series has it): rules of one name need distinct static labels
                        "labels": {c.LABEL_PRIORITY: priority, c.LABEL_ESCALATION_LEVEL: str(number_)},
                        "annotations": escalation_annotations(number_, level.after, level.notify),
                    }
                )
    if not escalating:
        return []
    clock: Rule = {"record": c.ESCALATION_CLOCK, "expr": clock_expr(escalating, cfg.alerting.escalation_bridge)}
    return [clock, *rules]
