"""``quorum: N``: a probe pages when N locations fail it at once (fewer: a ticket); a stale prober is no data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.alerts import generate_alertmanager, generate_rule_tests, generate_rules
from slaprobe.alerts.alerting import name_locations
from slaprobe.alerts.ruletests import expand
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config, parse_config
from slaprobe.configerror import ConfigError
from tests.alerts.conftest import run, tool
from tests.support.promtool import case_directories, run_cases

CONFIG = """version: v1
services:
  shop:
    quorum: {quorum}
    probes:
      - {{name: home, interval: 1m, http: {{url: "http://127.0.0.1:1/"}}}}
"""
LOCATIONS = ("dc-a", "dc-b", "dc-c")
MINUTES = 30


def config(quorum: int = 2) -> Config:
    return parse_config(CONFIG.format(quorum=quorum))


def alert_rule(rules: dict[str, Any], alert: str, severity: str | None = None) -> dict[str, Any]:
    return next(
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == alert and severity in (None, rule["labels"][c.LABEL_SEVERITY])
    )


def probe_series(location: str) -> str:
    return f'{{service="shop", probe="home", location="{location}"}}'


def healthy_runs() -> str:
    """A run every minute (the exporter's last-run timestamp moves on)."""
    return f"60+60x{MINUTES}"


def inputs(success: dict[str, str], last_run: dict[str, str] | None = None) -> list[dict[str, str]]:
    last_run = last_run or {}
    series = []
    for location in LOCATIONS:
        series.append({"series": c.PROBE_SUCCESS + probe_series(location), "values": success[location]})
        series.append(
            {"series": c.PROBE_LAST_RUN + probe_series(location), "values": last_run.get(location, healthy_runs())}
        )
    return series


UP, DOWN = f"1x{MINUTES}", f"0x{MINUTES}"


def test_the_default_quorum_of_one_keeps_the_per_location_probe_down_alert() -> None:
    rule = alert_rule(generate_rules(config(1)), c.ALERT_PROBE_DOWN)
    assert rule["expr"] == 'max by (service, probe, location) (slaprobe_probe_success{service="shop"}) == 0'


@pytest.mark.parametrize("quorum", [0, -1])
def test_check_rejects_a_quorum_below_one(quorum: int) -> None:
    with pytest.raises(ConfigError, match="quorum"):
        config(quorum)


def test_quorum_of_two_of_three_locations_pages_on_two_and_treats_a_stale_prober_as_no_data(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rules = generate_rules(config())
    down = alert_rule(rules, c.ALERT_PROBE_DOWN, c.SEVERITY_PAGE)
    one_down = alert_rule(rules, c.ALERT_PROBE_DOWN, c.SEVERITY_TICKET)
    no_data = alert_rule(rules, c.ALERT_PROBE_NO_DATA)
    group = {"name": "quorum", "rules": [down, one_down, no_data]}
    (tmp_path / "rules.yaml").write_text(dump_yaml({"groups": [group]}))
    stale_c = {
        "exp_labels": {**no_data["labels"], c.LABEL_PROBE: "home", c.LABEL_LOCATION: "dc-c"},
        "exp_annotations": {
            **no_data["annotations"],
            c.ANNOTATION_SUMMARY: "shop: probe home reports no fresh results",
            c.ANNOTATION_DESCRIPTION: "The last run of probe home of shop at dc-c finished 24m 0s ago; it runs "
            "every 1m. The prober there is down: dc-c counts as no data, not as a failure, in the quorum of 2 "
            "locations.",
        },
    }

    def case(success: dict[str, str], checks: list[tuple[str, str, list[dict[str, Any]]]], **extra: Any) -> Any:
        return {
            "interval": "1m",
            "input_series": inputs(success, **extra),
            "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks],
        }

    def probe_down(rule: dict[str, Any], failing: str, reach: str) -> dict[str, Any]:
        count = len(failing.split(", "))
        return {
            "exp_labels": {**rule["labels"], c.LABEL_PROBE: "home"},
            "exp_annotations": {
                **rule["annotations"],
                c.ANNOTATION_SUMMARY: f"shop: probe home is down at {count} of its locations",
                c.ANNOTATION_DESCRIPTION: f"Probe home of shop failed its last 3 runs (one every 1m) at {count} of "
                f"its locations at once, {reach}: {failing}.",
            },
        }

    page = probe_down(down, "dc-a, dc-c", "at least the quorum of 2")
    ticket = probe_down(one_down, "dc-a", "fewer than the quorum of 2 that pages")
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            # One location of three fails: a probe-down ticket, no page, no no-data ticket.
            case(
                {"dc-a": DOWN, "dc-b": UP, "dc-c": UP},
                [("20m", c.ALERT_PROBE_DOWN, [ticket]), ("20m", c.ALERT_PROBE_NO_DATA, [])],
            ),
            # Two fail at once: a page naming both, once they failed 3 runs in a row.
            case(
                {"dc-a": DOWN, "dc-b": UP, "dc-c": DOWN},
                [("1m", c.ALERT_PROBE_DOWN, []), ("5m", c.ALERT_PROBE_DOWN, [page])],
            ),
            # dc-c's prober stopped at 1m, its last run failed; dc-a fails from 15m: no page, a no-data ticket.
            case(
                {"dc-a": f"1x14 0x{MINUTES - 14}", "dc-b": UP, "dc-c": DOWN},
                [
                    ("10m", c.ALERT_PROBE_NO_DATA, []),
                    ("25m", c.ALERT_PROBE_DOWN, [ticket]),
                    ("25m", c.ALERT_PROBE_NO_DATA, [stale_c]),
                ],
                last_run={"dc-c": f"60x{MINUTES}"},
            ),
            # dc-c's prober vanished at 1m (no longer scraped): no page, a no-data ticket still.
            case(
                {"dc-a": f"1x14 0x{MINUTES - 14}", "dc-b": UP, "dc-c": "0 0 stale"},
                [("25m", c.ALERT_PROBE_DOWN, [ticket]), ("25m", c.ALERT_PROBE_NO_DATA, [stale_c])],
                last_run={"dc-c": "0 60 stale"},
            ),
        ],
    }
    (tmp_path / "tests.yaml").write_text(dump_yaml(tests))
    checked = run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_generated_rule_tests_of_a_quorum_service_pass_with_probes_of_several_intervals(tmp_path: Path) -> None:
    promtool = tool("promtool")
    cfg = parse_config(
        """version: v1
escalation:
  P2: [{after: 0m, notify: oncall}, {after: 15m, notify: lead}]
receivers: {oncall: {}, lead: {}}
services:
  shop:
    tier: high
    quorum: 2
    probes:
      - {name: home, http: {url: "http://127.0.0.1:1/"}}
      - {name: api, interval: 1m, http: {url: "http://127.0.0.1:1/"}}
"""
    )
    rules = generate_rules(cfg)
    level_1 = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == c.ALERT_PROBE_DOWN and r["labels"][c.LABEL_ESCALATION_LEVEL] == "1"
    ]
    assert {(r["labels"][c.LABEL_PROBE], r["labels"][c.LABEL_SEVERITY]) for r in level_1} == {
        (probe, severity) for probe in ("home", "api") for severity in (c.SEVERITY_PAGE, c.SEVERITY_TICKET)
    }
    tested = run_cases(promtool, case_directories(rules, generate_rule_tests(cfg, rules=rules), tmp_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr


TWO_SERVICES = """version: v1
services:
  shop:
    quorum: 2
    probes:
      - {name: home, http: {url: "http://127.0.0.1:1/"}}
  plain:
    probes:
      - {name: home, http: {url: "http://127.0.0.1:2/"}}
"""


def matches(matcher: str, labels: dict[str, str]) -> bool:
    """Alertmanager's matcher semantics for the forms the generator writes: =, !=, =~, !~ on a quoted value."""
    found = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', matcher)
    assert found, matcher
    name, op, value = found.groups()
    actual = labels.get(name, "")
    if op in ("=~", "!~"):
        hit = re.fullmatch(value, actual) is not None
        return hit if op == "=~" else not hit
    return (actual == value) if op == "=" else (actual != value)


def mutes_slo_alerts(document: dict[str, Any], source: dict[str, str]) -> bool:
    slo = {c.LABEL_ALERTNAME: c.SLO_ALERTS[0], c.LABEL_SERVICE: source[c.LABEL_SERVICE]}
    return any(
        all(matches(m, source) for m in rule["source_matchers"])
        and all(matches(m, slo) for m in rule["target_matchers"])
        for rule in document["inhibit_rules"]
    )


def test_one_locations_silent_prober_does_not_mute_the_slo_alerts_of_a_quorum_service(tmp_path: Path) -> None:
    document = generate_alertmanager(parse_config(TWO_SERVICES))
    no_data = c.ALERT_PROBE_NO_DATA
    assert not mutes_slo_alerts(document, {c.LABEL_ALERTNAME: no_data, c.LABEL_SERVICE: "shop", "location": "dc-a"})
    assert mutes_slo_alerts(document, {c.LABEL_ALERTNAME: no_data, c.LABEL_SERVICE: "plain"})
    assert mutes_slo_alerts(document, {c.LABEL_ALERTNAME: c.ALERT_EXPORTER_ABSENT, c.LABEL_SERVICE: "shop"})
    path = tmp_path / "alertmanager.yaml"
    path.write_text(dump_yaml(document))
    result = run([tool("amtool"), "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("quorum", ['"0%"', '"150%"', "half", "true"])
def test_check_rejects_a_quorum_that_is_neither_a_count_nor_a_share_up_to_100_percent(quorum: str) -> None:
    with pytest.raises(ConfigError, match="quorum"):
        parse_config(CONFIG.format(quorum=quorum))


def promtool_test(tmp_path: Path, rules: dict[str, Any], tests: list[dict[str, Any]]) -> None:
    """Run ``tests`` against ``rules`` (every group, in the generated order) with promtool."""
    (tmp_path / "rules.yaml").write_text(dump_yaml(rules))
    order = [group["name"] for group in rules["groups"]]
    document = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "group_eval_order": order, "tests": tests}
    (tmp_path / "tests.yaml").write_text(dump_yaml(document))
    tested = run([tool("promtool"), "test", "rules", "tests.yaml"], cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def fired(
    rules: dict[str, Any], alert: str, severity: str, at: str, labels: dict[str, str], value: float, failing: str = ""
) -> dict[str, Any]:
    """An alert_rule_test of one alert of ``rules`` with ``labels``, its annotations filled in as Prometheus does."""
    rule = alert_rule(rules, alert, severity)
    full = {**rule["labels"], **labels}
    named = {k: name_locations(v, failing.split(", ")) for k, v in rule["annotations"].items()}
    notes = {k: expand(v, {c.LABEL_ALERTNAME: alert, **full}, value) for k, v in named.items()}
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": full, "exp_annotations": notes}]}


def test_a_quorum_share_pages_when_that_share_of_the_reporting_locations_fails(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG.format(quorum='"60%"'))
    assert cfg.services["shop"].quorum_share == 0.6
    rules = generate_rules(cfg)
    group = {"name": "quorum", "rules": [r for r in alert_rule_list(rules) if r["alert"] == c.ALERT_PROBE_DOWN]}
    home = {c.LABEL_PROBE: "home"}

    def case(success: dict[str, str], at: str, severity: str, share: float, failing: str, **extra: Any) -> Any:
        test = fired(rules, c.ALERT_PROBE_DOWN, severity, at, home, share, failing)
        return {"interval": "1m", "input_series": inputs(success, **extra), "alert_rule_test": [test]}

    promtool_test(
        tmp_path,
        {"groups": [group]},
        [
            # 1 of 3 reporting locations (33%): a ticket; 2 of 3 (67%): a page.
            case({"dc-a": DOWN, "dc-b": UP, "dc-c": UP}, "10m", c.SEVERITY_TICKET, 1 / 3, "dc-a"),
            case({"dc-a": DOWN, "dc-b": UP, "dc-c": DOWN}, "10m", c.SEVERITY_PAGE, 2 / 3, "dc-a, dc-c"),
            # dc-c's prober stopped (its last run failed): 1 failing of the 2 reporting is 50%, a ticket.
            case(
                {"dc-a": DOWN, "dc-b": UP, "dc-c": DOWN},
                "25m",
                c.SEVERITY_TICKET,
                1 / 2,
                "dc-a",
                last_run={"dc-c": f"60x{MINUTES}"},
            ),
        ],
    )


def alert_rule_list(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_fast_burn_rate_page_of_a_quorum_service_waits_for_the_quorum_of_locations(tmp_path: Path) -> None:
    rules = generate_rules(config(2))
    fast = {c.LABEL_BURNRATE: "1h/5m", c.LABEL_SLOTH_SLO: c.SLO_AVAILABILITY}
    page = [
        r
        for r in alert_rule_list(rules)
        if r["alert"] == c.ALERT_BURN_RATE and all(r["labels"].get(k) == v for k, v in fast.items())
    ]
    assert len(page) == 1 and page[0]["labels"][c.LABEL_SEVERITY] == c.SEVERITY_PAGE

    def case(failing: tuple[str, ...], expected: list[dict[str, Any]]) -> dict[str, Any]:
        series = []
        for location in LOCATIONS:
            where = probe_series(location)
            series.append({"series": c.PROBE_RUNS + where, "values": f"0+1x{MINUTES}"})
            bad = f"0+1x{MINUTES}" if location in failing else f"0x{MINUTES}"
            series.append(
                {"series": c.PROBE_FIRST_ATTEMPT_FAILURES + where[:-1] + ', reason="connect"}', "values": bad}
            )
        test = {"eval_time": "10m", "alertname": c.ALERT_BURN_RATE, "exp_alerts": expected}
        return {"interval": "1m", "input_series": series, "alert_rule_test": [test]}

    window = {c.LABEL_SLOTH_WINDOW: "1h"}
    wanted = fired(rules, c.ALERT_BURN_RATE, c.SEVERITY_PAGE, "10m", window, 2 / 3)["exp_alerts"]
    slis = [g for g in rules["groups"] if g["name"].startswith((c.RULE_GROUP_SLI, c.RULE_GROUP_META))]
    group = {"name": "burn", "rules": page}
    promtool_test(
        tmp_path,
        {"groups": [*slis, group]},
        [case(("dc-a",), []), case(("dc-a", "dc-b"), wanted)],
    )


def home_at(location: str) -> dict[str, str]:
    return {c.LABEL_PROBE: "home", c.LABEL_LOCATION: location}


def test_a_probe_that_moves_to_another_shard_stays_down_and_keeps_its_data(tmp_path: Path) -> None:
    """A re-shard: the probe's series end on one instance and go on on another."""
    for quorum in (1, 2):
        rules = generate_rules(config(quorum))
        picked = [r for r in alert_rule_list(rules) if r["alert"] in (c.ALERT_PROBE_DOWN, c.ALERT_PROBE_NO_DATA)]
        series = []
        for location in LOCATIONS:
            for instance, values in (("a", "{0}x9 stale"), ("b", "_x10 {0}x20")):
                where = probe_series(location)[:-1] + f', instance="{instance}"}}'
                down = "0" if location in ("dc-a", "dc-b") else "1"
                series.append({"series": c.PROBE_SUCCESS + where, "values": values.format(down)})
                last = "60+60x9 stale" if instance == "a" else f"_x10 660+60x{MINUTES - 10}"
                series.append({"series": c.PROBE_LAST_RUN + where, "values": last})
        at = "12m"  # 2m after the move: the 2m of for: started before it
        if quorum == 1:
            down_alert = fired(rules, c.ALERT_PROBE_DOWN, c.SEVERITY_PAGE, at, {**home_at("dc-a")}, 0)
            down_alert["exp_alerts"] += fired(rules, c.ALERT_PROBE_DOWN, c.SEVERITY_PAGE, at, home_at("dc-b"), 0)[
                "exp_alerts"
            ]
        else:
            down_alert = fired(rules, c.ALERT_PROBE_DOWN, c.SEVERITY_PAGE, at, {c.LABEL_PROBE: "home"}, 2, "dc-a, dc-b")
        checks = [down_alert, {"eval_time": "25m", "alertname": c.ALERT_PROBE_NO_DATA, "exp_alerts": []}]
        test = {"interval": "1m", "input_series": series, "alert_rule_test": checks}
        (tmp_path / f"q{quorum}").mkdir()
        promtool_test(tmp_path / f"q{quorum}", {"groups": [{"name": "probes", "rules": picked}]}, [test])
