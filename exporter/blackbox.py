"""blackbox_exporter compatibility for ``/probe``: module files, deadline, metrics, debug page.

``parse_modules`` reads a blackbox_exporter module file as it is and translates every
module into the slaprobe spec of its prober (``HttpSpec``, ``TcpSpec``, ``DnsSpec``,
``IcmpSpec``) with blackbox's defaults: ``preferred_ip_protocol: ip6``, no body size
limit, DNS ``query_type: ANY``, one ICMP echo per probe, a 28-byte ICMP payload. A key
slaprobe lacks is refused by name (``modules.foo.http.oauth2: not supported``) unless
its value is the zero value that blackbox also treats as "off"; a typo is refused as an
unknown key. Every problem of the file is reported at once, with its YAML path and line.

Durations, sizes and regular expressions are Go's syntax in blackbox; ``slaprobe.gosyntax``
reads them (``go_regex`` rewrites RE2 for Python's ``re`` and refuses what it cannot express).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import dns.exception
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import yaml
from aiohttp import web
from pydantic import ValidationError

from slaprobe.config import (
    ConfigError,
    ConfigIssue,
    DnsSpec,
    HttpSpec,
    IcmpSpec,
    TcpSpec,
    format_path,
    line_of,
    yaml_lines,
)
from slaprobe.conventions import BB_DURATION, BB_FAILURE_REASON, BB_SUCCESS, BLACKBOX_HELP, LABEL_REASON
from slaprobe.exporter.exposition import MetricFamily
from slaprobe.gosyntax import go_regex, parse_base2_bytes, parse_go_duration
from slaprobe.kinds import BLACKBOX_PROBERS, KIND_BY_NAME
from slaprobe.probes.result import ProbeResult
from slaprobe.yamlmap import invalid_yaml

__all__ = [
    "BUILTIN_MODULES",
    "DEFAULT_MODULE",
    "Module",
    "ProberKind",
    "limit_probes",
    "load_modules",
    "parse_modules",
    "probe_deadline",
    "render_debug",
    "render_probe_metrics",
]

ProberKind: TypeAlias = str
"""The slaprobe kind (``slaprobe.kinds``) serving a module's prober."""
# The specs of the kinds in BLACKBOX_PROBERS (tests/core/test_kinds.py holds the two together).
BlackboxSpec: TypeAlias = HttpSpec | TcpSpec | DnsSpec | IcmpSpec
Loc = tuple[str | int, ...]

DEFAULT_MODULE = "http_2xx"
"""The module blackbox uses when ``/probe`` names none."""

SECRET = "<secret>"

# Placeholder targets: every module's spec is valid on its own; /probe swaps in the real one.
_PLACEHOLDER_URL = "http://target.invalid/"
_PLACEHOLDER_ADDRESS = "target.invalid:1"
_PLACEHOLDER_HOST = "target.invalid"

_SUPPORTED_PROBERS: tuple[str, ...] = tuple(BLACKBOX_PROBERS)
_LACKING_PROBERS = ("grpc", "unix", "websocket")
_ICMP_DEFAULT_PAYLOAD = len("Prometheus Blackbox Exporter")  # what blackbox sends without payload_size
_ICMP_DEFAULT_TTL = 64  # blackbox's DefaultICMPTTL
_HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1", "HTTP/2.0")
_TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
_AUTH_HEADERS = ("authorization", "proxy-authorization")


@dataclass(frozen=True)
class Module:
    """One blackbox module: its prober, timeout and the slaprobe spec that runs it."""

    name: str
    kind: ProberKind
    timeout: float | None  # seconds; None: only the scrape timeout bounds the probe
    spec: BlackboxSpec  # aimed at a placeholder target; use ``spec.with_target(target)``
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # as written
    secrets: frozenset[str] = field(default=frozenset(), repr=False)  # passwords, tokens

    def spec_for(self, target: str) -> BlackboxSpec:
        """The spec aimed at ``target`` (raises ValueError for a target of the wrong shape)."""
        return self.spec.with_target(target)


# ---------------------------------------------------------------------------- loading


