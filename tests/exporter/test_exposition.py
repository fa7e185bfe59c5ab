"""The exposition layer: families render their own lines, escape once and check their label count."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from slaprobe import conventions as c
from slaprobe.config import FeedbackSource, LogMetric
from slaprobe.exporter import incidents as incident_families
from slaprobe.exporter import logmetrics, store
from slaprobe.exporter.exposition import LabelCountError, MetricFamily, label_set
from slaprobe.exporter.incidents import Incidents
from slaprobe.exporter.logmetrics import HttpMetrics, LineStats, TicketMetrics, UserMetric, render_families
from slaprobe.probes.feedback import TicketTracker
from slaprobe.probes.logevent import Event
from slaprobe.probes.result import CertInfo, FailureReason, ProbeResult, Sample, StepResult
from slaprobe.probes.tally import Histogram

FAILURES = MetricFamily("x_failures_total", "counter", "Failures.", ("service", "reason"))


def test_a_family_writes_its_header_and_samples() -> None:
    base = label_set(("service",), ("shop",))
    assert FAILURES.header == "# HELP x_failures_total Failures.\n# TYPE x_failures_total counter\n"
    assert FAILURES.sample(3, "timeout", base=base) == 'x_failures_total{service="shop",reason="timeout"} 3\n'
    assert FAILURES.sample(0.5, "shop", "dns") == 'x_failures_total{service="shop",reason="dns"} 0.5\n'


def test_a_sample_with_too_few_or_too_many_label_values_raises() -> None:
    base = label_set(("service",), ("shop",))
    with pytest.raises(LabelCountError):
        FAILURES.sample(1, base=base)
    with pytest.raises(LabelCountError):
        FAILURES.sample(1, "timeout", "extra", base=base)
    with pytest.raises(LabelCountError):
        FAILURES.sample(1, "timeout", base=label_set(("probe",), ("home",)))  # right count, wrong names
    with pytest.raises(LabelCountError):
        label_set(("service", "probe"), ("shop",))


def test_label_values_are_escaped_by_the_family() -> None:
    line = FAILURES.sample(1, 'a"b\\c\nd', "x")
    assert line == 'x_failures_total{service="a\\"b\\\\c\\nd",reason="x"} 1\n'


def test_a_histogram_writes_cumulative_buckets_sum_and_count() -> None:
    family = MetricFamily("x_seconds", "histogram", "Durations.", ("service",))
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.5, 2.0):
        histogram.observe(value)
    assert family.histogram(histogram, "shop").splitlines() == [
        'x_seconds_bucket{service="shop",le="0.1"} 1',
        'x_seconds_bucket{service="shop",le="1"} 2',
        'x_seconds_bucket{service="shop",le="+Inf"} 3',
        'x_seconds_sum{service="shop"} 2.55',
        'x_seconds_count{service="shop"} 3',
    ]


def _every_family_with_series() -> tuple[str, list[MetricFamily]]:
    """Text of the stores with a series in every family they have, and those families."""
    series = store.ResultStore()
    meta = store.ProbeMeta(
        "shop",
        "home",
        "flow",
        "http://x/",
        "dc1",
        30,
        10,
        (0.1, 1.0),
        0.5,
        0.2,
        maintenance=True,
        phase_histograms=True,
    )
    ping = store.ProbeMeta("shop", "ping", "icmp", "127.0.0.1", "dc1", 30, 10, (0.1, 1.0), 0.5)
    series.sync([meta, ping])
    icmp = (Sample(c.BB_ICMP_LOSS_RATIO, 0.0), Sample(c.BB_ICMP_RTT, 0.001, (("stat", "jitter"),)))
    series.record(ping.key, ProbeResult(True, 0.01, samples=icmp), now=100)
    steps = (StepResult("login", False, 0.1, FailureReason.TIMEOUT),)
    result = ProbeResult(
        True,
        0.3,
        phases={"connect": 0.01},
        cert=CertInfo(leaf_expiry=2e9, earliest_expiry=2e9, chain_expiry=2e9),
        steps=steps,
    )
    series.record(meta.key, ProbeResult(False, 0.1, FailureReason.HTTP_STATUS), now=100)
    series.record(meta.key, result, now=130, first_attempt=FailureReason.CONNECT)
    series.get(meta.key).slot()  # type: ignore[union-attr]
    http = HttpMetrics("shop", (0.1, 1.0))
    http.add([Event({}, None, 200, 0.05)])
    lines = LineStats("access")
    source = FeedbackSource.model_validate({"name": "desk", "path": "/x", "service": "shop"})
    tracker = TicketTracker(source, lambda: 1e9)
    tracker.consume({"id": "1", "event": "opened", "time": 1e9, "category": "technical", "channel": "app"})
    user = UserMetric(
        LogMetric.model_validate({"name": "orders_total", "type": "counter", "labels": {"provider": "p"}}),
        "shop",
        (0.1,),
        "access",
    )
    user.observe(Event({"p": "visa"}))
    incidents = Incidents(clock=lambda: 1000.0)
    incidents.configure({"P1": 2})
    incidents.set_acknowledged({("shop", "A"): 900.0})
    incidents.poll_successful = True
    incidents.receive({"alerts": [{"labels": {"service": "shop", "alertname": "A", "priority": "P1"}}]})
    text = "".join(
        (
            series.render(),
            render_families(logmetrics.HTTP_FAMILIES, [http.render()]),
            render_families(logmetrics.LINE_FAMILIES, [lines.render()]),
            render_families(logmetrics.FEEDBACK_FAMILIES, [TicketMetrics(tracker).render(1e9 + 5)]),
            user.metric_family.header,
            user.render(),
            incidents.render(),
            store.service_info_text({"shop": ("gold", "team")}),
        )
    )
    families = [
        *store.FAMILIES,
        *logmetrics.HTTP_FAMILIES,
        *logmetrics.LINE_FAMILIES,
        *logmetrics.FEEDBACK_FAMILIES,
        user.metric_family,
        *(f for f in vars(incident_families).values() if isinstance(f, MetricFamily)),
        store.SERVICE_INFO,
    ]
    return text, families


def test_every_family_of_the_stores_gets_the_labels_it_declares() -> None:
    """A family the fixture gives no series is named in the failure: add a series for it above."""
    text, families = _every_family_with_series()
    declared = {f.name.removesuffix("_total") if f.type == "counter" else f.name: f for f in families}
    seen = set()
    for parsed in text_string_to_metric_families(text):
        family = declared[parsed.name]
        seen.add(parsed.name)
        assert parsed.type == family.type
        for sample in parsed.samples:
            names = tuple(name for name in sample.labels if name != "le")
            assert names == family.labels, sample
    assert seen == set(declared), set(declared) - seen


def test_a_label_value_or_help_text_utf8_cannot_encode_is_written_with_the_replacement_character() -> None:
    family = MetricFamily("x_total", "counter", "Help with \udcff in it.", ("priority",))
    line = family.sample(1, "P\ud800")
    assert line == 'x_total{priority="P\ufffd"} 1\n'
    assert "\ufffd" in family.header
    assert (family.header + line).encode()  # would raise UnicodeEncodeError on a lone surrogate
    assert family.sample(1, "snow \u2603 and \U0001f600") == 'x_total{priority="snow \u2603 and \U0001f600"} 1\n'
