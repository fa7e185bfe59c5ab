"""Pure generators of recording and alerting rules, Alertmanager config and rule tests.

``generate_rules``, ``generate_alertmanager`` and ``generate_rule_tests`` turn a ``Config``
into plain data; ``render_rule_files`` and ``render_alertmanager_files`` turn that into the
files ``slaprobe generate`` writes (file name -> text), deterministic to the byte.
"""

from __future__ import annotations

from slaprobe.alerts.manifests import alertmanager_config_manifest, prometheus_rule_manifest
from slaprobe.alerts.routing import generate_alertmanager
from slaprobe.alerts.rules import generate_rules
from slaprobe.alerts.ruletests import RULES_FILE, generate_rule_tests, sample_rules
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config

__all__ = [
    "ALERTMANAGER_CONFIG_FILE",
    "ALERTMANAGER_FILE",
    "PROMETHEUS_RULE_FILE",
    "RULES_FILE",
    "RULE_TESTS_FILE",
    "SAMPLE_RULES_FILE",
    "alertmanager_config_manifest",
    "generate_alertmanager",
    "generate_rule_tests",
    "generate_rules",
    "prometheus_rule_manifest",
    "render_alertmanager_files",
    "render_rule_files",
]

RULE_TESTS_FILE = "slaprobe-rules.test.yaml"
SAMPLE_RULES_FILE = "slaprobe-sample-rules.yaml"  # the groups the rule tests load, when not all of them
PROMETHEUS_RULE_FILE = "slaprobe-prometheusrule.yaml"
ALERTMANAGER_FILE = "alertmanager.yaml"
ALERTMANAGER_CONFIG_FILE = "slaprobe-alertmanagerconfig.yaml"


def render_rule_files(
    cfg: Config, *, namespace: str = "monitoring", labels: dict[str, str] | None = None
) -> dict[str, str]:
    """The rule file, its promtool tests (and the groups they load) and the ``PrometheusRule``, by file name."""
    rules = generate_rules(cfg)
    files = {RULES_FILE: dump_yaml(rules)}
    tested, tested_file = sample_rules(cfg, rules), RULES_FILE
    if len(tested["groups"]) < len(rules["groups"]):
        # More services than the tests sample: they load only the sampled groups (same text).
        tested_file = SAMPLE_RULES_FILE
        files[SAMPLE_RULES_FILE] = dump_yaml(tested)
    files[RULE_TESTS_FILE] = dump_yaml(generate_rule_tests(cfg, rule_file=tested_file, rules=tested))
    files[PROMETHEUS_RULE_FILE] = dump_yaml(prometheus_rule_manifest(rules, namespace=namespace, labels=labels))
    return files


def render_alertmanager_files(
    cfg: Config, *, namespace: str = "monitoring", labels: dict[str, str] | None = None
) -> dict[str, str]:
    """``alertmanager.yaml`` and the ``AlertmanagerConfig`` manifest, by file name."""
    config = generate_alertmanager(cfg)
    return {
        ALERTMANAGER_FILE: dump_yaml(config),
        ALERTMANAGER_CONFIG_FILE: dump_yaml(alertmanager_config_manifest(config, namespace=namespace, labels=labels)),
    }
