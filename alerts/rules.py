"""The Prometheus rule file: per service its SLI recordings, SLO metadata and alerts; then feedback and escalation.

Groups are listed in the order they must be evaluated (the promtool tests set
``group_eval_order`` to this order): recordings before the alerts that read them, and
level-1 alerts before the escalation meta-alerts that read their ``ALERTS`` series.
"""

from __future__ import annotations

from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.alerting import feedback_alerts, service_alerts, shard_down_alert
from slaprobe.alerts.escalation import escalation_rules
from slaprobe.alerts.recording import feedback_rules, meta_rules, sli_rules
from slaprobe.alerts.slos import service_slos
from slaprobe.config import Config


def generate_rules(cfg: Config) -> dict[str, Any]:
    """The rule file (``{"groups": [...]}``) for ``cfg``; pure and deterministic."""
    groups: list[dict[str, Any]] = []
    for name, service in cfg.services.items():
        slos = list(service_slos(cfg, name, service))
        if slos:
            groups.append({"name": c.RULE_GROUP_SLI + name, "rules": [r for s in slos for r in sli_rules(s)]})
            groups.append({"name": c.RULE_GROUP_META + name, "rules": [r for s in slos for r in meta_rules(s)]})
        alerts = service_alerts(cfg, name, service, slos)
        if alerts:
            groups.append({"name": c.RULE_GROUP_ALERTS + name, "rules": alerts})
    if cfg.feedback:
        groups.append({"name": c.RULE_GROUP_FEEDBACK_RECORDINGS, "rules": feedback_rules(cfg)})
        groups.append({"name": c.RULE_GROUP_FEEDBACK_ALERTS, "rules": feedback_alerts(cfg)})
    shard_down = shard_down_alert(cfg)
    if shard_down is not None:
        groups.append({"name": c.RULE_GROUP_FLEET, "rules": [shard_down]})
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    escalations = escalation_rules(cfg, {(rule["alert"], rule["labels"][c.LABEL_PRIORITY]) for rule in alerts})
    if escalations:
        groups.append({"name": c.RULE_GROUP_ESCALATION, "rules": escalations})
    return {"groups": groups}


def group_names(rules: dict[str, Any]) -> list[str]:
    """The group names of a rule file, in evaluation order."""
    return [group["name"] for group in rules["groups"]]


def alerting_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alerting rule of a rule file, in order."""
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
