"""blackbox_exporter module files, the /probe deadline, and the blackbox-compatible output."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from slaprobe.config import ConfigError, DnsSpec, HeaderAssertion, HttpSpec, IcmpSpec, TcpSpec, TcpStep, TLSConfig
from slaprobe.conventions import BLACKBOX_HELP
from slaprobe.exporter.blackbox import (
    BUILTIN_MODULES,
    DEFAULT_MODULE,
    Module,
    load_modules,
    parse_modules,
    probe_deadline,
    render_debug,
    render_probe_metrics,
)
from slaprobe.gosyntax import go_regex, parse_base2_bytes, parse_go_duration
from slaprobe.probes.result import FailureReason, ProbeResult, Sample

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_FILE = Path("/etc/prometheus/blackbox.yml")
BLACKBOX = shutil.which("prometheus-blackbox-exporter")


def module_of(snippet: str) -> Module:
    """The module ``foo`` whose body is ``snippet`` (its first line is line 3 of the file)."""
    return parse_modules("modules:\n  foo:\n" + textwrap.indent(textwrap.dedent(snippet), "    "))["foo"]


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_modules(textwrap.dedent(text))
    return [str(issue) for issue in caught.value.issues]


def http_of(module: Module) -> HttpSpec:
    assert isinstance(module.spec, HttpSpec)
    return module.spec


def tcp_of(module: Module) -> TcpSpec:
    assert isinstance(module.spec, TcpSpec)
    return module.spec


def field_at(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------------- real files


def test_debians_example_file_loads_completely_grpc_modules_included() -> None:
    if not DEBIAN_FILE.exists():
        pytest.skip("Debian's prometheus-blackbox-exporter is not installed")
    modules = load_modules(DEBIAN_FILE)
    assert modules["grpc"].kind == modules["grpc_plain"].kind == "grpc"


def test_debians_example_file_without_its_grpc_modules_translates_every_module() -> None:
    if not DEBIAN_FILE.exists():
        pytest.skip("Debian's prometheus-blackbox-exporter is not installed")
    raw = yaml.safe_load(DEBIAN_FILE.read_text())
    for name in ("grpc", "grpc_plain"):
        del raw["modules"][name]
    modules = parse_modules(yaml.safe_dump(raw))
    assert sorted(modules) == sorted(raw["modules"])
    assert http_of(modules["http_post_2xx"]).method == "POST"
    pop3 = tcp_of(modules["pop3s_banner"])
    # Go reads "^+OK" as a repeated ^ followed by OK; the translation keeps that meaning.
    assert pop3.dialogue == [TcpStep(expect="(?:^)+OK")]
    assert pop3.tls == TLSConfig()
    irc = tcp_of(modules["irc_banner"]).dialogue
    assert irc[2] == TcpStep(expect="PING :([^ ]+)", send="PONG ${1}")
    icmp = modules["icmp_ttl5"]
    assert icmp.timeout == 5.0 and isinstance(icmp.spec, IcmpSpec) and icmp.spec.ttl == 5


def test_the_shipped_example_loads_completely() -> None:
    modules = load_modules(ROOT / "examples" / "blackbox.yml")
    assert {m.kind for m in modules.values()} == {"http", "tcp", "dns", "icmp"}
    assert len(modules) == 16


@pytest.mark.peer
def test_the_shipped_example_is_also_a_valid_blackbox_exporter_file() -> None:
    if BLACKBOX is None:
        pytest.skip("prometheus-blackbox-exporter is not installed")
    done = subprocess.run(
        [BLACKBOX, "--config.check", f"--config.file={ROOT / 'examples' / 'blackbox.yml'}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_builtin_http_2xx_module_is_blackboxs_default() -> None:
    module = BUILTIN_MODULES[DEFAULT_MODULE]
    assert module.kind == "http" and module.timeout is None
    spec = module.spec_for("example.org")
    assert isinstance(spec, HttpSpec) and spec.url == "http://example.org"
    assert spec.preferred_ip_protocol == "ip6" and spec.expect.status == []


def test_a_module_aims_at_the_target_of_each_request() -> None:
    modules = parse_modules(
        "modules:\n"
        "  t: {prober: tcp}\n"
        "  d: {prober: dns, dns: {query_name: example.org}}\n"
        "  i: {prober: icmp}\n"
        "  h: {prober: http}\n"
    )
    assert modules["t"].spec_for("db:5432") == TcpSpec(address="db:5432", preferred_ip_protocol="ip6")
    dns_spec = modules["d"].spec_for("10.0.0.2")
    assert isinstance(dns_spec, DnsSpec) and dns_spec.server == "10.0.0.2:53"
    icmp_spec = modules["i"].spec_for("10.0.0.1")
    assert isinstance(icmp_spec, IcmpSpec) and icmp_spec.host == "10.0.0.1"
    http_spec = modules["h"].spec_for("https://x.example/a")
    assert isinstance(http_spec, HttpSpec) and http_spec.url == "https://x.example/a"
    with pytest.raises(ValueError):
        modules["t"].spec_for("no-port")


# ---------------------------------------------------------------------------- translation

TRANSLATIONS = [
    # (module body, spec field, expected value)
    ("prober: http", "preferred_ip_protocol", "ip6"),
    ("prober: http", "ip_protocol_fallback", True),
    ("prober: http", "body_size_limit", 0),  # blackbox: no limit
    ("prober: http", "follow_redirects", True),
    ("prober: http", "expect.status", []),
    ("prober: http\nhttp: {valid_status_codes: [200, 301]}", "expect.status", [200, 301]),
    ("prober: http\nhttp: {valid_status_codes: []}", "expect.status", []),
    (
        "prober: http\nhttp: {valid_http_versions: [HTTP/1.1, HTTP/2.0]}",
        "expect.http_version",
        ["HTTP/1.1", "HTTP/2.0"],
    ),
    ("prober: http\nhttp: {method: POST, body: '{}'}", "method", "POST"),
    ("prober: http\nhttp: {method: POST, body: '{}'}", "body", "{}"),
    (
        "prober: http\nhttp: {headers: {Host: vhost.example, X-Id: 7}}",
        "headers",
        {"Host": "vhost.example", "X-Id": "7"},
    ),
    ("prober: http\nhttp: {body_size_limit: 10MB}", "body_size_limit", 10 * 1024 * 1024),
    ("prober: http\nhttp: {body_size_limit: 1.5KiB}", "body_size_limit", 1536),
    ("prober: http\nhttp: {body_size_limit: 512}", "body_size_limit", 512),
    ("prober: http\nhttp: {body_size_limit: 0}", "body_size_limit", 0),
    ("prober: http\nhttp: {follow_redirects: false}", "follow_redirects", False),
    ("prober: http\nhttp: {no_follow_redirects: true}", "follow_redirects", False),
    ("prober: http\nhttp: {fail_if_ssl: true}", "expect.ssl", False),
    ("prober: http\nhttp: {fail_if_not_ssl: true}", "expect.ssl", True),
    ("prober: http\nhttp: {fail_if_ssl: false, fail_if_not_ssl: false}", "expect.ssl", None),
    ("prober: http\nhttp: {fail_if_body_matches_regexp: [error]}", "expect.body_not_regex", ["error"]),
    ("prober: http\nhttp: {fail_if_body_not_matches_regexp: ['ok$']}", "expect.body_regex", ["ok\\Z"]),
    (
        "prober: http\nhttp:\n  fail_if_header_matches: [{header: Set-Cookie, regexp: '.*', allow_missing: true}]",
        "expect.headers",
        [HeaderAssertion(name="Set-Cookie", regex=".*", negate=True, allow_missing=True)],
    ),
    (
        "prober: http\nhttp:\n  fail_if_header_not_matches: [{header: X-Ok, regexp: 'yes'}]",
        "expect.headers",
        [HeaderAssertion(name="X-Ok", regex="yes")],
    ),
    (
        "prober: http\nhttp:\n  tls_config: {insecure_skip_verify: true, server_name: a.example, min_version: TLS12,"
        " ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem}",
        "tls",
        TLSConfig(
            insecure_skip_verify=True,
            server_name="a.example",
            min_version="TLS12",
            ca_file="/ca.pem",
            cert_file="/c.pem",
            key_file="/k.pem",
        ),
    ),
    ("prober: http\nhttp: {basic_auth: {username: bob, password: pw}}", "basic_auth.username", "bob"),
    ("prober: http\nhttp: {basic_auth: {username: bob, password: pw}}", "basic_auth.password", "pw"),
    ("prober: http\nhttp: {authorization: {credentials: tok}}", "headers", {"Authorization": "Bearer tok"}),
    ("prober: http\nhttp: {authorization: {type: Token, credentials: tok}}", "headers", {"Authorization": "Token tok"}),
    ("prober: http\nhttp: {bearer_token: tok}", "headers", {"Authorization": "Bearer tok"}),
    (  # an Authorization header written in the module wins, as in prometheus/common
        "prober: http\nhttp: {headers: {authorization: mine}, bearer_token: tok}",
        "headers",
        {"authorization": "mine"},
    ),
    ("prober: http\nhttp: {proxy_url: 'http://proxy:3128'}", "proxy", "http://proxy:3128"),
    ("prober: http\nhttp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}", "preferred_ip_protocol", "ip4"),
    ("prober: http\nhttp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}", "ip_protocol_fallback", False),
    ("prober: http\nhttp: {compression: '', enable_http3: false, oauth2: {}}", "method", "GET"),
    ("prober: http\nhttp: {compression: gzip}", "compression", "gzip"),
    ("prober: http", "compression", None),
    ("prober: tcp", "dialogue", []),
    ("prober: tcp", "tls", None),
    ("prober: tcp", "preferred_ip_protocol", "ip6"),
    ("prober: tcp\ntcp: {tls: true, tls_config: {insecure_skip_verify: true}}", "tls.insecure_skip_verify", True),
    (
        "prober: tcp\ntcp:\n  query_response:\n  - expect: '^220'\n  - send: \"EHLO x\\r\"\n  - starttls: true",
        "dialogue",
        [TcpStep(expect="^220"), TcpStep(send="EHLO x\r"), TcpStep(starttls=True)],
    ),
    ("prober: tcp\ntcp: {source_ip_address: '', query_response: [{expect_bytes: ''}]}", "dialogue", [TcpStep()]),
    ("prober: dns\ndns: {query_name: example.org}", "query", "example.org"),
    ("prober: dns\ndns: {query_name: example.org}", "type", "ANY"),
    ("prober: dns\ndns: {query_name: example.org}", "query_class", "IN"),
    ("prober: dns\ndns: {query_name: example.org}", "transport", "udp"),
    ("prober: dns\ndns: {query_name: example.org}", "recursion_desired", True),
    ("prober: dns\ndns: {query_name: example.org}", "expect.rcode", ["NOERROR"]),
    ("prober: dns\ndns: {query_name: example.org}", "preferred_ip_protocol", "ip6"),
    ("prober: dns\ndns: {query_name: x., query_type: SOA, query_class: CH}", "query_class", "CH"),
    ("prober: dns\ndns: {query_name: x., transport_protocol: tcp}", "transport", "tcp"),
    ("prober: dns\ndns: {query_name: x., recursion_desired: false}", "recursion_desired", False),
    (
        "prober: dns\ndns: {query_name: x., valid_rcodes: [NXDOMAIN, SERVFAIL]}",
        "expect.rcode",
        ["NXDOMAIN", "SERVFAIL"],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  validate_answer_rrs:\n    fail_if_matches_regexp: ['.*127.0.0.1']\n"
        "    fail_if_all_match_regexp: [a]\n    fail_if_not_matches_regexp: [b]\n    fail_if_none_matches_regexp: [c]",
        "expect.answer.fail_if_all_match_regexp",
        ["a"],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  validate_authority_rrs: {fail_if_none_matches_regexp: ['IN\\tNS']}",
        "expect.authority.fail_if_none_matches_regexp",
        ["IN\\tNS"],  # Go's \\t escape, the same in Python
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  validate_additional_rrs: {fail_if_not_matches_regexp: ['\\d']}",
        "expect.additional.fail_if_not_matches_regexp",
        ["(?a)\\d"],
    ),
    ("prober: dns\ndns: {query_name: x., dns_over_tls: false}", "type", "ANY"),
    ("prober: icmp", "packets", 1),  # blackbox sends one echo request
    ("prober: icmp", "payload_size", 28),  # len("Prometheus Blackbox Exporter")
    ("prober: icmp", "ttl", 64),
    ("prober: icmp", "preferred_ip_protocol", "ip6"),
    ("prober: icmp\nicmp: {ttl: 5, payload_size: 100}", "ttl", 5),
    ("prober: icmp\nicmp: {ttl: 5, payload_size: 100}", "payload_size", 100),
    ("prober: icmp\nicmp: {dont_fragment: false}", "packets", 1),
]


@pytest.mark.parametrize(("snippet", "dotted", "expected"), TRANSLATIONS)
def test_each_blackbox_key_lands_in_the_matching_spec_field(snippet: str, dotted: str, expected: Any) -> None:
    assert field_at(module_of(snippet).spec, dotted) == expected


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("5s", 5.0), ("1m30s", 90.0), ("1.5s", 1.5), ("500ms", 0.5), ("2h", 7200.0), ("0s", None)],
)
def test_a_module_timeout_is_a_go_duration(timeout: str, seconds: float | None) -> None:
    assert module_of(f"prober: tcp\ntimeout: {timeout}").timeout == seconds


def test_secrets_of_a_module_are_remembered(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("from-file\n")
    module = module_of(f"prober: http\nhttp: {{basic_auth: {{username: u, password_file: {password}}}}}")
    auth = http_of(module).basic_auth
    assert auth is not None and auth.password == "from-file"
    assert module.secrets == {"from-file"}
    assert module_of("prober: http\nhttp: {bearer_token: tok}").secrets == {"tok", "Bearer tok"}


def test_body_file_is_read_into_the_request_body(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"a": 1}\n')
    module = module_of(f"prober: http\nhttp: {{method: POST, body_file: {body}}}")
    assert http_of(module).body == '{"a": 1}\n'


# ---------------------------------------------------------------------------- refusals

REFUSALS = [
    # (module body, every message; the body's first line is line 3)
    (
        "prober: grpc\ngrpc: {tls: true, tls_config: {insecure_skip_verify: true}}",
        ["modules.foo.grpc.tls_config.insecure_skip_verify: not supported for grpc (grpcio always verifies) (line 4)"],
    ),
    (
        "prober: websocket\nwebsocket: {http_config: {proxy_url: 'http://p'}}",
        ["modules.foo.websocket.http_config.proxy_url: unknown key 'proxy_url' (line 4)"],
    ),
    ("prober: htp", ["modules.foo.prober: unknown prober 'htp' (did you mean 'http'?) (line 3)"]),
    ("timeout: 5s", ["modules.foo.prober: required key is missing (line 2)"]),
    (
        "prober: http\nhttp:\n  oauth2: {client_id: x, token_url: 't'}",
        ["modules.foo.http.oauth2.token_url: not an http(s) URL: 't' (line 5)"],
    ),
    ("prober: http\nhttp:\n  enable_http3: true", ["modules.foo.http.enable_http3: not supported (line 5)"]),
    (
        "prober: http\nhttp:\n  http_headers: {authorization: {values: [a]}, X-A: {value: [b]}}",
        [
            "modules.foo.http.http_headers.X-A.value: unknown key 'value' (did you mean 'values'?) (line 5)",
            'modules.foo.http.http_headers.authorization: setting header "Authorization" is not allowed (line 5)',
        ],
    ),
    (
        "prober: http\nhttp:\n  fail_if_body_json_matches_cel: 'body.('",
        [
            "modules.foo.http.fail_if_body_json_matches_cel: error compiling CEL program: "
            "Failed to parse expression 'body.(': ERROR: <input>:1:6: Syntax error: no viable alternative "
            "at input '.(' (line 5)"
        ],
    ),
    (
        "prober: http\nhttp:\n  proxy_connect_header: {Proxy-Authorization: [Bearer t]}",
        [
            "modules.foo.http.proxy_connect_header: if proxy_connect_header is configured, "
            "proxy_url or proxy_from_environment must also be configured (line 5)"
        ],
    ),
    (
        "prober: http\nhttp:\n  valid_status_code: [200]",
        [
            "modules.foo.http.valid_status_code: unknown key 'valid_status_code' "
            "(did you mean 'valid_status_codes'?) (line 5)"
        ],
    ),
    ("prober: http\ntimout: 5s", ["modules.foo.timout: unknown key 'timout' (did you mean 'timeout'?) (line 4)"]),
    (
        "prober: http\nhttp:\n  valid_http_versions: [HTTP/2]",
        [
            "modules.foo.http.valid_http_versions: ['HTTP/2'] never matches a response "
            "(use HTTP/1.0, HTTP/1.1, HTTP/2.0) (line 5)"
        ],
    ),
    (
        "prober: http\nhttp:\n  fail_if_ssl: true\n  fail_if_not_ssl: true",
        ["modules.foo.http.fail_if_not_ssl: fail_if_ssl and fail_if_not_ssl together fail every probe (line 6)"],
    ),
    (
        "prober: http\nhttp:\n  fail_if_ssl: sure",
        ["modules.foo.http.fail_if_ssl: must be true or false, not 'sure' (line 5)"],
    ),
    (
        "prober: http\nhttp:\n  method: post",
        ["modules.foo.http.method: not an upper-case HTTP method: 'post' (line 5)"],
    ),
    (
        "prober: http\nhttp:\n  fail_if_body_matches_regexp: ['(?=x)']",
        [
            "modules.foo.http.fail_if_body_matches_regexp[0]: not a valid regular expression: "
            "invalid or unsupported Perl syntax: '(?=x' (line 5)"
        ],
    ),
    (
        "prober: http\nhttp:\n  fail_if_header_matches:\n  - {header: X-A}",
        ["modules.foo.http.fail_if_header_matches[0].regexp: regexp must be set for HTTP header matchers (line 6)"],
    ),
    (
        "prober: http\nhttp:\n  tls_config: {min_version: TLS14, ca: PEM}",
        [
            "modules.foo.http.tls_config.ca: not supported (use ca_file) (line 5)",
            "modules.foo.http.tls_config.min_version: unknown TLS version: TLS14 "
            "(use TLS10, TLS11, TLS12, TLS13) (line 5)",
        ],
    ),
    (
        "prober: http\nhttp:\n  tls_config:\n    cert_file: /c.pem",
        [
            "modules.foo.http.tls_config.cert_file: exactly one of key or key_file must be configured "
            "when a client certificate is configured (line 6)"
        ],
    ),
    (
        "prober: http\nhttp:\n  basic_auth: {username: u, password: p}\n  authorization: {credentials: t}",
        [
            "modules.foo.http.authorization: "
            "at most one of basic_auth, oauth2 & authorization must be configured (line 6)"
        ],
    ),
    (
        "prober: http\nhttp:\n  authorization: {type: Basic, credentials: t}",
        [
            "modules.foo.http.authorization.type: "
            'authorization type cannot be set to "basic", use "basic_auth" instead (line 5)'
        ],
    ),
    (
        "prober: http\nhttp:\n  basic_auth: {username: u, password_ref: vault}",
        ["modules.foo.http.basic_auth.password_ref: not supported (use password_file) (line 5)"],
    ),
    (
        "prober: http\nhttp:\n  basic_auth: {username: u, password_file: /nonexistent/pw}",
        ["modules.foo.http.basic_auth.password_file: cannot read /nonexistent/pw: No such file or directory (line 5)"],
    ),
    (
        "prober: http\nhttp:\n  body_size_limit: lots",
        ["modules.foo.http.body_size_limit: not a size: 'lots' (use bytes or a unit such as 512KB or 10MB) (line 5)"],
    ),
    (
        "prober: http\nhttp:\n  preferred_ip_protocol: ipv4",
        ["modules.foo.http.preferred_ip_protocol: must be ip4 or ip6, not 'ipv4' (line 5)"],
    ),
    (
        "prober: http\ntcp: {tls: true}",
        ["modules.foo.tcp: section for prober tcp, but this module's prober is http (line 4)"],
    ),
    (
        "prober: tcp\ntimeout: 5",
        ["modules.foo.timeout: not a duration: 5 (use Go syntax such as 5s, 1m30s, 500ms) (line 4)"],
    ),
    (
        "prober: tcp\ntcp:\n  source_ip_address: 10.0.0",
        ["modules.foo.tcp.source_ip_address: error parsing source ip address: 10.0.0 (line 5)"],
    ),
    (
        "prober: tcp\ntcp:\n  query_response:\n  - {expect: a, expect_bytes: S}\n  - labels: [{name: a, value: b}]",
        [
            "modules.foo.tcp.query_response[0].expect_bytes: expect and expect_bytes are mutually exclusive (line 6)",
            "modules.foo.tcp.query_response[1].labels: labels need an expect in the same step "
            "(they take its groups) (line 7)",
        ],
    ),
    (
        "prober: dns\ndns: {query_type: A}",
        ["modules.foo.dns.query_name: query name must be set for DNS module (line 4)"],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  query_type: AAAAA\n  query_class: in",
        [
            "modules.foo.dns.query_type: query type 'AAAAA' is not valid (line 6)",
            "modules.foo.dns.query_class: query class 'in' is not valid (line 7)",
        ],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  dns_over_tls: true\n  transport_protocol: quic",
        [
            "modules.foo.dns.dns_over_tls: dns_over_tls needs transport_protocol: tcp (line 6)",
            "modules.foo.dns.transport_protocol: must be udp or tcp, not 'quic' (line 7)",
        ],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  valid_rcodes: [NOERROR, NOPE]",
        ["modules.foo.dns.valid_rcodes[1]: unknown response code 'NOPE' (line 6)"],
    ),
    (  # a number dnspython refuses with ValueError: found by bench/fuzz.py
        "prober: dns\ndns:\n  query_name: x.\n  valid_rcodes: [147530357425852628992]",
        ["modules.foo.dns.valid_rcodes[0]: unknown response code '147530357425852628992' (line 6)"],
    ),
    (
        "prober: dns\ndns:\n  query_name: x.\n  validate_answer_rrs:\n    fail_if_match_regexp: [a]",
        [
            "modules.foo.dns.validate_answer_rrs.fail_if_match_regexp: unknown key 'fail_if_match_regexp' "
            "(did you mean 'fail_if_matches_regexp'?) (line 7)"
        ],
    ),
    ("prober: icmp\nicmp:\n  ttl: 300", ['modules.foo.icmp.ttl: "ttl" cannot exceed 255 (line 5)']),
    (
        "prober: icmp\nicmp:\n  payload_size: big",
        ["modules.foo.icmp.payload_size: must be an integer, not 'big' (line 5)"],
    ),
]


@pytest.mark.parametrize(("snippet", "expected"), REFUSALS)
def test_a_key_slaprobe_lacks_or_a_typo_is_refused_by_path_and_line(snippet: str, expected: list[str]) -> None:
    text = "modules:\n  foo:\n" + textwrap.indent(snippet, "    ") + "\n"
    assert issues_of(text) == expected


def test_every_problem_of_the_file_is_reported_at_once_in_line_order() -> None:
    text = """\
    modules:
      a:
        prober: http
        http:
          enable_http3: true
      b:
        prober: grcp
      c:
        prober: icmp
        icmp: {ttl: -1}
        prober: icmp
    """
    assert issues_of(text) == [
        "modules.a.http.enable_http3: not supported (line 5)",
        "modules.b.prober: unknown prober 'grcp' (did you mean 'grpc'?) (line 7)",
        'modules.c.icmp.ttl: "ttl" cannot be negative (line 10)',
        "modules.c.prober: duplicate key (line 11)",
    ]


def test_invalid_yaml_in_a_module_file_is_reported_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_modules("modules:\n  a: {prober: http\n")
    (issue,) = caught.value.issues
    # The wording is the YAML parser's (libyaml or pure Python); the place is ours.
    assert str(issue).startswith("<root>: invalid YAML: ") and issue.line == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modules: [a]\n", ["modules: must be a mapping (line 1)"]),
        ("- a\n", ["<root>: the file must be a mapping with the key 'modules' (line 1)"]),
        ("module:\n  a: {prober: http}\n", ["module: unknown key 'module' (did you mean 'modules'?) (line 1)"]),
        ("modules:\n  a: http\n", ["modules.a: must be a mapping with the key 'prober' (line 2)"]),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused(text: str, expected: list[str]) -> None:
    assert issues_of(text) == expected


def test_an_empty_modules_section_is_a_valid_file_like_in_blackbox() -> None:
    assert parse_modules("modules: {}\n") == {}


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_modules(tmp_path / "missing.yml")


# ---------------------------------------------------------------------------- Go regexes and units

GO_REGEXES = [
    ("^SSH-2.0-", "^SSH-2.0-"),
    ("^+OK", "(?:^)+OK"),  # legal in Go: a repeated ^
    ("OK$", "OK\\Z"),  # Go's $ is end of text; Python's also matches before a final newline
    ("(?m)^a$", "(?m:^a$)"),
    ("a\\z", "a\\Z"),
    ("[[:alpha:]][[:digit:]_]", "[A-Za-z][0-9_]"),
    ("\\Qa.b*\\E", "a\\.b\\*"),
    ("a(?i)b|c", "a(?i:b)|(?i:c)"),  # an inline flag holds to the end of its group, across |
    ("(?<name>x)", "(?P<name>x)"),
    ("\\d+", "(?a)\\d+"),  # Go's \\d \\w \\s \\b are ASCII
    ("\\x{41}\\101", "\\U00000041\\x41"),
    ("[a&&b]", "[a\\&\\&b]"),
    ("www.prometheus.io.\t300\tIN\tA\t127.0.0.1", "www.prometheus.io.\t300\tIN\tA\t127.0.0.1"),
]


@pytest.mark.parametrize(("go", "python"), GO_REGEXES)
def test_a_go_regex_is_rewritten_into_python_syntax(go: str, python: str) -> None:
    assert go_regex(go) == python


@pytest.mark.parametrize(
    ("go", "message"),
    [
        ("(?=a)", "invalid or unsupported Perl syntax: '(?=a'"),
        ("(a)\\1", "backreferences are not supported: \\1"),
        ("(?U)a*", "the U (ungreedy) flag is not supported"),
        ("\\pL", "Unicode classes (\\p) are not supported"),
        ("[[:^alpha:]]", "negated POSIX classes are not supported: [:^alpha:]"),
        ("(a", "missing closing )"),
        ("[a", "missing closing ]"),
        ("a**", "multiple repeat at position 2"),
    ],
)
def test_a_go_regex_python_cannot_express_is_refused(go: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        go_regex(go)


def test_translated_regexes_match_what_go_matches() -> None:
    # Checked against blackbox_exporter 0.23: expect "^+OK" matched the line "OK", not "+OK hello".
    assert re.search(go_regex("^+OK"), "OK") and not re.search(go_regex("^+OK"), "+OK hello")
    assert re.search(go_regex("ok$"), "ok") and not re.search(go_regex("ok$"), "ok\n")
    assert not re.search(go_regex("\\d"), "\u0663")  # ARABIC-INDIC DIGIT THREE is no digit in Go
    assert re.search(go_regex("a(?i)b|c"), "C") and not re.search(go_regex("a(?i)b|c"), "Ab")


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("5s", 5.0), ("1h2m3s", 3723.0), ("1.5m", 90.0), ("250ms", 0.25), ("10us", 1e-5)]
)
def test_go_durations_parse_into_seconds(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5d", "s", "1s2", "1 s"])
def test_a_malformed_go_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "size"),
    [(100, 100), ("100", 100), ("1KB", 1024), ("1KiB", 1024), ("2MB", 2 * 1024**2), ("1GB512MB", 1536 * 1024**2)],
)
def test_body_size_limits_use_powers_of_two_as_blackbox_does(value: object, size: int) -> None:
    assert parse_base2_bytes(value) == size


# ---------------------------------------------------------------------------- deadline


@pytest.mark.parametrize(
    ("header", "module_timeout", "deadline"),
    [
        (None, None, 119.5),  # blackbox: 120 s default scrape timeout, minus the 0.5 s offset
        ("", None, 119.5),
        ("0", None, 119.5),
        ("10", None, 9.5),
        ("10", 5.0, 5.0),
        ("10", 30.0, 9.5),
        (None, 5.0, 5.0),
        ("2.5", None, 2.0),
        ("0.3", None, 0.05),  # never below the minimum
        ("0.3", 5.0, 0.05),
    ],
)
def test_the_probe_deadline_follows_blackboxs_rule(
    header: str | None, module_timeout: float | None, deadline: float
) -> None:
    assert probe_deadline(header, module_timeout) == pytest.approx(deadline)


@pytest.mark.parametrize("header", ["soon", "nan", "inf"])
def test_a_scrape_timeout_header_that_is_not_a_number_is_an_error(header: str) -> None:
    with pytest.raises(ValueError):
        probe_deadline(header, None)


# ---------------------------------------------------------------------------- rendering

HTTP_RESULT = ProbeResult(
    success=True,
    duration=0.0123,
    samples=(
        Sample("probe_ip_protocol", 4),
        Sample("probe_http_duration_seconds", 0.002, (("phase", "resolve"),)),
        Sample("probe_http_duration_seconds", 0.001, (("phase", "connect"),)),
        Sample("probe_http_status_code", 200),
        Sample("probe_ip_addr_hash", 3668918509),
        Sample("probe_tls_version_info", 1, (("version", "TLS 1.3"),)),
    ),
)


def families_of(text: bytes) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text.decode())}


def test_rendered_metrics_are_gauges_with_blackboxs_help_sorted_by_name() -> None:
    text = render_probe_metrics(HTTP_RESULT)
    families = families_of(text)
    assert list(families) == sorted(families)
    assert all(f.type == "gauge" and f.documentation == BLACKBOX_HELP[f.name] for f in families.values())
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values == {
        ("probe_success", ()): 1.0,
        ("probe_duration_seconds", ()): 0.0123,
        ("probe_ip_protocol", ()): 4.0,
        ("probe_http_duration_seconds", (("phase", "connect"),)): 0.001,
        ("probe_http_duration_seconds", (("phase", "resolve"),)): 0.002,
        ("probe_http_status_code", ()): 200.0,
        ("probe_ip_addr_hash", ()): 3668918509.0,
        ("probe_tls_version_info", (("version", "TLS 1.3"),)): 1.0,
    }
    assert b"probe_failure_info" not in text
    # series of a family are ordered by labels, as blackbox's registry orders them
    assert text.index(b'phase="connect"') < text.index(b'phase="resolve"')


def test_a_failed_probe_says_why_in_probe_failure_info() -> None:
    result = ProbeResult(success=False, duration=1.5, reason=FailureReason.TIMEOUT, detail="no answer")
    families = families_of(render_probe_metrics(result))
    assert families["probe_success"].samples[0].value == 0.0
    [info] = families["probe_failure_info"].samples
    assert info.labels == {"reason": "timeout"} and info.value == 1.0


def test_samples_cannot_override_the_handlers_own_series_and_the_first_sample_of_a_series_wins() -> None:
    result = ProbeResult(
        success=True,
        duration=0.1,
        samples=(
            Sample("probe_success", 0),
            Sample("probe_failure_info", 1, (("reason", "dns"),)),
            Sample("probe_http_status_code", 200),
            Sample("probe_http_status_code", 500),
        ),
    )
    families = families_of(render_probe_metrics(result))
    assert [s.value for s in families["probe_success"].samples] == [1.0]
    assert "probe_failure_info" not in families
    assert [s.value for s in families["probe_http_status_code"].samples] == [200.0]


def test_label_values_are_escaped_and_read_back_unchanged() -> None:
    nasty = 'CN=a\\b,O="quoted"\nsecond line ü'
    result = ProbeResult(
        success=True,
        duration=0.1,
        samples=(Sample("probe_ssl_last_chain_info", 1, (("subject", nasty), ("issuer", "plain"))),),
    )
    text = render_probe_metrics(result)
    assert 'subject="CN=a\\\\b,O=\\"quoted\\"\\nsecond line ü"'.encode() in text
    assert b'issuer="plain",subject=' in text  # label pairs sorted by name, as Go writes them
    [sample] = families_of(text)["probe_ssl_last_chain_info"].samples
    assert sample.labels == {"subject": nasty, "issuer": "plain"}


def test_special_values_and_unknown_sample_names_render_parseably() -> None:
    result = ProbeResult(
        success=True,
        duration=0.1,
        samples=(Sample("probe_http_version", math.nan), Sample("probe_custom_value", math.inf)),
    )
    families = families_of(render_probe_metrics(result))
    assert math.isnan(families["probe_http_version"].samples[0].value)
    assert families["probe_custom_value"].samples[0].value == math.inf
    assert families["probe_custom_value"].documentation == "probe_custom_value"


def test_the_debug_page_has_blackboxs_three_parts_and_hides_every_secret() -> None:
    module = module_of(
        """\
        prober: http
        timeout: 5s
        http:
          method: POST
          headers: {X-Api-Key: key-from-env, Proxy-Authorization: Basic header-token}
          basic_auth: {username: bob, password: hunter2-pw}
          fail_if_body_not_matches_regexp: ['ok$']
        """
    )
    result = ProbeResult(success=False, duration=0.2, reason=FailureReason.HTTP_STATUS)
    log = ["+0.000s Beginning probe", "+0.001s proxy said no to header-token, hunter2-pw", "+0.1s got 500"]
    page = render_debug(result, log, module, lambda text: text.replace("key-from-env", "<secret>"))
    assert page.startswith("Logs for the probe:\n+0.000s Beginning probe\n")
    _logs, rest = page.split("\n\n\nMetrics that would have been returned:\n")
    metrics, rest = rest.split("\n\n\nModule configuration:\n")
    written, translated = rest.split("\n\n\nAs slaprobe runs it:\n")
    assert families_of(metrics.encode())["probe_failure_info"].samples[0].labels == {"reason": "http_status"}
    assert yaml.safe_load(written) == {
        "prober": "http",
        "timeout": "5s",
        "http": {
            "method": "POST",
            "headers": {"X-Api-Key": "<secret>", "Proxy-Authorization": "<secret>"},
            "basic_auth": {"username": "bob", "password": "<secret>"},
            "fail_if_body_not_matches_regexp": ["ok$"],
        },
    }
    runs = yaml.safe_load(translated)["http"]
    assert runs["basic_auth"] == {"username": "bob", "password": "<secret>"}
    assert runs["expect"]["body_regex"] == ["ok\\Z"] and "url" not in runs
    for secret in ("hunter2-pw", "header-token", "key-from-env"):
        assert secret not in page


# ---------------------------------------------------------------------------- blackbox 0.28's own file

EXAMPLE_028 = ROOT / "tests" / "probes" / "data" / "blackbox-0.28-example.yml"


def test_check_on_blackbox_028s_example_file_lists_only_the_missing_body_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from slaprobe.cli import main

    assert main(["check", "--modules", str(EXAMPLE_028)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "error: modules.http_post_body_file.http.body_file: cannot read /files/body.txt: "
        f"No such file or directory ({EXAMPLE_028}:59)"
    ]


def test_every_other_module_of_blackbox_028s_example_file_is_served() -> None:
    from slaprobe.exporter.blackbox import read_module_file

    read = read_module_file(EXAMPLE_028)
    written = yaml.safe_load(EXAMPLE_028.read_text())["modules"]
    assert len(written) == 25  # at the v0.28.0 tag; master adds two websocket modules
    assert read.usable and read.refused == ("http_post_body_file",)
    assert sorted(read.modules) == sorted(set(written) - {"http_post_body_file"})
    assert {m.kind for m in read.modules.values()} == {"http", "tcp", "icmp", "dns", "unix"}


def test_serve_names_a_module_it_cannot_run_and_serves_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from slaprobe.exporter.runtime import Exporter, Sources

    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  good: {prober: tcp}\n  bad: {prober: http, http: {method: get}}\n")
    exporter = Exporter(Sources(modules=str(path)))
    status = exporter.reload()
    assert status.successful and status.refused_modules == ("bad",)
    assert sorted(exporter.modules) == ["good"]
    assert "modules refused: bad" in caplog.text
    assert "modules.bad.http.method: not an upper-case HTTP method: 'get'" in caplog.text


def test_a_module_broken_by_a_reload_keeps_its_running_version_while_the_others_change(tmp_path: Path) -> None:
    from slaprobe.exporter.runtime import Exporter, Sources

    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  a: {prober: tcp}\n  b: {prober: http}\n")
    exporter = Exporter(Sources(modules=str(path)))
    assert exporter.reload().successful
    path.write_text(
        "modules:\n  a: {prober: tcp, timeoutt: 1s}\n  b: {prober: http, timeout: 3s}\n  c: {prober: tcp}\n"
    )
    status = exporter.reload()
    assert status.refused_modules == ("a",)
    assert sorted(exporter.modules) == ["a", "b", "c"]
    assert exporter.modules["a"].timeout is None and exporter.modules["b"].timeout == 3


def test_a_module_file_broken_as_a_whole_is_refused_and_the_old_one_keeps_running(tmp_path: Path) -> None:
    from slaprobe.exporter.runtime import Exporter, Sources

    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  a: {prober: tcp}\n")
    exporter = Exporter(Sources(modules=str(path)))
    assert exporter.reload().successful
    path.write_text("modules: [a, b]\n")
    assert not exporter.reload().successful
    assert sorted(exporter.modules) == ["a"]


async def test_watch_config_reloads_on_change_and_keeps_the_old_modules_on_error(tmp_path: Path) -> None:
    import asyncio

    from slaprobe.exporter.runtime import Exporter, Sources
    from slaprobe.exporter.watch import watch_files

    path = tmp_path / "blackbox.yml"
    path.write_text("modules:\n  a: {prober: tcp}\n")
    exporter = Exporter(Sources(modules=str(path)))
    assert exporter.reload().successful
    reloads: list[bool] = []

    async def reload() -> None:
        reloads.append((await exporter.reload_async()).successful)

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_files([str(path)], reload, interval=0.02, stop=stop))

    async def until(count: int) -> None:
        for _ in range(500):
            if len(reloads) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reload #{count}")

    try:
        await asyncio.sleep(0.05)  # the watcher has taken its first look
        path.write_text("modules:\n  a: {prober: tcp}\n  b: {prober: http}\n")
        await until(1)
        assert sorted(exporter.modules) == ["a", "b"]
        path.write_text("modules: [not, a, mapping, at, all]\n")
        await until(2)
        assert reloads == [True, False] and sorted(exporter.modules) == ["a", "b"]
    finally:
        stop.set()
        await watcher
