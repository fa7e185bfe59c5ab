"""Events into series: HTTP metrics per service, user-defined mappings, ticket rendering."""

from __future__ import annotations

from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.config import ConfigError, FeedbackSource, LogMetric, parse_config
from slaprobe.exporter.exposition import format_labels
from slaprobe.exporter.logmetrics import (
    FEEDBACK_FAMILIES,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    MAX_SERIES_PER_METRIC,
    HttpMetrics,
    TicketMetrics,
    UserMetric,
    render_families,
)
from slaprobe.probes.feedback import MAX_SERIES, TicketTracker
from slaprobe.probes.logevent import Event

T0 = 1_700_000_000.0


def metric(**spec: Any) -> UserMetric:
    return UserMetric(LogMetric.model_validate(spec), "shop", (0.1, 0.3, 1.0), "shop-access")


def ev(**fields: str) -> Event:
    return Event(fields)


def desk(name: str, **labels: str) -> str:
    """A series name of the feedback source ``desk``."""
    return f"{name}{{{format_labels((('source', 'desk'), *labels.items()))}}}"


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_http_metrics_count_codes_and_put_durations_in_le_buckets() -> None:
    http = HttpMetrics("shop", (0.1, 0.3, 1.0))
    http.add([Event({}, None, 200, 0.0), Event({}, None, 200, 0.3), Event({}, None, 503, 2.0), Event({}, None, 0)])
    text = http.render()
    requests, duration = text[HTTP_REQUESTS], text[HTTP_REQUEST_DURATION]
    assert requests.splitlines() == [
        'slaprobe_http_requests_total{service="shop",code="0"} 1',
        'slaprobe_http_requests_total{service="shop",code="200"} 2',
        'slaprobe_http_requests_total{service="shop",code="503"} 1',
    ]
    assert duration.splitlines() == [
        'slaprobe_http_request_duration_seconds_bucket{service="shop",le="0.1"} 1',
        'slaprobe_http_request_duration_seconds_bucket{service="shop",le="0.3"} 2',
        'slaprobe_http_request_duration_seconds_bucket{service="shop",le="1"} 2',
        'slaprobe_http_request_duration_seconds_bucket{service="shop",le="+Inf"} 3',
        'slaprobe_http_request_duration_seconds_sum{service="shop"} 2.3',
        'slaprobe_http_request_duration_seconds_count{service="shop"} 3',
    ]


def test_a_counter_counts_matching_events_by_label() -> None:
    m = metric(
        name="api_errors_total",
        type="counter",
        match={"path": {"regex": "^/api/"}, "status": {"ge": 500}},
        labels={"method": "method", "code": "status"},
    )
    for path, status, method in [
        ("/api/a", "500", "GET"),
        ("/api/b", "503", "GET"),
        ("/", "500", "GET"),
        ("/api/c", "200", "POST"),
        ("/api/d", "502", "POST"),
    ]:
        m.observe(ev(path=path, status=status, method=method))
    m.observe(ev(path="/api/e", status="-", method="GET"))  # not a number: no match
    m.observe(ev(status="500", method="GET"))  # no path: no match
    assert m.render().splitlines() == [
        'api_errors_total{service="shop",method="GET",code="500"} 1',
        'api_errors_total{service="shop",method="GET",code="503"} 1',
        'api_errors_total{service="shop",method="POST",code="502"} 1',
    ]


def test_match_conditions_equals_not_equals_and_ranges() -> None:
    m = metric(
        name="picked_total",
        type="counter",
        match={"method": ["GET", "HEAD"], "user": {"not_equals": "-"}, "bytes": {"gt": 10, "le": 100}},
    )
    cases = [
        ("GET", "bob", "50", 1),
        ("HEAD", "bob", "100", 1),
        ("POST", "bob", "50", 0),
        ("GET", "-", "50", 0),
        ("GET", "bob", "10", 0),
        ("GET", "bob", "101", 0),
    ]
    for method, user, size, _ in cases:
        m.observe(ev(method=method, user=user, bytes=size))
    assert m.render() == 'picked_total{service="shop"} 2\n'


