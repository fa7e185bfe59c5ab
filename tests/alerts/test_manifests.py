"""The PrometheusRule and AlertmanagerConfig manifests validate against the prometheus-operator CRD models."""

from __future__ import annotations

from types import ModuleType

import pytest

from slaprobe import conventions as c
from slaprobe.alerts import (
    alertmanager_config_manifest,
    generate_alertmanager,
    generate_rules,
    prometheus_rule_manifest,
)
from slaprobe.alerts.manifests import WARNINGS_ANNOTATION, camel, crd_matcher
from tests.alerts.conftest import CONFIG_NAMES, load


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_the_prometheus_rule_validates_and_every_alert_carries_its_namespace(
    name: str, operator_models: ModuleType
) -> None:
    rules = generate_rules(load(name))
    manifest = prometheus_rule_manifest(rules, namespace="obs", labels={"release": "kps"})
    operator_models.v1.PrometheusRule.model_validate(manifest)
    assert manifest["metadata"]["labels"]["release"] == "kps"
    for group in manifest["spec"]["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"][c.LABEL_NAMESPACE] == "obs"
            else:
                assert c.LABEL_NAMESPACE not in rule.get("labels", {})
    assert all(c.LABEL_NAMESPACE not in r.get("labels", {}) for g in rules["groups"] for r in g["rules"])


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_the_alertmanager_config_validates_down_to_every_route(name: str, operator_models: ModuleType) -> None:
    manifest = alertmanager_config_manifest(generate_alertmanager(load(name)), namespace="obs")
    parsed = operator_models.v1alpha1.AlertmanagerConfig.model_validate(manifest)
    assert parsed.spec is not None and parsed.spec.route is not None
    for route in manifest["spec"]["route"]["routes"]:
        operator_models.v1alpha1.Route.model_validate(route)
    names = {r["name"] for r in manifest["spec"]["receivers"]}
    assert {r["receiver"] for r in manifest["spec"]["route"]["routes"]} <= names


def test_time_interval_keys_the_crd_lacks_are_dropped_and_reported() -> None:
    manifest = alertmanager_config_manifest(generate_alertmanager(load("tiers")))
    interval = manifest["spec"]["muteTimeIntervals"][0]
    assert interval["name"] == "business-hours"
    assert interval["timeIntervals"] == [
        {"weekdays": ["monday:friday"], "times": [{"startTime": "09:00", "endTime": "18:00"}]}
    ]
    assert "location" in manifest["metadata"]["annotations"][WARNINGS_ANNOTATION]
    routes = manifest["spec"]["route"]["routes"]
    assert routes[0]["matchers"] == [{"name": "escalation_level", "value": ".+", "matchType": "=~"}]
    assert routes[0]["continue"] is True
    assert any(r.get("activeTimeIntervals") == ["business-hours"] for r in routes)


def test_receivers_are_converted_to_the_crd_spelling() -> None:
    assert camel("send_resolved") == "sendResolved"
    assert camel("api_url") == "apiURL"
    manifest = alertmanager_config_manifest(generate_alertmanager(load("odd")))
    receivers = {r["name"]: r for r in manifest["spec"]["receivers"]}
    assert receivers["manager"]["emailConfigs"][0]["smarthost"] == "smtp.example:25"
    assert crd_matcher('a="x\\"y"') == {"name": "a", "value": 'x"y', "matchType": "="}


def test_the_webhook_credentials_become_secret_references_in_the_alertmanager_config(
    operator_models: ModuleType,
) -> None:
    """The CRD takes no inline secrets: the incidents receiver refers to a Secret the annotation names."""
    from slaprobe.config import parse_config

    cfg = parse_config(
        "version: v1\nalertmanager: {url: 'http://127.0.0.1:9093', "
        "webhook_url: 'http://127.0.0.1:9799/alertmanager/webhook', webhook_auth: {bearer_token: t0ken}}\n"
    )
    manifest = alertmanager_config_manifest(generate_alertmanager(cfg), namespace="obs")
    operator_models.v1alpha1.AlertmanagerConfig.model_validate(manifest)
    assert "t0ken" not in str(manifest)
    assert "slaprobe-webhook-auth" in manifest["metadata"]["annotations"][WARNINGS_ANNOTATION]
