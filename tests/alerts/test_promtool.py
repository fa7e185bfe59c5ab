"""promtool accepts the generated rules, and the generated rule tests pass and pin the escalation timing."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from slaprobe import conventions as c
from slaprobe.alerts import RULE_TESTS_FILE, RULES_FILE, generate_rule_tests, generate_rules
from slaprobe.alerts.ruletests import groups_read
from slaprobe.alerts.slos import error_ratio
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.sli import availability
from tests.alerts.conftest import CONFIG_NAMES, load, run, tool


def write(directory: Path, rules: dict[str, Any], tests: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RULES_FILE).write_text(dump_yaml(rules))
    (directory / RULE_TESTS_FILE).write_text(dump_yaml(tests))
    return directory


def case_runs(name: str, root: Path) -> list[Path]:
    """One directory per generated case of config ``name``: the case, and the groups it reads."""
    cfg = load(name)
    rules = generate_rules(cfg)
    tests = generate_rule_tests(cfg, rules=rules)
    runs = []
    for number, case in enumerate(tests["tests"]):
        groups = groups_read(rules, case)
        runs.append(
            write(
                root / f"{name}-{number:02d}",
                {"groups": [group for group in rules["groups"] if group["name"] in groups]},
                {**tests, "group_eval_order": groups, "tests": [case]},
            )
        )
    return runs


@pytest.fixture(scope="module")
def promtool_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """``promtool test rules`` of every generated case of every test config, in processes side by side.

    promtool evaluates every group of its rule files at every step, and one file's cases in
    turn on one core: each case runs on its own against the groups it reads
    (``groups_read``), at most one promtool per core at a time. A config passes when every
    one of its cases does.
    """
    promtool = tool("promtool")
    root = tmp_path_factory.mktemp("promtool")
    jobs = {name: case_runs(name, root) for name in CONFIG_NAMES}
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        futures = {
            name: [pool.submit(run, [promtool, "test", "rules", RULE_TESTS_FILE], d) for d in dirs]
            for name, dirs in jobs.items()
        }
        results = {name: [future.result() for future in runs] for name, runs in futures.items()}
    return {
        name: subprocess.CompletedProcess(
            [promtool, "test", "rules", RULE_TESTS_FILE],
            max((r.returncode for r in runs), default=0),
            "".join(r.stdout for r in runs),
            "".join(r.stderr for r in runs),
        )
        for name, runs in results.items()
    }


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_promtool_checks_the_generated_rules(name: str, tmp_path: Path) -> None:
    promtool = tool("promtool")
    cfg = load(name)
    rules = generate_rules(cfg)
    write(tmp_path, rules, generate_rule_tests(cfg, rules=rules))
    result = run([promtool, "check", "rules", RULES_FILE], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_the_generated_rule_tests_pass(
    name: str, promtool_results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = promtool_results[name]
    assert result.returncode == 0, result.stdout + result.stderr


def escalation_tests(priority: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tiers config's escalation rules and their tests of one priority.

    These tests feed synthetic ALERTS series, so the escalation group is all they need; the
    other groups would only make promtool slower.
    """
    cfg = load("tiers")
    rules = generate_rules(cfg)
    tests = generate_rule_tests(cfg, rules=rules)
    tests["tests"] = [t for t in tests["tests"] if t["name"].startswith(f"{priority}: ")]
    assert len(tests["tests"]) == 7
    rules["groups"] = [g for g in rules["groups"] if g["name"] == "slaprobe-escalation"]
    tests["group_eval_order"] = ["slaprobe-escalation"]
    return rules, tests


def escalation_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return next(g for g in rules["groups"] if g["name"] == "slaprobe-escalation")["rules"]


def failing_tests(tmp_path: Path, rules: dict[str, Any], tests: dict[str, Any]) -> str:
    promtool = tool("promtool")
    result = run([promtool, "test", "rules", RULE_TESTS_FILE], write(tmp_path, rules, tests))
    assert result.returncode != 0, "the generated tests did not notice the change"
    return result.stdout + result.stderr


