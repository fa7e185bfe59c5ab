"""The config model: defaults, interpolation, and the exact message of each invalid config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slaprobe.config import Config, ConfigError, config_json_schema, load_config, parse_config
from slaprobe.units import format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_the_design_example_is_a_valid_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    monkeypatch.setenv("DIAL_USER", "dialer")
    text = (ROOT / "examples" / "design.yaml").read_text().replace("/run/secrets/pw", str(secret))
    cfg = parse_config(text)
    assert cfg.summary() == "1 services, 5 probes, 1 log sources, 1 feedback sources, location dc1"
    assert cfg.secrets == {"dialer", "hunter2"}
    login = cfg.services["checkout"].probes[4].flow.steps[0]  # type: ignore[union-attr]
    assert login.http is not None and login.http.json_body == {"user": "dialer", "password": "hunter2"}
    assert login.http.expect.status == [200]


def test_defaults_fill_every_optional_field() -> None:
    cfg = parse_config("version: v1\nservices:\n  web:\n    probes:\n      - {name: home, http: {url: 'http://x/'}}\n")
    probe = cfg.services["web"].probes[0]
    assert cfg.interval_of(probe) == 30.0 and cfg.timeout_of(probe) == 10.0
    assert cfg.services["web"].tier == "medium" and cfg.services["web"].sla.availability == 99.9
    assert probe.http is not None and probe.http.method == "GET" and probe.http.body_size_limit == 10 * 1024**2


def test_the_latency_threshold_is_always_a_histogram_bound() -> None:
    cfg = parse_config(
        "version: v1\nservices:\n  web:\n    sla: {latency: {threshold: 300ms, target: 99}}\n"
        "    probes: [{name: home, http: {url: 'http://x/'}}]\n"
    )
    assert 0.3 in cfg.buckets_of(cfg.services["web"])


def test_the_config_is_frozen() -> None:
    cfg = parse_config("version: v1\n")
    with pytest.raises(ValueError):
        cfg.global_.interval = 5  # type: ignore[misc]


def test_flow_variables_are_left_for_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "s3cret")
    cfg = parse_config(
        "version: v1\nservices:\n  web:\n    probes:\n      - name: f\n        flow:\n          steps:\n"
        "            - {name: a, http: {url: 'http://x/'}, extract: {token: {json: $.token}}}\n"
        "            - {name: b, http: {url: 'http://x/', headers: {A: '${env:TOKEN}', B: 'Bearer ${token}'}}}\n"
    )
    headers = cfg.services["web"].probes[0].flow.steps[1].http.headers  # type: ignore[union-attr]
    assert headers == {"A": "s3cret", "B": "Bearer ${token}"}


def test_error_messages_never_quote_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URL", "ftp://user:topsecret@x/")
    text = "version: v1\nservices:\n  web:\n    probes: [{name: a, http: {url: '${env:URL}'}}]\n"
    assert issues_of(text) == ["services.web.probes[0].http.url: not an http(s) URL: '<secret>' (line 4)"]


INVALID = [
    ("not a mapping", "- 1\n", ["<root>: the config must be a mapping with version: v1 (line 1)"]),
    ("no version", "global: {}\n", ["version: required key is missing (line 1)"]),
    ("wrong version", "version: v2\n", ["version: Input should be 'v1' (line 1)"]),
    (
        "a typo in a key",
        "version: v1\nglobal: {intervall: 5s}\n",
        ["global.intervall: unknown key 'intervall' (did you mean 'interval'?) (line 2)"],
    ),
    (
        "a bad duration",
        "version: v1\nglobal: {interval: 30}\n",
        ["global.interval: not a duration: 30 (use a string such as 30s, 5m, 1h) (line 2)"],
    ),
    (
        "a duration with an unknown unit",
        "version: v1\nglobal: {interval: 3x}\n",
        ["global.interval: not a duration: '3x' (use Prometheus syntax such as 30s, 5m, 1h30m, 250ms) (line 2)"],
    ),
    (
        "timeout above interval",
        "version: v1\nglobal: {interval: 5s, timeout: 10s}\n",
        ["global: timeout must not exceed interval (line 2)"],
    ),
    (
        "a duplicate key",
        "version: v1\nservices:\n  a: {}\n  a: {}\n",
        ["services.a: duplicate key (line 4)"],
    ),
    (
        "an unknown tier",
        "version: v1\nservices:\n  a: {tier: urgent}\n",
        ["services.a.tier: Input should be 'critical', 'high', 'medium' or 'low' (line 3)"],
    ),
    (
        "a probe with two kinds",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, tcp: {address: 'x:1'}, icmp: {host: x}}\n",
        [
            "services.a.probes[0]: a probe needs exactly one of http, tcp, tls, dns, icmp, unix, grpc, websocket, flow, heartbeat (line 5)"
        ],
    ),
    (
        "a non-http url",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, http: {url: 'ftp://x'}}\n",
        ["services.a.probes[0].http.url: not an http(s) URL: 'ftp://x' (line 5)"],
    ),
    (
        "an invalid regex",
        "version: v1\nservices:\n  a:\n    probes:\n      - name: p\n        http:\n          url: http://x/\n"
        "          expect: {body_regex: '(unclosed'}\n",
        [
            "services.a.probes[0].http.expect.body_regex[0]: not a valid regular expression: "
            "missing ), unterminated subpattern at position 0 (line 8)"
        ],
    ),
    (
        "an address without a port",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, tcp: {address: db.internal}}\n",
        ["services.a.probes[0].tcp.address: not host:port: 'db.internal' (IPv6 as [::1]:53) (line 5)"],
    ),
    (
        "two probes with one name",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, icmp: {host: x}}\n      - {name: p, icmp: {host: y}}\n",
        ["services.a.probes[1].name: duplicate probe name 'p' (line 6)"],
    ),
    (
        "a probe timeout above its interval",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, interval: 5s, timeout: 6s, icmp: {host: x}}\n",
        ["services.a.probes[0].timeout: timeout must not exceed the probe's interval (line 5)"],
    ),
    (
        "an unset environment variable",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, http: {url: 'http://x/', headers: {A: '${env:SLAPROBE_NOPE}'}}}\n",
        ["services.a.probes[0].http.headers.A: environment variable SLAPROBE_NOPE is not set (line 5)"],
    ),
    (
        "an unreadable secret file",
        "version: v1\nservices:\n  a:\n    probes:\n      - {name: p, http: {url: 'http://x/', body: '${file:/nonexistent/pw}'}}\n",
        ["services.a.probes[0].http.body: cannot read /nonexistent/pw: No such file or directory (line 5)"],
    ),
    (
        "an escalation to an unknown receiver",
        "version: v1\nescalation:\n  P1: [{after: 0m, notify: oncal}]\nreceivers:\n  oncall: {}\n",
        ["escalation.P1[0].notify: unknown receiver 'oncal' (did you mean 'oncall'?) (line 3)"],
    ),
    (
        "an unknown container log wrapper",
        "version: v1\nservices:\n  shop:\n    logs:\n      - {path: /var/log/pods/*/*/*.log, format: ingress_nginx, wrapper: crio}\n",
        ["services.shop.logs[0].wrapper: Input should be 'auto', 'cri', 'docker' or 'none' (line 5)"],
    ),
    (
        "a bad allow-list entry",
        "version: v1\nglobal: {probe_allow: ['10.0.0.0/33']}\n",
        ["global: probe_allow: not a CIDR: '10.0.0.0/33' (line 2)"],
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_an_invalid_config_gives_exactly_this_message(case: str, text: str, expected: list[str]) -> None:
    assert issues_of(text) == expected


def test_invalid_yaml_is_reported_with_its_line() -> None:
    (issue,) = issues_of("version: v1\nservices: [\n")
    # The wording is the YAML parser's (libyaml or pure Python); the place is ours.
    assert issue.startswith("<root>: invalid YAML: ") and issue.endswith("(line 3)")


def test_every_error_of_a_file_is_listed_at_once() -> None:
    text = "version: v1\nglobal: {interval: 3x, timout: 5s}\nservices:\n  a: {tier: urgent}\n"
    assert [i.split(":")[0] for i in issues_of(text)] == ["global.interval", "global.timout", "services.a.tier"]


def test_the_json_schema_describes_every_top_level_key() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) == {
        "version",
        "global",
        "services",
        "feedback",
        "priorities",
        "escalation",
        "alerting",
        "time_intervals",
        "receivers",
        "alertmanager",
    }
    assert schema["additionalProperties"] is False
    json.dumps(schema)  # serialisable


@pytest.mark.parametrize("name", ["design.yaml", "demo.yaml"])
def test_the_example_configs_validate_against_the_exported_json_schema(name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    document = yaml.safe_load((ROOT / "examples" / name).read_text())
    jsonschema.validate(document, config_json_schema())


def test_generators_load_a_config_whose_secrets_are_not_mounted_here() -> None:
    text = "version: v1\nservices:\n  a:\n    probes: [{name: p, http: {url: 'http://x/', body: '${file:/nonexistent/pw}'}}]\n"
    assert load_config_text(text, require_secrets=False).services["a"].probes[0].http.body == ""  # type: ignore[union-attr]


def load_config_text(text: str, *, require_secrets: bool = True) -> Config:
    return parse_config(text, require_secrets=require_secrets)


def test_example_configs_load() -> None:
    for path in (ROOT / "examples").glob("*.yaml"):
        if path.name != "design.yaml":
            assert isinstance(load_config(path), Config)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("250ms", 0.25), ("1h30m", 5400), ("1d", 86400), ("2w", 1209600), ("1m1s1ms", 61.001)],
)
def test_prometheus_durations_parse_to_seconds_and_back(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds
