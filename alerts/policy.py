"""Who an alert concerns and how urgent it is: priority from the tier x urgency table, labels, runbook."""

from __future__ import annotations

import re
from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe.config import Config, EscalationLevel, PriorityMap, Service

# Where alerts of services without a runbook point: the README section on alerts.
DEFAULT_RUNBOOK_URL = "https://github.com/slaprobe/slaprobe/blob/main/README.md#alerts-and-escalation"
_FALLBACK_PRIORITIES = PriorityMap(page="P3", ticket="P4")

# The SLO an alert without its own ``sloth_slo`` is shown under on Sloth's boards: probe and
# TLS alerts threaten availability; compliance and feedback have their own.
SLO_OF_ALERT = {
    c.ALERT_COMPLIANCE: c.SLO_COMPLIANCE,
    c.ALERT_FEEDBACK_DEADLINES: "feedback",
    c.ALERT_FEEDBACK_QUALITY: "feedback",
}


@dataclass(frozen=True, slots=True)
class Concern:
    """What a generated alert is about: a service name (or feedback source) and its tier."""

    service: str
    tier: str
    runbook: str = ""


def concern_of(name: str, service: Service) -> Concern:
    """The concern of a configured service."""
    return Concern(service=name, tier=service.tier, runbook=service.runbook)


def priority_of(cfg: Config, tier: str, severity: str) -> str:
    """The priority of an alert of ``severity`` (page|ticket) for a service of ``tier``."""
    table = cfg.priorities.get(tier, _FALLBACK_PRIORITIES)  # type: ignore[call-overload]
    return table.page if severity == c.SEVERITY_PAGE else table.ticket


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", name))


def ordered_priorities(cfg: Config) -> list[str]:
    """Every priority name, most urgent first (natural order: P1 before P2 before P10)."""
    names = {p for m in cfg.priorities.values() for p in (m.page, m.ticket)} | set(cfg.escalation)
    return sorted(names, key=_natural_key)


def levels_of(cfg: Config, priority: str) -> list[EscalationLevel]:
    """The escalation levels of a priority (level 1 first); empty when none are configured."""
    return list(cfg.escalation.get(priority, []))


def runbook_url(cfg: Config, concern: Concern, alertname: str) -> str:
    """The service's runbook, else ``alerting.runbook_url`` filled in, else the README section."""
    if concern.runbook:
        return concern.runbook
    template = cfg.alerting.runbook_url or DEFAULT_RUNBOOK_URL
    return template.replace("{service}", concern.service).replace("{alertname}", alertname)


def alert_labels(cfg: Config, concern: Concern, alertname: str, severity: str, **extra: str) -> dict[str, str]:
    """The labels of a level-1 alert: service, tier, priority, severity, escalation level, Sloth's
    ``sloth_id``/``sloth_service``/``sloth_slo``/``sloth_severity`` (so Sloth's boards and UI read
    our alerts), runbook."""
    labels = {
        c.LABEL_SERVICE: concern.service,
        c.LABEL_TIER: concern.tier,
        c.LABEL_PRIORITY: priority_of(cfg, concern.tier, severity),
        c.LABEL_SEVERITY: severity,
        c.LABEL_ESCALATION_LEVEL: "1",
    }
    labels.update(extra)
    slo = labels.get(c.LABEL_SLOTH_SLO) or SLO_OF_ALERT.get(alertname, c.SLO_AVAILABILITY)
    labels[c.LABEL_SLOTH_ID] = f"{concern.service}-{slo}"
    labels[c.LABEL_SLOTH_SERVICE] = concern.service
    labels[c.LABEL_SLOTH_SLO] = slo
    labels[c.LABEL_SLOTH_SEVERITY] = severity
    labels[c.LABEL_RUNBOOK_URL] = runbook_url(cfg, concern, alertname)
    return labels


def alert_annotations(summary: str, description: str, runbook: str) -> dict[str, str]:
    """The three annotations every generated alert carries."""
    return {
        c.ANNOTATION_SUMMARY: summary,
        c.ANNOTATION_DESCRIPTION: description,
        c.ANNOTATION_RUNBOOK_URL: runbook,
    }
