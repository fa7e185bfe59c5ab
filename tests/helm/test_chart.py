"""The Helm chart rendered by Helm's Go SDK: valid objects, golden output, hardening, shards, values schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from slaprobe.config import parse_config
from slaprobe.exporter.sharding import Shard
from tests.helm.chart import (
    CHART,
    GOLDEN,
    case_names,
    case_values,
    check_text,
    find,
    golden_text,
    helm_generate,
    objects,
    pod_spec,
    render,
    render_case,
    skip_unless_installed,
    stub_generated,
    update_requested,
    validate,
    values_table,
)

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install -e '.[test]')")
pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
skip_unless_installed("cloudcoil.models.prometheus_operator", "cloudcoil-models-prometheus-operator missing")

CASES = case_names()


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The slaprobe container."""
    (only,) = pod_spec(docs)["containers"]
    return only


def rendered_config(docs: list[dict[str, Any]]) -> str:
    """The config file the chart mounts."""
    (text,) = [d["data"]["slaprobe.yaml"] for d in docs if d["kind"] == "ConfigMap" and "slaprobe.yaml" in d["data"]]
    assert isinstance(text, str)
    return text


# ---------------------------------------------------------------------------- every case


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_object_is_valid_for_kubernetes_or_the_prometheus_operator_crds(case: str) -> None:
    docs = render_case(case)
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("case", CASES)
def test_rendering_matches_the_golden_output(case: str, request: pytest.FixtureRequest) -> None:
    check_text(GOLDEN / f"{case}.yaml", golden_text(render_case(case)), request)


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_finds_nothing_in_strict_mode(case: str) -> None:
    values = case_values(case)
    for switch in ("prometheusRule", "alertmanagerConfig", "dashboards"):
        values.pop(switch, None)  # lint renders without a generated block
    report = helm_python.lint(str(CHART), values, strict=True, namespace="monitoring")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def splits_logs(case: str) -> bool:
    """Whether the case runs its log sources in the DaemonSet (then each half mounts its part)."""
    return bool(case_values(case).get("logs", {}).get("daemonset", {}).get("enabled"))


@pytest.mark.parametrize("case", [c for c in CASES if "existingConfig" not in case_values(c) and not splits_logs(c)])
def test_the_mounted_config_is_the_values_config_and_passes_slaprobe_check(case: str) -> None:
    values = case_values(case)
    text = rendered_config(render_case(case))
    mounted = parse_config(text)
    given = values.get("config", {"version": "v1", "services": {}})
    if isinstance(given, str):
        assert text == given  # a string is mounted verbatim, comments included
    else:
        raw = json.loads(json.dumps(given))
        if values.get("location"):
            raw.setdefault("global", {})["location"] = values["location"]
        assert mounted == parse_config(yaml.safe_dump(raw))
    if values.get("location"):
        assert mounted.global_.location == values["location"]


# ---------------------------------------------------------------------------- hardening


