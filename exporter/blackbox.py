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
import ipaddress
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
    GrpcSpec,
    HttpSpec,
    IcmpSpec,
    TcpSpec,
    UnixSpec,
    WebsocketSpec,
    format_path,
    line_of,
    yaml_lines,
)
from slaprobe.conventions import BB_DURATION, BB_FAILURE_REASON, BB_SUCCESS, BLACKBOX_HELP, LABEL_REASON
from slaprobe.exporter.exposition import MetricFamily
from slaprobe.gosyntax import go_regex, parse_base2_bytes, parse_go_duration
from slaprobe.kinds import BLACKBOX_PROBERS, KIND_BY_NAME
from slaprobe.probes.celmatch import compile_cel
from slaprobe.probes.reasons import first_line
from slaprobe.probes.result import ProbeResult
from slaprobe.yamlmap import invalid_yaml

__all__ = [
    "BUILTIN_MODULES",
    "DEFAULT_MODULE",
    "Module",
    "ModuleFile",
    "ProberKind",
    "limit_probes",
    "load_modules",
    "parse_modules",
    "probe_deadline",
    "read_module_file",
    "read_modules",
    "render_debug",
    "render_probe_metrics",
]

ProberKind: TypeAlias = str
"""The slaprobe kind (``slaprobe.kinds``) serving a module's prober."""
# The specs of the kinds in BLACKBOX_PROBERS (tests/core/test_kinds.py holds the two together).
BlackboxSpec: TypeAlias = HttpSpec | TcpSpec | DnsSpec | IcmpSpec | UnixSpec | GrpcSpec | WebsocketSpec
Loc = tuple[str | int, ...]

DEFAULT_MODULE = "http_2xx"
"""The module blackbox uses when ``/probe`` names none."""

SECRET = "<secret>"

# Placeholder targets: every module's spec is valid on its own; /probe swaps in the real one.
_PLACEHOLDER_URL = "http://target.invalid/"
_PLACEHOLDER_ADDRESS = "target.invalid:1"
_PLACEHOLDER_HOST = "target.invalid"
_PLACEHOLDER_PATH = "/target.invalid"

_SUPPORTED_PROBERS: tuple[str, ...] = tuple(BLACKBOX_PROBERS)
_LACKING_PROBERS: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class ModuleFile:
    """A module file as read: the modules that can run, and the problems of the others.

    ``refused`` names the modules left out for their own problems; ``issues`` holds
    those and any problem of the file as a whole (then ``usable`` is false).
    """

    source: str
    modules: dict[str, Module]
    issues: list[ConfigIssue]
    refused: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether every problem belongs to a module (so the other modules can be served)."""
        return all(_module_of_issue(issue, self.refused) is not None for issue in self.issues)

    def error(self) -> ConfigError:
        """Every problem of the file as one ConfigError."""
        return ConfigError(self.issues, self.source)


def load_modules(path: str | os.PathLike[str]) -> dict[str, Module]:
    """Read a blackbox_exporter module file; raise ``ConfigError`` listing every problem."""
    read = read_module_file(path)
    if read.issues:
        raise read.error()
    return read.modules


def read_module_file(path: str | os.PathLike[str]) -> ModuleFile:
    """Read a module file, keeping the modules that can run apart from those that cannot."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ModuleFile(str(path), {}, [ConfigIssue("", f"cannot read {path}: {exc}")])
    return read_modules(text, str(path))


def parse_modules(text: str, source: str = "<modules>") -> dict[str, Module]:
    """Translate module-file text into modules; raise ``ConfigError`` listing every problem."""
    read = read_modules(text, source)
    if read.issues:
        raise read.error()
    return read.modules


def read_modules(text: str, source: str = "<modules>") -> ModuleFile:
    """Translate module-file text; a module with a problem is left out and named in ``refused``."""
    try:
        # Construct first: it refuses what the line walk cannot take (a mapping as a key, "? a: b").
        raw = yaml.safe_load(text)
        lines, duplicates = yaml_lines(text)
    except yaml.YAMLError as exc:
        return ModuleFile(source, {}, [invalid_yaml(exc)])
    reader = _Reader(lines, list(duplicates))
    modules: dict[str, Module] = {}
    names: list[str] = []
    if not isinstance(raw, dict):
        reader.issue((), "the file must be a mapping with the key 'modules'")
    else:
        reader.check_keys(raw, (), ("modules",))
        entries = reader.mapping(raw, (), "modules")
        for name, body in entries.items():
            names.append(str(name))
            module = _module(reader, str(name), body, ("modules", str(name)))
            if module is not None:
                modules[str(name)] = module
    issues = sorted(dict.fromkeys(reader.issues), key=lambda i: (i.line or 0, i.path))
    refused = tuple(dict.fromkeys(m for i in issues if (m := _module_of_issue(i, names)) is not None))
    for name in refused:
        modules.pop(name, None)
    return ModuleFile(source, modules, issues, refused)


