"""Alertmanager configuration: one route per priority and escalation level, grouping, inhibitions.

Alertmanager only routes; the escalation clock lives in the Prometheus rules. Each
(priority, level) route sends to that level's receiver, muted outside its ``during:`` time
interval. Higher priorities inhibit lower ones for the same service; SLO alerts are
inhibited while the prober itself is down for that service (its data cannot be trusted).
When ``alertmanager.webhook_url`` is set, a first route copies every alert to slaprobe's
``/alertmanager/webhook`` (ungrouped, ``continue: true``) for the incident metrics, with the
credentials of ``alertmanager.webhook_auth`` in its ``http_config`` (the webhook requires them).

Recurring maintenance windows become time intervals that mute routes (Alertmanager does not
inherit ``mute_time_intervals``, so they go on the leaf routes): global ones on every level
route; a service's own on a copy of the level routes matching ``service``, ahead of the
others. One-off windows mute through the rules (``slaprobe_maintenance_active``).
"""

from __future__ import annotations

from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.policy import levels_of, ordered_priorities
from slaprobe.alerts.promql import any_of, quote
from slaprobe.config import Config, WebhookAuth
from slaprobe.maintenance import MaintenanceWindow, alertmanager_entries, alertmanager_name
from slaprobe.units import format_duration

GROUP_BY = [c.LABEL_SERVICE, c.LABEL_ALERTNAME]
RESOLVE_TIMEOUT = "5m"


def matcher(name: str, value: str, op: str = "=") -> str:
    """An Alertmanager matcher string: ``priority="P1"``."""
    return f"{name}{op}{quote(value)}"


def level_routes(cfg: Config) -> list[dict[str, Any]]:
    """Every (priority, level) route, most urgent priority first, level 1 first."""
    routes: list[dict[str, Any]] = []
    for priority in ordered_priorities(cfg):
        for number, level in enumerate(levels_of(cfg, priority), start=1):
            route: dict[str, Any] = {
                "receiver": level.notify,
                "matchers": [matcher(c.LABEL_PRIORITY, priority), matcher(c.LABEL_ESCALATION_LEVEL, str(number))],
            }
            if number == 1 and level.after > 0:
                # Level 1 is the alert itself; a delay before its first notification is group_wait.
                route["group_wait"] = format_duration(level.after)
            if level.during:
                route["active_time_intervals"] = [level.during]
            routes.append(route)
    return routes


def _recurring(service: str | None, windows: list[MaintenanceWindow]) -> list[str]:
    return [alertmanager_name(service, window) for window in windows if window.recurring]


