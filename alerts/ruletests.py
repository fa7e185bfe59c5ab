"""promtool rule tests generated with the rules: they pin when each escalation level fires.

For every priority with more than one level, synthetic ``ALERTS`` series of a level-1 alert
of that priority check that level N fires exactly at its ``after`` and not one evaluation
before; that a flap shorter than the bridge pauses the clock and one just longer resets it;
that a blip shorter than ``after`` escalates to no level; that every level resolves with
level 1; that an acknowledgement resolves the fired level and withholds the next; and that a
silence ending after recovery escalates nothing. For one service
per tier, real probe series check the SLIs and alerts end to end: no failures reads 0 (not
"no data"), an outage fires the burn-rate alerts and the budget projection, probe down
fires after N runs and escalates on time, and the compliance, TLS and feedback alerts fire.

promtool compares annotations exactly, so expected texts are the rules' templates filled in
here; tests only use values whose Go formatting is certain (0, 1, 50%, 100%, whole days).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slaprobe import conventions as c
from slaprobe.alerts.alerting import burn_windows, feedback_concern, is_scheduled, name_locations
from slaprobe.alerts.escalation import escalation_annotations
from slaprobe.alerts.policy import levels_of, ordered_priorities, priority_of
from slaprobe.alerts.promql import number
from slaprobe.alerts.rules import alerting_rules, generate_rules, group_names
from slaprobe.alerts.slos import SLO, service_slos
from slaprobe.config import Config, EscalationLevel, Probe, Service
from slaprobe.units import format_duration, parse_duration

RULES_FILE = "slaprobe-rules.yaml"
INSTANCE = {"instance": "slaprobe:9799", "job": "slaprobe"}
_TEMPLATE = re.compile(r"\{\{ \$labels\.(\w+) \}\}|\{\{ \$value( \| (\w+))? \}\}")


# ---------------------------------------------------------------------------- Go template subset


def go_number(value: float) -> str:
    """Go's ``%v`` of a float64, for the values tests use."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def humanize(value: float) -> str:
    """Prometheus' ``humanize`` (``%.4g`` with SI prefixes)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(value) >= 1:
                break
            prefix, value = p, value * 1000
    return f"{value:.4g}{prefix}"


def expand(template: str, labels: dict[str, str], value: float | None = None) -> str:
    """Fill ``{{ $labels.x }}`` and ``{{ $value }}`` (plain, ``humanize``, ``humanizePercentage``)."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1):
            return labels.get(match.group(1), "<no value>")
        assert value is not None, f"template needs a value: {template}"
        function = match.group(3)
        if function == "humanize":
            return humanize(value)
        if function == "humanizePercentage":
            return f"{value * 100:.4g}%"
        if function is None:
            return go_number(value)
        raise ValueError(f"no expectation for {function} in tests")

    return _TEMPLATE.sub(fill, template)


# ---------------------------------------------------------------------------- test building


@dataclass
class Case:
    """One promtool test: input series and the checks on them."""

    name: str
    series: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    exprs: list[dict[str, Any]] = field(default_factory=list)

    def add_series(self, metric: str, labels: dict[str, str], values: str) -> None:
        """Add an input series."""
        body = ", ".join(f"{k}={_q(v)}" for k, v in labels.items())
        self.series.append({"series": f"{metric}{{{body}}}", "values": values})

    def expect(self, at: float, alertname: str, alerts: Iterable[tuple[dict[str, str], dict[str, str]]]) -> None:
        """At ``at`` seconds, exactly these (labels, annotations) alerts of ``alertname`` fire."""
        exp = [{"exp_labels": {"alertname": alertname, **labels}, "exp_annotations": notes} for labels, notes in alerts]
        self.alerts.append({"eval_time": format_duration(at), "alertname": alertname, "exp_alerts": exp})

    def document(self, step: float) -> dict[str, Any]:
        """The promtool test entry."""
        test: dict[str, Any] = {"name": self.name, "interval": format_duration(step), "input_series": self.series}
        if self.alerts:
            test["alert_rule_test"] = self.alerts
        if self.exprs:
            test["promql_expr_test"] = self.exprs
        return test


