"""Level-1 alerts of each service: burn rates, budget projection, compliance, probes, TLS, feedback."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.alerts.complaints import spike_alert, trend_alerts
from slaprobe.alerts.policy import Concern, alert_annotations, alert_labels, concern_of
from slaprobe.alerts.promql import any_of, number, quote, ratio, selector
from slaprobe.alerts.slos import SLO
from slaprobe.burnrate import BurnWindow, applicable_windows
from slaprobe.config import Config, FeedbackSource, Probe, Service
from slaprobe.promql import Matcher
from slaprobe.units import format_duration, parse_duration

Rule = dict[str, Any]


def _percent(value: float) -> str:
    return number(value)


def _alert(name: str, expr: str, labels: dict[str, str], notes: dict[str, str], for_: float = 0) -> Rule:
    rule: Rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = format_duration(for_)
    rule["labels"] = labels
    rule["annotations"] = notes
    return rule


def burn_windows(slo: SLO) -> list[tuple[BurnWindow, float]]:
    """The window pairs that apply to an SLO, with their burn-rate factor (``slaprobe.burnrate``)."""
    return applicable_windows(slo.period, slo.budget)


MIN_DATA_SHARE = 0.5  # slow pairs and compliance wait until the window holds half the runs it would
LOG_MIN_REQUESTS = 20  # log-based SLOs alert only on windows with at least this many requests


def minimum_events(cfg: Config, service: Service, slo: SLO, window: str) -> int:
    """How many events ``window`` must hold before an alert over it may fire (0: no guard).

    Probe SLOs: half the runs the service's interval-driven probes make in the window, so a
    service that just appeared (or a probe just added) does not fire every pair on its first
    failures. Log SLOs: ``LOG_MIN_REQUESTS`` (a low-traffic guard: 1 failure of 2 requests is
    not a 50% outage).
    """
    if slo.name in (c.SLO_LOG_AVAILABILITY, c.SLO_LOG_LATENCY):
        return LOG_MIN_REQUESTS
    steady = [p for p in service.probes if not is_scheduled(p)]
    expected = sum(parse_duration(window) / cfg.interval_of(p) for p in steady)
    return math.ceil(expected * MIN_DATA_SHARE)


def traffic_guard(minimum: int, slo: SLO, window: str) -> str:
    """``and on () (events in window >= minimum)``, or nothing without a minimum."""
    if minimum < 1:
        return ""
    return f"\nand on ()\n(\n  {slo.sli.total.increase(window, (slo.scope,))} >= {minimum}\n)"


PROBE_SLOS = (c.SLO_AVAILABILITY, c.SLO_LATENCY)  # measured from each location (logs are not)


def location_guard(service: Service, slo: SLO, window: str, threshold: str) -> str:
    """For a service with a quorum: ``and on ()`` at least the quorum of locations burn over ``window``
    on their own, so one location's bad network path is no page (its probe-down ticket says so)."""
    if not service.location_aware:
        return ""
    burning = f"(\n    {_indent(slo.location_error_ratio_over(window), 4)}\n  ) > {threshold}"
    if service.quorum_share is None:
        test = f"count(\n  {burning}\n) >= {number(int(service.quorum))}"
    else:
        measured = f"count(\n  {_indent(slo.location_error_ratio_over(window), 2)}\n)"
        test = f"count(\n  {burning}\n)\n/\n{measured}\n>= {number(service.quorum_share)}"
    return f"\nand on ()\n(\n  {_indent(test, 2)}\n)"


def _indent(text: str, spaces: int) -> str:
    return text.replace("\n", "\n" + " " * spaces)


