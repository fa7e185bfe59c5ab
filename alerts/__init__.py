"""Pure generators of recording and alerting rules, Alertmanager config and rule tests.

``generate_rules``, ``generate_alertmanager`` and ``generate_rule_tests`` turn a ``Config``
into plain data; ``render_rule_files`` and ``render_alertmanager_files`` turn that into the
files ``slaprobe generate`` writes (file name -> text), deterministic to the byte.
"""

from __future__ import annotations

from slaprobe.alerts.manifests import alertmanager_config_manifest, prometheus_rule_manifest
from slaprobe.alerts.routing import generate_alertmanager
from slaprobe.alerts.rules import generate_rules
from slaprobe.alerts.ruletests import RULES_FILE, generate_rule_tests
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config

__all__ = [
    "ALERTMANAGER_CONFIG_FILE",
    "ALERTMANAGER_FILE",
    "PROMETHEUS_RULE_FILE",
    "RULES_FILE",
    "RULE_TESTS_FILE",
    "alertmanager_config_manifest",
    "generate_alertmanager",
    "generate_rule_tests",
    "generate_rules",
    "prometheus_rule_manifest",
    "render_alertmanager_files",
    "render_rule_files",
]

RULE_TESTS_FILE = "slaprobe-rules.test.yaml"
PROMETHEUS_RULE_FILE = "slaprobe-prometheusrule.yaml"
ALERTMANAGER_FILE = "alertmanager.yaml"
ALERTMANAGER_CONFIG_FILE = "slaprobe-alertmanagerconfig.yaml"


def render_rule_files(
    cfg: Config, *, namespace: str = "monitoring", labels: dict[str, str] | None = None
) -> dict[str, str]:
    """The rule file, its promtool tests and the ``PrometheusRule`` manifest, by file name."""
    rules = generate_rules(cfg)
    return {
        RULES_FILE: dump_yaml(rules),
        RULE_TESTS_FILE: dump_yaml(generate_rule_tests(cfg, rule_file=RULES_FILE, rules=rules)),
        PROMETHEUS_RULE_FILE: dump_yaml(prometheus_rule_manifest(rules, namespace=namespace, labels=labels)),
    }


def render_alertmanager_files(
    cfg: Config, *, namespace: str = "monitoring", labels: dict[str, str] | None = None
) -> dict[str, str]:
    """``alertmanager.yaml`` and the ``AlertmanagerConfig`` manifest, by file name."""
    config = generate_alertmanager(cfg)
    return {
        ALERTMANAGER_FILE: dump_yaml(config),
        ALERTMANAGER_CONFIG_FILE: dump_yaml(alertmanager_config_manifest(config, namespace=namespace, labels=labels)),
    }