HISTORY_RUNS = 1_000_000  # a counter jump that stands for a service's earlier runs


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def values(*runs: tuple[str, int]) -> str:
    """promtool values from (value, samples) runs: ``("1", 3), ("_", 2)`` -> ``1x2 _x2``."""
    parts = []
    for value, count in runs:
        if count <= 0:
            continue
        if value == "_":
            parts.append(f"_x{count}")
        elif value == "stale":
            parts.extend(["stale"] * count)
        elif "+" in value:
            parts.append(f"{value}x{count - 1}")
        else:
            parts.append(f"{value}x{count - 1}" if count > 1 else value)
    return " ".join(parts)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def test_step(cfg: Config) -> float:
    """The evaluation interval of the tests: every timing they pin is a multiple of it (at most 1m)."""
    durations = [60.0, cfg.alerting.escalation_bridge, cfg.alerting.budget_projection.for_]
    durations += [level.after for levels in cfg.escalation.values() for level in levels]
    durations += [(cfg.alerting.probe_down_runs - 1) * cfg.interval_of(p) for _, _, p in cfg.probes()]
    step = 0
    for duration in durations:
        step = math.gcd(step, _ms(duration))
    return max(step, 1000) / 1000


# ---------------------------------------------------------------------------- escalation with synthetic ALERTS


def meta_alert(labels: dict[str, str], level: int, spec: EscalationLevel) -> tuple[dict[str, str], dict[str, str]]:
    """Expected labels and annotations of the level-``level`` meta-alert of a level-1 alert."""
    meta = {k: v for k, v in labels.items() if k != c.LABEL_ALERTSTATE}
    meta[c.LABEL_ESCALATION_LEVEL] = str(level)
    notes = escalation_annotations(level, spec.after, spec.notify)
    full = {c.LABEL_ALERTNAME: labels[c.LABEL_ALERTNAME], **meta}
    return meta, {k: expand(v, full) for k, v in notes.items()}


def escalation_cases(cfg: Config, rules: dict[str, Any], step: float) -> list[Case]:
    """Timing, flap and acknowledgement tests for every priority with more than one level."""
    cases: list[Case] = []
    bridge = cfg.alerting.escalation_bridge
    base_rules = [r for r in alerting_rules(rules) if r["labels"].get(c.LABEL_ESCALATION_LEVEL) == "1"]
    for priority in ordered_priorities(cfg):
        levels = levels_of(cfg, priority)
        candidates = [r for r in base_rules if r["labels"][c.LABEL_PRIORITY] == priority]
        if len(levels) < 2 or not candidates:
            continue
        rule = min(candidates, key=lambda r: str(r["alert"]))
        alertname = rule["alert"]
        labels = {
            c.LABEL_ALERTNAME: alertname,
            c.LABEL_ALERTSTATE: c.ALERT_FIRING,
            **rule["labels"],
            **INSTANCE,
        }
        last = levels[-1].after
        horizon = int((last + 3 * step + 2 * bridge) / step) + 2

        # Steady: level N fires exactly at its after, not one evaluation before.
        case = Case(f"{priority}: each escalation level of {alertname} fires exactly at its delay")
        case.series.append(alerts_series(labels, values(("1", horizon))))
        for level_no, level in enumerate(levels[1:], start=2):
            fired = [meta_alert(labels, n, levels[n - 1]) for n in range(2, level_no)]
            if level.after >= step:
                case.expect(level.after - step, alertname, fired)
            case.expect(level.after, alertname, [*fired, meta_alert(labels, level_no, level)])
        cases.append(case)

        second = levels[1]
        k = round(bridge / step)
        # The alert fires up to evaluation a, stops, and fires again from evaluation b. Prometheus 2
        # selects ranges closed at both ends, Prometheus 3 open at the start: b = a + k keeps the
        # episode under both, b = a + k + 2 ends it under both (a + k + 1 depends on the version).
        if k >= 2 and second.after > 2 * step:
            a = round(second.after / step) // 3
            paused = (k - 1) * step  # evaluations without the alert: the clock holds through them
            case = Case(f"{priority}: a flap of {alertname} shorter than the bridge pauses the level-2 clock")
            case.series.append(alerts_series(labels, values(("1", a + 1), ("stale", 1), ("_", k - 2), ("1", horizon))))
            case.expect(second.after + paused - step, alertname, [])
            case.expect(second.after + paused, alertname, [meta_alert(labels, 2, second)])
            cases.append(case)
        a = 1
        resume = (a + k + 2) * step
        case = Case(f"{priority}: a flap of {alertname} longer than the bridge resets the level-2 clock")
        case.series.append(alerts_series(labels, values(("1", a + 1), ("stale", 1), ("_", k), ("1", horizon + k + 2))))
        if second.after > 0:
            case.expect(resume + second.after - step, alertname, [])
        case.expect(resume + second.after, alertname, [meta_alert(labels, 2, second)])
        cases.append(case)

        # A blip shorter than level 2's delay escalates to no level, now or later (whatever the bridge).
        if second.after >= step:
            blip = round(second.after / step)  # samples 0 .. blip - 1: the clock reaches after - step
            case = Case(f"{priority}: a blip of {alertname} shorter than level 2's delay escalates to no level")
            case.series.append(alerts_series(labels, values(("1", blip), ("stale", 1), ("_", horizon))))
            for at in sorted({second.after, second.after + bridge / 2, second.after + bridge, last}):
                case.expect(at, alertname, [])
            cases.append(case)

        # Every level resolves with level 1, and none fires after it (even one whose after is still ahead).
        ends = round(second.after / step) + 1
        case = Case(f"{priority}: once {alertname} resolves, every level resolves and none fires later")
        case.series.append(alerts_series(labels, values(("1", ends), ("stale", 1), ("_", horizon))))
        case.expect((ends - 1) * step, alertname, [meta_alert(labels, 2, second)])
        for at in sorted({ends * step, ends * step + bridge / 2, max(last, ends * step)}):
            case.expect(at, alertname, [])
        cases.append(case)

        # Acknowledged after level 2 fired: level 2 resolves at once and no later level fires.
        ack_at = second.after + step
        case = Case(f"{priority}: acknowledging {alertname} resolves level 2 and withholds the next levels")
        case.series.append(alerts_series(labels, values(("1", horizon))))
        ack_steps = round(ack_at / step)
        case.add_series(
            c.ALERT_ACKNOWLEDGED,
            {c.LABEL_SERVICE: labels[c.LABEL_SERVICE], c.LABEL_ALERTNAME: alertname, **INSTANCE},
            values(("_", ack_steps), ("1", horizon - ack_steps)),
        )
        case.expect(ack_at - step, alertname, [meta_alert(labels, 2, second)])
        case.expect(ack_at, alertname, [])
        for level in levels[2:]:
            case.expect(max(level.after, ack_at), alertname, [])
        cases.append(case)

        # Acknowledged, then recovered, then the silence ends: nothing escalates.
        recovered = ack_steps + 1
        case = Case(f"{priority}: a silence on {alertname} that ends after recovery escalates nothing")
        case.series.append(alerts_series(labels, values(("1", recovered), ("stale", 1), ("_", horizon))))
        case.add_series(
            c.ALERT_ACKNOWLEDGED,
            {c.LABEL_SERVICE: labels[c.LABEL_SERVICE], c.LABEL_ALERTNAME: alertname, **INSTANCE},
            values(("_", ack_steps), ("1", recovered - ack_steps + 1), ("stale", 1), ("_", horizon)),
        )
        silence_ends = (recovered + 2) * step
        for at in sorted({silence_ends, silence_ends + bridge / 2, max(last, silence_ends)}):
            case.expect(at, alertname, [])
        cases.append(case)
    return cases


