"""Hostile config files, module files and log lines: only the documented error ever escapes.

- ``parse_config``: random YAML-ish documents, random text, and valid example configs
  mutated a few edits at a time: a ``Config`` or a ``ConfigError``, nothing else.
- ``parse_modules`` (blackbox module files): the same with the example module file.
- the log parsers: random bytes and real lines mutated: an ``Event`` whose fields can all
  be read, or None (the caller counts it as unparsed); never an exception.

CI runs a few thousand examples in all; ``python bench/fuzz.py`` runs the same properties
(``check_*``, with the strategies below) 100,000 times each.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaprobe.config import Config, ConfigError, config_json_schema, parse_config
from slaprobe.exporter.blackbox import Module, parse_modules
from slaprobe.probes.logevent import Event
from slaprobe.probes.parsers import PARSERS, parse_clf_time, parse_duration_text, parse_iso_time

REPO = Path(__file__).resolve().parents[2]
CONFIG_EXAMPLES = [REPO / "examples" / name for name in ("alerting.yaml", "design.yaml", "demo.yaml")]
MODULE_EXAMPLE = REPO / "examples" / "blackbox.yml"
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,  # nothing written into the work tree; a failure prints its example
    "derandomize": True,  # CI sees the same examples every run; bench/fuzz.py explores at random
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


# ---------------------------------------------------------------------------- the properties


def check_config(text: str) -> None:
    """``parse_config`` gives a Config or raises ConfigError, whatever the text."""
    try:
        config = parse_config(text, "<fuzz>", require_secrets=False)
    except ConfigError as exc:
        assert exc.issues, "a ConfigError names at least one issue"
        for issue in exc.issues:
            str(issue)  # every message can be shown
        return
    assert isinstance(config, Config)
    config.summary()
    list(config.probes())


def check_modules(text: str) -> None:
    """``parse_modules`` gives modules or raises ConfigError, whatever the text."""
    try:
        modules = parse_modules(text, "<fuzz>")
    except ConfigError as exc:
        assert exc.issues
        return
    assert all(isinstance(module, Module) for module in modules.values())


def check_line(format_name: str, line: bytes) -> None:
    """A log parser gives None or an Event whose every field can be read; it never raises."""
    event = PARSERS[format_name](line)
    if event is None:
        return
    assert isinstance(event, Event)
    fields = dict(event.fields)  # lazily split fields are split now
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in fields.items())
    assert event.status is None or isinstance(event.status, int)
    for number in (event.time, event.duration):
        assert number is None or (isinstance(number, float) and not math.isnan(number))


def check_time_text(text: str) -> None:
    """The timestamp and duration readers behind the parsers give a number or None."""
    for value in (parse_clf_time(text), parse_iso_time(text), parse_duration_text(text)):
        assert value is None or isinstance(value, float)


# ---------------------------------------------------------------------------- strategies


def _schema_keys() -> list[str]:
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    keys.update(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config_json_schema())
    return sorted(keys)


CONFIG_KEYS = _schema_keys()
MODULE_KEYS = [
    "modules", "prober", "timeout", "http", "tcp", "dns", "icmp", "grpc", "valid_status_codes",
    "valid_http_versions", "method", "headers", "body", "body_file", "body_size_limit", "compression",
    "follow_redirects", "no_follow_redirects", "fail_if_ssl", "fail_if_not_ssl", "fail_if_body_matches_regexp",
    "fail_if_body_not_matches_regexp", "fail_if_header_matches", "fail_if_header_not_matches", "header",
    "regexp", "allow_missing", "tls_config", "insecure_skip_verify", "ca_file", "cert_file", "key_file",
    "server_name", "min_version", "max_version", "basic_auth", "username", "password", "password_file",
    "authorization", "type", "credentials", "credentials_file", "bearer_token", "bearer_token_file",
    "proxy_url", "preferred_ip_protocol", "ip_protocol_fallback", "query_response", "expect", "send",
    "starttls", "tls", "source_ip_address", "query_name", "query_type", "query_class", "transport_protocol",
    "recursion_desired", "valid_rcodes", "validate_answer_rrs", "validate_authority_rrs",
    "validate_additional_rrs", "fail_if_matches_regexp", "fail_if_all_match_regexp",
    "fail_if_not_matches_regexp", "fail_if_none_matches_regexp", "payload_size", "dont_fragment", "ttl",
    "oauth2", "enable_http2", "skip_resolve_phase_with_proxy", "ip_protocol",
]  # fmt: skip

# Scalars that reach the interesting validators: durations, sizes, regexes, URLs, addresses.
_SPECIAL_TEXT = [
    "30s", "5m", "0s", "-1s", "1h30m", "1.5s", "99999999999h", "", " ", "ms", "1e309s", "nan", "inf",
    "http://shop.example/", "https://[::1]:8443/x", "ftp://x/", "http://", "127.0.0.1:53", "[::1]:0",
    "host:99999", "(", "[a-", "(?P<x>a)(?P<x>b)", "a{99999999}", "\\", "${env:NOPE}", "${file:/nonexistent}",
    "${x}", "${", "10MB", "512KiB", "-5", "critical", "P1", "*/5 * * * *", "61 * * * *", "monday:friday",
    "09:00", "25:00", "Asia/Shanghai", "Not/AZone", "nginx_combined", "regex", "A", "TXT", "NXDOMAIN",
    "TLS13", "ip6", "GET", "post", "\x00", "\udcff", "é", "\n", "---", "{", "&a", "*a", "!!python/object:os.system",
]  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_SPECIAL_TEXT),
    st.text(max_size=30),
)


def structures(keys: list[str]) -> st.SearchStrategy[Any]:
    """Nested mappings and lists whose keys are mostly real config keys."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=12), st.integers(-3, 3), st.booleans())
    return st.recursive(
        _scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(key, children, max_size=5),
        ),
        max_leaves=30,
    )