def test_values_are_converted_from_their_unit_to_seconds() -> None:
    m = metric(name="upstream_seconds", type="histogram", value={"field": "upstream_ms", "unit": "ms"})
    for text in ("100", "250", "0", "1500", "2s", "oops"):
        m.observe(ev(upstream_ms=text))
    assert m.render().splitlines() == [
        'upstream_seconds_bucket{service="shop",le="0.1"} 2',
        'upstream_seconds_bucket{service="shop",le="0.3"} 3',
        'upstream_seconds_bucket{service="shop",le="1"} 3',
        'upstream_seconds_bucket{service="shop",le="+Inf"} 5',
        'upstream_seconds_sum{service="shop"} 3.85',
        'upstream_seconds_count{service="shop"} 5',
    ]
    us = metric(name="t_seconds", type="gauge", value={"field": "t", "unit": "µs"})
    us.observe(ev(t="2500"))
    assert us.render() == 't_seconds{service="shop"} 0.0025\n'


def test_a_histogram_with_its_own_buckets() -> None:
    m = metric(name="body_bytes", type="histogram", value="bytes", buckets=[100, 1000])
    for size in ("0", "100", "5000"):
        m.observe(ev(bytes=size))
    assert m.render().splitlines()[:3] == [
        'body_bytes_bucket{service="shop",le="100"} 2',
        'body_bytes_bucket{service="shop",le="1000"} 2',
        'body_bytes_bucket{service="shop",le="+Inf"} 3',
    ]


def test_a_counter_with_a_value_adds_it_and_a_gauge_keeps_the_last() -> None:
    total = metric(name="bytes_sent_total", type="counter", value="bytes", labels=["vhost"])
    last = metric(name="queue_depth", type="gauge", value="depth")
    for size, depth in (("100", "3"), ("50", "7"), ("-5", "2")):
        total.observe(ev(bytes=size, vhost="a", depth=depth))
        last.observe(ev(bytes=size, vhost="a", depth=depth))
    assert total.render() == 'bytes_sent_total{service="shop",vhost="a"} 150\n'
    assert last.render() == 'queue_depth{service="shop"} 2\n'


def test_label_values_past_the_cap_are_counted_as_other() -> None:
    m = metric(name="hits_total", type="counter", labels=["path"], max_label_values=2)
    for path in ("/a", "/b", "/c", "/d", "/a"):
        m.observe(ev(path=path))
    assert m.render().splitlines() == [
        'hits_total{service="shop",path="/a"} 2',
        'hits_total{service="shop",path="/b"} 1',
        'hits_total{service="shop",path="__other__"} 2',
    ]


def test_known_label_values_are_exported_as_zero_before_the_first_match() -> None:
    m = metric(
        name="logins_total",
        type="counter",
        labels=["outcome", "method"],
        values={"outcome": ["ok", "denied"], "method": ["password"]},
    )
    assert m.render().splitlines() == [
        'logins_total{service="shop",outcome="denied",method="password"} 0',
        'logins_total{service="shop",outcome="ok",method="password"} 0',
    ]
    h = metric(name="login_seconds", type="histogram", value="t", labels=["outcome"], values={"outcome": ["ok"]})
    assert 'login_seconds_count{service="shop",outcome="ok"} 0' in h.render()
    plain = metric(name="anything_total", type="counter")
    assert plain.render() == 'anything_total{service="shop"} 0\n'


def test_a_missing_label_field_gives_an_empty_value_and_label_text_is_escaped() -> None:
    m = metric(name="agents_total", type="counter", labels=["agent"])
    m.observe(ev())
    m.observe(ev(agent='say "hi"\\'))
    assert m.render().splitlines() == [
        'agents_total{service="shop",agent=""} 1',
        'agents_total{service="shop",agent="say \\"hi\\"\\\\"} 1',
    ]