def test_the_unchanged_escalation_tests_pass(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    result = run([tool("promtool"), "test", "rules", RULE_TESTS_FILE], write(tmp_path, rules, tests))
    assert result.returncode == 0, result.stdout


def test_level_2_one_minute_late_fails_the_tests(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        if rule.get("labels") == {"priority": "P1", "escalation_level": "2"}:
            rule["expr"] = rule["expr"].replace(">= 900", ">= 960")
    output = failing_tests(tmp_path, rules, tests)
    assert "time: 15m" in output


def test_level_2_one_minute_early_fails_the_tests(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        if rule.get("labels") == {"priority": "P1", "escalation_level": "2"}:
            rule["expr"] = rule["expr"].replace(">= 900", ">= 840")
    output = failing_tests(tmp_path, rules, tests)
    assert "time: 14m" in output


def test_a_shorter_bridge_fails_the_flap_test(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        rule["expr"] = rule["expr"].replace("[5m]", "[3m]")
    output = failing_tests(tmp_path, rules, tests)
    assert "shorter than the bridge pauses the level-2 clock" in output


def test_no_bridge_at_all_fails_the_flap_test(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        rule["expr"] = rule["expr"].replace("max_over_time(", "last_over_time(").replace("[5m]", "[1m]")
    output = failing_tests(tmp_path, rules, tests)
    assert "shorter than the bridge pauses the level-2 clock" in output


def test_a_clock_that_runs_through_gaps_fails_the_flap_test(tmp_path: Path) -> None:
    """Counting a short gap as firing time (the clock keeps running) escalates a flapping alert too early."""
    rules, tests = escalation_tests("P1")
    clock = escalation_rules(rules)[0]
    clock["expr"] = clock["expr"].replace(
        "  slaprobe:escalation_clock:seconds\n  and", "  slaprobe:escalation_clock:seconds + 60\n  and"
    )
    output = failing_tests(tmp_path, rules, tests)
    assert "shorter than the bridge pauses the level-2 clock" in output


def test_a_level_that_outlives_level_1_fails_the_resolution_tests(tmp_path: Path) -> None:
    """The old rule: level N on the bridged alert with ``for:``, true for a bridge after level 1 resolved."""
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        if "alert" in rule:
            rule["expr"] = re.sub(
                r"and ignoring \(alertstate\) (ALERTS\{[^}]*\})",
                r"and ignoring (alertstate) max_over_time(\1[5m])",
                rule["expr"],
            )
    output = failing_tests(tmp_path, rules, tests)
    assert "once SLAErrorBudgetBurn resolves, every level resolves and none fires later" in output


def test_ignoring_acknowledgements_fails_the_ack_test(tmp_path: Path) -> None:
    rules, tests = escalation_tests("P1")
    for rule in escalation_rules(rules):
        rule["expr"] = rule["expr"].split("unless")[0]
    output = failing_tests(tmp_path, rules, tests)
    assert "acknowledging" in output


def test_the_tests_are_valid_for_a_rule_file_elsewhere(tmp_path: Path) -> None:
    """``rule_file`` is written into the test file as given, for layouts with rules in another folder."""
    cfg = load("minimal")
    tests = generate_rule_tests(copy.deepcopy(cfg), rule_file="../rules/slaprobe-rules.yaml")
    assert tests["rule_files"] == ["../rules/slaprobe-rules.yaml"]
    assert yaml.safe_load(dump_yaml(tests)) == tests


def test_a_restart_at_the_window_edge_counts_the_new_process_and_keeps_the_ratio_within_0_and_1(
    tmp_path: Path,
) -> None:
    """The exporter restarts between the sample at the window's start and the next one, without a
    stale marker: ``resets()`` sees no drop inside the window, and the last value minus the one at
    the start subtracted the old process's count (-140 runs). The new process ran 20 times (two
    a minute from its start), 10 of them failed: 20, 10 and an error ratio of 0.5."""
    promtool = tool("promtool")
    scope = 'service="shop"'
    labels = 'service="shop", probe="home", location="dc1", instance="slaprobe:9799", job="slaprobe"'
    sli = availability()
    runs = sli.total.count("10m", (scope,))
    assert sli.bad is not None
    failures = sli.bad.count("10m", (scope,))
    ratio = error_ratio(sli, lambda events: events.count("10m", (scope,)))
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # t=0..10m the old process (140 -> 160 runs), from t=11m the new one; the
                    # window [10m30s, 20m30s] holds only the new one, its start reads 160.
                    {"series": f"{c.PROBE_RUNS}{{{labels}}}", "values": "140+2x10 2+2x9"},
                    {
                        "series": f'{c.PROBE_FIRST_ATTEMPT_FAILURES}{{{labels}, reason="connect"}}',
                        "values": "_x11 1+1x9",
                    },
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "20m30s", "exp_samples": [{"labels": label, "value": n}]}
                    for expr, label, n in [
                        (runs, "{}", 20),
                        (failures, "{}", 10),
                        (ratio, "{}", 0.5),
                    ]
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run([promtool, "test", "rules", "tests.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