def burn_rate_alerts(cfg: Config, concern: Concern, slo: SLO, service: Service | None = None) -> list[Rule]:
    """One alert per window pair: both windows' error ratios above factor x budget.

    The fastest pair of a probe SLO fires at once (a new service that is down pages); the
    slower ones, and every pair of a log SLO, only over windows with enough events
    (``minimum_events``).
    """
    rules = []
    for index, (window, factor) in enumerate(burn_windows(slo)):
        threshold = f"({number(factor)} * {number(slo.budget)})"
        expr = (
            f"(\n  {slo.selector(c.slo_sli_error(window.long))} > {threshold}\n)\n"
            f"and ignoring ({c.LABEL_SLOTH_WINDOW})\n"
            f"(\n  {slo.selector(c.slo_sli_error(window.short))} > {threshold}\n)"
        )
        if service is not None:
            minimum = minimum_events(cfg, service, slo, window.long)
            if index > 0 or slo.name in (c.SLO_LOG_AVAILABILITY, c.SLO_LOG_LATENCY):
                expr += traffic_guard(minimum, slo, window.long)
        if service is not None and window.severity == c.SEVERITY_PAGE and slo.name in PROBE_SLOS:
            expr += location_guard(service, slo, window.short, threshold)
        extra = {c.LABEL_SLOTH_SLO: slo.name, c.LABEL_BURNRATE: window.label}
        labels = alert_labels(cfg, concern, c.ALERT_BURN_RATE, window.severity, **extra)
        notes = alert_annotations(
            f"{slo.service}: {slo.name} error budget burning {number(factor)}x too fast ({window.label})",
            f"{{{{ $value | humanizePercentage }}}} of the {slo.events} of {slo.service} {slo.bad} over the last "
            f"{window.long} (and too many over {window.short}): {number(factor)} times the error budget of its "
            f"{_percent(slo.objective)}% {slo.name} objective over {slo.period_window}, which spends "
            f"{number(window.budget_share * 100)}% of the budget in {window.long}.",
            labels[c.LABEL_RUNBOOK_URL],
        )
        rules.append(_alert(c.ALERT_BURN_RATE, expr, labels, notes))
    return rules


def budget_exhaustion_alert(cfg: Config, concern: Concern, slo: SLO) -> Rule:
    """Days until the budget left is spent at the recent burn rate, below the days of the SLA window."""
    projection = cfg.alerting.budget_projection
    lookback = format_duration(projection.lookback)
    days = number(slo.period / 86400)
    # group_left keeps the left side's labels; "()" because a parenthesis follows.
    on = f"on ({c.LABEL_SLOTH_ID}, {c.LABEL_SLOTH_SLO}, {c.LABEL_SLOTH_SERVICE}) group_left ()"
    burn = f"{slo.selector(c.slo_sli_error(lookback))}\n  / {on}\n  {slo.selector(c.SLO_ERROR_BUDGET)}"
    expr = (
        f"(\n  clamp_min({slo.selector(c.SLO_PERIOD_BUDGET_REMAINING)}, 0) * {days}\n)\n"
        f"/ {on}\n(\n  {burn}\n)\n< {days}"
    )
    labels = alert_labels(cfg, concern, c.ALERT_BUDGET_EXHAUSTION, c.SEVERITY_TICKET, **{c.LABEL_SLOTH_SLO: slo.name})
    notes = alert_annotations(
        f"{slo.service}: {slo.name} error budget projected to run out within {slo.period_window}",
        f"At the burn rate of the last {lookback}, the {slo.name} error budget of {slo.service} "
        f"({_percent(slo.objective)}% over {slo.period_window}) is spent in {{{{ $value | humanize }}}} days.",
        labels[c.LABEL_RUNBOOK_URL],
    )
    return _alert(c.ALERT_BUDGET_EXHAUSTION, expr, labels, notes, projection.for_)


def compliance_alert(cfg: Config, concern: Concern, slo: SLO, service: Service | None = None) -> Rule:
    """The compliance rate (runs within SLA / runs) over ``alerting.compliance_window`` below target,
    once the window holds enough runs (``minimum_events``)."""
    window = format_duration(cfg.alerting.compliance_window)
    expr = f"(\n  1 - {slo.selector(c.slo_sli_error(window))}\n)\n< {number(ratio(slo.objective))}"
    if service is not None:
        expr += traffic_guard(minimum_events(cfg, service, slo, window), slo, window)
    labels = alert_labels(cfg, concern, c.ALERT_COMPLIANCE, c.SEVERITY_TICKET)
    notes = alert_annotations(
        f"{slo.service}: compliance rate below {_percent(slo.objective)}%",
        f"{{{{ $value | humanizePercentage }}}} of the probe runs of {slo.service} over the last {window} "
        f"were within SLA; the target is {_percent(slo.objective)}%.",
        labels[c.LABEL_RUNBOOK_URL],
    )
    return _alert(c.ALERT_COMPLIANCE, expr, labels, notes)