def samples(text: str) -> dict[str, float]:
    """Every sample of a text exposition, by name and labels."""
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines_of(text))}


def test_ticket_metrics_render_known_series_before_any_ticket() -> None:
    source = FeedbackSource.model_validate(
        {"name": "desk", "path": "/x", "service": "shop", "quality_categories": ["technical"]}
    )
    tracker = TicketTracker(source, lambda: T0)
    text = render_families(FEEDBACK_FAMILIES, [TicketMetrics(tracker).render(T0)])
    s = samples(text)
    assert s[desk(c.FEEDBACK_TICKETS, service="shop", category="technical", urgency="urgent")] == 0
    assert s[desk(c.FEEDBACK_SLA_BREACHES, category="operations", urgency="general", stage="resolution")] == 0
    assert s[desk(c.FEEDBACK_SLA_BREACHES, category="other", urgency="general", stage="first_response")] == 0
    no_deadline = desk(c.FEEDBACK_SLA_BREACHES, category="other", urgency="general", stage="resolution")
    assert no_deadline not in s
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="service", urgency="urgent")] == 0
    assert s[desk(c.FEEDBACK_QUALITY_TICKETS, service="shop")] == 0
    assert s[desk(c.FEEDBACK_OLDEST_OPEN_AGE)] == 0
    assert s[desk(c.FEEDBACK_EVENTS, result="duplicate")] == 0
    assert s[desk(c.FEEDBACK_FIRST_RESPONSE + "_bucket", category="technical", urgency="urgent", le="86400")] == 0
    for family in FEEDBACK_FAMILIES:
        assert f"# TYPE {family.name} {family.type}" in text


def test_ticket_metrics_follow_the_tracker() -> None:
    source = FeedbackSource.model_validate({"name": "desk", "path": "/x", "quality_categories": ["technical"]})
    tracker = TicketTracker(source, lambda: T0)
    view = TicketMetrics(tracker)
    view.render(T0)
    opened = {"id": "1", "event": "opened", "time": T0, "category": "technical", "service": "shop", "channel": "app"}
    tracker.consume(opened)
    tracker.consume({"id": "1", "event": "first_response", "time": T0 + 90000})
    s = samples(render_families(FEEDBACK_FAMILIES, [view.render(T0 + 100000)]))
    assert s[desk(c.FEEDBACK_TICKETS, service="shop", category="technical", urgency="general")] == 1
    assert s[desk(c.FEEDBACK_QUALITY_TICKETS, service="shop")] == 1
    assert s[desk(c.FEEDBACK_TICKETS_BY_CHANNEL, channel="app")] == 1
    assert s[desk(c.FEEDBACK_SLA_BREACHES, category="technical", urgency="general", stage="first_response")] == 1
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="technical", urgency="general")] == 1
    assert s[desk(c.FEEDBACK_OLDEST_OPEN_AGE)] == 100000
    assert s[desk(c.FEEDBACK_FIRST_RESPONSE + "_count", category="technical", urgency="general")] == 1
    assert s[desk(c.FEEDBACK_EVENTS, result=c.EVENT_APPLIED)] == 2


def test_feedback_desk_metrics_render_known_series_at_zero_before_any_rating() -> None:
    source = FeedbackSource.model_validate({"name": "desk", "path": "/x", "service": "shop"})
    text = render_families(FEEDBACK_FAMILIES, [TicketMetrics(TicketTracker(source, lambda: T0)).render(T0)])
    s = samples(text)
    key = {"service": "shop", "category": "technical", "channel": "unknown"}
    for name in (c.FEEDBACK_RATED, c.FEEDBACK_SATISFIED, c.FEEDBACK_REPEATS, c.FEEDBACK_REOPENED):
        assert s[desk(name, **key)] == 0
    assert s[desk(c.FEEDBACK_RATING + "_count", **key, scale="5")] == 0
    assert s[desk(c.FEEDBACK_RATING + "_bucket", **key, scale="10", le="8")] == 0
    assert s[desk(c.FEEDBACK_CLOSED, **key, outcome=c.CLOSED_AUTO)] == 0
    assert s[desk(c.FEEDBACK_LOOP_STAGE, **key, stage=c.LOOP_CLASSIFIED)] == 0
    assert s[desk(c.FEEDBACK_CLOSED_LOOP, **key)] == 0


