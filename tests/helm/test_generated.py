"""The chart ships exactly what ``slaprobe generate`` makes from the config its pods read.

``scripts/helm-generate`` renders the chart to get the mounted config, runs the generator on
it and writes a `generated:` values file. These tests run that pipeline, render the chart with
its output, then run ``slaprobe generate all`` again, independently, on the config found in
the rendered ConfigMap, and compare: PrometheusRule groups, AlertmanagerConfig spec and every
dashboard's JSON text: the real generator on the full case, and a stand-in whose dashboards
are hard to escape on more cases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import (
    CHART,
    CI,
    NAMESPACE,
    case_values,
    helm_generate,
    objects,
    render,
    skip_unless_installed,
    validate,
)

pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install -e '.[test]')")
skip_unless_installed("cloudcoil.models.prometheus_operator", "cloudcoil-models-prometheus-operator missing")

SLAPROBE = (sys.executable, "-m", "slaprobe")

# Writes what `slaprobe generate all` is specified to write, derived from the config, with
# dashboard text that needs escaping in YAML (quotes, non-ASCII, "</", a trailing newline).
STAND_IN = textwrap.dedent(
    """
    import json, sys, yaml
    from pathlib import Path
    args = sys.argv[1:]
    if "--help" in args:
        sys.exit(print("usage: generate {rules,alertmanager,dashboards,all} --config CONFIG --out OUT [--namespace NS]"))
    namespace = args[args.index("--namespace") + 1] if "--namespace" in args else "monitoring"
    config = yaml.safe_load(Path(args[args.index("--config") + 1]).read_text())
    out = Path(args[args.index("--out") + 1])
    services = sorted(config.get("services") or {})
    groups = [{"name": f"slaprobe-{s}", "rules": [{"record": "slo:objective:ratio", "expr": "vector(0.999)",
               "labels": {"sloth_service": s, "namespace": namespace}}]} for s in services]
    rules = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
             "metadata": {"name": "slaprobe"}, "spec": {"groups": groups}}
    (out / "prometheusrule.yaml").write_text("# generated, do not edit\\n" + yaml.safe_dump(rules))
    (out / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))  # the operator's namespace label too
    (out / "rules.test.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": []}))
    routing = {"route": {"receiver": "oncall", "groupBy": ["service", "alertname"]},
               "receivers": [{"name": r} for r in sorted(config.get("receivers") or {"oncall": {}})],
               "inhibitRules": [{"sourceMatch": [{"name": "priority", "value": "P1", "matchType": "="}],
                                 "targetMatch": [{"name": "priority", "value": "P2", "matchType": "="}],
                                 "equal": ["service"]}]}
    amc = {"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig",
           "metadata": {"name": "slaprobe"}, "spec": routing}
    (out / "alertmanagerconfig.yaml").write_text(yaml.safe_dump(amc))
    (out / "alertmanager.yaml").write_text(yaml.safe_dump({"route": {"receiver": "oncall"}}))
    (out / "dashboards").mkdir()
    for uid, title in (("sla-overview", "SLA «overview» </script>"), ("service-detail", 'Service "detail"')):
        board = {"uid": uid, "title": title, "panels": [{"title": s} for s in services]}
        (out / "dashboards" / f"{uid}.json").write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\\n")
    (out / "notes.json").write_text(json.dumps({"not": "a dashboard"}))
    """
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """A command that behaves like `slaprobe` for `generate all`."""
    script = tmp_path_factory.mktemp("stand-in") / "generate.py"
    script.write_text(STAND_IN, encoding="utf-8")
    return (sys.executable, str(script))


def generator_works() -> tuple[str, ...]:
    """The real `slaprobe`, after checking that `generate all` runs on the smallest config."""
    values = yaml.safe_load((CI / "minimal-values.yaml").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.yaml").write_text(yaml.safe_dump(values["config"]), encoding="utf-8")
        run = subprocess.run(
            [*SLAPROBE, "generate", "all", "--config", f"{tmp}/c.yaml", "--out", f"{tmp}/out"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert run.returncode == 0, f"slaprobe generate all failed on the minimal config: {run.stderr.strip()}"
    return SLAPROBE


def with_everything(case: str) -> dict[str, Any]:
    """The case's values with every generated resource turned on."""
    values = case_values(case)
    for switch in ("prometheusRule", "alertmanagerConfig", "dashboards"):
        values[switch] = {**(values.get(switch) or {}), "enabled": True}
    return values


