"""Checks that span sections of a valid config: names unique, references known, order kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slaprobe.configerror import ConfigIssue, did_you_mean
from slaprobe.maintenance import window_issues
from slaprobe.model import Config, Probe
from slaprobe.schedule import TimeInterval
from slaprobe.variables import flow_problems, plain_probe_references


def cross_check(cfg: Config) -> list[ConfigIssue]:
    """Checks that span sections; each issue names the offending path."""
    issues: list[ConfigIssue] = []
    for service_name, service in cfg.services.items():
        seen: set[str] = set()
        for i, probe in enumerate(service.probes):
            path = f"services.{service_name}.probes[{i}]"
            if probe.name in seen:
                issues.append(ConfigIssue(f"{path}.name", f"duplicate probe name {probe.name!r}"))
            seen.add(probe.name)
            if probe.heartbeat is not None:
                issues += _pushed_probe_issues(path, probe)
            interval = cfg.interval_of(probe)
            if probe.timeout and probe.timeout > interval:
                issues.append(ConfigIssue(f"{path}.timeout", "timeout must not exceed the probe's interval"))
            for name in probe.during:
                if name not in cfg.time_intervals:
                    known = did_you_mean(name, cfg.time_intervals)
                    issues.append(ConfigIssue(f"{path}.during", f"unknown time interval {name!r}{known}"))
            for where, name in plain_probe_references(probe.kind, probe.spec):
                message = f"${{{name}}} is not defined: only the steps of a flow have variables"
                issues.append(ConfigIssue(f"{path}.{where}", f"{message} (did you mean ${{env:{name}}}?)"))
            if probe.flow:
                for where, message in flow_problems(probe.flow):
                    issues.append(ConfigIssue(f"{path}.flow.{where}", message))
                names = [s.name for s in (*probe.flow.steps, *probe.flow.finally_)]
                for name in {n for n in names if names.count(n) > 1}:
                    issues.append(ConfigIssue(f"{path}.flow", f"duplicate step name {name!r}"))
    issues += _maintenance_issues(cfg)
    for name, entries in cfg.time_intervals.items():
        for i, entry in enumerate(entries):
            try:
                TimeInterval.parse(entry)
            except ValueError as exc:
                issues.append(ConfigIssue(f"time_intervals.{name}[{i}]", str(exc)))
    for priority, levels in cfg.escalation.items():
        for i, level in enumerate(levels):
            path = f"escalation.{priority}[{i}]"
            if level.notify not in cfg.receivers:
                issues.append(ConfigIssue(f"{path}.notify", unknown_receiver(level.notify, cfg.receivers)))
            if level.during is not None and level.during not in cfg.time_intervals:
                issues.append(
                    ConfigIssue(
                        f"{path}.during",
                        f"unknown time interval {level.during!r}{did_you_mean(level.during, cfg.time_intervals)}",
                    )
                )
        afters = [level.after for level in levels]
        if afters != sorted(afters):
            issues.append(ConfigIssue(f"escalation.{priority}", "levels must be in increasing order of 'after'"))
    default_receiver = cfg.alerting.default_receiver
    if default_receiver is not None and default_receiver not in cfg.receivers:
        issues.append(ConfigIssue("alerting.default_receiver", unknown_receiver(default_receiver, cfg.receivers)))
    if cfg.alertmanager is not None and cfg.alertmanager.webhook_url and cfg.alertmanager.webhook_auth is None:
        message = "required with webhook_url: the webhook refuses posts without credentials ({bearer_token: ...})"
        issues.append(ConfigIssue("alertmanager.webhook_auth", message))
    known_priorities = {p for m in cfg.priorities.values() for p in (m.page, m.ticket)}
    for priority in cfg.escalation:
        if priority not in known_priorities:
            issues.append(ConfigIssue(f"escalation.{priority}", f"priority {priority!r} is not used in priorities"))
    for i, source in enumerate(cfg.feedback):
        if source.service is not None and source.service not in cfg.services:
            issues.append(ConfigIssue(f"feedback[{i}].service", f"unknown service {source.service!r}"))
    issues += _log_source_issues(cfg)
    return issues


def raw_cross_check(raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """The name checks of ``cross_check`` on a config that failed validation, read from its raw data.

    So ``check`` lists duplicate probe names and unknown time interval names with the other
    errors, not only once those are fixed. Anything of an unexpected shape is skipped (the
    validation errors already name it).
    """
    issues: list[ConfigIssue] = []
    intervals = _mapping(raw.get("time_intervals"))
    services = _mapping(raw.get("services"))
    for service_name, service in services.items():
        seen: set[str] = set()
        for i, probe in enumerate(_sequence(_mapping(service).get("probes"))):
            path = f"services.{service_name}.probes[{i}]"
            name = _mapping(probe).get("name")
            if isinstance(name, str):
                if name in seen:
                    issues.append(ConfigIssue(f"{path}.name", f"duplicate probe name {name!r}"))
                seen.add(name)
            for interval in _sequence(_mapping(probe).get("during")):
                if isinstance(interval, str) and interval not in intervals:
                    known = did_you_mean(interval, intervals)
                    issues.append(ConfigIssue(f"{path}.during", f"unknown time interval {interval!r}{known}"))
    for priority, levels in _mapping(raw.get("escalation")).items():
        for i, level in enumerate(_sequence(levels)):
            during = _mapping(level).get("during")
            if isinstance(during, str) and during not in intervals:
                message = f"unknown time interval {during!r}{did_you_mean(during, intervals)}"
                issues.append(ConfigIssue(f"escalation.{priority}[{i}].during", message))
    return issues


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _pushed_probe_issues(path: str, probe: Probe) -> list[ConfigIssue]:
    """A heartbeat is pushed: the keys that say when and how slaprobe runs a probe do not apply."""
    given: list[str] = [k for k in ("interval", "timeout", "schedule", "retries") if k in probe.model_fields_set]
    if probe.during:
        given.append("during")
    return [ConfigIssue(f"{path}.{key}", "a heartbeat is pushed, not run: use heartbeat.every") for key in given]


def _maintenance_issues(cfg: Config) -> list[ConfigIssue]:
    """Maintenance windows: names unique where they are listed, interval names known, entries valid."""
    scopes = [("global.maintenance", cfg.global_.maintenance)]
    scopes += [(f"services.{name}.maintenance", s.maintenance) for name, s in cfg.services.items()]
    return [
        ConfigIssue(path, message)
        for where, windows in scopes
        for path, message in window_issues(where, windows, cfg.time_intervals, did_you_mean)
    ]


def unknown_receiver(name: str, receivers: Mapping[str, object]) -> str:
    """Why ``name`` names no receiver: Alertmanager would route to it and deliver nowhere."""
    if not receivers:
        return f"unknown receiver {name!r}: no receivers are defined (add it under receivers)"
    return f"unknown receiver {name!r}{did_you_mean(name, receivers)}"


def _log_source_issues(cfg: Config) -> list[ConfigIssue]:
    """Log and feedback sources need distinct ``source`` labels; user metric names are config-wide."""
    issues: list[ConfigIssue] = []
    labels: dict[str, str] = {}
    metrics: dict[str, str] = {}
    for service_name, service in cfg.services.items():
        for i, log in enumerate(service.logs):
            path = f"services.{service_name}.logs[{i}]"
            if log.label in labels:
                what = "name" if log.name else "path"
                message = f"source {log.label!r} is also used at {labels[log.label]} (give each a distinct name)"
                issues.append(ConfigIssue(f"{path}.{what}", message))
            labels.setdefault(log.label, path)
            for j, metric in enumerate(log.metrics):
                if metric.name in metrics:
                    message = f"metric {metric.name!r} is already defined at {metrics[metric.name]}"
                    issues.append(ConfigIssue(f"{path}.metrics[{j}].name", message))
                metrics.setdefault(metric.name, f"{path}.metrics[{j}]")
    for i, source in enumerate(cfg.feedback):
        if source.name in labels:
            message = f"source {source.name!r} is also used at {labels[source.name]}"
            issues.append(ConfigIssue(f"feedback[{i}].name", message))
        labels.setdefault(source.name, f"feedback[{i}]")
    return issues
