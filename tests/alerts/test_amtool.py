"""amtool accepts the generated Alertmanager config and routes each priority and level to its receiver."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.alerts import ALERTMANAGER_FILE, generate_alertmanager
from slaprobe.alerts.policy import levels_of, ordered_priorities
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config
from tests.alerts.conftest import CONFIG_NAMES, load, run, tool


def written(cfg: Config, tmp_path: Path) -> Path:
    path = tmp_path / ALERTMANAGER_FILE
    path.write_text(dump_yaml(generate_alertmanager(cfg)))
    return path


def expected_receivers(cfg: Config, priority: str, level: int) -> list[str]:
    """Receivers in amtool's tree order: the incidents copy (if any), then the level's receiver."""
    out = []
    if cfg.alertmanager is not None and cfg.alertmanager.webhook_url:
        out.append(c.RECEIVER_INCIDENTS)
    levels = levels_of(cfg, priority)
    if level <= len(levels):
        out.append(levels[level - 1].notify)
    elif not out:
        out.append(cfg.alerting.default_receiver or c.RECEIVER_UNROUTED)
    return out


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_amtool_accepts_the_generated_config(name: str, tmp_path: Path) -> None:
    amtool = tool("amtool")
    result = run([amtool, "check-config", str(written(load(name), tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_priority_and_level_routes_to_its_receiver(name: str, tmp_path: Path) -> None:
    amtool = tool("amtool")
    cfg = load(name)
    path = written(cfg, tmp_path)
    checked = 0
    for priority in ordered_priorities(cfg):
        for level in range(1, len(levels_of(cfg, priority)) + 2):  # one past the last: not routed to a person
            receivers = expected_receivers(cfg, priority, level)
            labels = [f"priority={priority}", f"escalation_level={level}", "service=shop", "alertname=SLAProbeDown"]
            verify = f"--verify.receivers={','.join(receivers)}"
            result = run([amtool, "config", "routes", "test", f"--config.file={path}", verify, *labels])
            assert result.returncode == 0, f"{priority} level {level}: {result.stdout}{result.stderr}"
            assert result.stdout.strip() == ",".join(receivers)
            checked += 1
    assert checked >= len(ordered_priorities(cfg))


def test_levels_with_during_are_muted_outside_their_time_interval() -> None:
    cfg = load("tiers")
    routes = generate_alertmanager(cfg)["route"]["routes"]
    timed = {tuple(r["matchers"]): r.get("active_time_intervals") for r in routes}
    assert timed[('priority="P3"', 'escalation_level="1"')] == ["business-hours"]
    assert timed[('priority="P1"', 'escalation_level="2"')] is None


def test_higher_priorities_inhibit_lower_ones_and_a_down_prober_inhibits_slo_alerts() -> None:
    rules = generate_alertmanager(load("odd"))["inhibit_rules"]
    assert rules[0] == {
        "source_matchers": ['priority="sev1"'],
        "target_matchers": ['priority=~"sev2|sev3|sev4"'],
        "equal": ["service"],
    }
    assert rules[2]["source_matchers"] == ['priority="sev3"']
    assert rules[-1] == {
        "source_matchers": [f'alertname=~"{c.ALERT_EXPORTER_ABSENT}|{c.ALERT_PROBE_NO_DATA}"'],
        "target_matchers": [f'alertname=~"{c.ALERT_BURN_RATE}|{c.ALERT_BUDGET_EXHAUSTION}|{c.ALERT_COMPLIANCE}"'],
        "equal": ["service"],
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "escalation: {P1: [{after: 0m, notify: nobody}]}\n",
            "escalation.P1[0].notify: unknown receiver 'nobody': no receivers are defined (add it under receivers)",
        ),
        (
            "escalation: {P1: [{after: 0m, notify: oncall}, {after: 5m, notify: team-laed}]}\n"
            "receivers: {oncall: {}, team-lead: {}}\n",
            "escalation.P1[1].notify: unknown receiver 'team-laed' (did you mean 'team-lead'?)",
        ),
        (
            "alerting: {default_receiver: catchall}\nreceivers: {catch-all: {}}\n",
            "alerting.default_receiver: unknown receiver 'catchall' (did you mean 'catch-all'?)",
        ),
        (
            "alertmanager: {url: 'http://127.0.0.1:9093', webhook_url: 'http://127.0.0.1:9799/alertmanager/webhook'}\n",
            "alertmanager.webhook_auth: required with webhook_url: the webhook refuses posts without credentials",
        ),
    ],
)
def test_check_rejects_a_receiver_that_would_deliver_nowhere(config: str, message: str, tmp_path: Path) -> None:
    """A typo in a receiver name would route pages to a receiver that delivers nowhere (amtool accepts it)."""
    path = tmp_path / "slaprobe.yaml"
    path.write_text("version: v1\n" + config)
    result = run([sys.executable, "-m", "slaprobe", "check", "--config", str(path)])
    assert result.returncode == 1
    assert f"error: {message}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("auth", "http_config"),
    [
        ("{bearer_token: t0ken}", {"authorization": {"type": "Bearer", "credentials": "t0ken"}}),
        ("{basic_auth: {username: am, password: pw}}", {"basic_auth": {"username": "am", "password": "pw"}}),
    ],
)
def test_the_webhook_credentials_are_written_into_the_incidents_receiver(
    auth: str, http_config: dict[str, Any], tmp_path: Path
) -> None:
    """Configured once (alertmanager.webhook_auth), sent by Alertmanager with no glue."""
    from slaprobe.config import parse_config

    cfg = parse_config(
        "version: v1\nalertmanager: {url: 'http://127.0.0.1:9093', "
        f"webhook_url: 'http://127.0.0.1:9799/alertmanager/webhook', webhook_auth: {auth}}}\n"
    )
    receiver = next(r for r in generate_alertmanager(cfg)["receivers"] if r["name"] == c.RECEIVER_INCIDENTS)
    assert receiver["webhook_configs"][0]["http_config"] == http_config
    result = run([tool("amtool"), "check-config", str(written(cfg, tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr
