"""The same rules and routing as prometheus-operator objects: ``PrometheusRule`` and ``AlertmanagerConfig``.

With the operator's default matcher strategy (``OnNamespace``) an ``AlertmanagerConfig``
only sees alerts whose ``namespace`` label is its own namespace, so the ``PrometheusRule``
puts that label on every alert (``namespace_label=True``). Receivers are converted from
Alertmanager's snake_case to the CRD's camelCase; credentials that the CRD takes only as
Secret references (Slack ``apiURL``, PagerDuty ``routingKey``...) must be edited into
Secrets, and time-interval keys the CRD lacks (``location``) are dropped and listed in the
``slaprobe/warnings`` annotation. The webhook credentials of the ``slaprobe-incidents``
receiver become references to the Secret ``WEBHOOK_SECRET`` (keys ``credentials``, or
``username`` and ``password``), which the annotation names: the CRD takes no inline secrets.
"""

from __future__ import annotations

import re
from typing import Any

from slaprobe import conventions as c

RULE_API_VERSION = "monitoring.coreos.com/v1"
CONFIG_API_VERSION = "monitoring.coreos.com/v1alpha1"
WARNINGS_ANNOTATION = "slaprobe/warnings"
WEBHOOK_SECRET = "slaprobe-webhook-auth"
_BASE_LABELS = {"app.kubernetes.io/name": "slaprobe", "app.kubernetes.io/component": "alerting"}
_RENAMES = {"api_url": "apiURL", "url_file": "urlFile", "http_config": "httpConfig"}
_TIME_INTERVAL_KEYS = {"times", "weekdays", "days_of_month", "months", "years"}
_MATCHER = re.compile(r'^(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)(?P<op>=~|!~|!=|=)"(?P<value>(?:[^"\\]|\\.)*)"$')


def _metadata(name: str, namespace: str, labels: dict[str, str] | None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**_BASE_LABELS, **(labels or {})}}


def prometheus_rule_manifest(
    rules: dict[str, Any],
    *,
    name: str = "slaprobe",
    namespace: str = "monitoring",
    labels: dict[str, str] | None = None,
    namespace_label: bool = True,
) -> dict[str, Any]:
    """A ``PrometheusRule`` holding ``rules`` (from ``generate_rules``); ``labels`` e.g. ``{"release": ...}``."""
    groups = rules["groups"]
    if namespace_label:  # new dicts where labels change; the rest is shared with ``rules``, not modified
        groups = [
            {
                **group,
                "rules": [
                    {**rule, "labels": {**rule["labels"], c.LABEL_NAMESPACE: namespace}} if "alert" in rule else rule
                    for rule in group["rules"]
                ],
            }
            for group in groups
        ]
    return {
        "apiVersion": RULE_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(name, namespace, labels),
        "spec": {"groups": groups},
    }


def camel(key: str) -> str:
    """``send_resolved`` -> ``sendResolved`` (with the CRD's few irregular names)."""
    if key in _RENAMES:
        return _RENAMES[key]
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(str(k)): _camel_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_tree(v) for v in value]
    return value


def crd_matcher(text: str) -> dict[str, str]:
    """``priority="P1"`` -> ``{"name": "priority", "value": "P1", "matchType": "="}``."""
    match = _MATCHER.match(text)
    if match is None:
        raise ValueError(f"not a matcher: {text!r}")
    value = re.sub(r"\\(.)", r"\1", match["value"])
    return {"name": match["name"], "value": value, "matchType": match["op"]}


def _route(route: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in route.items():
        if key == "matchers":
            out["matchers"] = [crd_matcher(m) for m in value]
        elif key == "routes":
            out["routes"] = [_route(r) for r in value]
        else:
            out[camel(key)] = value
    return out


def _secret_refs(receiver: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The incidents receiver with its inline webhook credentials replaced by Secret references."""
    if receiver.get("name") != c.RECEIVER_INCIDENTS:
        return receiver
    hooks = []
    for hook in receiver.get("webhookConfigs", []):
        http = dict(hook.get("httpConfig") or {})
        if "authorization" in http:
            ref = {"name": WEBHOOK_SECRET, "key": "credentials"}
            http["authorization"] = {**http["authorization"], "credentials": ref}
            warnings.append(f"create Secret {WEBHOOK_SECRET} with key credentials (the webhook's token)")
        if "basicAuth" in http:
            http["basicAuth"] = {key: {"name": WEBHOOK_SECRET, "key": key} for key in ("username", "password")}
            warnings.append(f"create Secret {WEBHOOK_SECRET} with keys username and password (the webhook's)")
        hooks.append({**hook, "httpConfig": http} if http else hook)
    return {**receiver, "webhookConfigs": hooks}


def alertmanager_config_manifest(
    alertmanager: dict[str, Any],
    *,
    name: str = "slaprobe",
    namespace: str = "monitoring",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ``AlertmanagerConfig`` with the routes, receivers, inhibitions and time intervals of ``alertmanager``."""
    warnings: list[str] = []
    spec: dict[str, Any] = {
        "route": _route(alertmanager["route"]),
        "receivers": [_secret_refs(_camel_tree(receiver), warnings) for receiver in alertmanager["receivers"]],
        "inhibitRules": [
            {
                "sourceMatch": [crd_matcher(m) for m in rule["source_matchers"]],
                "targetMatch": [crd_matcher(m) for m in rule["target_matchers"]],
                "equal": list(rule["equal"]),
            }
            for rule in alertmanager.get("inhibit_rules", [])
        ],
    }
    intervals = []
    for entry in alertmanager.get("time_intervals", []):
        kept = []
        for interval in entry["time_intervals"]:
            dropped = sorted(set(interval) - _TIME_INTERVAL_KEYS)
            if dropped:
                warnings.append(
                    f"time interval {entry['name']}: {', '.join(dropped)} not supported by AlertmanagerConfig "
                    f"{CONFIG_API_VERSION}; dropped (times are UTC)"
                )
            kept.append(_camel_tree({k: v for k, v in interval.items() if k in _TIME_INTERVAL_KEYS}))
        intervals.append({"name": entry["name"], "timeIntervals": kept})
    if intervals:
        # v1alpha1 names every time interval muteTimeIntervals; routes refer to them by name either way.
        spec["muteTimeIntervals"] = intervals
    metadata = _metadata(name, namespace, labels)
    if warnings:
        metadata["annotations"] = {WARNINGS_ANNOTATION: "; ".join(warnings)}
    return {"apiVersion": CONFIG_API_VERSION, "kind": "AlertmanagerConfig", "metadata": metadata, "spec": spec}