def is_scheduled(probe: Probe) -> bool:
    """Probes that run by a cron schedule or only during time intervals: quiet, and stale, on purpose."""
    return bool(getattr(probe, "schedule", None) or getattr(probe, "during", None))


def _probe_groups(
    cfg: Config, name: str, service: Service
) -> list[tuple[float, list[Probe], dict[str, str], dict[str, str], dict[str, str]]]:
    """The service's interval-driven probes in groups of one interval, with their matchers.

    Each item is (interval, probes, equality matchers, regex matchers, static labels). One
    group holds all probes when they share an interval; else there is one group per probe.
    Rules of one name need distinct static labels (promtool rejects duplicates), so split
    rules carry the ``probe`` label, which the series has anyway: alert labels are the same.
    """
    probes = [p for p in service.probes if not is_scheduled(p)]
    if not probes:
        return []
    intervals = {cfg.interval_of(p) for p in probes}
    equal = {c.LABEL_SERVICE: name}
    if len(intervals) == 1:
        regex = {c.LABEL_PROBE: any_of(p.name for p in probes)} if len(probes) < len(service.probes) else {}
        return [(intervals.pop(), probes, equal, regex, {})]
    return [(cfg.interval_of(p), [p], {**equal, c.LABEL_PROBE: p.name}, {}, {c.LABEL_PROBE: p.name}) for p in probes]


def probe_alerts(cfg: Config, concern: Concern, name: str, service: Service) -> list[Rule]:
    """Probe down for N consecutive runs, probe without fresh results, exporter absent, TLS expiry."""
    alerting = cfg.alerting
    runs = alerting.probe_down_runs
    rules: list[Rule] = []
    groups = _probe_groups(cfg, name, service)
    for interval, _, equal, regex, static in groups:
        if service.location_aware:
            rules.extend(quorum_alerts(cfg, concern, name, service, interval, (equal, regex, static)))
            continue
        labels = alert_labels(cfg, concern, c.ALERT_PROBE_DOWN, c.SEVERITY_PAGE, **static)
        notes = alert_annotations(
            f"{name}: probe {{{{ $labels.probe }}}} is down",
            f"Probe {{{{ $labels.probe }}}} of {name} at {{{{ $labels.location }}}} failed its last {runs} runs "
            f"(one every {format_duration(interval)}); last run successful: {{{{ $value }}}}.",
            labels[c.LABEL_RUNBOOK_URL],
        )
        expr = f"{sli.per_location(selector(c.PROBE_SUCCESS, equal, **regex))} == 0"
        rules.append(_alert(c.ALERT_PROBE_DOWN, expr, labels, notes, (runs - 1) * interval))
    for interval, _, equal, regex, static in groups:
        stale_after = max(alerting.no_data_for, 3 * interval)
        labels = alert_labels(cfg, concern, c.ALERT_PROBE_NO_DATA, c.SEVERITY_TICKET, **static)
        description = (
            f"The last run of probe {{{{ $labels.probe }}}} of {name} at {{{{ $labels.location }}}} finished "
            f"{{{{ $value | humanizeDuration }}}} ago; it runs every {format_duration(interval)}."
        )
        if service.location_aware:
            description += (
                f" The prober there is down: {{{{ $labels.location }}}} counts as no data, not as a failure, "
                f"in the quorum of {quorum_text(service)}."
            )
        notes = alert_annotations(
            f"{name}: probe {{{{ $labels.probe }}}} reports no fresh results", description, labels[c.LABEL_RUNBOOK_URL]
        )
        scope: tuple[Matcher, ...] = (equal, *(f"{k}=~{quote(v)}" for k, v in regex.items()))
        expr = sli.prober_stale(scope, stale_after, vanished=service.location_aware)
        rules.append(_alert(c.ALERT_PROBE_NO_DATA, expr, labels, notes))
    labels = alert_labels(cfg, concern, c.ALERT_EXPORTER_ABSENT, c.SEVERITY_PAGE)
    notes = alert_annotations(
        f"{name}: no probe results reach Prometheus",
        f"Prometheus has had no {c.PROBE_RUNS} series of {name} for {format_duration(alerting.no_data_for)} "
        f"(absent: {{{{ $value }}}}): is slaprobe running, scraped, and is {name} in its config?",
        labels[c.LABEL_RUNBOOK_URL],
    )
    expr = f"absent({selector(c.PROBE_RUNS, {c.LABEL_SERVICE: name})})"
    rules.append(_alert(c.ALERT_EXPORTER_ABSENT, expr, labels, notes, alerting.no_data_for))
    rules.extend(tls_alerts(cfg, concern, name))
    return rules


