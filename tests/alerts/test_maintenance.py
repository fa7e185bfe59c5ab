"""Maintenance windows mute a service's alerts: recurring ones in Alertmanager, every one in the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts import generate_alertmanager, generate_rule_tests, generate_rules
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config, parse_config
from tests.alerts.conftest import run, tool
from tests.support.promtool import case_directories, run_cases

CONFIG = """version: v1
global:
  maintenance:
    - {name: weekly, time_intervals: [{weekdays: [sunday], times: [{start_time: "02:00", end_time: "04:00"}]}]}
time_intervals:
  nights: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
escalation:
  P1: [{after: 0m, notify: oncall}, {after: 15m, notify: lead}]
receivers: {oncall: {}, lead: {}}
services:
  shop:
    tier: critical
    maintenance:
      - {name: upgrade, start: 2026-12-04T02:00:00Z, end: 2026-12-04T04:00:00Z}
      - {name: nightly, time_intervals: [nights]}
    probes:
      - {name: home, http: {url: "http://127.0.0.1:1/"}}
  other:
    tier: critical
    probes:
      - {name: home, http: {url: "http://127.0.0.1:1/"}}
"""


def config(text: str = CONFIG) -> Config:
    return parse_config(text)


def test_recurring_windows_become_time_intervals_that_mute_the_routes_of_their_service() -> None:
    document = generate_alertmanager(config())
    intervals = {entry["name"]: entry["time_intervals"] for entry in document["time_intervals"]}
    nights = [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}]
    assert intervals["slaprobe-maintenance-service-shop-nightly"] == nights  # the name replaced by its entries
    assert "slaprobe-maintenance-service-shop-upgrade" not in intervals  # one-off: muted by the rules
    mutes = {
        (tuple(route["matchers"][:-2]), route["receiver"]): route.get("mute_time_intervals")
        for route in document["route"]["routes"]
    }
    shop = ["slaprobe-maintenance-global-weekly", "slaprobe-maintenance-service-shop-nightly"]
    assert mutes == {
        (('service="shop"',), "oncall"): shop,
        (('service="shop"',), "lead"): shop,
        ((), "oncall"): ["slaprobe-maintenance-global-weekly"],
        ((), "lead"): ["slaprobe-maintenance-global-weekly"],
    }


def test_without_windows_the_routes_carry_no_mute_intervals() -> None:
    plain = "version: v1\nescalation:\n  P1: [{after: 0m, notify: oncall}]\nreceivers: {oncall: {}}\n"
    document = generate_alertmanager(config(plain + "services:\n  shop: {tier: critical}\n"))
    assert all("mute_time_intervals" not in route for route in document["route"]["routes"])


def test_amtool_accepts_the_routing_with_maintenance_windows_and_routes_each_service(tmp_path: Path) -> None:
    amtool = tool("amtool")
    path = tmp_path / "alertmanager.yaml"
    path.write_text(dump_yaml(generate_alertmanager(config())))
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("shop", "other"):
        labels = ["priority=P1", "escalation_level=2", f"service={service}", "alertname=SLAProbeDown"]
        routed = run([amtool, "config", "routes", "test", f"--config.file={path}", "--verify.receivers=lead", *labels])
        assert routed.returncode == 0, routed.stdout + routed.stderr


def rule_named(rules: dict[str, Any], alert: str, service: str) -> dict[str, Any]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert and rule["labels"].get(c.LABEL_SERVICE) == service:
                return dict(rule)
    raise AssertionError(f"no {alert} rule for {service}")


def test_a_probe_down_inside_a_window_does_not_alert_and_does_once_the_window_closes(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rule = rule_named(generate_rules(config()), c.ALERT_PROBE_DOWN, "shop")
    assert "unless on (service)" in rule["expr"]
    # The expression as generated; labels and annotations (checked elsewhere) left out of the comparison.
    bare = {"alert": rule["alert"], "expr": rule["expr"], "for": rule["for"]}
    (tmp_path / "rules.yaml").write_text(dump_yaml({"groups": [{"name": "maintenance", "rules": [bare]}]}))
    down = {c.LABEL_SERVICE: "shop", c.LABEL_PROBE: "home", c.LABEL_LOCATION: "dc1"}
    series = ",".join(f'{k}="{v}"' for k, v in down.items())
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{c.PROBE_SUCCESS}{{{series}}}", "values": "0x20"},
                    {"series": f'{c.MAINTENANCE_ACTIVE}{{service="shop"}}', "values": "1x5 0x15"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": c.ALERT_PROBE_DOWN, "exp_alerts": []},
                    {"eval_time": "10m", "alertname": c.ALERT_PROBE_DOWN, "exp_alerts": [{"exp_labels": down}]},
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(dump_yaml(tests))
    result = run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_every_generated_rule_and_test_with_maintenance_windows(tmp_path: Path) -> None:
    promtool = tool("promtool")
    cfg = config()
    (tmp_path / "slaprobe-rules.yaml").write_text(dump_yaml(generate_rules(cfg)))
    rules = generate_rules(cfg)
    checked = run([promtool, "check", "rules", "slaprobe-rules.yaml"], cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_cases(promtool, case_directories(rules, generate_rule_tests(cfg, rules=rules), tmp_path / "cases"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