def maintenance_routes(cfg: Config, routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The level routes muted by the recurring maintenance windows: per service, then for all."""
    everywhere = _recurring(None, cfg.global_.maintenance)
    out: list[dict[str, Any]] = []
    for name, service in cfg.services.items():
        own = _recurring(name, service.maintenance)
        if own:
            for route in routes:
                matchers = [matcher(c.LABEL_SERVICE, name), *route["matchers"]]
                out.append({**route, "matchers": matchers, "mute_time_intervals": [*everywhere, *own]})
    out += [{**route, "mute_time_intervals": everywhere} if everywhere else route for route in routes]
    return out


def maintenance_time_intervals(cfg: Config) -> list[dict[str, Any]]:
    """The Alertmanager time intervals of the recurring maintenance windows (names replaced by entries)."""
    scopes = [(None, cfg.global_.maintenance), *((name, s.maintenance) for name, s in cfg.services.items())]
    return [
        {"name": alertmanager_name(service, window), "time_intervals": alertmanager_entries(window, cfg.time_intervals)}
        for service, windows in scopes
        for window in windows
        if window.recurring
    ]


def incident_route(cfg: Config) -> dict[str, Any] | None:
    """The route that copies every slaprobe alert to slaprobe's webhook, if one is configured."""
    if cfg.alertmanager is None or cfg.alertmanager.webhook_url is None:
        return None
    matchers = [matcher(c.LABEL_ESCALATION_LEVEL, ".+", "=~")]
    if cfg.alerting.feedback.spike is not None:
        # A spike's service is the tickets' own (free-form), which no incident can take:
        # the webhook would refuse the post (422) and Alertmanager never retries it.
        matchers.append(matcher(c.LABEL_ALERTNAME, c.ALERT_FEEDBACK_SPIKE, "!="))
    return {
        "receiver": c.RECEIVER_INCIDENTS,
        "matchers": matchers,
        "group_by": ["..."],
        "group_wait": "0s",
        "continue": True,
    }


def webhook_http_config(auth: WebhookAuth | None) -> dict[str, Any]:
    """Alertmanager's ``http_config`` that sends slaprobe's webhook credentials (``alertmanager.webhook_auth``)."""
    if auth is None:
        return {}
    if auth.basic_auth is not None:
        return {"basic_auth": {"username": auth.basic_auth.username, "password": auth.basic_auth.password}}
    return {"authorization": {"type": "Bearer", "credentials": auth.bearer_token}}


def receivers(cfg: Config) -> list[dict[str, Any]]:
    """Generated receivers, then the config's as written (``check`` rejects levels naming no receiver)."""
    out: list[dict[str, Any]] = []
    if cfg.alerting.default_receiver is None:
        out.append({"name": c.RECEIVER_UNROUTED})
    if cfg.alertmanager is not None and cfg.alertmanager.webhook_url is not None:
        hook: dict[str, Any] = {"url": cfg.alertmanager.webhook_url, "send_resolved": True}
        http_config = webhook_http_config(cfg.alertmanager.webhook_auth)
        if http_config:
            hook["http_config"] = http_config
        out.append({"name": c.RECEIVER_INCIDENTS, "webhook_configs": [hook]})
    out.extend({"name": name, **spec} for name, spec in cfg.receivers.items())
    return out


def inhibit_rules(cfg: Config) -> list[dict[str, Any]]:
    """Higher priorities mute lower ones of the same service; a down prober mutes that service's SLO alerts
    (for a service with a quorum, measured from several locations, only an absent exporter does); a
    prober shard that is down mutes the no-data alerts of its location."""
    rules: list[dict[str, Any]] = []
    priorities = ordered_priorities(cfg)
    for index, priority in enumerate(priorities[:-1]):
        rules.append(
            {
                "source_matchers": [matcher(c.LABEL_PRIORITY, priority)],
                "target_matchers": [matcher(c.LABEL_PRIORITY, any_of(priorities[index + 1 :]), "=~")],
                "equal": [c.LABEL_SERVICE],
            }
        )
    slo_alerts = matcher(c.LABEL_ALERTNAME, any_of(c.SLO_ALERTS), "=~")
    if any(service.probes for service in cfg.services.values()):
        # A shard that stopped takes its probes' fresh results with it: its own alert says so,
        # not one no-data alert per probe it ran in that location.
        rules.append(
            {
                "source_matchers": [matcher(c.LABEL_ALERTNAME, c.ALERT_SHARD_DOWN)],
                "target_matchers": [matcher(c.LABEL_ALERTNAME, c.ALERT_PROBE_NO_DATA)],
                "equal": [c.LABEL_LOCATION],
            }
        )
    quorum = sorted(name for name, service in cfg.services.items() if service.location_aware)
    if not quorum:
        rules.append(
            {
                "source_matchers": [matcher(c.LABEL_ALERTNAME, any_of(c.PROBER_DOWN_ALERTS), "=~")],
                "target_matchers": [slo_alerts],
                "equal": [c.LABEL_SERVICE],
            }
        )
        return rules
    # A service measured from several locations (with a quorum) keeps its SLO alerts while one
    # location's prober is silent: the other locations still measure it, and that silence
    # has its own alert. Only the exporter itself being absent mutes them there.
    others = [name for name in c.PROBER_DOWN_ALERTS if name != c.ALERT_EXPORTER_ABSENT]
    rules.append(
        {
            "source_matchers": [matcher(c.LABEL_ALERTNAME, c.ALERT_EXPORTER_ABSENT)],
            "target_matchers": [slo_alerts],
            "equal": [c.LABEL_SERVICE],
        }
    )
    rules.append(
        {
            "source_matchers": [
                matcher(c.LABEL_ALERTNAME, any_of(others), "=~"),
                matcher(c.LABEL_SERVICE, any_of(quorum), "!~"),
            ],
            "target_matchers": [slo_alerts],
            "equal": [c.LABEL_SERVICE],
        }
    )
    return rules


def generate_alertmanager(cfg: Config) -> dict[str, Any]:
    """The Alertmanager configuration (``alertmanager.yaml``) for ``cfg``; pure and deterministic."""
    alerting = cfg.alerting
    routes = maintenance_routes(cfg, level_routes(cfg))
    incidents = incident_route(cfg)
    if incidents is not None:
        routes.insert(0, incidents)
    document: dict[str, Any] = {
        "global": {"resolve_timeout": RESOLVE_TIMEOUT},
        "route": {
            "receiver": alerting.default_receiver or c.RECEIVER_UNROUTED,
            "group_by": list(GROUP_BY),
            "group_wait": format_duration(alerting.group_wait),
            "group_interval": format_duration(alerting.group_interval),
            "repeat_interval": format_duration(alerting.repeat_interval),
            "routes": routes,
        },
        "inhibit_rules": inhibit_rules(cfg),
        "receivers": receivers(cfg),
    }
    intervals = [{"name": name, "time_intervals": list(entries)} for name, entries in cfg.time_intervals.items()]
    intervals += maintenance_time_intervals(cfg)
    if intervals:
        document["time_intervals"] = intervals
    return document