_LOCATION_NAMES = re.compile(r"\{\{ range \$i, \$s := printf .*?\{\{ \$s\.Labels\.\w+ \}\}\{\{ end \}\}")


def quorum_alerts(
    cfg: Config,
    concern: Concern,
    name: str,
    service: Service,
    interval: float,
    matchers: tuple[dict[str, str], dict[str, str], dict[str, str]],
) -> list[Rule]:
    """Probe down in at least ``quorum`` locations at once for N consecutive runs: a page; in
    fewer (but one at least): a ticket. One alert per probe, its description naming the
    failing locations. A location whose prober is stale is left out (``SLAProbeNoData``)."""
    runs = cfg.alerting.probe_down_runs
    equal, regex, static = matchers
    stale_after = max(cfg.alerting.no_data_for, 3 * interval)
    scope: tuple[Matcher, ...] = (equal, *(f"{k}=~{quote(v)}" for k, v in regex.items()))
    count = sli.failing_location_count(scope, stale_after)
    # The failing locations of this alert's probe, read at evaluation time, sorted and joined.
    service_only = {k: v for k, v in equal.items() if k != c.LABEL_PROBE}
    one_probe: tuple[Matcher, ...] = (service_only, f'{c.LABEL_PROBE}="%[1]s"')
    failing = sli.failing_locations(one_probe, stale_after)
    names = (
        f"{{{{ range $i, $s := printf `{failing}` $labels.probe | query | sortByLabel `{c.LABEL_LOCATION}` }}}}"
        f"{{{{ if $i }}}}, {{{{ end }}}}{{{{ $s.Labels.{c.LABEL_LOCATION} }}}}{{{{ end }}}}"
    )
    share = service.quorum_share
    if share is None:
        measure, at, quorum = count, "{{ $value }}", number(int(service.quorum))
        said = quorum
    else:
        measure = sli.failing_location_share(scope, stale_after)
        at, quorum = "{{ $value | humanizePercentage }}", number(share)
        said = quorum_text(service)
    rules = []
    for severity, test, reach in (
        (c.SEVERITY_PAGE, f">= {quorum}", f"at least the quorum of {said}"),
        (c.SEVERITY_TICKET, f"< {quorum}", f"fewer than the quorum of {said} that pages"),
    ):
        labels = alert_labels(cfg, concern, c.ALERT_PROBE_DOWN, severity, **static)
        notes = alert_annotations(
            f"{name}: probe {{{{ $labels.probe }}}} is down at {at} of its locations",
            f"Probe {{{{ $labels.probe }}}} of {name} failed its last {runs} runs (one every "
            f"{format_duration(interval)}) at {at} of its locations at once, {reach}: {names}.",
            labels[c.LABEL_RUNBOOK_URL],
        )
        rules.append(_alert(c.ALERT_PROBE_DOWN, f"{measure}\n{test}", labels, notes, (runs - 1) * interval))
    return rules


def quorum_text(service: Service) -> str:
    """The quorum as alert texts say it: ``2 locations``, ``50% of the reporting locations``."""
    if isinstance(service.quorum, str):
        return f"{service.quorum} of the reporting locations"
    return f"{service.quorum} locations"


def name_locations(template: str, locations: Iterable[str]) -> str:
    """An annotation of ``quorum_alerts`` as Prometheus expands it when ``locations`` fail (for rule tests)."""
    return _LOCATION_NAMES.sub(lambda _: ", ".join(sorted(locations)), template)


