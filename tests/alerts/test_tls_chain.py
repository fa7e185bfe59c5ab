"""The TLS-expiry alert counts days to the earliest certificate of the chain, not the leaf's alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts import generate_rules
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import parse_config
from tests.alerts.conftest import run, tool

CONFIG = """version: v1
escalation:
  P1: [{after: 0m, notify: oncall}]
  P3: [{after: 0m, notify: oncall}]
receivers: {oncall: {}}
services:
  shop:
    tier: critical
    probes:
      - {name: home, http: {url: "https://127.0.0.1:8443/"}}
"""
DAY = 86400
PROBE = {c.LABEL_SERVICE: "shop", c.LABEL_PROBE: "home", c.LABEL_LOCATION: "dc1"}


def tls_rules() -> list[dict[str, Any]]:
    rules = generate_rules(parse_config(CONFIG))
    found = [
        {"alert": rule["alert"], "expr": rule["expr"], "labels": {c.LABEL_SEVERITY: rule["labels"][c.LABEL_SEVERITY]}}
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == c.ALERT_TLS_EXPIRING
    ]
    assert found, "no TLS-expiry rule generated"
    return found


def promtool_case(tmp_path: Path, gauges: dict[str, float], expected: list[str]) -> None:
    """promtool at 1m, with expiry gauges ``days`` after time 0: the severities that fire."""
    labels = ",".join(f'{k}="{v}"' for k, v in PROBE.items())
    (tmp_path / "rules.yaml").write_text(dump_yaml({"groups": [{"name": "tls", "rules": tls_rules()}]}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{metric}{{{labels}}}", "values": f"{int(days * DAY)}x5"}
                    for metric, days in gauges.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": c.ALERT_TLS_EXPIRING,
                        "exp_alerts": [{"exp_labels": {**PROBE, c.LABEL_SEVERITY: s}} for s in expected],
                    }
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(dump_yaml(tests))
    result = run([tool("promtool"), "test", "rules", "tests.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_intermediate_expiring_in_2_days_pages_although_the_leaf_has_20(tmp_path: Path) -> None:
    promtool_case(tmp_path, {c.TLS_CERT_EXPIRY: 20, c.TLS_CHAIN_EARLIEST_EXPIRY: 2}, [c.SEVERITY_PAGE])


def test_a_chain_whose_earliest_certificate_is_the_20_day_leaf_opens_a_ticket(tmp_path: Path) -> None:
    promtool_case(tmp_path, {c.TLS_CERT_EXPIRY: 20, c.TLS_CHAIN_EARLIEST_EXPIRY: 20}, [c.SEVERITY_TICKET])


def test_without_a_verified_chain_the_leaf_counts(tmp_path: Path) -> None:
    promtool_case(tmp_path, {c.TLS_CERT_EXPIRY: 2}, [c.SEVERITY_PAGE])
    promtool_case(tmp_path, {c.TLS_CERT_EXPIRY: 60}, [])
