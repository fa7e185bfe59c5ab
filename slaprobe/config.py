"""Load a slaprobe config (``version: v1``): strict, frozen, with path-precise errors.

``load_config(path)`` reads YAML (``yamlmap``: each path's line), interpolates ``${env:X}``
and ``${file:P}`` (``interpolation``), validates against the model (``model``, ``kinds``,
``specs``, ``fields``), translates pydantic's errors (``validation``), runs the checks that
span sections (``crosschecks``) and raises ``ConfigError`` listing *every* problem with
its YAML path and line. Durations are Prometheus durations, stored as float seconds.

This module is the config's public face: import the model from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from slaprobe.configerror import ConfigError, ConfigIssue
from slaprobe.crosschecks import cross_check, raw_cross_check
from slaprobe.fields import (
    SCALAR_SCHEMA,
    SCALARS_SCHEMA,
    Duration,
    HostPort,
    HttpUrl,
    IpProtocol,
    Model,
    Name,
    Regex,
    RegexList,
    Shorthand,
    Size,
)
from slaprobe.interpolation import interpolate
from slaprobe.kinds import (
    PROBE_KINDS,
    FlowExpect,
    FlowSpec,
    FlowStep,
    ProbeKind,
    ProbeSpec,
)
from slaprobe.model import (
    ACCESS_LOG_FORMATS,
    METRIC_NAME_PATTERN,
    SLA,
    Alerting,
    AlertmanagerRef,
    BudgetProjection,
    ClassifyRule,
    ClassifySet,
    ComplaintSpike,
    Config,
    Deadlines,
    EscalationLevel,
    FeedbackAlerting,
    FeedbackSource,
    FeedbackTrend,
    Global,
    LabelName,
    LatencySLA,
    LogFormat,
    LogMetric,
    LogSource,
    LogWrapper,
    MaintenanceAuth,
    MatchCondition,
    MetricType,
    MetricValue,
    PriorityMap,
    Probe,
    RateWindow,
    Service,
    TicketDefaults,
    TicketEvents,
    TicketFields,
    Tier,
    ValueUnit,
    WebhookAuth,
)
from slaprobe.redact import Redactor
from slaprobe.specs import (
    BasicAuth,
    DnsExpect,
    DnsRecordAssertion,
    DnsSpec,
    Extract,
    GrpcSpec,
    HeaderAssertion,
    HttpExpect,
    HttpSpec,
    IcmpExpect,
    IcmpSpec,
    JsonAssertion,
    TcpSpec,
    TcpStep,
    TLSConfig,
    TlsExpect,
    TlsSpec,
    UnixSpec,
    WebsocketSpec,
)
from slaprobe.validation import validation_issues
from slaprobe.yamlmap import format_path, invalid_yaml, line_of, parse_path, yaml_document, yaml_lines

# The public model, wherever each part is defined: import it from here.
__all__ = [
    "ACCESS_LOG_FORMATS",
    "METRIC_NAME_PATTERN",
    "PROBE_KINDS",
    "SCALARS_SCHEMA",
    "SCALAR_SCHEMA",
    "SLA",
    "Alerting",
    "AlertmanagerRef",
    "BasicAuth",
    "BudgetProjection",
    "ClassifyRule",
    "ClassifySet",
    "ComplaintSpike",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Deadlines",
    "DnsExpect",
    "DnsRecordAssertion",
    "DnsSpec",
    "Duration",
    "EscalationLevel",
    "Extract",
    "FeedbackAlerting",
    "FeedbackSource",
    "FeedbackTrend",
    "FlowExpect",
    "FlowSpec",
    "FlowStep",
    "Global",
    "GrpcSpec",
    "HeaderAssertion",
    "HostPort",
    "HttpExpect",
    "HttpSpec",
    "HttpUrl",
    "IcmpExpect",
    "IcmpSpec",
    "IpProtocol",
    "JsonAssertion",
    "LabelName",
    "LatencySLA",
    "LogFormat",
    "LogMetric",
    "LogSource",
    "LogWrapper",
    "MaintenanceAuth",
    "MatchCondition",
    "MetricType",
    "MetricValue",
    "Model",
    "Name",
    "PriorityMap",
    "Probe",
    "ProbeKind",
    "ProbeSpec",
    "RateWindow",
    "Regex",
    "RegexList",
    "Service",
    "Shorthand",
    "Size",
    "TLSConfig",
    "TcpSpec",
    "TcpStep",
    "TicketDefaults",
    "TicketEvents",
    "TicketFields",
    "Tier",
    "TlsExpect",
    "TlsSpec",
    "UnixSpec",
    "ValueUnit",
    "WebhookAuth",
    "WebsocketSpec",
    "config_json_schema",
    "format_path",
    "line_of",
    "load_config",
    "parse_config",
    "yaml_document",
    "yaml_lines",
]


def parse_config(text: str, source: str = "<config>", *, require_secrets: bool = True) -> Config:
    """Validate config text; raise ``ConfigError`` listing every issue with path and line.

    ``require_secrets=False`` accepts ``${env:}``/``${file:}`` that cannot be resolved here
    (as empty text): for generators, which never use credentials.
    """
    try:
        raw, lines, issues = yaml_document(text)
    except yaml.YAMLError as exc:
        raise ConfigError([invalid_yaml(exc)], source) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", "the config must be a mapping with version: v1", 1)], source)
    secrets: set[str] = set()
    found: list[tuple[tuple[str | int, ...], str]] = []
    raw = interpolate(raw, (), secrets, found if require_secrets else None)
    issues += [ConfigIssue(format_path(loc), msg, line_of(lines, loc)) for loc, msg in found]
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(raw, context={"require_secrets": require_secrets})
    except ValidationError as exc:
        issues += validation_issues(exc, Config, lines)
    for issue in cross_check(cfg) if cfg is not None else raw_cross_check(raw):
        loc = parse_path(issue.path)
        issues.append(ConfigIssue(issue.path, issue.message, line_of(lines, loc)))
    if issues:
        # Messages may quote input values; those must not leak interpolated secrets.
        redact = Redactor(secrets)
        issues = [ConfigIssue(i.path, redact(i.message), i.line) for i in issues]
        raise ConfigError(_dedupe(issues), source)
    assert cfg is not None
    # A heartbeat's token is a secret even when written out (not from ${env:}/${file:}).
    secrets.update(p.heartbeat.token.get_secret_value() for _, _, p in cfg.probes() if p.heartbeat)
    # So are the webhook's credentials.
    auth = cfg.alertmanager.webhook_auth if cfg.alertmanager is not None else None
    if auth is not None:
        secrets.update([auth.bearer_token or "", auth.basic_auth.password if auth.basic_auth else ""])
    cfg._secrets = frozenset(secrets - {""})
    return cfg


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for issue in issues:
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            out.append(issue)
    return sorted(out, key=lambda i: (i.line or 0, i.path))


def load_config(path: str | os.PathLike[str], *, require_secrets: bool = True) -> Config:
    """Read and validate a config file; raise ``ConfigError`` on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc}")], str(path)) from None
    return parse_config(text, str(path), require_secrets=require_secrets)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors."""
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "slaprobe config (version v1)"
    return schema