def generator_output(command: tuple[str, ...], config: str, out: Path) -> dict[str, Any]:
    """Run `generate all` on the config text and read what it wrote: rules, routing, dashboards."""
    out.mkdir(parents=True)
    (out.parent / "independent.yaml").write_text(config, encoding="utf-8")
    namespace = ["--namespace", NAMESPACE] if "--namespace" in helm_generate().generator_options(command) else []
    subprocess.run(
        [*command, "generate", "all", "--config", str(out.parent / "independent.yaml"), "--out", str(out), *namespace],
        check=True,
        capture_output=True,
    )
    manifests: dict[str, list[dict[str, Any]]] = {}
    rule_files = []
    dashboards = {}
    for path in sorted(out.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            for doc in helm_generate().load_manifests(path.read_text(encoding="utf-8")):
                if "kind" in doc:
                    manifests.setdefault(doc["kind"], []).append(doc)
                elif "groups" in doc:
                    rule_files.append(doc)
        elif path.suffix == ".json":
            board = json.loads(path.read_text(encoding="utf-8"))
            if "panels" in board or "rows" in board:
                dashboards[path.name] = path.read_text(encoding="utf-8")
    return {"manifests": manifests, "rule_files": rule_files, "dashboards": dashboards}


ARTEFACTS = {"prometheusRule": "rules", "alertmanagerConfig": "routing", "dashboards": "dashboards"}


def check_chart_ships_generator_output(case: str, command: tuple[str, ...], tmp_path: Path) -> None:
    """The pipeline's rendering carries exactly the generator's output for the mounted config."""
    values = with_everything(case)
    script = helm_generate()
    text = script.config_text(CHART, values)
    namespace = script.alertmanager_namespace(values, NAMESPACE)
    block = script.generated_block(text, tmp_path / "pipeline", namespace=namespace, command=command)
    assert not [name for key, name in ARTEFACTS.items() if not block[key]], "the generator left out some artefacts"
    # Through a values file, as a user does it: helm -f values.yaml -f generated.yaml.
    values_file = tmp_path / "generated.yaml"
    values_file.write_text(script.dump_values(block, ["values.yaml"]), encoding="utf-8")
    docs = objects(render(script.merge_values(values, yaml.safe_load(values_file.read_text(encoding="utf-8")))))
    for doc in docs:
        validate(doc)

    (mounted,) = [d["data"]["slaprobe.yaml"] for d in docs if d["kind"] == "ConfigMap" and "slaprobe.yaml" in d["data"]]
    expected = generator_output(command, mounted, tmp_path / "independent")

    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups = [g for m in expected["manifests"].get("PrometheusRule", []) for g in m["spec"]["groups"]]
    if not groups:
        (rule_file,) = expected["rule_files"]
        groups = rule_file["groups"]
    assert rule["spec"] == {"groups": groups}

    (routing,) = [d for d in docs if d["kind"] == "AlertmanagerConfig"]
    (manifest,) = expected["manifests"]["AlertmanagerConfig"]
    assert routing["spec"] == manifest["spec"]

    boards = {
        key: text
        for d in docs
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
        for key, text in d["data"].items()
    }
    assert expected["dashboards"]
    assert boards == expected["dashboards"]


def test_the_chart_ships_exactly_what_slaprobe_generate_makes_from_the_mounted_config(tmp_path: Path) -> None:
    # The full case: several services and probe kinds, escalation, receivers, a location.
    check_chart_ships_generator_output("full", generator_works(), tmp_path)


@pytest.mark.parametrize("case", ["full", "sharded"])
def test_the_pipeline_carries_a_generators_output_unchanged(
    case: str, stand_in: tuple[str, ...], tmp_path: Path
) -> None:
    check_chart_ships_generator_output(case, stand_in, tmp_path)


def test_the_script_writes_a_values_file_helm_accepts(stand_in: tuple[str, ...], tmp_path: Path) -> None:
    script = helm_generate()
    values = case_values("full")
    text = script.config_text(CHART, values)
    block = script.generated_block(text, tmp_path / "out", namespace=NAMESPACE, command=stand_in)
    assert block["namespace"] == NAMESPACE
    text = script.dump_values(block, ["helm/slaprobe/ci/full-values.yaml"])
    assert text.startswith("# Generated by scripts/helm-generate from helm/slaprobe/ci/full-values.yaml")
    assert yaml.safe_load(text) == {"generated": block}
    assert set(block["dashboards"]) == {"sla-overview.json", "service-detail.json"}  # notes.json is no dashboard
    docs = objects(render(script.merge_values(values, yaml.safe_load(text))))
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "PrometheusRule"] == ["slaprobe"]


def test_an_existing_config_needs_the_config_file(tmp_path: Path) -> None:
    script = helm_generate()
    with pytest.raises(script.GenerateError, match="give the file with --config"):
        script.config_text(CHART, case_values("existing-secret"))
    config = tmp_path / "slaprobe.yaml"
    config.write_text("version: v1\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(CHART.parents[1] / "scripts" / "helm-generate"), "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    generated = yaml.safe_load(run.stdout)["generated"]
    assert generated["configChecksum"] == script.config_checksum("version: v1\n")
    assert generated["namespace"] == "default"


def test_values_files_merge_as_helm_merges_them(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text("location: dc1\nconfig: {version: v1, services: {a: {tier: low}}}\nprobeAllow: [x]\n")
    second.write_text("location: dc2\nconfig: {services: {b: {tier: high}}}\nprobeAllow: [y]\n")
    merged = helm_generate().load_values([first, second])
    assert merged == {
        "location": "dc2",
        "config": {"version": "v1", "services": {"a": {"tier": "low"}, "b": {"tier": "high"}}},
        "probeAllow": ["y"],
    }


def test_the_checksum_is_the_one_the_chart_computes() -> None:
    script = helm_generate()
    values = with_everything("minimal")
    text = script.config_text(CHART, values)
    good = {"configChecksum": script.config_checksum(text), "prometheusRule": {"groups": []}}
    good |= {"alertmanagerConfig": {"route": {"receiver": "x"}}, "dashboards": {"a.json": "{}"}}
    render(script.merge_values(values, {"generated": good}))
    text_changed = script.config_text(CHART, {**values, "location": "elsewhere"})
    assert script.config_checksum(text_changed) != good["configChecksum"]


def test_a_config_whose_secrets_are_not_here_gets_a_hint(tmp_path: Path) -> None:
    script = helm_generate()
    failing = (sys.executable, "-c", "import sys; sys.exit('error: x: cannot read /run/secrets/pw: No such file')")
    with pytest.raises(script.GenerateError, match=r"run it where those files and variables exist"):
        script.run_generate("version: v1\n", tmp_path / "out", command=failing)
