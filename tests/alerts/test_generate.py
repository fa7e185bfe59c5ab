"""The generated files: golden text per test config, determinism, shapes the other parts rely on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from slaprobe import conventions as c
from slaprobe.alerts import (
    ALERTMANAGER_CONFIG_FILE,
    ALERTMANAGER_FILE,
    PROMETHEUS_RULE_FILE,
    RULE_TESTS_FILE,
    RULES_FILE,
    generate_alertmanager,
    generate_rules,
    render_alertmanager_files,
    render_rule_files,
)
from slaprobe.alerts.alerting import burn_windows
from slaprobe.alerts.rules import alerting_rules
from slaprobe.alerts.slos import service_slos
from slaprobe.alerts.yamltext import HEADER
from slaprobe.cli import main
from slaprobe.config import parse_config
from slaprobe.exporter.store import ProbeMeta, ResultStore
from slaprobe.probes.result import ProbeResult
from tests.alerts.conftest import CONFIG_NAMES, CONFIGS, load

FILES = (RULES_FILE, RULE_TESTS_FILE, PROMETHEUS_RULE_FILE, ALERTMANAGER_FILE, ALERTMANAGER_CONFIG_FILE)


def rendered(name: str) -> dict[str, str]:
    cfg = load(name)
    return {**render_rule_files(cfg), **render_alertmanager_files(cfg)}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_generated_files_match_their_golden_files(name: str, golden: Callable[[str, str], None]) -> None:
    files = rendered(name)
    assert sorted(files) == sorted(FILES)
    for file, text in files.items():
        golden(f"{name}/{file}", text)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_generation_is_deterministic_and_every_file_says_it_is_generated(name: str) -> None:
    first, second = rendered(name), rendered(name)
    assert first == second
    for text in first.values():
        assert text.startswith(HEADER)
        assert "do not edit" in text.splitlines()[0]
        yaml.safe_load(text)


def test_every_alert_carries_the_labels_and_annotations_on_call_relies_on() -> None:
    for name in CONFIG_NAMES:
        for rule in alerting_rules(generate_rules(load(name))):
            labels, notes = rule["labels"], rule["annotations"]
            assert {c.LABEL_ESCALATION_LEVEL, c.LABEL_PRIORITY} <= set(labels), rule["alert"]
            if labels[c.LABEL_ESCALATION_LEVEL] == "1":
                assert {c.LABEL_SERVICE, c.LABEL_SEVERITY, c.LABEL_TIER, c.LABEL_RUNBOOK_URL} <= set(labels)
                assert labels[c.LABEL_SEVERITY] in (c.SEVERITY_PAGE, c.SEVERITY_TICKET)
                if rule["alert"] not in (c.ALERT_EXPORTER_ABSENT, c.ALERT_PROBE_DOWN, c.ALERT_SHARD_DOWN):
                    assert "$value" in notes[c.ANNOTATION_DESCRIPTION], rule["alert"]
            assert set(notes) == {c.ANNOTATION_SUMMARY, c.ANNOTATION_DESCRIPTION, c.ANNOTATION_RUNBOOK_URL}


def test_priorities_follow_the_tier_by_urgency_table() -> None:
    rules = alerting_rules(generate_rules(load("tiers")))
    seen = {
        (r["labels"][c.LABEL_SERVICE], r["labels"][c.LABEL_SEVERITY], r["labels"][c.LABEL_PRIORITY])
        for r in rules
        if r["labels"].get(c.LABEL_ESCALATION_LEVEL) == "1"
    }
    assert ("checkout", "page", "P1") in seen
    assert ("checkout", "ticket", "P3") in seen
    assert ("search", "page", "P2") in seen
    assert ("reports", "page", "P3") in seen
    assert ("archive", "ticket", "P4") in seen


def test_recording_rules_use_sloth_names_labels_and_windows() -> None:
    groups = generate_rules(load("tiers"))["groups"]
    records = [r for g in groups for r in g["rules"] if "record" in r and "labels" in r]  # not the escalation clock
    checkout = [r for r in records if r["labels"].get(c.LABEL_SLOTH_ID) == "checkout-availability"]
    names = [r["record"] for r in checkout]
    assert names[:8] == [f"slo:sli_error:ratio_rate{w}" for w in (*c.SLO_RATE_WINDOWS, "30d")]
    assert names[8:] == [
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ]
    period = checkout[7]
    assert period["labels"][c.LABEL_SLOTH_WINDOW] == "30d"
    assert "last_over_time(slaprobe_probe_first_attempt_failures_total{" in period["expr"]
    assert 'slaprobe_probe_runs_total{service="checkout"} offset 30d' in period["expr"]
    assert checkout[9]["expr"] == "vector(0.001)"
    assert checkout[10]["expr"] == "vector(30)"
    slos = {r["labels"][c.LABEL_SLOTH_SLO] for r in records if r["labels"].get(c.LABEL_SERVICE) == "checkout"}
    assert slos == {"availability", "latency", "compliance", "log-availability", "log-latency"}


def test_availability_reads_zero_failures_as_zero_and_latency_selects_the_exported_le_bound() -> None:
    cfg = load("tiers")
    slos = {s.name: s for s in service_slos(cfg, "checkout", cfg.services["checkout"])}
    availability = slos[c.SLO_AVAILABILITY].error_ratio_over("5m")
    assert "or vector(0)" in availability
    latency = slos[c.SLO_LATENCY].error_ratio_over("5m")
    # The bound in the rule is the label the exporter writes for the threshold (300ms).
    store = ResultStore()
    meta = ProbeMeta("checkout", "home", "http", "x", "dc1", 30, 10, cfg.buckets_of(cfg.services["checkout"]), 0.3)
    store.sync([meta])
    store.record(meta.key, ProbeResult(success=True, duration=0.1), now=1.0)
    assert 'le="0.3"' in latency
    assert f'{c.PROBE_DURATION}_bucket{{service="checkout",probe="home",location="dc1",le="0.3"}} 1' in store.render()


@pytest.mark.parametrize(
    ("window", "objective", "pairs"),
    [
        ("30d", 99.9, ["1h/5m 14.4", "6h/30m 6", "1d/2h 3", "3d/6h 1"]),
        ("28d", 99.9, ["1h/5m 13.44", "6h/30m 5.6", "1d/2h 2.8", "3d/6h 0.933333"]),
        ("7d", 99.9, ["14m/1m10s 14.4", "1h24m/7m 6", "5h36m/28m 3", "16h48m/1h24m 1"]),
        ("1d", 99.9, ["2m/1m 14.4", "12m/1m 6", "48m/4m 3", "2h24m/12m 1"]),
        ("30d", 93, ["6h/30m 6", "1d/2h 3", "3d/6h 1"]),
    ],
)
def test_burn_rate_pairs_follow_the_workbook_scaled_and_leave_out_the_impossible_ones(
    window: str, objective: float, pairs: list[str]
) -> None:
    cfg = parse_config(
        f"version: v1\nservices:\n  s:\n    sla: {{window: {window}, availability: {objective}}}\n"
        "    probes: [{name: p, tcp: {address: 'h:1'}}]\n"
    )
    slo = next(service_slos(cfg, "s", cfg.services["s"]))
    assert [f"{w.label} {f:g}" for w, f in burn_windows(slo)] == pairs


def test_routing_has_one_route_per_priority_and_level_and_the_config_receivers_as_written() -> None:
    cfg = load("tiers")
    config = generate_alertmanager(cfg)
    routes = config["route"]["routes"]
    assert routes[0]["receiver"] == c.RECEIVER_INCIDENTS and routes[0]["continue"] is True
    levels = [(r["matchers"], r["receiver"]) for r in routes[1:]]
    assert levels[:3] == [
        (['priority="P1"', 'escalation_level="1"'], "oncall"),
        (['priority="P1"', 'escalation_level="2"'], "team-lead"),
        (['priority="P1"', 'escalation_level="3"'], "duty-manager"),
    ]
    p3 = routes[6]
    assert p3["active_time_intervals"] == ["business-hours"]
    p4 = routes[7]
    assert p4["group_wait"] == "10m"  # level 1 after 10m: its first notification waits
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["duty-manager"]["webhook_configs"] == [
        {"url": "http://pager.example/duty", "send_resolved": False}
    ]
    assert config["route"]["group_by"] == ["service", "alertname"]
    assert config["time_intervals"][0]["name"] == "business-hours"


def test_generate_writes_every_file_and_reports_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["generate", "all", "--config", str(CONFIGS / "tiers.yaml"), "--out", str(out)]) == 0
    assert set(FILES) <= {p.name for p in out.iterdir()}  # with the dashboards
    rule = yaml.safe_load((out / PROMETHEUS_RULE_FILE).read_text())
    assert rule["metadata"]["namespace"] == "monitoring"
    out2 = tmp_path / "rules-only"
    args = ["generate", "rules", "--config", str(CONFIGS / "tiers.yaml"), "--out", str(out2)]
    assert main([*args, "--namespace", "obs", "--manifest-label", "release=kps"]) == 0
    assert sorted(p.name for p in out2.iterdir()) == sorted((RULES_FILE, RULE_TESTS_FILE, PROMETHEUS_RULE_FILE))
    rule = yaml.safe_load((out2 / PROMETHEUS_RULE_FILE).read_text())
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["namespace"] == "obs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nalerting: {probe_down_runs: 0}\n")
    capsys.readouterr()
    assert main(["generate", "all", "--config", str(bad), "--out", str(out)]) == 1
    assert "alerting.probe_down_runs" in capsys.readouterr().err
    assert main([*args, "--manifest-label", "nope"]) == 1


def test_the_alerting_example_generates_files_promtool_and_amtool_accept(tmp_path: Path) -> None:
    from tests.alerts.conftest import run, tool

    example = Path(__file__).resolve().parents[2] / "examples" / "alerting.yaml"
    assert main(["generate", "rules", "--config", str(example), "--out", str(tmp_path)]) == 0
    assert main(["generate", "alertmanager", "--config", str(example), "--out", str(tmp_path)]) == 0
    checked = run([tool("promtool"), "check", "rules", str(tmp_path / RULES_FILE)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = run([tool("amtool"), "check-config", str(tmp_path / ALERTMANAGER_FILE)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_with_more_services_than_the_sample_the_tests_load_only_the_sampled_groups() -> None:
    from slaprobe.alerts import SAMPLE_RULES_FILE

    text = (CONFIGS / "tiers.yaml").read_text()
    extra = "\n".join(
        f"  extra{i}:\n    tier: critical\n    probes:\n      - {{name: p, tcp: {{address: 'h{i}:1'}}}}"
        for i in range(3)
    )
    cfg = parse_config(text.replace("feedback:", extra + "\nfeedback:", 1))
    files = render_rule_files(cfg)
    assert SAMPLE_RULES_FILE in files
    tests = yaml.safe_load(files[RULE_TESTS_FILE])
    assert tests["rule_files"] == [SAMPLE_RULES_FILE]
    full = {g["name"]: g for g in yaml.safe_load(files[RULES_FILE])["groups"]}
    sample = yaml.safe_load(files[SAMPLE_RULES_FILE])["groups"]
    assert [g["name"] for g in sample] == tests["group_eval_order"]
    assert all(g == full[g["name"]] for g in sample)
    assert not any("extra" in g["name"] for g in sample)
    assert len(sample) == 4 * 3 + 4  # 4 services x 3 groups; feedback (2), escalation, fleet
