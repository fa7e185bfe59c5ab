"""Sloth's Grafana boards (grafana.com 14348 "SLO / Detail", 14643 "High level") read our rules.

Their panels select alerts by ``sloth_service``, ``sloth_slo`` and ``sloth_severity`` (page or
ticket) and read ``slo:sli_error:ratio_rate*``, ``slo:period_error_budget_remaining:ratio`` and
``sloth_slo_info``; these tests run those queries against our rules in promtool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slaprobe import conventions as c
from slaprobe.alerts import RULES_FILE, generate_rules
from slaprobe.alerts.ruletests import group_names
from slaprobe.alerts.yamltext import dump_yaml
from tests.alerts.conftest import load, run, tool

SERIES = 'service="web", probe="home", location="default", instance="slaprobe:9799", job="slaprobe"'
# The queries of Sloth's boards, with their variables set to the minimal config's one SLO.
SLOTH = 'sloth_service="web", sloth_slo="availability"'
PAGE_ALERTS = f'count(ALERTS{{{SLOTH}, sloth_severity="page", alertstate="firing"}})'
TICKET_ALERTS = f'count(ALERTS{{{SLOTH}, sloth_severity="ticket", alertstate="firing"}})'
BUDGET = f"slo:period_error_budget_remaining:ratio{{{SLOTH}}}"
INFO = f"count(sloth_slo_info{{{SLOTH}}})"


def test_sloths_boards_show_our_outage_as_alerting(tmp_path: Path) -> None:
    cfg = load("minimal")
    rules = generate_rules(cfg)
    (tmp_path / RULES_FILE).write_text(dump_yaml(rules))
    outage = {
        "interval": "1m",
        "input_series": [
            {"series": f"{c.PROBE_RUNS}{{{SERIES}}}", "values": "0 1000000+2x19"},  # with history
            {"series": f'{c.PROBE_FIRST_ATTEMPT_FAILURES}{{{SERIES}, reason="connect"}}', "values": "0 1000000+2x19"},
            {"series": f"{c.PROBE_SUCCESS}{{{SERIES}}}", "values": "0x20"},
            {"series": f"{c.PROBE_LAST_RUN}{{{SERIES}}}", "values": "0+60x20"},
        ],
        "promql_expr_test": [
            {"expr": PAGE_ALERTS, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 3}]},
            {"expr": TICKET_ALERTS, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 2}]},
            {"expr": INFO, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 1}]},
        ],
    }
    tests: dict[str, Any] = {
        "rule_files": [RULES_FILE],
        "evaluation_interval": "1m",
        "group_eval_order": group_names(rules),
    }
    tests["tests"] = [outage]
    (tmp_path / "sloth.test.yaml").write_text(yaml.safe_dump(tests))
    result = run([tool("promtool"), "test", "rules", "sloth.test.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_names_its_sloth_slo_and_severity() -> None:
    rules = generate_rules(load("tiers"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            labels = rule.get("labels", {})
            if "alert" in rule and labels.get(c.LABEL_ESCALATION_LEVEL) == "1":
                assert labels[c.LABEL_SLOTH_SEVERITY] == labels[c.LABEL_SEVERITY], rule["alert"]
                assert labels[c.LABEL_SLOTH_ID] == f"{labels[c.LABEL_SLOTH_SERVICE]}-{labels[c.LABEL_SLOTH_SLO]}"