@pytest.mark.parametrize("case", CASES)
def test_pods_are_hardened_by_default(case: str) -> None:
    docs = render_case(case)
    pod = pod_spec(docs)
    main = container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["automountServiceAccountToken"] is False
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(main["resources"]) == {"requests", "limits"}
    assert main["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert main["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert len(pod_spec(docs)["containers"]) == 1


@pytest.mark.parametrize("case", CASES)
def test_net_raw_is_added_only_when_an_icmp_probe_is_configured(case: str) -> None:
    docs = render_case(case)
    added = container(docs)["securityContext"]["capabilities"].get("add", [])
    sysctls = pod_spec(docs)["securityContext"].get("sysctls", [])
    if case == "icmp":
        assert added == ["NET_RAW"]
        assert sysctls == [{"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}]
    else:
        assert added == []
        assert sysctls == []


def test_an_icmp_blackbox_module_also_adds_net_raw_and_icmp_enabled_false_overrides() -> None:
    values: dict[str, Any] = {"blackboxModules": {"icmp": {"prober": "icmp"}}}
    docs = objects(render(values))
    assert container(docs)["securityContext"]["capabilities"]["add"] == ["NET_RAW"]
    assert "--modules=/etc/slaprobe/modules/blackbox.yml" in container(docs)["args"]
    off = objects(render({**case_values("icmp"), "icmp": {"enabled": False}}))
    assert "add" not in container(off)["securityContext"]["capabilities"]
    no_sysctl = objects(render({**case_values("icmp"), "icmp": {"pingGroupRange": False}}))
    assert "sysctls" not in pod_spec(no_sysctl)["securityContext"]


def test_a_config_change_changes_the_pod_checksum_annotation() -> None:
    def checksum(values: dict[str, Any]) -> str:
        docs = objects(render(values))
        workload = next(d for d in docs if d["kind"] == "Deployment")
        annotation: str = workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return annotation

    base = case_values("minimal")
    changed = json.loads(json.dumps(base))
    changed["config"]["services"]["shop"]["probes"][0]["http"]["url"] = "https://shop.example/other"
    assert checksum(base) == checksum(json.loads(json.dumps(base)))
    assert checksum(base) != checksum(changed)
    assert checksum(base) != checksum({**base, "location": "dc9"})


def test_probe_credentials_are_mounted_read_only_from_their_secrets() -> None:
    docs = render_case("full")
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert mounts["secret-0"] == {"name": "secret-0", "mountPath": "/etc/slaprobe/secrets/shop-api", "readOnly": True}
    assert volumes["secret-0"]["secret"] == {"secretName": "shop-api", "defaultMode": 0o440}
    assert mounts["secret-1"]["mountPath"] == "/etc/slaprobe/tls/partner"
    assert volumes["secret-1"]["secret"]["items"] == [
        {"key": "tls.crt", "path": "client.crt"},
        {"key": "tls.key", "path": "client.key"},
    ]


def test_an_existing_secret_is_mounted_as_the_config_and_the_chart_renders_none() -> None:
    docs = render_case("existing-secret")
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "slaprobe-config"
    assert volumes["config"]["secret"]["items"] == [{"key": "config.yaml", "path": "slaprobe.yaml"}]
    assert volumes["web-config"]["secret"]["secretName"] == "slaprobe-web"
    main = container(docs)
    assert "--web-config=/etc/slaprobe/web/web-config.yml" in main["args"]
    assert main["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert find(docs, "ServiceMonitor")["spec"]["endpoints"][0]["scheme"] == "https"


# ---------------------------------------------------------------------------- scale-out and locations


def test_shards_render_a_statefulset_whose_pod_i_owns_shard_i_of_n() -> None:
    docs = render_case("sharded")
    statefulset = find(docs, "StatefulSet")
    count = statefulset["spec"]["replicas"]
    assert count == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    headless = find(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    args = container(docs)["args"]
    (shard_arg,) = [a for a in args if a.startswith("--shard=")]
    # The pods of a StatefulSet are <name>-0 .. <name>-(N-1); each parses to its own shard.
    pods = [f"{statefulset['metadata']['name']}-{i}" for i in range(count)]
    shards = [Shard.parse(shard_arg.removeprefix("--shard="), hostname=pod) for pod in pods]
    assert shards == [Shard(i, 3) for i in range(3)]
    assert not [d for d in docs if d["kind"] == "Deployment"]
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_one_release_per_location_sets_the_location_everywhere() -> None:
    dc1 = objects(render({**case_values("minimal"), "location": "dc1"}, name="slaprobe-dc1"))
    dc2 = objects(render({**case_values("minimal"), "location": "dc2"}, name="slaprobe-dc2"))
    for docs, location in ((dc1, "dc1"), (dc2, "dc2")):
        assert parse_config(rendered_config(docs)).global_.location == location
        workload = find(docs, "Deployment")
        assert workload["metadata"]["labels"]["slaprobe.io/location"] == location
    names = {d["metadata"]["name"] for d in dc1} & {d["metadata"]["name"] for d in dc2}
    assert not names, f"two locations' releases would collide on {names}"


def test_the_probe_resource_points_prometheus_at_slash_probe_with_the_location_label() -> None:
    probe = find(render_case("full"), "Probe")
    assert probe["spec"]["prober"] == {"url": "slaprobe.monitoring.svc:9799", "path": "/probe", "scheme": "http"}
    assert probe["spec"]["targets"]["staticConfig"]["labels"] == {"location": "dc1", "owner": "partnerships"}


def test_the_release_label_is_configurable_and_can_be_left_off() -> None:
    values = {**case_values("minimal"), "serviceMonitor": {"enabled": True}}
    assert find(objects(render(values)), "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    labels = find(objects(render({**values, "releaseLabel": ""})), "ServiceMonitor")["metadata"]["labels"]
    assert "release" not in labels
    monitor = find(render_case("full"), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_dashboards_are_configmaps_for_the_grafana_sidecar_in_their_folder() -> None:
    board = find(render_case("full"), "ConfigMap", "slaprobe-dashboard-sla-overview")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["annotations"]["grafana_folder"] == "SLA dc1"
    assert json.loads(board["data"]["sla-overview.json"])["title"] == "SLA overview"


# ---------------------------------------------------------------------------- generated artefacts guard


def test_generated_artefacts_from_another_config_are_refused() -> None:
    values = case_values("full")
    stale = {
        "generated": {
            "configChecksum": "0" * 64,
            "prometheusRule": {"groups": []},
            "alertmanagerConfig": {"route": {"receiver": "x"}},
            "dashboards": {"a.json": "{}"},
        }
    }
    with pytest.raises(helm_python.HelmRenderError, match="generated: made from another config"):
        render(helm_generate().merge_values(values, stale))


def test_alerts_labelled_for_another_namespace_than_the_alertmanagerconfig_are_refused() -> None:
    values = case_values("full")
    generated = stub_generated(values)
    generated["generated"]["namespace"] = "observability"
    with pytest.raises(helm_python.HelmRenderError, match='labelled namespace="observability"'):
        render(helm_generate().merge_values(values, generated))
    values["alertmanagerConfig"]["namespace"] = "observability"
    docs = objects(render(helm_generate().merge_values(values, generated)))
    assert find(docs, "AlertmanagerConfig")["metadata"]["namespace"] == "observability"


def test_turning_on_generated_resources_without_generating_says_what_to_run() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="run scripts/helm-generate"):
        render({**case_values("minimal"), "prometheusRule": {"enabled": True}})


# ---------------------------------------------------------------------------- values schema and README


def test_the_values_schema_covers_every_value_and_has_a_default_for_every_property() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

    def walk(node: dict[str, Any], values: dict[str, Any], path: str) -> None:
        properties = node.get("properties", {})
        assert set(values) == set(properties), f"{path or '<root>'}: {set(values) ^ set(properties)}"
        assert node.get("additionalProperties") is False, f"{path or '<root>'} accepts unknown keys"
        for key, prop in properties.items():
            assert prop.get("description"), f"{path}{key}: no description"
            if prop.get("type") == "object" and "properties" in prop:
                walk(prop, values[key], f"{path}{key}.")

    walk(schema, defaults, "")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shard": 3}, "additional properties 'shard' not allowed"),
        ({"shards": 0}, "minimum"),
        ({"existingConfig": {"kind": "Deployment"}}, "value must be one of"),
        ({"config": {"version": "v2"}}, "/config/version"),
        ({"probe": {"jobs": [{"name": "x"}]}}, "missing propert"),
    ],
)
def test_the_values_schema_refuses_mistakes_at_install_time(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render(values)


def test_the_chart_readme_lists_every_value(request: pytest.FixtureRequest) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- values:start -->\n", "<!-- values:end -->"
    assert start in readme and end in readme
    before, rest = readme.split(start)
    current, after = rest.split(end)
    table = values_table(schema, defaults)
    if update_requested(request):
        (CHART / "README.md").write_text(before + start + table + end + after, encoding="utf-8")
        return
    assert current == table, "helm/slaprobe/README.md's values table is stale: run with SLAPROBE_UPDATE_GOLDEN=1"


# ---------------------------------------------------------------------------- logs on every node, state, config check


def daemonset_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec of the log DaemonSet."""
    spec: dict[str, Any] = find(docs, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def test_the_daemonset_reads_the_nodes_container_logs_read_only_and_keeps_its_offsets_on_the_node() -> None:
    docs = render_case("daemonset")
    pod = daemonset_pod(docs)
    (main,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/var/log/pods", "/var/log/containers"):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["hostPath"] == {"path": path}
    assert volumes["state"]["hostPath"] == {
        "path": "/var/lib/slaprobe/monitoring-slaprobe",
        "type": "DirectoryOrCreate",
    }
    assert mounts["/var/lib/slaprobe"]["name"] == "state"
    assert volumes["config"]["configMap"]["items"] == [{"key": "slaprobe-logs.yaml", "path": "slaprobe.yaml"}]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in main["env"]
    security = main["securityContext"]
    assert (security["readOnlyRootFilesystem"], security["allowPrivilegeEscalation"]) == (True, False)
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    monitor = find(docs, "ServiceMonitor", "slaprobe-logs")
    assert monitor["spec"]["selector"]["matchLabels"] == find(docs, "DaemonSet")["spec"]["selector"]["matchLabels"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in monitor["spec"]["endpoints"][
        0
    ]["relabelings"]
    # The prober's Service never selects the log readers, nor the reverse.
    selector = find(docs, "Service", "slaprobe")["spec"]["selector"]
    labels = find(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in selector.items())


def test_in_daemonset_mode_the_log_sources_run_on_the_nodes_and_everything_else_in_the_prober() -> None:
    docs = render_case("daemonset")
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    prober, logs = (
        parse_config(configmap["data"]["slaprobe.yaml"]),
        parse_config(configmap["data"]["slaprobe-logs.yaml"]),
    )
    whole = parse_config(yaml.safe_dump({**case_values("daemonset")["config"], "global": {"location": "eu-west"}}))
    assert [s.logs for s in prober.services.values()] == [[], []]
    assert {n: [p.name for p in s.probes] for n, s in prober.services.items()} == {
        n: [p.name for p in s.probes] for n, s in whole.services.items()
    }
    assert list(logs.services) == ["shop"]
    assert logs.services["shop"].probes == []
    assert logs.services["shop"].logs == whole.services["shop"].logs
    assert logs.services["shop"].sla == whole.services["shop"].sla
    assert logs.global_.location == prober.global_.location == "eu-west"


def test_the_daemonset_needs_the_config_in_the_values() -> None:
    values = {"existingConfig": {"name": "mine"}, "logs": {"daemonset": {"enabled": True}}}
    with pytest.raises(helm_python.HelmRenderError, match=r"logs\.daemonset\.enabled: needs the config in `config`"):
        render(values)


def test_the_statefulset_keeps_its_state_on_a_volume_claim_per_pod() -> None:
    docs = render_case("sharded")
    statefulset = find(docs, "StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    assert "state" not in {v["name"] for v in pod_spec(docs)["volumes"]}
    assert {"name": "state", "mountPath": "/var/lib/slaprobe"} in container(docs)["volumeMounts"]
    persistence = {"enabled": True, "size": "5Gi", "storageClassName": "fast", "accessModes": ["ReadWriteOncePod"]}
    custom = find(objects(render({**case_values("sharded"), "stateDir": {"persistence": persistence}})), "StatefulSet")
    assert custom["spec"]["volumeClaimTemplates"][0]["spec"] == {
        "accessModes": ["ReadWriteOncePod"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    off = objects(render({**case_values("sharded"), "stateDir": {"persistence": {"enabled": False}}}))
    assert "volumeClaimTemplates" not in find(off, "StatefulSet")["spec"]
    assert {"name": "state", "emptyDir": {"sizeLimit": "256Mi"}} in pod_spec(off)["volumes"]
    assert "volumeClaimTemplates" not in find(render_case("minimal"), "Deployment")["spec"]


@pytest.mark.parametrize("case", [c for c in CASES if c != "default"])
def test_an_init_container_checks_the_config_with_the_mounts_and_environment_of_slaprobe(case: str) -> None:
    docs = render_case(case)
    pods = [pod_spec(docs)] + ([daemonset_pod(docs)] if splits_logs(case) else [])
    for pod in pods:
        (check,) = pod["initContainers"]
        (main,) = pod["containers"]
        assert check["image"] == main["image"]
        assert check["args"][0] == "check"
        assert set(check["args"][1:]) <= set(main["args"])
        config_mounts = [m for m in main["volumeMounts"] if m["name"] not in ("state", "tmp")]
        assert [m for m in check["volumeMounts"] if not m["mountPath"].startswith("/var/log")] == [
            m for m in config_mounts if not m["mountPath"].startswith("/var/log")
        ]
        assert [e for e in check.get("env", []) if e["name"] != "NODE_NAME"] == [
            e for e in main.get("env", []) if e["name"] != "NODE_NAME"
        ]
        assert check["securityContext"] == main["securityContext"]
    off = objects(render({**case_values("minimal"), "configCheck": {"enabled": False}}))
    assert "initContainers" not in pod_spec(off)


def test_a_config_text_stays_as_written_with_a_location_so_its_error_lines_are_the_users() -> None:
    text = "# mine\nversion: v1\nservices:\n  shop:\n    probes:\n      - {name: home, http: {url: 'https://shop.example/'}}\n"
    mounted = rendered_config(objects(render({"config": text, "location": "dc2"})))
    assert mounted == text + 'global:\n  location: "dc2"\n'
    assert parse_config(mounted).global_.location == "dc2"
    reading = text.replace("version: v1\n", "version: v1\nglobal:\n  location: ${env:SLAPROBE_LOCATION}\n")
    docs = objects(render({"config": reading, "location": "dc3"}))
    assert rendered_config(docs) == reading
    assert {"name": "SLAPROBE_LOCATION", "value": "dc3"} in container(docs)["env"]
    own = text.replace("version: v1\n", "version: v1\nglobal: {interval: 30s}\n")
    with pytest.raises(helm_python.HelmRenderError, match=r"set `location: \$\{env:SLAPROBE_LOCATION\}` in it"):
        render({"config": own, "location": "dc3"})


def test_the_targets_of_the_probe_resources_join_the_probe_allow_list() -> None:
    args = container(render_case("daemonset"))["args"]
    assert "--probe-allow=partner.example,203.0.113.7,2001:db8::7,edge.example" in args
    values = {**case_values("daemonset"), "probeAllow": ["10.0.0.0/8", "edge.example"]}
    args = container(objects(render(values)))["args"]
    assert "--probe-allow=10.0.0.0/8,edge.example,partner.example,203.0.113.7,2001:db8::7" in args
    off = {**values, "probe": {**values["probe"], "enabled": False}}
    assert "--probe-allow=10.0.0.0/8,edge.example" in container(objects(render(off)))["args"]


def test_with_a_network_policy_the_log_readers_answer_scrapes_only_and_dial_nothing() -> None:
    docs = objects(render({**case_values("daemonset"), "networkPolicy": {"enabled": True}}))
    policy = find(docs, "NetworkPolicy", "slaprobe-logs")
    for doc in docs:
        validate(doc)
    assert policy["spec"]["podSelector"]["matchLabels"] == find(docs, "DaemonSet")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policy["spec"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