def test_feedback_desk_metrics_follow_ratings_reopens_repeats_and_closings() -> None:
    source = FeedbackSource.model_validate({"name": "desk", "path": "/x"})
    tracker = TicketTracker(source, lambda: T0)
    view = TicketMetrics(tracker)
    view.render(T0)
    labels = {"category": "technical", "service": "shop", "channel": "app", "customer": "alice@example.com"}
    for ticket, at in (("1", T0), ("2", T0 + 60)):
        tracker.consume({"id": ticket, "event": "opened", "time": at, **labels})
        tracker.consume({"id": ticket, "event": "resolved", "time": at + 30})
    tracker.consume({"id": "1", "event": "rated", "rating": 10, "scale": 10})
    tracker.consume({"id": "2", "event": "rated", "rating": "down"})
    tracker.consume({"id": "1", "event": "reopened", "time": T0 + 100})
    tracker.consume({"id": "2", "event": "closed", "time": T0 + 100})
    text = render_families(FEEDBACK_FAMILIES, [view.render(T0 + 200)])
    s = samples(text)
    key = {"service": "shop", "category": "technical", "channel": "app"}
    assert s[desk(c.FEEDBACK_RATED, **key)] == 2
    assert s[desk(c.FEEDBACK_SATISFIED, **key)] == 1
    assert s[desk(c.FEEDBACK_RATING + "_bucket", **key, scale="10", le="8")] == 0
    assert s[desk(c.FEEDBACK_RATING + "_count", **key, scale="10")] == 1
    assert s[desk(c.FEEDBACK_RATING + "_bucket", **key, scale="2", le="0")] == 1
    assert s[desk(c.FEEDBACK_REPEATS, **key)] == 1
    assert s[desk(c.FEEDBACK_REOPENED, **key)] == 1
    assert s[desk(c.FEEDBACK_CLOSED, **key, outcome=c.CLOSED_CONFIRMED)] == 1
    assert s[desk(c.FEEDBACK_CLOSED_LOOP, **key)] == 1
    assert s[desk(c.FEEDBACK_CLOSE_TIME + "_sum", category="technical", urgency="general")] == 40  # ticket 2
    assert s[desk(c.FEEDBACK_LOOP_STAGE, **key, stage=c.LOOP_RESOLVED)] == 2
    assert "alice" not in text and "customer=" not in text


def test_feedback_desk_series_past_the_cap_go_to_one_overflow_series() -> None:
    source = FeedbackSource.model_validate({"name": "desk", "path": "/x", "max_label_values": 100_000})
    tracker = TicketTracker(source, lambda: T0)
    for i in range(MAX_SERIES + 5):
        tracker.consume({"id": str(i), "event": "opened", "service": f"s{i}", "category": "technical"})
    s = samples(render_families(FEEDBACK_FAMILIES, [TicketMetrics(tracker).render(T0)]))
    rated = [name for name in s if name.startswith(c.FEEDBACK_RATED + "{")]
    assert len(rated) == MAX_SERIES + 1  # and the overflow series
    other = c.OVERFLOW_LABEL_VALUE
    assert s[desk(c.FEEDBACK_LOOP_STAGE, service=other, category=other, channel=other, stage=c.LOOP_RECEIVED)] == 5