config_structures = st.builds(
    lambda version, body: {"version": version, **body} if isinstance(body, dict) else {"version": version},
    st.sampled_from(["v1", "v1", "v1", "v2", 1, None]),
    st.dictionaries(st.sampled_from(CONFIG_KEYS), structures(CONFIG_KEYS), max_size=6),
)
module_structures = st.builds(
    lambda modules: {"modules": modules},
    st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=8), structures(MODULE_KEYS), max_size=4),
)


def _dump(data: Any) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):  # e.g. a key PyYAML cannot represent
        return repr(data)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _mutate(document: Any, data: st.DataObject, keys: list[str], edits: int) -> Any:
    """Apply ``edits`` random edits (delete, replace, rename, add, retype, duplicate) to ``document``."""
    for _ in range(edits):
        paths = _paths(document)
        path = data.draw(st.sampled_from(paths[1:] or paths))
        parent: Any = document
        for part in path[:-1]:
            parent = parent[part]
        if not path:
            document = data.draw(structures(keys))
            continue
        last = path[-1]
        operation = data.draw(st.sampled_from(["delete", "replace", "rename", "add", "retype", "duplicate"]))
        value = parent[last]
        if operation == "delete":
            del parent[last]
        elif operation == "replace":
            parent[last] = data.draw(structures(keys))
        elif operation == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(keys) | st.text(max_size=10))] = parent.pop(last)
        elif operation == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(keys))] = data.draw(structures(keys))
        elif operation == "retype":
            parent[last] = data.draw(st.sampled_from([[value], {"x": value}, str(value), None, 0, True]))
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(value)
    return document


def _examples(paths: list[Path]) -> list[Any]:
    return [yaml.safe_load(path.read_text()) for path in paths]


@st.composite
def mutated(draw: st.DrawFn, originals: list[Any], keys: list[str]) -> str:
    """A valid example document with one to four random edits, as YAML text."""
    document = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(originals))))  # a fresh deep copy
    data = draw(st.data())
    return _dump(_mutate(document, data, keys, draw(st.integers(1, 4))))


_yamlish_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["version: v1\n", "services:\n", "  a:\n", "    probes:\n", "      - ", "{", "}",
                              "[", "]", ": ", "\n", "  ", "- ", "name: x", "http: {url: ", "'", '"', "&a ", "*a",
                              "!!binary ", "? ", "%YAML 1.1\n", "---\n", "...\n", "\t", "#"]),
             max_size=40).map("".join),
)  # fmt: skip

config_texts = st.one_of(
    config_structures.map(_dump),
    mutated(_examples(CONFIG_EXAMPLES), CONFIG_KEYS),
    _yamlish_text,
)
module_texts = st.one_of(
    module_structures.map(_dump),
    mutated(_examples([MODULE_EXAMPLE]), MODULE_KEYS),
    _yamlish_text,
)