def _module_of_issue(issue: ConfigIssue, names: Iterable[str]) -> str | None:
    """The module of ``names`` an issue is about (``modules.<name>...``), None for the whole file."""
    found = None
    for name in names:
        prefix = format_path(("modules", name))
        about = issue.path == prefix or issue.path.startswith((f"{prefix}.", f"{prefix}["))
        if about and (found is None or len(name) > len(found)):
            found = name
    return found


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
    "http_headers", "oauth2", "fail_if_body_json_matches_cel", "fail_if_body_json_not_matches_cel",
    "proxy_connect_header", "skip_resolve_phase_with_proxy", "no_proxy", "proxy_from_environment",
    "source_ip_address",  # not in blackbox: asked for by its users since 2022 (an extension)
)  # fmt: skip
_HTTP_LACKING = {"enable_http3": ""}
# prometheus/common's ReservedHeaders: http_headers may not set them.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization", "Host", "Content-Encoding", "Content-Length", "Content-Type", "User-Agent",
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Www-Authenticate",
        "Accept-Encoding", "X-Prometheus-Remote-Write-Version", "X-Prometheus-Remote-Read-Version",
        "X-Prometheus-Scrape-Timeout-Seconds", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256",
    )
)  # fmt: skip
_HTTP_HEADER_KEYS = ("values", "secrets", "files")
_OAUTH2_KEYS = ("client_id", "client_secret", "client_secret_file", "scopes", "token_url", "endpoint_params")
_OAUTH2_LACKING = {
    "client_secret_ref": "use client_secret_file",
    "tls_config": "",
    "proxy_url": "",
    "no_proxy": "",
    "proxy_from_environment": "",
    "proxy_connect_header": "",
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
    data["enable_http2"] = reader.boolean(raw, loc, "enable_http2", True)  # Go offers h2 by ALPN on https
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
    from_environment = reader.boolean(raw, loc, "proxy_from_environment", False)
    if from_environment and proxy:
        reader.issue((*loc, "proxy_from_environment"), "if proxy_from_environment is configured, proxy_url must not")
    data["proxy_from_environment"] = from_environment
    if no_proxy := reader.string(raw, loc, "no_proxy"):
        if not proxy:
            reader.issue((*loc, "no_proxy"), "if no_proxy is configured, proxy_url must also be configured")
        data["no_proxy"] = no_proxy
    data["skip_resolve_phase_with_proxy"] = reader.boolean(raw, loc, "skip_resolve_phase_with_proxy", False)
    data["proxy_connect_headers"] = _proxy_connect_headers(reader, raw, loc, bool(proxy or from_environment))
    data["http_headers"] = _http_headers(reader, raw, loc)
    if source := _source_ip(reader, raw, loc):
        data["source_ip_address"] = source
    _http_auth(reader, raw, loc, headers, data)
    data["headers"] = headers
    return _validated(reader, HttpSpec, data, loc)


def _http_headers(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    """``http_headers``: per header, values, secrets and files (read at each request)."""
    out = {}
    for name, entry in reader.mapping(raw, loc, "http_headers").items():
        where = (*loc, "http_headers", str(name))
        if str(name).lower() in _RESERVED_HEADERS:
            reader.issue(where, f'setting header "{_canonical(str(name))}" is not allowed')
            continue
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            reader.issue(where, "must be a mapping with values, secrets or files")
            continue
        reader.check_keys(entry, where, _HTTP_HEADER_KEYS)
        secrets = [reader.secret(v) for v in reader.strings(entry, where, "secrets")]
        out[str(name)] = {
            "values": reader.strings(entry, where, "values"),
            "secrets": secrets,
            "files": reader.strings(entry, where, "files"),
        }
    return out


def _canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``x-api-key`` -> ``X-Api-Key``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _proxy_connect_headers(reader: _Reader, raw: Mapping[str, Any], loc: Loc, proxied: bool) -> dict[str, list[str]]:
    """``proxy_connect_header``: header -> secrets sent on the proxy's CONNECT."""
    out = {}
    headers = reader.mapping(raw, loc, "proxy_connect_header")
    if headers and not proxied:
        reader.issue(
            (*loc, "proxy_connect_header"),
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
        )
    for name in headers:
        values = [reader.secret(v) for v in reader.strings(headers, (*loc, "proxy_connect_header"), str(name))]
        out[str(name)] = values
    return out


def _oauth2(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    """``oauth2``: client credentials, as prometheus/common reads them."""
    where = (*loc, "oauth2")
    oauth = reader.mapping(raw, loc, "oauth2")
    reader.check_keys(oauth, where, _OAUTH2_KEYS, _OAUTH2_LACKING)
    token_url = reader.string(oauth, where, "token_url")
    if not re.match(r"^https?://[^/]", token_url):
        reader.issue((*where, "token_url"), f"not an http(s) URL: {token_url!r}")
    params = reader.mapping(oauth, where, "endpoint_params")
    return {
        "client_id": reader.string(oauth, where, "client_id"),
        "client_secret": reader.secret(
            _one_of(reader, oauth, where, "client_secret", "client_secret_file", secret=True)
        ),
        "token_url": token_url,
        "scopes": reader.strings(oauth, where, "scopes"),
        "endpoint_params": {
            str(k): reader.scalar_text(v, (*where, "endpoint_params", str(k))) for k, v in params.items()
        },
    }


def _cel(reader: _Reader, raw: Mapping[str, Any], loc: Loc, key: str) -> str | None:
    """A CEL expression over ``body``, compiled now so that a bad one is refused at load."""
    text = reader.string(raw, loc, key)
    if not text:
        return None
    try:
        compile_cel(text)
    except ValueError as exc:
        reader.issue((*loc, key), f"error compiling CEL program: {first_line(str(exc))}")
        return None
    return text


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
    written = reader.strings(raw, loc, "valid_http_versions")
    for i, version in enumerate(written):
        if version in _HTTP_VERSIONS:
            versions.append(version)
        elif version == "HTTP/3.0":
            reader.issue(
                (*loc, "valid_http_versions", i),
                "HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false",
            )
    if written and not versions and "HTTP/3.0" not in written:
        # blackbox takes any string and compares it with the response's protocol; one that
        # never matches (such as "HTTP/2", which Go reports as "HTTP/2.0") is dropped, but
        # a list of only such versions would fail every probe.
        reader.issue(
            (*loc, "valid_http_versions"),
            f"{written!r} never matches a response (use {', '.join(_HTTP_VERSIONS)})",
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
        "cel": _cel(reader, raw, loc, "fail_if_body_json_not_matches_cel"),
        "cel_not": _cel(reader, raw, loc, "fail_if_body_json_matches_cel"),
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
    oauth2 = _oauth2(reader, raw, loc) if not _is_zero(raw.get("oauth2")) else None
    if sum(x is not None for x in (basic, authorization, oauth2)) > 1:
        key = "oauth2" if oauth2 is not None else "authorization"
        reader.issue((*loc, key), "at most one of basic_auth, oauth2 & authorization must be configured")
    if oauth2 is not None and (bearer or bearer_file):
        reader.issue((*loc, "oauth2"), "oauth2 is not compatible with bearer_token & bearer_token_file")
    explicit_header = any(name.lower() == "authorization" for name in headers)
    if oauth2 is not None and not explicit_header:
        data["oauth2"] = oauth2
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


# ---------------------------------------------------------------------------- tcp and unix

_TCP_KEYS = (
    "preferred_ip_protocol", "ip_protocol_fallback", "source_ip_address", "query_response", "tls", "tls_config",
)  # fmt: skip
_UNIX_KEYS = ("query_response", "tls", "tls_config")
_QUERY_RESPONSE_KEYS = ("expect", "expect_bytes", "labels", "send", "starttls")
_LABEL_KEYS = ("name", "value")


def _tcp(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _TCP_KEYS)
    data: dict[str, Any] = {
        "address": _PLACEHOLDER_ADDRESS,
        **_ip_protocol(reader, raw, loc),
        **_dialogue(reader, raw, loc),
    }
    if source := _source_ip(reader, raw, loc):
        data["source_ip_address"] = source
    return _validated(reader, TcpSpec, data, loc)


def _unix(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _UNIX_KEYS)
    data: dict[str, Any] = {"path": _PLACEHOLDER_PATH, **_dialogue(reader, raw, loc)}
    return _validated(reader, UnixSpec, data, loc)


def _dialogue(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> dict[str, Any]:
    """``query_response``, ``tls`` and ``tls_config`` as the spec's dialogue and TLS settings.

    ``tls_config`` configures the handshake at the start (``tls: true``) or, without it, the
    ``starttls`` upgrade (as blackbox's query_response does).
    """
    tls = _tls_config(reader, raw, loc)
    steps = []
    for i, entry in enumerate(reader.sequence(raw, loc, "query_response")):
        where = (*loc, "query_response", i)
        if not isinstance(entry, dict):
            reader.issue(where, "must be a mapping with expect, expect_bytes, send or starttls")
            continue
        reader.check_keys(entry, where, _QUERY_RESPONSE_KEYS)
        step: dict[str, Any] = {"starttls": reader.boolean(entry, where, "starttls", False)}
        if entry.get("expect") not in (None, ""):
            step["expect"] = reader.regex(entry["expect"], (*where, "expect"))
        if entry.get("expect_bytes") not in (None, "", b""):
            if step.get("expect") is not None:
                reader.issue((*where, "expect_bytes"), "expect and expect_bytes are mutually exclusive")
            step["expect_bytes"] = _bytes(reader, entry["expect_bytes"], (*where, "expect_bytes"))
        if entry.get("send") not in (None, "", b""):
            value = entry["send"]
            step["send"] = value if isinstance(value, bytes) else reader.scalar_text(value, (*where, "send"))
        labels = {}
        for j, label in enumerate(reader.sequence(entry, where, "labels")):
            at = (*where, "labels", j)
            if not isinstance(label, dict):
                reader.issue(at, "must be a mapping with name and value")
                continue
            reader.check_keys(label, at, _LABEL_KEYS)
            name = reader.string(label, at, "name")
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                reader.issue((*at, "name"), f"not a label name: {name!r}")
                continue
            labels[name] = reader.string(label, at, "value")
        if labels:
            if step.get("expect") is None:
                reader.issue((*where, "labels"), "labels need an expect in the same step (they take its groups)")
            step["labels"] = labels
        steps.append(step)
    use_tls = reader.boolean(raw, loc, "tls", False)
    uses_starttls = any(s["starttls"] for s in steps)
    return {"dialogue": steps, "tls": tls if use_tls or uses_starttls else None}


def _bytes(reader: _Reader, value: Any, loc: Loc) -> bytes:
    """A YAML string (its UTF-8 bytes) or ``!!binary`` value as bytes."""
    if isinstance(value, bytes):
        return value
    return reader.scalar_text(value, loc).encode()


def _source_ip(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> str | None:
    """``source_ip_address``: an IP literal, as blackbox parses it."""
    value = reader.string(raw, loc, "source_ip_address")
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        reader.issue((*loc, "source_ip_address"), f"error parsing source ip address: {value}")
        return None


# ---------------------------------------------------------------------------- grpc

_GRPC_KEYS = ("service", "preferred_ip_protocol", "ip_protocol_fallback", "metadata", "tls", "tls_config")


def _grpc(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _GRPC_KEYS)
    tls = _tls_config(reader, raw, loc)
    use_tls = reader.boolean(raw, loc, "tls", False)
    if use_tls and tls.get("insecure_skip_verify"):
        reader.issue((*loc, "tls_config", "insecure_skip_verify"), "not supported for grpc (grpcio always verifies)")
    metadata = {}
    for key, values in reader.mapping(raw, loc, "metadata").items():
        where = (*loc, "metadata", str(key))
        if isinstance(values, list):
            metadata[str(key)] = [reader.scalar_text(v, (*where, i)) for i, v in enumerate(values)]
        else:
            metadata[str(key)] = [reader.scalar_text(values, where)]
    data: dict[str, Any] = {
        "address": _PLACEHOLDER_ADDRESS,
        "service": reader.string(raw, loc, "service"),
        "tls": tls if use_tls else None,
        "metadata": metadata,
        **_ip_protocol(reader, raw, loc),
    }
    return _validated(reader, GrpcSpec, data, loc)


# ---------------------------------------------------------------------------- websocket

_WEBSOCKET_KEYS = ("http_config", "headers", "query_response", "preferred_ip_protocol", "ip_protocol_fallback")
_HTTP_CLIENT_KEYS = ("basic_auth", "authorization", "bearer_token", "bearer_token_file", "tls_config")
_WEBSOCKET_STEP_KEYS = ("expect", "send", "starttls")


def _websocket(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    """blackbox's websocket prober (master, after 0.28): http_config, headers, query_response."""
    reader.check_keys(raw, loc, _WEBSOCKET_KEYS)
    client = reader.mapping(raw, loc, "http_config")
    where = (*loc, "http_config")
    reader.check_keys(client, where, _HTTP_CLIENT_KEYS)
    headers: dict[str, list[str]] = {}
    for name, entry in reader.mapping(raw, loc, "headers").items():
        at = (*loc, "headers", str(name))
        if isinstance(entry, dict):
            reader.check_keys(entry, at, _HTTP_HEADER_KEYS)
            values = [
                *reader.strings(entry, at, "values"),
                *(reader.secret(v) for v in reader.strings(entry, at, "secrets")),
            ]
            values += [reader.file_text(path, at, strip=True) for path in reader.strings(entry, at, "files")]
            headers[str(name)] = values
        else:
            headers[str(name)] = [reader.scalar_text(entry, at)]
    auth_headers: dict[str, str] = {}
    data: dict[str, Any] = {"url": "ws://target.invalid/", "tls": _tls_config(reader, client, where)}
    _http_auth(reader, client, where, auth_headers, data)
    for name, value in auth_headers.items():
        headers.setdefault(name, []).append(value)
    steps = []
    for i, entry in enumerate(reader.sequence(raw, loc, "query_response")):
        at = (*loc, "query_response", i)
        if not isinstance(entry, dict):
            reader.issue(at, "must be a mapping with expect or send")
            continue
        reader.check_keys(entry, at, _WEBSOCKET_STEP_KEYS)
        step: dict[str, Any] = {}
        if entry.get("expect") not in (None, ""):
            step["expect"] = reader.regex(entry["expect"], (*at, "expect"))
        if send := reader.string(entry, at, "send"):
            step["send"] = send
        steps.append(step)
    data.update(headers=headers, dialogue=steps, **_ip_protocol(reader, raw, loc))
    return _validated(reader, WebsocketSpec, data, loc)


# ---------------------------------------------------------------------------- dns

_DNS_KEYS = (
    "preferred_ip_protocol", "ip_protocol_fallback", "transport_protocol", "query_name",
    "query_type", "query_class", "recursion_desired", "valid_rcodes", "validate_answer_rrs",
    "validate_authority_rrs", "validate_additional_rrs", "tls_config", "source_ip_address",
    "dns_over_tls",
)  # fmt: skip
_RR_KEYS = (
    "fail_if_matches_regexp", "fail_if_all_match_regexp",
    "fail_if_not_matches_regexp", "fail_if_none_matches_regexp",
)  # fmt: skip


def _dns(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _DNS_KEYS)
    tls = _tls_config(reader, raw, loc)  # used by blackbox only with dns_over_tls
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
    if reader.boolean(raw, loc, "dns_over_tls", False):
        if transport != "tcp":
            reader.issue((*loc, "dns_over_tls"), "dns_over_tls needs transport_protocol: tcp")
        data["dns_over_tls"] = tls
    if source := _source_ip(reader, raw, loc):
        data["source_ip_address"] = source
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

_ICMP_KEYS = (
    "preferred_ip_protocol", "ip_protocol_fallback", "payload_size", "ttl", "source_ip_address", "dont_fragment",
)  # fmt: skip


def _icmp(reader: _Reader, raw: Mapping[str, Any], loc: Loc) -> BlackboxSpec | None:
    reader.check_keys(raw, loc, _ICMP_KEYS)
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
        "dont_fragment": reader.boolean(raw, loc, "dont_fragment", False),
        **_ip_protocol(reader, raw, loc),
    }
    if source := _source_ip(reader, raw, loc):
        data["source_ip_address"] = source
    return _validated(reader, IcmpSpec, data, loc)


# One per prober of BLACKBOX_PROBERS (tests/core/test_kinds.py).
_TRANSLATORS: Mapping[str, Callable[[_Reader, Mapping[str, Any], Loc], BlackboxSpec | None]] = {
    "http": _http,
    "tcp": _tcp,
    "dns": _dns,
    "icmp": _icmp,
    "unix": _unix,
    "grpc": _grpc,
    "websocket": _websocket,
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