def tls_alerts(cfg: Config, concern: Concern, name: str) -> list[Rule]:
    """A certificate of the chain expiring: a ticket within ``tls_expiry_days``, a page within ``tls_expiry_page_days``.

    Days are counted to the earliest expiry of the verified chain (an intermediate may expire
    before the leaf); where no chain was verified (insecure mode) that series is absent and
    the leaf's expiry counts.
    """
    alerting = cfg.alerting
    service = {c.LABEL_SERVICE: name}
    expiry = f"({selector(c.TLS_CHAIN_EARLIEST_EXPIRY, service)} or {selector(c.TLS_CERT_EXPIRY, service)})"
    days_left = f"(\n  {expiry} - time()\n) / 86400"
    ticket_days, page_days = number(alerting.tls_expiry_days), number(alerting.tls_expiry_page_days)
    rules = []
    for severity, expr in (
        (
            c.SEVERITY_TICKET,
            f"{days_left}\n< {ticket_days}" + (f" >= {page_days}" if alerting.tls_expiry_page_days else ""),
        ),
        (c.SEVERITY_PAGE, f"{days_left}\n< {page_days}"),
    ):
        if severity == c.SEVERITY_PAGE and not alerting.tls_expiry_page_days:
            continue
        labels = alert_labels(cfg, concern, c.ALERT_TLS_EXPIRING, severity)
        notes = alert_annotations(
            f"{name}: TLS certificate seen by {{{{ $labels.probe }}}} expires in {{{{ $value | humanize }}}} days",
            f"A certificate of the chain seen by probe {{{{ $labels.probe }}}} of {name} at "
            f"{{{{ $labels.location }}}} (the leaf or an intermediate, whichever expires first) "
            f"expires in {{{{ $value | humanize }}}} days (a ticket below {ticket_days} days"
            + (f", a page below {page_days}" if alerting.tls_expiry_page_days else "")
            + ").",
            labels[c.LABEL_RUNBOOK_URL],
        )
        rules.append(_alert(c.ALERT_TLS_EXPIRING, expr, labels, notes))
    return rules


def service_alerts(cfg: Config, name: str, service: Service, slos: list[SLO]) -> list[Rule]:
    """Every level-1 alert of one service."""
    concern = concern_of(name, service)
    rules: list[Rule] = []
    # Compliance (failed or slow) would repeat the availability and latency burn alerts; it has its own.
    budgeted = [slo for slo in slos if slo.name != c.SLO_COMPLIANCE]
    for slo in budgeted:
        rules.extend(burn_rate_alerts(cfg, concern, slo, service))
    for slo in budgeted:
        rules.append(budget_exhaustion_alert(cfg, concern, slo))
    for slo in slos:
        if slo.name == c.SLO_COMPLIANCE:
            rules.append(compliance_alert(cfg, concern, slo, service))
    if service.probes:
        rules.extend(probe_alerts(cfg, concern, name, service))
    if cfg.global_.maintenance or service.maintenance:
        for rule in rules:
            rule["expr"] = outside_maintenance(rule["expr"], name)
    return rules


def outside_maintenance(expr: str, service: str) -> str:
    """``expr`` withheld while a maintenance window of ``service`` is open (the exporter's gauge)."""
    inner = "\n".join(f"  {line}" for line in expr.splitlines())
    active = selector(c.MAINTENANCE_ACTIVE, {c.LABEL_SERVICE: service})
    return f"(\n{inner}\n)\nunless on ({c.LABEL_SERVICE})\n  {active} == 1"


TIER_ORDER = ("critical", "high", "medium", "low")