def escalated(
    cfg: Config, alertname: str, alerts: Iterable[tuple[dict[str, str], dict[str, str]]], fired_at: float, at: float
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Level-1 alerts that fired at ``fired_at``, with the meta-alerts of the levels due by ``at``."""
    out = []
    for labels, notes in alerts:
        out.append((labels, notes))
        levels = levels_of(cfg, labels[c.LABEL_PRIORITY])
        for level_no, level in enumerate(levels[1:], start=2):
            if fired_at + level.after <= at:
                out.append(meta_alert({c.LABEL_ALERTNAME: alertname, **labels}, level_no, level))
    return out


def alerts_series(labels: dict[str, str], vals: str) -> dict[str, str]:
    body = ", ".join(f"{k}={_q(v)}" for k, v in labels.items() if k != c.LABEL_ALERTNAME)
    return {"series": f"{c.ALERTS_SERIES}{{alertname={_q(labels[c.LABEL_ALERTNAME])}, {body}}}", "values": vals}


# ---------------------------------------------------------------------------- end to end on one service per tier


def sample_services(cfg: Config) -> list[tuple[str, Service]]:
    """The first service with probes of each tier, in config order."""
    seen: set[str] = set()
    out = []
    for name, service in cfg.services.items():
        if service.probes and service.tier not in seen:
            seen.add(service.tier)
            out.append((name, service))
    return out


def sample_rules(cfg: Config, rules: dict[str, Any]) -> dict[str, Any]:
    """The groups the tests evaluate: the sample services', feedback and escalation (file order kept).

    promtool evaluates every rule of its rule files at every step, so tests against the whole
    file of hundreds of services take most of an hour; against these groups, seconds. Every
    service's groups come from the same code, so the sample tests them all.
    """
    services = {name for name, _ in sample_services(cfg)}
    wanted = {
        prefix + name for name in services for prefix in (c.RULE_GROUP_SLI, c.RULE_GROUP_META, c.RULE_GROUP_ALERTS)
    }
    wanted |= {
        c.RULE_GROUP_FEEDBACK_RECORDINGS,
        c.RULE_GROUP_FEEDBACK_ALERTS,
        c.RULE_GROUP_ESCALATION,
        c.RULE_GROUP_FLEET,
    }
    return {"groups": [group for group in rules["groups"] if group["name"] in wanted]}


_SERVICE_LABEL = re.compile(rf'[{{,]\s*{c.LABEL_SERVICE}="((?:[^"\\]|\\.)*)"')
_FEEDBACK_METRICS = (c.FEEDBACK_TICKETS, c.FEEDBACK_SLA_BREACHES, c.FEEDBACK_QUALITY_TICKETS)


def groups_read(rules: dict[str, Any], test: dict[str, Any]) -> list[str]:
    """The groups of ``rules`` that one generated test reads, in evaluation order.

    promtool evaluates every group at every step, so a case run against only these groups costs
    a fraction and checks the same. Left out are only the groups of services the case's series
    do not name (they select that service's series, which the case does not feed, so the only
    alerts they could raise, another service's ``SLAProbeExporterAbsent``, have an alertname and
    service the case does not check), and the feedback groups when it feeds no tickets. A case
    that feeds only ``ALERTS`` (and acknowledgements) names no service. Every other group (the
    escalation, the fleet, any later one) is kept.
    """
    own = [s["series"] for s in test["input_series"]]
    data = [s for s in own if not s.startswith((c.ALERTS_SERIES + "{", c.ALERT_ACKNOWLEDGED + "{"))]
    services = {re.sub(r"\\(.)", r"\1", m.group(1)) for s in data for m in _SERVICE_LABEL.finditer(s)}
    per_service = (c.RULE_GROUP_SLI, c.RULE_GROUP_META, c.RULE_GROUP_ALERTS)
    feedback = {c.RULE_GROUP_FEEDBACK_RECORDINGS, c.RULE_GROUP_FEEDBACK_ALERTS}
    feeds_tickets = any(s.startswith(_FEEDBACK_METRICS) for s in data)

    def read(name: str) -> bool:
        if name in feedback:
            return feeds_tickets
        for prefix in per_service:
            if name.startswith(prefix):
                return name[len(prefix) :] in services
        return True

    return [name for name in group_names(rules) if read(name)]


def _rule_for(rules: dict[str, Any], alertname: str, **labels: str) -> dict[str, Any]:
    for rule in alerting_rules(rules):
        if rule["alert"] == alertname and all(rule["labels"].get(k) == v for k, v in labels.items()):
            return rule
    raise LookupError(f"no {alertname} rule with {labels}")


def _expected(rule: dict[str, Any], series_labels: dict[str, str], value: float) -> tuple[dict, dict]:
    labels = {**series_labels, **rule["labels"]}
    full = {c.LABEL_ALERTNAME: rule["alert"], **labels}
    return labels, {k: expand(v, full, value) for k, v in rule["annotations"].items()}


def service_cases(cfg: Config, rules: dict[str, Any], step: float) -> list[Case]:
    """SLI, burn-rate, projection, probe-down (with escalation), compliance and TLS tests per sample service."""
    cases: list[Case] = []
    for name, service in sample_services(cfg):
        probe = service.probes[0]
        probe_labels = {c.LABEL_SERVICE: name, c.LABEL_PROBE: probe.name, c.LABEL_LOCATION: cfg.global_.location}
        series = {**probe_labels, **INSTANCE}
        slos = {slo.name: slo for slo in service_slos(cfg, name, service)}
        cases.append(_zero_failures_case(name, series, slos[c.SLO_AVAILABILITY], step))
        cases.append(_quiet_window_case(name, series, slos[c.SLO_AVAILABILITY], step))
        cases.append(_exact_period_case(name, series, slos[c.SLO_AVAILABILITY], step))
        everywhere = quorum_series(service, series)
        cases.append(_outage_case(cfg, rules, name, everywhere, slos[c.SLO_AVAILABILITY], step))
        cases.append(_new_service_case(cfg, rules, name, everywhere, slos[c.SLO_AVAILABILITY], step))
        steady = [p for p in service.probes if not is_scheduled(p)]
        if steady:
            steady_series = {**series, c.LABEL_PROBE: steady[0].name}
            cases.append(_probe_down_case(cfg, rules, name, service, steady[0], steady_series, step))
        compliance = slos[c.SLO_COMPLIANCE]
        if compliance.objective > 50:
            cases.append(_compliance_case(cfg, rules, name, series, compliance, step))
        cases.append(_tls_case(cfg, rules, name, series))
    return cases


def _zero_failures_case(name: str, series: dict[str, str], slo: SLO, step: float) -> Case:
    case = Case(f"{name}: runs without failures give an availability error ratio of 0, not no data")
    case.add_series(c.PROBE_RUNS, series, values(("0+1", 30)))
    for window in c.SLO_RATE_WINDOWS[:2]:
        labels = {**slo.labels(), c.LABEL_SLOTH_WINDOW: window}
        body = ", ".join(f"{k}={_q(v)}" for k, v in labels.items())
        case.exprs.append(
            {
                "expr": slo.selector(c.slo_sli_error(window)),
                "eval_time": format_duration(3 * step),
                "exp_samples": [{"labels": f"{c.slo_sli_error(window)}{{{body}}}", "value": 0}],
            }
        )
    return case


def _ratio_sample(slo: SLO, window: str, at: float, value: float) -> dict[str, Any]:
    """A promql_expr_test: the SLO's recorded error ratio over ``window`` is ``value`` at ``at``."""
    labels = {**slo.labels(), c.LABEL_SLOTH_WINDOW: window}
    body = ", ".join(f"{k}={_q(v)}" for k, v in labels.items())
    return {
        "expr": slo.selector(c.slo_sli_error(window)),
        "eval_time": format_duration(at),
        "exp_samples": [{"labels": f"{c.slo_sli_error(window)}{{{body}}}", "value": value}],
    }


def _quiet_window_case(name: str, series: dict[str, str], slo: SLO, step: float) -> Case:
    """Runs stop (a cron or ``during`` probe, a long interval): the quiet window reads 0, not NaN."""
    case = Case(f"{name}: a window without runs has an error ratio of 0, and the SLA window's stays a number")
    shortest = parse_duration(c.SLO_RATE_WINDOWS[0])
    quiet = round(shortest / step) + 3  # samples after the last run: the shortest window holds none
    case.add_series(c.PROBE_RUNS, series, values(("0+1", 5), ("4", quiet)))
    failures = values(("_", 3), ("1", quiet + 2))
    case.add_series(c.PROBE_FIRST_ATTEMPT_FAILURES, {**series, c.LABEL_REASON: "connect"}, failures)
    at = (4 + quiet) * step
    case.exprs.append(_ratio_sample(slo, c.SLO_RATE_WINDOWS[0], at, 0))
    case.exprs.append(_ratio_sample(slo, slo.period_window, at, 0.25))  # 1 of 4 runs failed
    return case


def _exact_period_case(name: str, series: dict[str, str], slo: SLO, step: float) -> Case:
    """The SLA window's ratio counts runs exactly, though the failure series appears only at the first failure."""
    case = Case(f"{name}: the SLA window's error ratio is exact: 26 failed of 60 runs is 26/60")
    case.add_series(c.PROBE_RUNS, series, values(("1+1", 60)))
    failures = values(("_", 10), ("1+1", 26), ("26", 24))
    case.add_series(c.PROBE_FIRST_ATTEMPT_FAILURES, {**series, c.LABEL_REASON: "connect"}, failures)
    case.exprs.append(_ratio_sample(slo, slo.period_window, 59 * step, 26 / 60))
    return case


def quorum_series(service: Service, series: dict[str, str]) -> list[dict[str, str]]:
    """Where an outage is seen: the series' own location, or as many locations as the quorum needs
    (two of two for a share), so a service with a quorum pages as one without does."""
    if not service.location_aware:
        return [series]
    failing = 2 if service.quorum_share is not None else int(service.quorum)
    where = series[c.LABEL_LOCATION]
    return [{**series, c.LABEL_LOCATION: f"{where}-{n}"} for n in range(1, failing + 1)]


def _outage_case(
    cfg: Config, rules: dict[str, Any], name: str, everywhere: list[dict[str, str]], slo: SLO, step: float
) -> Case:
    case = Case(
        f"{name}: a full outage fires every burn-rate pair that applies and, after its delay, the budget projection"
    )
    hold = cfg.alerting.budget_projection.for_
    samples = round((hold + 2 * step) / step) + 12
    # A service with history: the jump stands for the runs of the days before, so every
    # window holds the runs its alert needs (alerting.minimum_events).
    history = values(("0", 1), (f"{HISTORY_RUNS}+1", samples - 1))
    for series in everywhere:
        case.add_series(c.PROBE_RUNS, series, history)
        case.add_series(c.PROBE_FIRST_ATTEMPT_FAILURES, {**series, c.LABEL_REASON: "connect"}, history)
    burns = []
    for window, _ in burn_windows(slo):
        rule = _rule_for(rules, c.ALERT_BURN_RATE, service=name, sloth_slo=slo.name, burnrate=window.label)
        burns.append(_expected(rule, {**slo.labels(), c.LABEL_SLOTH_WINDOW: window.long}, 1))
    case.expect(3 * step, c.ALERT_BURN_RATE, escalated(cfg, c.ALERT_BURN_RATE, burns, step, 3 * step))
    rule = _rule_for(rules, c.ALERT_BUDGET_EXHAUSTION, service=name, sloth_slo=slo.name)
    # The budget left keeps the window label of the period ratio it is computed from (as Sloth's does).
    projected = _expected(rule, {**slo.labels(), c.LABEL_SLOTH_WINDOW: slo.period_window}, 0)
    first = step  # the first evaluation with two samples, so a rate
    if hold >= step:
        case.expect(first + hold - step, c.ALERT_BUDGET_EXHAUSTION, [])
    at = first + hold
    case.expect(at, c.ALERT_BUDGET_EXHAUSTION, escalated(cfg, c.ALERT_BUDGET_EXHAUSTION, [projected], at, at))
    return case


def _new_service_case(
    cfg: Config, rules: dict[str, Any], name: str, everywhere: list[dict[str, str]], slo: SLO, step: float
) -> Case:
    """A service that just appeared and fails from its first run pages once (the fastest pair), no ticket storm."""
    case = Case(f"{name}: a new service failing from its first run fires only the fastest burn-rate pair")
    for series in everywhere:
        case.add_series(c.PROBE_RUNS, series, values(("0+1", 12)))
        case.add_series(c.PROBE_FIRST_ATTEMPT_FAILURES, {**series, c.LABEL_REASON: "connect"}, values(("0+1", 12)))
        case.add_series(c.PROBE_WITHIN_SLA, series, values(("0", 12)))
    pairs = burn_windows(slo)
    fired = []
    if pairs:
        window = pairs[0][0]
        rule = _rule_for(rules, c.ALERT_BURN_RATE, service=name, sloth_slo=slo.name, burnrate=window.label)
        fired.append(_expected(rule, {**slo.labels(), c.LABEL_SLOTH_WINDOW: window.long}, 1))
    case.expect(3 * step, c.ALERT_BURN_RATE, escalated(cfg, c.ALERT_BURN_RATE, fired, step, 3 * step))
    case.expect(3 * step, c.ALERT_COMPLIANCE, [])
    return case


def _probe_down_case(
    cfg: Config, rules: dict[str, Any], name: str, service: Service, probe: Probe, series: dict[str, str], step: float
) -> Case:
    runs = cfg.alerting.probe_down_runs
    hold = (runs - 1) * cfg.interval_of(probe)
    severity_priority = priority_of(cfg, service.tier, c.SEVERITY_PAGE)
    levels = levels_of(cfg, severity_priority)
    case = Case(
        f"{name}: probe {probe.name} down fires after {runs} failed runs"
        + (" and escalates on time" if len(levels) > 1 else "")
    )
    failing_from = 2 * step
    fired_at = failing_from + hold
    last = levels[-1].after if len(levels) > 1 else 0
    samples = round((fired_at + last) / step) + 3
    # With a quorum, that many locations fail at once; the alert is per probe, naming them.
    where = series[c.LABEL_LOCATION]
    # A share of the reporting locations: two of two fail (each reports fresh runs).
    share = service.quorum_share
    failing = 2 if share is not None else int(service.quorum)
    locations = [f"{where}-{n}" for n in range(1, failing + 1)] if service.location_aware else [where]
    for location in locations:
        case.add_series(c.PROBE_SUCCESS, {**series, c.LABEL_LOCATION: location}, values(("1", 2), ("0", samples)))
        if share is not None:
            runs_at = {**series, c.LABEL_LOCATION: location}
            case.add_series(c.PROBE_LAST_RUN, runs_at, values((f"0+{number(step)}", samples + 2)))
    page = c.SEVERITY_PAGE
    try:
        rule = _rule_for(rules, c.ALERT_PROBE_DOWN, service=name, probe=probe.name, severity=page)
    except LookupError:
        rule = _rule_for(rules, c.ALERT_PROBE_DOWN, service=name, severity=page)
    if service.location_aware:
        named = {k: name_locations(v, locations) for k, v in rule["annotations"].items()}
        per_probe = {k: series[k] for k in (c.LABEL_SERVICE, c.LABEL_PROBE)}
        base = _expected({**rule, "annotations": named}, per_probe, 1 if share is not None else failing)
    else:
        # one series per probe and location, whichever replica reported it: no instance or job
        base = _expected(rule, {k: series[k] for k in c.PROBE_LABELS}, 0)
    if hold >= step:
        case.expect(fired_at - step, c.ALERT_PROBE_DOWN, [])
    case.expect(fired_at, c.ALERT_PROBE_DOWN, [base])
    alert = {c.LABEL_ALERTNAME: c.ALERT_PROBE_DOWN, **base[0]}
    for level_no, level in enumerate(levels[1:], start=2):
        fired = [base] + [meta_alert(alert, n, levels[n - 1]) for n in range(2, level_no)]
        case.expect(fired_at + level.after - step, c.ALERT_PROBE_DOWN, fired)
        case.expect(fired_at + level.after, c.ALERT_PROBE_DOWN, [*fired, meta_alert(alert, level_no, level)])
    return case


def _compliance_case(
    cfg: Config, rules: dict[str, Any], name: str, series: dict[str, str], slo: SLO, step: float
) -> Case:
    window = format_duration(cfg.alerting.compliance_window)
    case = Case(f"{name}: half the runs within SLA fires the compliance alert (target {number(slo.objective)}%)")
    case.add_series(c.PROBE_RUNS, series, values(("0", 1), (f"{2 * HISTORY_RUNS}+2", 19)))  # with history
    case.add_series(c.PROBE_WITHIN_SLA, series, values(("0", 1), (f"{HISTORY_RUNS}+1", 19)))
    rule = _rule_for(rules, c.ALERT_COMPLIANCE, service=name)
    alert = _expected(rule, {**slo.labels(), c.LABEL_SLOTH_WINDOW: window}, 0.5)
    case.expect(3 * step, c.ALERT_COMPLIANCE, escalated(cfg, c.ALERT_COMPLIANCE, [alert], step, 3 * step))
    return case


def _tls_case(cfg: Config, rules: dict[str, Any], name: str, series: dict[str, str]) -> Case:
    alerting_cfg = cfg.alerting
    case = Case(f"{name}: a certificate close to expiry opens a ticket, and pages when closer")
    ticket_days: float = math.floor((alerting_cfg.tls_expiry_days + alerting_cfg.tls_expiry_page_days) / 2)
    if not alerting_cfg.tls_expiry_page_days <= ticket_days < alerting_cfg.tls_expiry_days:
        ticket_days = alerting_cfg.tls_expiry_page_days  # a narrow band: its lower edge still tickets
    fine = {**series, c.LABEL_PROBE: "fine"}
    soon = {**series, c.LABEL_PROBE: "soon"}
    case.add_series(c.TLS_CERT_EXPIRY, fine, values((str(int(alerting_cfg.tls_expiry_days + 30) * 86400), 2)))
    case.add_series(c.TLS_CERT_EXPIRY, soon, values((number(ticket_days * 86400), 2)))
    ticket = _rule_for(rules, c.ALERT_TLS_EXPIRING, service=name, severity=c.SEVERITY_TICKET)
    expected = [_expected(ticket, soon, ticket_days)]
    if alerting_cfg.tls_expiry_page_days:
        page_days = alerting_cfg.tls_expiry_page_days / 2
        urgent = {**series, c.LABEL_PROBE: "urgent"}
        case.add_series(c.TLS_CERT_EXPIRY, urgent, values((number(page_days * 86400), 2)))
        page = _rule_for(rules, c.ALERT_TLS_EXPIRING, service=name, severity=c.SEVERITY_PAGE)
        expected.append(_expected(page, urgent, page_days))
    case.expect(0, c.ALERT_TLS_EXPIRING, escalated(cfg, c.ALERT_TLS_EXPIRING, expected, 0, 0))
    return case


# ---------------------------------------------------------------------------- feedback


def feedback_cases(cfg: Config, rules: dict[str, Any], step: float) -> list[Case]:
    """Half the tickets breaching first response (and half in quality categories) fire the feedback alerts."""
    cases = []
    for source in cfg.feedback:
        case = Case(f"feedback {source.name}: half the tickets late and half about quality fire both alerts")
        src = {c.LABEL_SOURCE: source.name, **INSTANCE}
        kind = {c.LABEL_CATEGORY: "technical", c.LABEL_URGENCY: "urgent"}
        ticket = {**src, c.LABEL_SERVICE: source.service or "", **kind}
        case.add_series(c.FEEDBACK_TICKETS, ticket, values(("0+2", 20)))
        breach = {**src, **kind, c.LABEL_STAGE: c.STAGE_FIRST_RESPONSE}
        case.add_series(c.FEEDBACK_SLA_BREACHES, breach, values(("0+1", 20)))
        case.add_series(c.FEEDBACK_QUALITY_TICKETS, {**src, c.LABEL_SERVICE: source.service or ""}, values(("0+1", 20)))
        concern = feedback_concern(cfg, source)
        deadline = _rule_for(rules, c.ALERT_FEEDBACK_DEADLINES, service=concern.service)
        recorded = {c.LABEL_SOURCE: source.name, c.LABEL_STAGE: c.STAGE_FIRST_RESPONSE}
        late = [_expected(deadline, recorded, 0.5)]
        case.expect(
            3 * step, c.ALERT_FEEDBACK_DEADLINES, escalated(cfg, c.ALERT_FEEDBACK_DEADLINES, late, step, 3 * step)
        )
        if source.quality_categories and cfg.alerting.feedback.quality_share_max < 50:
            quality = _rule_for(rules, c.ALERT_FEEDBACK_QUALITY, service=concern.service)
            share = [_expected(quality, {c.LABEL_SOURCE: source.name}, 0.5)]
            case.expect(
                3 * step, c.ALERT_FEEDBACK_QUALITY, escalated(cfg, c.ALERT_FEEDBACK_QUALITY, share, step, 3 * step)
            )
        cases.append(case)
        break  # rules are the same per source; one is enough
    return cases


def shard_cases(cfg: Config, rules: dict[str, Any], step: float) -> list[Case]:
    """A shard that stops raises "prober shard down" once ``no_data_for`` has passed; a re-shard
    from 3 to 2 (every old shard replaced at once) raises nothing."""
    try:
        rule = _rule_for(rules, c.ALERT_SHARD_DOWN)
    except LookupError:
        return []
    hold = cfg.alerting.no_data_for
    stopped = 2 * step
    fired_at = stopped + math.ceil(hold / step) * step
    samples = round(fired_at / step) + 3
    where = cfg.global_.location

    def info(shard: int, shards: int) -> dict[str, str]:
        instance = {"instance": f"slaprobe-{shard}:9799", "job": "slaprobe"}
        return {c.LABEL_LOCATION: where, c.LABEL_SHARD: str(shard), c.LABEL_SHARDS: str(shards), **instance}

    down = Case("a prober shard that stops raises its own ticket, after no_data_for")
    for shard in range(3):
        run = values(("1", 2), ("stale", 1)) if shard == 2 else values(("1", samples))
        down.add_series(c.SHARD_INFO, info(shard, 3), run)
    labels = {c.LABEL_LOCATION: where, c.LABEL_SHARD: "2", c.LABEL_SHARDS: "3"}
    down.expect(fired_at - step, c.ALERT_SHARD_DOWN, [])
    down.expect(fired_at, c.ALERT_SHARD_DOWN, [_expected(rule, labels, 1)])
    reshard = Case("a re-shard from 3 shards to 2 retires the old shards without an alert")
    for shard in range(3):
        reshard.add_series(c.SHARD_INFO, info(shard, 3), values(("1", 2), ("stale", 1)))
    for shard in range(2):
        reshard.add_series(c.SHARD_INFO, info(shard, 2), values(("_", 2), ("1", samples - 2)))
    reshard.expect(fired_at + step, c.ALERT_SHARD_DOWN, [])
    return [down, reshard]


def generate_rule_tests(
    cfg: Config, *, rule_file: str = RULES_FILE, rules: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The promtool test file for ``rules`` of ``cfg`` (default: all), loaded from ``rule_file`` (relative to it)."""
    rules = rules if rules is not None else generate_rules(cfg)
    step = test_step(cfg)
    cases = escalation_cases(cfg, rules, step) + service_cases(cfg, rules, step) + feedback_cases(cfg, rules, step)
    cases += shard_cases(cfg, rules, step)
    return {
        "rule_files": [rule_file],
        "evaluation_interval": format_duration(step),
        "group_eval_order": group_names(rules),
        "tests": [case.document(step) for case in cases],
    }