LOGS = "version: v1\nservices:\n  shop:\n    logs:\n      - {path: /var/log/a.log, format: jsonl, metrics: [%s]}\n"


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            "{name: x, type: counter}",
            "services.shop.logs[0].metrics[0]: a counter's name ends in _total, and only a counter's (line 5)",
        ),
        (
            "{name: slaprobe_x_total, type: counter}",
            "services.shop.logs[0].metrics[0]: names starting with slaprobe_ are reserved for slaprobe's own metrics (line 5)",
        ),
        (
            "{name: x, type: gauge}",
            "services.shop.logs[0].metrics[0]: a gauge needs value: the field it observes (line 5)",
        ),
        (
            "{name: x, type: histogram, value: v, buckets: [2, 1]}",
            "services.shop.logs[0].metrics[0]: buckets must be strictly increasing (line 5)",
        ),
        (
            "{name: x_total, type: counter, labels: [service]}",
            "services.shop.logs[0].metrics[0]: label 'service' is reserved (line 5)",
        ),
        (
            "{name: x_total, type: counter, values: {a: [1]}}",
            "services.shop.logs[0].metrics[0]: values: 'a' is not one of the labels (line 5)",
        ),
        (
            "{name: x_total, type: counter, match: {status: {}}}",
            "services.shop.logs[0].metrics[0].match.status: give at least one of equals, not_equals, regex, gt, ge, lt, le (line 5)",
        ),
        (
            "{name: x_total, type: counter, match: {path: {regex: '('}}}",
            "services.shop.logs[0].metrics[0].match.path.regex: not a valid regular expression: missing ), unterminated subpattern at position 0 (line 5)",
        ),
        (
            "{name: x_seconds, type: histogram, value: {field: t, unit: min}}",
            "services.shop.logs[0].metrics[0].value.unit: Input should be 's', 'ms', 'us', 'µs' or 'ns' (line 5)",
        ),
        (
            "{name: x_total, type: counter}, {name: x_total, type: counter}",
            "services.shop.logs[0]: metrics: duplicate name 'x_total' (line 5)",
        ),
    ],
)
def test_invalid_metric_mappings_are_refused_with_their_path(metric: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(LOGS % metric)
    assert [str(issue) for issue in caught.value.issues] == [message]


def test_sources_need_distinct_labels_and_metric_names_are_config_wide() -> None:
    text = (
        "version: v1\nservices:\n  a:\n    logs:\n"
        "      - {path: /x.log, format: jsonl, metrics: [{name: n_total, type: counter}]}\n"
        "  b:\n    logs:\n"
        "      - {path: /x.log, format: jsonl, metrics: [{name: n_total, type: counter}]}\n"
        "      - {name: desk, path: /y.log, format: jsonl}\n"
        "feedback:\n  - {name: desk, path: /t.jsonl}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(issue) for issue in caught.value.issues] == [
        "services.b.logs[0].metrics[0].name: metric 'n_total' is already defined at services.a.logs[0].metrics[0] (line 8)",
        "services.b.logs[0].path: source '/x.log' is also used at services.a.logs[0] (give each a distinct name) (line 8)",
        "feedback[0].name: source 'desk' is also used at services.b.logs[1] (line 11)",
    ]


def test_feedback_sources_have_the_design_defaults() -> None:
    source = parse_config("version: v1\nfeedback:\n  - {name: desk, path: /t.jsonl}\n").feedback[0]
    assert source.sla["technical"].first_response == 86400 and source.sla["operations"].resolution == 86400
    assert source.urgency["general"].first_response == 3 * 86400
    assert source.start == "beginning" and source.fields.id == "id" and source.defaults.urgency == "general"


def test_a_metric_keeps_at_most_max_series_however_its_capped_labels_combine() -> None:
    m = metric(name="calls_total", type="counter", labels=["a", "b", "c"], max_label_values=100)
    for i in range(5000):
        m.observe(ev(a=str(i % 97), b=str(i % 89), c=str(i % 83)))  # 5,000 distinct combinations
    assert len(m.values) == MAX_SERIES_PER_METRIC + 1  # the overflow series holds the rest
    overflow = m.values[(c.OVERFLOW_LABEL_VALUE,) * 3]
    assert overflow == 5000 - MAX_SERIES_PER_METRIC
    assert sum(m.values.values()) == 5000
