"""The ticket tracker: deadlines with a fake clock, breaches while open, odd events, restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.config import FeedbackSource
from slaprobe.probes.feedback import (
    PENDING_TTL,
    TICKET_BUCKETS,
    TicketTracker,
    effective_deadlines,
    parse_ticket_time,
)
from slaprobe.probes.tally import Histogram, LabelCap

HOUR = 3600.0
T0 = 1_700_000_000.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def source(**overrides: Any) -> FeedbackSource:
    data: dict[str, Any] = {"name": "tickets", "path": "/tmp/tickets.jsonl", "quality_categories": ["technical"]}
    data.update(overrides)
    return FeedbackSource.model_validate(data)


def event(ticket: str, kind: str, hours: float, **fields: str) -> dict[str, object]:
    return {"id": ticket, "event": kind, "time": T0 + hours * HOUR, **fields}


def test_the_default_deadlines_are_the_design_tables() -> None:
    src = source()
    assert effective_deadlines(src, "technical", "urgent").first_response == 24 * HOUR
    assert effective_deadlines(src, "technical", "urgent").resolution == 48 * HOUR
    assert effective_deadlines(src, "operations", "general").first_response == 12 * HOUR
    assert effective_deadlines(src, "service", "general").resolution == 24 * HOUR


def test_the_earlier_of_the_category_and_the_urgency_deadline_applies() -> None:
    src = source(urgency={"urgent": {"first_response": "4h"}, "general": {"first_response": "72h"}})
    assert effective_deadlines(src, "technical", "urgent").first_response == 4 * HOUR
    assert effective_deadlines(src, "technical", "general").first_response == 24 * HOUR
    assert effective_deadlines(src, "billing", "general").first_response == 72 * HOUR
    assert effective_deadlines(src, "billing", "general").resolution is None
    assert effective_deadlines(src, "billing", "unheard-of").first_response is None


def test_a_ticket_answered_and_resolved_in_time_is_measured_without_a_breach() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="technical", urgency="urgent", service="shop", channel="phone"))
    tracker.consume(event("T-1", "first_response", 2))
    tracker.consume(event("T-1", "resolved", 30))
    assert tracker.tickets == {("shop", "technical", "urgent"): 1}
    assert tracker.by_channel == {"phone": 1}
    assert tracker.quality == {"shop": 1}
    assert tracker.breaches == {}
    assert tracker.open == {}
    first = tracker.first_response[("technical", "urgent")]
    assert first.count == 1 and first.total == 2 * HOUR
    assert first.counts[first.bounds.index(2 * HOUR)] == 1  # 2 h is a bound: it goes in le="7200"
    assert tracker.resolution[("technical", "urgent")].total == 30 * HOUR
    assert tracker.events == {c.EVENT_APPLIED: 3}


def test_a_late_first_response_counts_one_breach() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="operations"))
    tracker.consume(event("T-1", "first_response", 13))
    assert tracker.breaches == {("operations", "general", c.STAGE_FIRST_RESPONSE): 1}


def test_a_deadline_passing_while_the_ticket_is_open_is_a_breach_counted_once() -> None:
    clock = FakeClock()
    tracker = TicketTracker(source(), clock)
    tracker.consume(event("T-1", "opened", 0, category="technical", urgency="urgent"))
    clock.now = T0 + 23 * HOUR
    assert tracker.tick() == 0
    clock.now = T0 + 24 * HOUR + 1
    assert tracker.tick() == 1
    assert tracker.breaches == {("technical", "urgent", c.STAGE_FIRST_RESPONSE): 1}
    assert tracker.tick() == 0
    # The late answer and the resolution after 48 h: the response breach is not counted again.
    tracker.consume(event("T-1", "first_response", 25))
    clock.now = T0 + 49 * HOUR
    assert tracker.tick() == 1
    tracker.consume(event("T-1", "resolved", 50))
    assert tracker.breaches == {
        ("technical", "urgent", c.STAGE_FIRST_RESPONSE): 1,
        ("technical", "urgent", c.STAGE_RESOLUTION): 1,
    }
    assert tracker.tick(T0 + 100 * HOUR) == 0


def test_a_deadline_exactly_reached_is_not_yet_breached() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="operations"))
    assert tracker.tick(T0 + 12 * HOUR) == 0
    tracker.consume(event("T-1", "first_response", 12))
    assert tracker.breaches == {}


def test_an_answered_ticket_only_breaches_its_resolution_deadline() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="service"))
    tracker.consume(event("T-1", "first_response", 1))
    assert tracker.tick(T0 + 30 * HOUR) == 1
    assert tracker.breaches == {("service", "general", c.STAGE_RESOLUTION): 1}


def test_a_resolution_without_a_response_is_also_the_first_response() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="operations"))
    tracker.consume(event("T-1", "resolved", 20))
    assert tracker.first_response[("operations", "general")].total == 20 * HOUR
    assert tracker.breaches == {("operations", "general", c.STAGE_FIRST_RESPONSE): 1}


def test_open_tickets_and_the_age_of_the_oldest() -> None:
    clock = FakeClock(T0 + 10 * HOUR)
    tracker = TicketTracker(source(), clock)
    assert tracker.oldest_open_age() == 0.0
    tracker.consume(event("A", "opened", 0, category="technical"))
    tracker.consume(event("B", "opened", 5, category="technical"))
    tracker.consume(event("C", "opened", 6, category="service", urgency="urgent"))
    assert tracker.open_counts[("technical", "general")] == 2
    assert tracker.open_counts[("service", "urgent")] == 1
    assert tracker.oldest_open_age() == 10 * HOUR
    tracker.consume(event("A", "resolved", 9))
    assert tracker.oldest_open_age() == 5 * HOUR
    assert tracker.open_counts[("technical", "general")] == 1


def test_fields_the_event_leaves_out_take_the_configured_defaults() -> None:
    tracker = TicketTracker(source(service="shop", defaults={"category": "misc", "channel": "web"}), FakeClock())
    tracker.consume({"id": "T-1", "event": "opened"})
    assert tracker.tickets == {("shop", "misc", "general"): 1}
    assert tracker.by_channel == {"web": 1}
    assert tracker.open["T-1"].opened == T0  # no time: when it was read


def test_field_names_and_event_words_are_configurable() -> None:
    src = source(
        fields={"id": "ticket_no", "event": "action", "time": "at", "category": "type"},
        events={"opened": ["created", "new"], "first_response": ["replied"], "resolved": ["closed"]},
    )
    tracker = TicketTracker(src, FakeClock())
    tracker.consume({"ticket_no": "9", "action": "new", "at": "2023-11-14T22:13:20Z", "type": "technical"})
    tracker.consume({"ticket_no": "9", "action": "replied", "at": "2023-11-14T23:13:20+00:00"})
    assert tracker.first_response[("technical", "general")].total == HOUR


def test_duplicates_unknown_tickets_and_invalid_events_are_counted_not_fatal() -> None:
    clock = FakeClock()
    tracker = TicketTracker(source(), clock)
    tracker.consume(event("T-1", "opened", 0))
    tracker.consume(event("T-1", "opened", 1))
    tracker.consume(event("T-1", "first_response", 2))
    tracker.consume(event("T-1", "first_response", 3))
    tracker.consume(event("T-1", "resolved", 4))
    tracker.consume(event("T-1", "resolved", 5))
    tracker.consume(event("T-1", "opened", 6))
    tracker.consume({"event": "opened"})
    tracker.consume({"id": "x", "event": "escalated"})
    tracker.consume(event("ghost", "first_response", 1))
    assert tracker.tickets[("", "other", "general")] == 1
    assert tracker.first_response[("other", "general")].count == 1
    clock.now += PENDING_TTL + 1
    tracker.tick()
    assert tracker.events == {
        c.EVENT_APPLIED: 3,
        c.EVENT_DUPLICATE: 4,
        c.EVENT_INVALID: 2,
        c.EVENT_UNKNOWN_TICKET: 1,
    }


def test_events_before_their_ticket_was_opened_are_applied_when_it_is() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "first_response", 3))
    tracker.consume(event("T-1", "resolved", 4))
    tracker.consume(event("T-1", "opened", 0, category="technical"))
    assert tracker.open == {}
    assert tracker.first_response[("technical", "general")].total == 3 * HOUR
    assert tracker.resolution[("technical", "general")].total == 4 * HOUR
    assert tracker.events == {c.EVENT_APPLIED: 1, c.EVENT_OUT_OF_ORDER: 2}


def test_a_step_dated_before_the_opening_takes_zero_seconds() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 5))
    tracker.consume(event("T-1", "first_response", 4))
    histogram = tracker.first_response[("other", "general")]
    assert histogram.total == 0 and histogram.counts[0] == 1
    assert tracker.events[c.EVENT_OUT_OF_ORDER] == 1


def test_label_values_past_the_cap_become_other() -> None:
    tracker = TicketTracker(source(max_label_values=5), FakeClock())
    for i in range(4):
        tracker.consume(event(f"T-{i}", "opened", 0, channel=f"ch{i}"))
    # known: the default channel "unknown"; room for 4 more, then __other__
    assert set(tracker.by_channel) == {"ch0", "ch1", "ch2", "ch3"}
    tracker.consume(event("T-9", "opened", 0, channel="ch9"))
    tracker.consume(event("T-10", "opened", 0, channel="ch0"))
    assert tracker.by_channel[c.OVERFLOW_LABEL_VALUE] == 1 and tracker.by_channel["ch0"] == 2


def test_the_oldest_open_tickets_are_forgotten_past_the_limit() -> None:
    tracker = TicketTracker(source(max_open_tickets=2), FakeClock())
    for i in range(3):
        tracker.consume(event(f"T-{i}", "opened", i))
    assert list(tracker.open) == ["T-1", "T-2"] and tracker.evicted == 1
    assert sum(tracker.open_counts.values()) == 2


def test_open_tickets_survive_a_restart_with_their_breaches(tmp_path: Path) -> None:
    clock = FakeClock()
    state = tmp_path / "state" / "tickets.json"
    before = TicketTracker(source(), clock)
    before.consume(event("A", "opened", 0, category="technical", service="shop", channel="mail"))
    before.consume(event("B", "opened", 1, category="operations"))
    before.consume(event("C", "opened", 1, category="service"))
    before.consume(event("C", "resolved", 2))
    clock.now = T0 + 13 * HOUR + 1
    assert before.tick() == 1  # B's 12 h first response
    before.save(state)
    assert not list(state.parent.glob(".*.tmp"))

    after = TicketTracker(source(), clock)
    assert after.load(state)
    assert list(after.open) == ["A", "B"]
    assert after.open["A"].service == "shop" and after.open["A"].channel == "mail"
    assert after.tick() == 0  # B's breach is not counted twice
    clock.now = T0 + 24 * HOUR + 1
    assert after.tick() == 1  # A's 24 h first response, while it stays open across the restart
    assert after.breaches == {("technical", "general", c.STAGE_FIRST_RESPONSE): 1}
    after.consume(event("C", "resolved", 3))  # resolved before the restart: a duplicate
    after.consume(event("A", "first_response", 26))
    assert after.first_response[("technical", "general")].total == 26 * HOUR
    assert after.events == {c.EVENT_DUPLICATE: 1, c.EVENT_APPLIED: 1}


def test_a_missing_or_corrupt_state_file_starts_empty(tmp_path: Path) -> None:
    tracker = TicketTracker(source(), FakeClock())
    assert not tracker.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not tracker.load(bad)
    bad.write_text(json.dumps({"version": 99}))
    assert not tracker.load(bad)
    assert tracker.open == {}


def test_configured_deadlines_are_histogram_bounds() -> None:
    tracker = TicketTracker(source(sla={"billing": {"first_response": "90m"}}), FakeClock())
    assert 5400.0 in tracker.bounds
    assert set(TICKET_BUCKETS) <= set(tracker.bounds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (str(T0), T0),
        (T0 * 1000, T0),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20", T0),
        ("2023-11-15T06:13:20+08:00", T0),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_ticket_times_are_unix_seconds_milliseconds_or_iso_8601(value: object, expected: float | None) -> None:
    assert parse_ticket_time(value) == expected


def test_a_zero_goes_in_the_first_bucket_and_a_bound_in_its_own() -> None:
    histogram = Histogram((1.0, 2.0))
    for value in (0.0, 1.0, 1.5, 2.0, 3.0):
        histogram.observe(value)
    assert histogram.counts == [2, 2, 1] and histogram.count == 5 and histogram.total == 7.5


def test_a_label_cap_keeps_known_values_and_a_limit_of_new_ones() -> None:
    cap = LabelCap(3, known={"GET"})
    assert [cap(v) for v in ("POST", "GET", "PUT", "DELETE", "POST")] == [
        "POST",
        "GET",
        "PUT",
        c.OVERFLOW_LABEL_VALUE,
        "POST",
    ]