def shard_down_alert(cfg: Config) -> Rule | None:
    """A replica of a sharded prober (``--shard I/N``, N > 1) that stopped reporting: a ticket.

    Each replica exports ``slaprobe_shard_info{location, shard, shards}``. A shard seen within
    ``PROBER_LOOKBACK`` and not now is down while its location still runs shards of the same N;
    so a re-shard (N changed) retires the old shards without alerting. A location with no shard
    left at all names every shard it had. Not a service outage: the probes it ran are unmeasured,
    which its no-data alerts would repeat (Alertmanager mutes those in its location). The
    priority is the ticket priority of the most critical service with probes.
    """
    tiers = {service.tier for service in cfg.services.values() if service.probes}
    if not tiers:
        return None
    tier = next(t for t in TIER_ORDER if t in tiers)
    info = selector(c.SHARD_INFO, f'{c.LABEL_SHARDS}!="1"')
    shard = ", ".join((c.LABEL_LOCATION, c.LABEL_SHARD, c.LABEL_SHARDS))
    seen = f"max by ({shard}) (last_over_time({info}[{sli.PROBER_LOOKBACK}]))"
    expr = (
        f"(\n  {seen}\n  unless on ({shard}) {info}\n)\n"
        f"and on ({c.LABEL_LOCATION}, {c.LABEL_SHARDS}) {info}\n"
        f"or\n(\n  {seen}\n  unless on ({c.LABEL_LOCATION}) {info}\n)"
    )
    concern = Concern(service="slaprobe", tier=tier)
    labels = alert_labels(cfg, concern, c.ALERT_SHARD_DOWN, c.SEVERITY_TICKET)
    notes = alert_annotations(
        "slaprobe: prober shard {{ $labels.shard }} of {{ $labels.shards }} is down at {{ $labels.location }}",
        "Shard {{ $labels.shard }} of {{ $labels.shards }} (--shard {{ $labels.shard }}/{{ $labels.shards }}) at "
        "{{ $labels.location }} is not scraped: the probes it runs there have no fresh results. The services "
        "are not down for it; their other shards and locations still measure them.",
        labels[c.LABEL_RUNBOOK_URL],
    )
    return _alert(c.ALERT_SHARD_DOWN, expr, labels, notes, cfg.alerting.no_data_for)


def feedback_concern(cfg: Config, source: FeedbackSource) -> Concern:
    """A feedback source's alerts concern its service (tier from the config), else the source itself."""
    if source.service and source.service in cfg.services:
        return concern_of(source.service, cfg.services[source.service])
    return Concern(service=source.service or source.name, tier="medium")


def feedback_alerts(cfg: Config) -> list[Rule]:
    """Per feedback source: deadlines missed too often, and too many product-quality complaints."""
    limits = cfg.alerting.feedback
    window = format_duration(limits.window)
    rules: list[Rule] = []
    for source in cfg.feedback:
        concern = feedback_concern(cfg, source)
        src = {c.LABEL_SOURCE: source.name}
        allowed = number(ratio(100 - limits.deadline_target))
        labels = alert_labels(cfg, concern, c.ALERT_FEEDBACK_DEADLINES, c.SEVERITY_TICKET)
        notes = alert_annotations(
            f"{source.name}: {{{{ $labels.stage }}}} deadline missed for {{{{ $value | humanizePercentage }}}} "
            "of tickets",
            f"Over the last {window}, {{{{ $value | humanizePercentage }}}} of the tickets of {source.name} "
            f"missed their {{{{ $labels.stage }}}} deadline; at most {number(100 - limits.deadline_target)}% may.",
            labels[c.LABEL_RUNBOOK_URL],
        )
        expr = f"{selector(c.FEEDBACK_DEADLINE_BREACH_RATIO, src)} > {allowed}"
        rules.append(_alert(c.ALERT_FEEDBACK_DEADLINES, expr, labels, notes))
        if source.quality_categories:
            labels = alert_labels(cfg, concern, c.ALERT_FEEDBACK_QUALITY, c.SEVERITY_TICKET)
            categories = ", ".join(source.quality_categories)
            notes = alert_annotations(
                f"{source.name}: product-quality complaints are {{{{ $value | humanizePercentage }}}} of tickets",
                f"Over the last {window}, {{{{ $value | humanizePercentage }}}} of the tickets of {source.name} "
                f"were in a quality category ({categories}); the limit is {number(limits.quality_share_max)}%.",
                labels[c.LABEL_RUNBOOK_URL],
            )
            expr = f"{selector(c.FEEDBACK_QUALITY_SHARE_RATIO, src)} > {number(ratio(limits.quality_share_max))}"
            rules.append(_alert(c.ALERT_FEEDBACK_QUALITY, expr, labels, notes))
        if limits.spike is not None:
            rules.append(spike_alert(cfg, source, limits.spike, concern))
        if limits.trend is not None:
            rules.extend(trend_alerts(cfg, source, limits.trend, concern))
    return rules