def load_modules(path: str | os.PathLike[str]) -> dict[str, Module]:
    """Read a blackbox_exporter module file; raise ``ConfigError`` listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc}")], str(path)) from None
    return parse_modules(text, str(path))


def parse_modules(text: str, source: str = "<modules>") -> dict[str, Module]:
    """Translate module-file text into modules; raise ``ConfigError`` listing every problem."""
    try:
        # Construct first: it refuses what the line walk cannot take (a mapping as a key, "? a: b").
        raw = yaml.safe_load(text)
        lines, duplicates = yaml_lines(text)
    except yaml.YAMLError as exc:
        raise ConfigError([invalid_yaml(exc)], source) from None
    reader = _Reader(lines, list(duplicates))
    modules: dict[str, Module] = {}
    if not isinstance(raw, dict):
        reader.issue((), "the file must be a mapping with the key 'modules'")
    else:
        reader.check_keys(raw, (), ("modules",))
        entries = reader.mapping(raw, (), "modules")
        for name, body in entries.items():
            module = _module(reader, str(name), body, ("modules", str(name)))
            if module is not None:
                modules[str(name)] = module
    if reader.issues:
        issues = sorted(dict.fromkeys(reader.issues), key=lambda i: (i.line or 0, i.path))
        raise ConfigError(issues, source)
    return modules


class _Reader:
    """Typed access to the raw YAML that records each problem with its path and line."""

    def __init__(self, lines: Mapping[Loc, int], issues: list[ConfigIssue]) -> None:
        self.lines = lines
        self.issues = issues
        self.secrets: set[str] = set()

    def issue(self, loc: Loc, message: str) -> None:
        """Record a problem at ``loc``."""
        self.issues.append(ConfigIssue(format_path(loc), message, line_of(self.lines, loc)))

    def check_keys(
        self,
        raw: Mapping[Any, Any],
        loc: Loc,
        supported: Collection[str],
        lacking: Mapping[str, str] | None = None,
    ) -> None:
        """Refuse unknown keys, and keys slaprobe lacks unless they hold blackbox's zero value."""
        lacking = lacking or {}
        for key, value in raw.items():
            key = str(key)
            if key in supported:
                continue
            if key in lacking:
                if not _is_zero(value):
                    hint = lacking[key]
                    self.issue((*loc, key), f"not supported ({hint})" if hint else "not supported")
                continue
            close = difflib.get_close_matches(key, [*supported, *lacking], n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            self.issue((*loc, key), f"unknown key {key!r}{suggestion}")

    def mapping(self, raw: Mapping[Any, Any], loc: Loc, key: str) -> dict[Any, Any]:
        """``raw[key]`` as a mapping ({} when absent or wrong)."""
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.issue((*loc, key), "must be a mapping")
            return {}
        return value

    def sequence(self, raw: Mapping[Any, Any], loc: Loc, key: str) -> list[Any]:
        """``raw[key]`` as a list ([] when absent or wrong)."""
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.issue((*loc, key), "must be a list")
            return []
        return value

    def boolean(self, raw: Mapping[Any, Any], loc: Loc, key: str, default: bool) -> bool:
        """``raw[key]`` as true/false."""
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.issue((*loc, key), f"must be true or false, not {value!r}")
            return default
        return value

    def string(self, raw: Mapping[Any, Any], loc: Loc, key: str, default: str = "") -> str:
        """``raw[key]`` as a string (numbers are taken as written, as Go's YAML decoder does)."""
        value = raw.get(key)
        return default if value is None else self.scalar_text(value, (*loc, key))

    def scalar_text(self, value: Any, loc: Loc) -> str:
        """A scalar as a string; records an issue for lists, mappings and binary values."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, bytes):
            self.issue(loc, "binary values are not supported")
        else:
            self.issue(loc, "must be a string")
        return ""

    def integer(self, raw: Mapping[Any, Any], loc: Loc, key: str, default: int) -> int:
        """``raw[key]`` as an integer."""
        value = raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.issue((*loc, key), f"must be an integer, not {value!r}")
            return default
        return value

    def strings(self, raw: Mapping[Any, Any], loc: Loc, key: str) -> list[str]:
        """``raw[key]`` as a list of strings."""
        return [self.scalar_text(v, (*loc, key, i)) for i, v in enumerate(self.sequence(raw, loc, key))]

    def regexes(self, raw: Mapping[Any, Any], loc: Loc, key: str) -> list[str]:
        """``raw[key]`` as a list of Go regexes, translated to Python syntax."""
        out = []
        for i, value in enumerate(self.sequence(raw, loc, key)):
            pattern = self.regex(value, (*loc, key, i))
            if pattern is not None:
                out.append(pattern)
        return out

    def regex(self, value: Any, loc: Loc) -> str | None:
        """One Go regex, translated; None (and an issue) when it cannot be used."""
        text = self.scalar_text(value, loc)
        try:
            return go_regex(text)
        except ValueError as exc:
            self.issue(loc, f"not a valid regular expression: {exc}")
            return None

    def file_text(self, path: str, loc: Loc, *, strip: bool) -> str:
        """The content of a file the module names (secrets are stripped as blackbox does)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.issue(loc, f"cannot read {path}: {reason}")
            return ""
        return text.strip() if strip else text

    def secret(self, value: str) -> str:
        """Remember ``value`` as a secret (never shown) and return it."""
        if value:
            self.secrets.add(value)
        return value


def _is_zero(value: Any) -> bool:
    """Go's zero value: what an absent key decodes to, so it switches nothing on."""
    return value is None or value is False or value == "" or value == 0 or value == [] or value == {}


def _module(reader: _Reader, name: str, body: Any, loc: Loc) -> Module | None:
    if not isinstance(body, dict):
        reader.issue(loc, "must be a mapping with the key 'prober'")
        return None
    sections = (*_SUPPORTED_PROBERS, *_LACKING_PROBERS)
    reader.check_keys(body, loc, ("prober", "timeout", *sections))
    prober = body.get("prober")
    if prober is None:
        reader.issue((*loc, "prober"), "required key is missing")
        return None
    prober = reader.scalar_text(prober, (*loc, "prober"))
    if prober in _LACKING_PROBERS:
        reader.issue((*loc, "prober"), f"{prober} is not supported")
        return None
    if prober not in _SUPPORTED_PROBERS:
        close = difflib.get_close_matches(prober, sections, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        reader.issue((*loc, "prober"), f"unknown prober {prober!r}{suggestion}")
        return None
    for other in sections:
        if other != prober and other in body and body[other] is not None:
            reader.issue((*loc, other), f"section for prober {other}, but this module's prober is {prober}")
    timeout = _timeout(reader, body, loc)
    section = reader.mapping(body, loc, prober)
    reader.secrets = set()
    translate = _TRANSLATORS[prober]
    spec = translate(reader, section, (*loc, prober))
    if spec is None:
        return None
    return Module(name, BLACKBOX_PROBERS[prober].name, timeout, spec, body, frozenset(reader.secrets))


def _timeout(reader: _Reader, body: Mapping[str, Any], loc: Loc) -> float | None:
    value = body.get("timeout")
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        seconds = parse_go_duration(value)
    except ValueError:
        reader.issue((*loc, "timeout"), f"not a duration: {value!r} (use Go syntax such as 5s, 1m30s, 500ms)")
        return None
    if seconds < 0:
        reader.issue((*loc, "timeout"), "must not be negative")
        return None
    return seconds or None


def _validated(reader: _Reader, model: type[BlackboxSpec], data: dict[str, Any], loc: Loc) -> BlackboxSpec | None:
    """Build the spec; a problem the translation did not catch is reported at the section."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = format_path(tuple(p for p in error["loc"] if isinstance(p, str | int)))
            message = str(error["msg"]).removeprefix("Value error, ")
            reader.issue(loc, f"{where}: {message}")
        return None


def _ip_protocol(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    protocol = reader.string(raw, loc, "preferred_ip_protocol", "ip6") or "ip6"
    if protocol not in ("ip4", "ip6"):
        reader.issue((*loc, "preferred_ip_protocol"), f"must be ip4 or ip6, not {protocol!r}")
        protocol = "ip6"
    return {
        "preferred_ip_protocol": protocol,
        "ip_protocol_fallback": reader.boolean(raw, loc, "ip_protocol_fallback", True),
    }


# ---------------------------------------------------------------------------- http

_HTTP_KEYS = (
    "valid_status_codes", "valid_http_versions", "method", "headers", "body", "body_file",
    "body_size_limit", "follow_redirects", "no_follow_redirects", "enable_http2",
    "fail_if_ssl", "fail_if_not_ssl", "fail_if_body_matches_regexp",
    "fail_if_body_not_matches_regexp", "fail_if_header_matches", "fail_if_header_not_matches",
    "tls_config", "basic_auth", "authorization", "bearer_token", "bearer_token_file",
    "proxy_url", "preferred_ip_protocol", "ip_protocol_fallback", "compression",
)  # fmt: skip
_HTTP_LACKING = {
    "enable_http3": "",
    "oauth2": "",
    "http_headers": "use headers",
    "fail_if_body_json_matches_cel": "",
    "fail_if_body_json_not_matches_cel": "",
    "no_proxy": "",
    "proxy_from_environment": "use proxy_url",
    "proxy_connect_header": "",
    "skip_resolve_phase_with_proxy": "",
}
_TLS_KEYS = ("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify", "min_version", "max_version")
_TLS_LACKING = {
    "ca": "use ca_file",
    "cert": "use cert_file",
    "key": "use key_file",
    "ca_ref": "use ca_file",
    "cert_ref": "use cert_file",
    "key_ref": "use key_file",
}
_HEADER_MATCH_KEYS = ("header", "regexp", "allow_missing")
_BASIC_AUTH_KEYS = ("username", "username_file", "password", "password_file")
_BASIC_AUTH_LACKING = {"username_ref": "use username_file", "password_ref": "use password_file"}
_AUTHORIZATION_KEYS = ("type", "credentials", "credentials_file")
_AUTHORIZATION_LACKING = {"credentials_ref": "use credentials_file"}


def _http(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _HTTP_KEYS, _HTTP_LACKING)
    headers = {
        str(k): reader.scalar_text(v, (*loc, "headers", str(k))) for k, v in reader.mapping(raw, loc, "headers").items()
    }
    for name, value in headers.items():
        if name.lower() in _AUTH_HEADERS:  # "Bearer abc": the credentials alone are secret too
            reader.secret(value)
            reader.secret(value.partition(" ")[2].strip())
    data: dict[str, Any] = {
        "url": _PLACEHOLDER_URL,
        **_ip_protocol(reader, raw, loc),
        "method": _method(reader, raw, loc),
        "follow_redirects": reader.boolean(raw, loc, "follow_redirects", True),
        "tls": _tls_config(reader, raw, loc),
        "body_size_limit": _body_size_limit(reader, raw, loc),
        "expect": _http_expect(reader, raw, loc),
    }
    if raw.get("no_follow_redirects") is not None:  # deprecated spelling; it wins, as in blackbox
        data["follow_redirects"] = not reader.boolean(raw, loc, "no_follow_redirects", False)
    reader.boolean(raw, loc, "enable_http2", True)  # slaprobe negotiates what its client speaks
    body = reader.string(raw, loc, "body")
    body_file = reader.string(raw, loc, "body_file")
    if body and body_file:
        reader.issue((*loc, "body_file"), "setting body and body_file both are not allowed")
    elif body_file:
        body = reader.file_text(body_file, (*loc, "body_file"), strip=False)
    if body:
        data["body"] = body
    if compression := reader.string(raw, loc, "compression"):
        data["compression"] = compression
    proxy = reader.string(raw, loc, "proxy_url")
    if proxy:
        if not re.match(r"^(https?|socks5)://[^/]", proxy):
            reader.issue((*loc, "proxy_url"), f"not a proxy URL: {proxy!r}")
        data["proxy"] = proxy
    _http_auth(reader, raw, loc, headers, data)
    data["headers"] = headers
    return _validated(reader, HttpSpec, data, loc)


def _method(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> str:
    method = reader.string(raw, loc, "method", "GET") or "GET"
    if not re.fullmatch(r"[A-Z]+", method):
        reader.issue((*loc, "method"), f"not an upper-case HTTP method: {method!r}")
        return "GET"
    return method


def _body_size_limit(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> int:
    """0 (also for absent or negative) means no limit, in blackbox and in slaprobe's http probe."""
    value = raw.get("body_size_limit")
    if value is None:
        return 0
    try:
        limit = parse_base2_bytes(value)
    except ValueError as exc:
        reader.issue((*loc, "body_size_limit"), str(exc))
        return 0
    return max(limit, 0)


def _http_expect(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    codes = []
    for i, code in enumerate(reader.sequence(raw, loc, "valid_status_codes")):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            reader.issue((*loc, "valid_status_codes", i), f"not an HTTP status code: {code!r}")
        else:
            codes.append(code)
    versions = []
    for i, version in enumerate(reader.strings(raw, loc, "valid_http_versions")):
        if version in _HTTP_VERSIONS:
            versions.append(version)
        elif version == "HTTP/3.0":
            reader.issue((*loc, "valid_http_versions", i), "HTTP/3.0 is not supported")
        else:
            reader.issue(
                (*loc, "valid_http_versions", i),
                f"{version!r} never matches a response (use {', '.join(_HTTP_VERSIONS)})",
            )
    fail_if_ssl = reader.boolean(raw, loc, "fail_if_ssl", False)
    fail_if_not_ssl = reader.boolean(raw, loc, "fail_if_not_ssl", False)
    ssl: bool | None = None
    if fail_if_ssl and fail_if_not_ssl:
        reader.issue((*loc, "fail_if_not_ssl"), "fail_if_ssl and fail_if_not_ssl together fail every probe")
    elif fail_if_ssl or fail_if_not_ssl:
        ssl = fail_if_not_ssl
    headers = [
        *_header_matches(reader, raw, loc, "fail_if_header_matches", negate=True),
        *_header_matches(reader, raw, loc, "fail_if_header_not_matches", negate=False),
    ]
    return {
        "status": codes,
        "http_version": versions,
        "ssl": ssl,
        "body_not_regex": reader.regexes(raw, loc, "fail_if_body_matches_regexp"),
        "body_regex": reader.regexes(raw, loc, "fail_if_body_not_matches_regexp"),
        "headers": headers,
    }


def _header_matches(
    reader: _Reader, raw: Mapping[str, Any], loc: Loc, key: str, *, negate: bool
) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(reader.sequence(raw, loc, key)):
        where = (*loc, key, i)
        if not isinstance(entry, dict):
            reader.issue(where, "must be a mapping with header and regexp")
            continue
        reader.check_keys(entry, where, _HEADER_MATCH_KEYS)
        header = reader.string(entry, where, "header")
        if not header:
            reader.issue((*where, "header"), "header name must be set for HTTP header matchers")
        if entry.get("regexp") in (None, ""):
            reader.issue((*where, "regexp"), "regexp must be set for HTTP header matchers")
            continue
        regex = reader.regex(entry["regexp"], (*where, "regexp"))
        allow_missing = reader.boolean(entry, where, "allow_missing", False)
        if header and regex is not None:
            out.append({"name": header, "regex": regex, "negate": negate, "allow_missing": allow_missing})
    return out


def _http_auth(
    reader: _Reader, raw: Mapping[str, Any], loc: Loc, headers: dict[str, str], data: dict[str, Any]
) -> None:
    """basic_auth, authorization and bearer_token, with prometheus/common's exclusions."""
    basic = reader.mapping(raw, loc, "basic_auth") if "basic_auth" in raw else None
    authorization = reader.mapping(raw, loc, "authorization") if "authorization" in raw else None
    bearer = reader.string(raw, loc, "bearer_token")
    bearer_file = reader.string(raw, loc, "bearer_token_file")
    if bearer and bearer_file:
        reader.issue((*loc, "bearer_token_file"), "at most one of bearer_token & bearer_token_file must be configured")
    if (bearer or bearer_file) and (basic is not None or authorization is not None):
        key = "authorization" if authorization is not None else "basic_auth"
        reader.issue((*loc, key), f"{key} is not compatible with bearer_token & bearer_token_file")
    if basic is not None and authorization is not None:
        reader.issue((*loc, "authorization"), "at most one of basic_auth, oauth2 & authorization must be configured")
    # An Authorization header written in the module wins, as prometheus/common does it.
    explicit = any(name.lower() == "authorization" for name in headers)
    if basic is not None:
        where = (*loc, "basic_auth")
        reader.check_keys(basic, where, _BASIC_AUTH_KEYS, _BASIC_AUTH_LACKING)
        username = _one_of(reader, basic, where, "username", "username_file", secret=False)
        password = reader.secret(_one_of(reader, basic, where, "password", "password_file", secret=True))
        if not explicit:
            data["basic_auth"] = {"username": username, "password": password}
    if authorization is not None:
        where = (*loc, "authorization")
        reader.check_keys(authorization, where, _AUTHORIZATION_KEYS, _AUTHORIZATION_LACKING)
        kind = reader.string(authorization, where, "type").strip() or "Bearer"
        if kind.lower() == "basic":
            reader.issue((*where, "type"), 'authorization type cannot be set to "basic", use "basic_auth" instead')
        credentials = reader.secret(
            _one_of(reader, authorization, where, "credentials", "credentials_file", secret=True)
        )
        if not explicit:
            headers["Authorization"] = reader.secret(f"{kind} {credentials}")
    elif bearer or bearer_file:
        token = bearer or reader.file_text(bearer_file, (*loc, "bearer_token_file"), strip=True)
        reader.secret(token)
        if not explicit:
            headers["Authorization"] = reader.secret(f"Bearer {token}")


def _one_of(reader: _Reader, raw: Mapping[str, Any], loc: Loc, key: str, file_key: str, *, secret: bool) -> str:
    """``key`` or the content of ``file_key``; both at once is an error, as in blackbox."""
    value = reader.string(raw, loc, key)
    path = reader.string(raw, loc, file_key)
    if value and path:
        reader.issue((*loc, file_key), f"at most one of {key} & {file_key} must be configured")
    if path and not value:
        return reader.file_text(path, (*loc, file_key), strip=True)
    return value


def _tls_config(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    """A prometheus/common ``tls_config`` as slaprobe's TLSConfig fields."""
    where = (*loc, "tls_config")
    tls = reader.mapping(raw, loc, "tls_config")
    reader.check_keys(tls, where, _TLS_KEYS, _TLS_LACKING)
    out: dict[str, Any] = {}
    for key in ("ca_file", "cert_file", "key_file", "server_name"):
        value = reader.string(tls, where, key)
        if value:
            out[key] = value
    if out.get("cert_file") and not out.get("key_file"):
        reader.issue(
            (*where, "cert_file"),
            "exactly one of key or key_file must be configured when a client certificate is configured",
        )
        del out["cert_file"]
    if out.get("key_file") and not out.get("cert_file"):
        reader.issue(
            (*where, "key_file"),
            "exactly one of cert or cert_file must be configured when a client key is configured",
        )
        del out["key_file"]
    out["insecure_skip_verify"] = reader.boolean(tls, where, "insecure_skip_verify", False)
    for key in ("min_version", "max_version"):
        version = reader.string(tls, where, key)
        if not version:
            continue
        if version in _TLS_VERSIONS:
            out[key] = version
        else:
            reader.issue((*where, key), f"unknown TLS version: {version} (use {', '.join(_TLS_VERSIONS)})")
    low, high = out.get("min_version"), out.get("max_version")
    if low and high and high < low:
        reader.issue((*where, "max_version"), "max_version must be greater than or equal to min_version")
    return out


def _tls_is_default(tls: Mapping[str, Any]) -> bool:
    return not any(tls.values())


# ---------------------------------------------------------------------------- tcp

_TCP_KEYS = ("preferred_ip_protocol", "ip_protocol_fallback", "query_response", "tls", "tls_config")
_TCP_LACKING = {"source_ip_address": ""}
_QUERY_RESPONSE_KEYS = ("expect", "send", "starttls")
_QUERY_RESPONSE_LACKING = {"expect_bytes": "use expect", "labels": ""}


def _tcp(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _TCP_KEYS, _TCP_LACKING)
    tls = _tls_config(reader, raw, loc)
    steps = []
    for i, entry in enumerate(reader.sequence(raw, loc, "query_response")):
        where = (*loc, "query_response", i)
        if not isinstance(entry, dict):
            reader.issue(where, "must be a mapping with expect, send or starttls")
            continue
        reader.check_keys(entry, where, _QUERY_RESPONSE_KEYS, _QUERY_RESPONSE_LACKING)
        step: dict[str, Any] = {"starttls": reader.boolean(entry, where, "starttls", False)}
        if entry.get("expect") not in (None, ""):
            step["expect"] = reader.regex(entry["expect"], (*where, "expect"))
        send = reader.string(entry, where, "send")
        if send:
            step["send"] = send
        steps.append(step)
    use_tls = reader.boolean(raw, loc, "tls", False)
    if not use_tls and any(s["starttls"] for s in steps) and not _tls_is_default(tls):
        reader.issue((*loc, "tls_config"), "not supported with starttls (only with tls: true)")
    data: dict[str, Any] = {
        "address": _PLACEHOLDER_ADDRESS,
        **_ip_protocol(reader, raw, loc),
        "dialogue": steps,
        "tls": tls if use_tls else None,
    }
    return _validated(reader, TcpSpec, data, loc)


# ---------------------------------------------------------------------------- dns

_DNS_KEYS = (
    "preferred_ip_protocol", "ip_protocol_fallback", "transport_protocol", "query_name",
    "query_type", "query_class", "recursion_desired", "valid_rcodes", "validate_answer_rrs",
    "validate_authority_rrs", "validate_additional_rrs", "tls_config",
)  # fmt: skip
_DNS_LACKING = {"source_ip_address": "", "dns_over_tls": ""}
_RR_KEYS = (
    "fail_if_matches_regexp", "fail_if_all_match_regexp",
    "fail_if_not_matches_regexp", "fail_if_none_matches_regexp",
)  # fmt: skip


def _dns(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _DNS_KEYS, _DNS_LACKING)
    _tls_config(reader, raw, loc)  # checked; used by blackbox only with dns_over_tls
    query = reader.string(raw, loc, "query_name")
    if not query:
        reader.issue((*loc, "query_name"), "query name must be set for DNS module")
    transport = reader.string(raw, loc, "transport_protocol") or "udp"
    if transport not in ("udp", "tcp"):
        reader.issue((*loc, "transport_protocol"), f"must be udp or tcp, not {transport!r}")
        transport = "udp"
    query_type = _dns_name(reader, raw, loc, "query_type", "ANY", dns.rdatatype.from_text)
    query_class = _dns_name(reader, raw, loc, "query_class", "IN", dns.rdataclass.from_text)
    rcodes = []
    for i, code in enumerate(reader.strings(raw, loc, "valid_rcodes")):
        try:
            dns.rcode.from_text(code)
        except (dns.exception.DNSException, ValueError):  # ValueError: a number outside 0..4095
            reader.issue((*loc, "valid_rcodes", i), f"unknown response code {code!r}")
        else:
            rcodes.append(code.upper())
    expect: dict[str, Any] = {"rcode": rcodes or ["NOERROR"]}
    for section in ("answer", "authority", "additional"):
        key = f"validate_{section}_rrs"
        rules = reader.mapping(raw, loc, key)
        reader.check_keys(rules, (*loc, key), _RR_KEYS)
        expect[section] = {rule: reader.regexes(rules, (*loc, key), rule) for rule in _RR_KEYS}
    data: dict[str, Any] = {
        "query": query or ".",
        "type": query_type,
        "query_class": query_class,
        "transport": transport,
        "recursion_desired": reader.boolean(raw, loc, "recursion_desired", True),
        **_ip_protocol(reader, raw, loc),
        "expect": expect,
    }
    return _validated(reader, DnsSpec, data, loc)


def _dns_name(
    reader: _Reader, raw: Mapping[str, Any], loc: Loc, key: str, default: str, parse: Callable[[str], object]
) -> str:
    value = reader.string(raw, loc, key) or default
    what = "type" if key == "query_type" else "class"
    try:
        if value != value.upper():
            raise ValueError(value)
        parse(value)
    except (ValueError, dns.exception.DNSException):
        reader.issue((*loc, key), f"query {what} {value!r} is not valid")
        return default
    return value


# ---------------------------------------------------------------------------- icmp

_ICMP_KEYS = ("preferred_ip_protocol", "ip_protocol_fallback", "payload_size", "ttl")
_ICMP_LACKING = {"source_ip_address": "", "dont_fragment": ""}


def _icmp(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _ICMP_KEYS, _ICMP_LACKING)
    payload = reader.integer(raw, loc, "payload_size", 0)
    if not 0 <= payload <= 65000:
        reader.issue((*loc, "payload_size"), "must be between 0 and 65000")
        payload = 0
    ttl = reader.integer(raw, loc, "ttl", _ICMP_DEFAULT_TTL)
    if ttl < 0:
        reader.issue((*loc, "ttl"), '"ttl" cannot be negative')
    elif ttl > 255:
        reader.issue((*loc, "ttl"), '"ttl" cannot exceed 255')
    data: dict[str, Any] = {
        "host": _PLACEHOLDER_HOST,
        "packets": 1,  # blackbox sends one echo request per probe
        "payload_size": payload or _ICMP_DEFAULT_PAYLOAD,
        "ttl": ttl if 0 < ttl <= 255 else None,
        **_ip_protocol(reader, raw, loc),
    }
    return _validated(reader, IcmpSpec, data, loc)


# One per prober of BLACKBOX_PROBERS (tests/core/test_kinds.py).
_TRANSLATORS: Mapping[str, Callable[[_Reader, Mapping[str, Any], Loc], BlackboxSpec | None]] = {
    "http": _http,
    "tcp": _tcp,
    "dns": _dns,
    "icmp": _icmp,
}


# ---------------------------------------------------------------------------- rendering

_RESERVED = frozenset({BB_SUCCESS, BB_DURATION, BB_FAILURE_REASON})
_FAMILIES: dict[tuple[str, tuple[str, ...]], MetricFamily] = {}  # (name, label names) -> its family
_MAX_FAMILIES = 10_000


_PLAIN: dict[str, MetricFamily] = {}  # name -> its family without labels (most samples)


def _family(name: str, labels: tuple[str, ...]) -> MetricFamily:
    """The gauge family ``name`` with these label names (made once, kept for the next probe)."""
    family = _FAMILIES.get((name, labels))
    if family is None:
        family = MetricFamily(name, "gauge", BLACKBOX_HELP.get(name, name), labels)
        if len(_FAMILIES) < _MAX_FAMILIES:
            _FAMILIES[(name, labels)] = family
            if not labels:
                _PLAIN[name] = family
    return family


def render_probe_metrics(result: ProbeResult) -> bytes:
    """The text exposition blackbox_exporter answers ``/probe`` with, for one probe result.

    Every sample is a gauge; families come sorted by name and series by labels, as
    blackbox's registry gathers them, so outputs diff cleanly. ``probe_failure_info
    {reason}`` (a slaprobe extension) says why a failed probe failed.
    """
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
        BB_SUCCESS: {(): 1.0 if result.success else 0.0},
        BB_DURATION: {(): result.duration},
    }
    if not result.success and result.reason is not None:
        families[BB_FAILURE_REASON] = {((LABEL_REASON, str(result.reason)),): 1.0}
    for sample in result.samples:
        if sample.name in _RESERVED:
            continue
        labels = sample.labels if len(sample.labels) < 2 else tuple(sorted(sample.labels))
        family = families.get(sample.name)
        if family is None:
            families[sample.name] = {labels: sample.value}
        elif labels not in family:  # the first sample of a series wins, as ProbeResult.sample
            family[labels] = sample.value
    out = []
    for name in sorted(families):
        series = families[name]
        plain = _PLAIN.get(name) or _family(name, ())
        out.append(plain.header)
        for labels in sorted(series) if len(series) > 1 else series:
            value = float(series[labels])
            if labels:
                out.append(_family(name, tuple([k for k, _ in labels])).sample(value, *[v for _, v in labels]))
            else:
                out.append(plain.plain(value))
    return "".join(out).encode()


def render_debug(
    result: ProbeResult,
    log_lines: Iterable[str],
    module: Module,
    redact: Callable[[str], str],
) -> str:
    """blackbox's ``debug=true`` page: the probe log, the metrics, the module; secrets hidden."""
    logs = "".join(f"{line}\n" for line in log_lines)
    metrics = render_probe_metrics(result).decode()
    written = {"prober": module.kind, **_redacted(dict(module.raw))}
    if module.timeout is not None and "timeout" not in written:
        written["timeout"] = f"{module.timeout:g}s"
    translated = {module.kind: _redacted(_spec_view(module.spec, module.kind))}
    text = (
        f"Logs for the probe:\n{logs}"
        f"\n\n\nMetrics that would have been returned:\n{metrics}"
        f"\n\n\nModule configuration:\n{_yaml(written)}"
        f"\n\n\nAs slaprobe runs it:\n{_yaml(translated)}"
    )
    for secret in sorted(module.secrets, key=len, reverse=True):
        text = text.replace(secret, SECRET)
    return redact(text)


def _spec_view(spec: BlackboxSpec, kind: str) -> dict[str, Any]:
    """The spec as YAML-able data, without the placeholder target."""
    target = KIND_BY_NAME[kind].target_field
    return spec.model_dump(mode="json", by_alias=True, exclude={target} if target else None, exclude_none=True)


def _redacted(data: Any, key: str = "") -> Any:
    """``data`` with passwords, credentials, tokens and Authorization headers as <secret>."""
    if isinstance(data, dict):
        return {k: _redacted(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [_redacted(v, key) for v in data]
    secret_keys = ("password", "credentials", "bearer_token", "client_secret", *_AUTH_HEADERS)
    if key.lower() in secret_keys and data not in (None, ""):
        return SECRET
    return data


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# ---------------------------------------------------------------------------- deadline

TIMEOUT_OFFSET = 0.5
"""Seconds kept back from Prometheus's scrape timeout (blackbox's ``--timeout-offset``)."""
DEFAULT_SCRAPE_TIMEOUT = 120.0
MIN_DEADLINE = 0.05


def probe_deadline(header_value: str | None, module_timeout: float | None) -> float:
    """Seconds a ``/probe`` may take, by blackbox's rule.

    The ``X-Prometheus-Scrape-Timeout-Seconds`` header (120 when absent or 0) minus
    0.5 s, capped by the module's ``timeout``; never below ``MIN_DEADLINE``. Without a
    header or module timeout this is 119.5 s, as blackbox computes it. A header that is
    not a number raises ValueError (blackbox answers 500 then).
    """
    scrape = DEFAULT_SCRAPE_TIMEOUT
    if header_value:
        scrape = float(header_value.strip())
        if not math.isfinite(scrape):
            raise ValueError(f"not a timeout: {header_value!r}")
        scrape = scrape or DEFAULT_SCRAPE_TIMEOUT
    deadline = scrape - TIMEOUT_OFFSET
    if module_timeout is not None and 0 < module_timeout < deadline:
        deadline = module_timeout
    return max(deadline, MIN_DEADLINE)


BUILTIN_MODULES: Mapping[str, Module] = parse_modules(f"modules:\n  {DEFAULT_MODULE}:\n    prober: http\n", "<builtin>")
"""blackbox's own default module, ``http_2xx``: so ``/probe?target=...`` works without a file."""


# ---------------------------------------------------------------------------- the /probe limit

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER = "1"  # seconds: a /probe takes a few at most; Prometheus retries at the next scrape anyway


def limit_probes(handler: Handler, limit: Callable[[], int]) -> Handler:
    """``handler`` with at most ``limit()`` requests in flight; the next ones get 503 at once.

    /probe has its own budget (``global.probe_concurrency``, 64 by default), apart from the
    scheduler's (``global.concurrency``): no /probe load takes a slot, a socket beyond this
    bound or a file descriptor that a scheduled probe needs, so an outsider cannot turn
    /probe requests into failed scheduled runs. A refused request is not queued (a queue
    would hold its connection): it is answered ``503`` with ``Retry-After`` and closed.
    """
    in_flight = 0

    async def bounded(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight
        most = limit()
        if in_flight >= most:
            response = web.Response(
                status=503,
                text=f"too many /probe requests in flight (global.probe_concurrency: {most}); retry later\n",
                headers={"Retry-After": RETRY_AFTER},
            )
            response.force_close()
            return response
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return bounded