REAL_LINES = {
    "nginx_combined": [
        b'203.0.113.9 - - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/orders?id=7 HTTP/1.1" 200 2326 '
        b'"https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0" 0.123 0.120, 0.003 : 0.001',
        b'10.0.0.1 - bob [01/Jan/2024:00:00:00 -0800] "\\x16\\x03\\x01" 400 157 "-" "-" 0.000 -',
    ],
    "apache_combined": [
        b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        b'"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 1234',
        b'::1 - - [10/Oct/2000:13:55:36 -0700] "GET /a\\"b HTTP/1.1" 404 - "-" "curl/8"',
    ],
    "envoy": [
        b'[2023-10-10T13:55:36.123Z] "GET /orders HTTP/1.1" 200 - 0 2326 12 10 "203.0.113.9" "curl/8.4.0" '
        b'"0b5c2f0e-7d7a-4c7e-9c8d-1f2e3d4c5b6a" "shop.example" "10.0.0.7:8080"',
        b'[2023-10-10T13:55:36.123Z] "- - HTTP/1.1" 0 NR 0 0 0 - "-" "-" "-" "-" "-"',
    ],
    "ingress_nginx": [
        b'203.0.113.9 - - [10/Oct/2023:13:55:36 +0000] "GET /api HTTP/2.0" 200 2326 "-" "curl/8.5.0" 512 0.123 '
        b"[shop-checkout-8080] [] 10.244.1.17:8080 2326 0.120 200 4f6c1e0a9d2b7c3e8f1a5b6d7e8f9a0b",
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "POST /pay HTTP/1.1" 502 150 "-" "-" 1200 3.010 [shop-pay-80] '
        b"[shop-pay-canary-80] 10.244.1.7:8080, 10.244.2.9:8080 : 10.244.3.1:80 0, 0 : 150 1.500, 1.501 : - 502, 502 : 502 9a0b",
    ],
    "jsonl": [
        b'{"time": "2023-10-10T13:55:36Z", "status": 200, "duration_ms": 12.5, "path": "/orders"}',
        b'{"ts": 1696946136.5, "code": "503", "latency": "1.2s", "nested": {"a": [1, 2]}}',
    ],
    "logfmt": [
        b'ts=2023-10-10T13:55:36Z level=info status=200 duration=0.120s path="/orders?id=7" msg="ok \\"quoted\\""',
        b"time=1696946136 status=503 took=1200ms bare",
    ],
}


@st.composite
def mutated_lines(draw: st.DrawFn, format_name: str) -> bytes:
    """A real line of the format with random bytes replaced, inserted, deleted or cut."""
    line = bytearray(draw(st.sampled_from(REAL_LINES[format_name])))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(line)))
        operation = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        if operation == "replace" and at < len(line):
            line[at] = draw(st.integers(0, 255))
        elif operation == "insert":
            line[at:at] = draw(st.binary(max_size=8) | st.sampled_from([b'"', b"[", b"]", b"\\", b"=", b" ", b"-"]))
        elif operation == "delete":
            del line[at : at + draw(st.integers(1, 8))]
        elif operation == "cut":
            del line[at:]
    return bytes(line)


def lines(format_name: str) -> st.SearchStrategy[bytes]:
    """Random bytes, real lines mutated, and real lines with random text in their fields."""
    return st.one_of(st.binary(max_size=400), mutated_lines(format_name))


# ---------------------------------------------------------------------------- the tests (CI sizes)


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(config_texts)
def test_any_config_text_gives_a_config_or_a_config_error(text: str) -> None:
    check_config(text)


@settings(max_examples=200, **FUZZ_SETTINGS)
@given(module_texts)
def test_any_module_file_gives_modules_or_a_config_error(text: str) -> None:
    check_modules(text)


@settings(max_examples=1500, **FUZZ_SETTINGS)
@given(st.data())
def test_any_log_line_gives_an_event_or_none_and_never_raises(data: st.DataObject) -> None:
    format_name = data.draw(st.sampled_from(sorted(PARSERS)))
    check_line(format_name, data.draw(lines(format_name)))


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(st.text(max_size=40) | st.sampled_from(_SPECIAL_TEXT))
def test_timestamp_and_duration_readers_give_a_number_or_none(text: str) -> None:
    check_time_text(text)


PROPERTIES: dict[str, tuple[Callable[..., None], st.SearchStrategy[Any]]] = {
    "config": (check_config, config_texts),
    "modules": (check_modules, module_texts),
    **{f"log line {name}": (lambda line, name=name: check_line(name, line), lines(name)) for name in sorted(PARSERS)},
    "times": (check_time_text, st.text(max_size=40) | st.sampled_from(_SPECIAL_TEXT)),
}
"""What bench/fuzz.py runs: name -> (property, strategy of its one argument)."""
