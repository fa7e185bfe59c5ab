"""The ticket tracker: deadlines with a fake clock, breaches while open, odd events, restarts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from slaprobe import conventions as c
from slaprobe.config import ConfigError, FeedbackSource, load_config, parse_config
from slaprobe.probes.classify import Classifier
from slaprobe.probes.feedback import (
    PENDING_TTL,
    TICKET_BUCKETS,
    TicketTracker,
    effective_deadlines,
    parse_ticket_time,
)
from slaprobe.probes.rating import NPS_DETRACTOR_AT_MOST, NPS_PROMOTER_ABOVE, Rating, read_rating
from slaprobe.probes.repeats import RepeatWindow, customer_key
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


# ---------------------------------------------------------------------------- the closed loop and satisfaction

DAY = 24 * HOUR


def rated(ticket: str, hours: float, rating: object, scale: object = None, **fields: object) -> dict[str, object]:
    data: dict[str, object] = {"id": ticket, "event": "rated", "time": T0 + hours * HOUR, "rating": rating, **fields}
    if scale is not None:
        data["scale"] = scale
    return data


def resolved_ticket(tracker: TicketTracker, ticket: str = "T-1", **fields: str) -> None:
    labels = {"category": "technical", "service": "shop", "channel": "app", **fields}
    tracker.consume(event(ticket, "opened", 0, **labels))
    tracker.consume(event(ticket, "first_response", 1))
    tracker.consume(event(ticket, "resolved", 2))


KEY = ("shop", "technical", "app")


def test_a_rating_of_a_resolved_ticket_counts_rated_and_satisfied_by_service_category_and_channel() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker, "A")
    resolved_ticket(tracker, "B")
    tracker.consume(rated("A", 3, 5))
    tracker.consume(rated("B", 3, "3", "5"))
    assert tracker.rated == {KEY: 2}
    assert tracker.satisfied == {KEY: 1}
    stars = tracker.ratings[(*KEY, 5)]
    assert stars.count == 2 and stars.total == 8
    assert tracker.events[c.EVENT_APPLIED] == 8


@pytest.mark.parametrize(
    ("rating", "scale", "expected"),
    [
        (4, 5, (4.0, 5, True)),
        (3, None, (3.0, 5, False)),  # no scale: the default, five stars
        ("up", None, (1.0, 2, True)),
        ("Down", 2, (0.0, 2, False)),
        (1, 2, (1.0, 2, True)),
        (9, 10, (9.0, 10, True)),
        (8, "10", (8.0, 10, False)),
        (0, 10, (0.0, 10, False)),
        (4.5, 5, (4.5, 5, True)),
    ],
)
def test_a_rating_is_satisfied_from_the_minimum_of_its_scale(rating: object, scale: object, expected: tuple) -> None:
    found = read_rating(rating, scale)
    assert found is not None and (found.value, found.scale, found.satisfied) == expected


@pytest.mark.parametrize(
    ("rating", "scale"),
    [(6, 5), (-1, 5), (11, 10), ("great", 5), (None, 5), (True, 5), (3, 7), (3, "stars"), ("up", 5), (float("nan"), 5)],
)
def test_a_rating_outside_its_scale_or_on_an_unknown_scale_is_not_a_rating(rating: object, scale: object) -> None:
    assert read_rating(rating, scale) is None


def test_a_configured_minimum_changes_what_counts_as_satisfied() -> None:
    assert read_rating(3, 5, satisfied={5: 3.0}) == Rating(3.0, 5, True)
    assert read_rating(9, 10, satisfied={5: 3.0}) is None  # a scale without a minimum is not accepted


def test_an_invalid_rating_is_an_invalid_event_and_counts_nothing() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(rated("T-1", 3, 6, 5))
    assert tracker.rated == {} and tracker.events[c.EVENT_INVALID] == 1


def test_a_ticket_is_rated_once_per_resolution() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(rated("T-1", 3, 2))
    tracker.consume(rated("T-1", 4, 5))  # a replayed or second survey answer
    tracker.consume(event("T-1", "reopened", 5))
    tracker.consume(event("T-1", "resolved", 6))
    tracker.consume(rated("T-1", 7, 5))
    assert tracker.rated == {KEY: 2} and tracker.satisfied == {KEY: 1}
    assert tracker.events[c.EVENT_DUPLICATE] == 1


def test_a_rating_of_a_ticket_never_seen_is_counted_with_the_labels_of_its_own_event() -> None:
    tracker = TicketTracker(source(service="shop"), FakeClock())
    tracker.consume(rated("S-1", 0, 9, 10, channel="sms", category="service"))
    tracker.consume(rated("S-1", 0, 9, 10, channel="sms", category="service"))
    assert tracker.rated == {("shop", "service", "sms"): 1}
    assert tracker.events == {c.EVENT_APPLIED: 1, c.EVENT_DUPLICATE: 1}


def test_nps_follows_from_the_buckets_of_the_rating_histogram() -> None:
    tracker = TicketTracker(source(), FakeClock())
    scores = [10, 9, 9, 8, 7, 6, 3, 0, 10, 10]  # 5 promoters, 2 passives, 3 detractors: NPS 20
    for i, score in enumerate(scores):
        tracker.consume(rated(f"N-{i}", 0, score, 10))
    histogram = tracker.ratings[("", "other", "unknown", 10)]
    at_most = dict(zip(histogram.bounds, itertools.accumulate(histogram.counts), strict=False))
    promoters = histogram.count - at_most[NPS_PROMOTER_ABOVE]
    detractors = at_most[NPS_DETRACTOR_AT_MOST]
    assert (promoters, detractors) == (5, 3)
    assert 100 * (promoters - detractors) / histogram.count == 20


def test_a_reopened_ticket_counts_a_reopen_and_is_open_again_until_resolved_again() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(event("T-1", "reopened", 10))
    assert tracker.reopened == {KEY: 1}
    assert "T-1" in tracker.open and tracker.open_counts[("technical", "general")] == 1
    tracker.consume(event("T-1", "reopened", 11))  # already open: a duplicate
    tracker.consume(event("T-1", "resolved", 12))
    assert tracker.open == {} and "T-1" in tracker.resolved
    resolution = tracker.resolution[("technical", "general")]
    assert resolution.count == 1 and resolution.total == 2 * HOUR  # the first resolution is the one timed
    assert tracker.events[c.EVENT_DUPLICATE] == 1


def test_a_reopened_ticket_does_not_breach_the_resolution_deadline_it_met() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(event("T-1", "reopened", 10))
    assert tracker.tick(T0 + 100 * HOUR) == 0
    assert tracker.breaches == {}


def test_a_resolved_ticket_not_reopened_within_the_window_is_auto_closed() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.tick(T0 + 2 * HOUR + 7 * DAY)  # the window's last moment: still open to a reopen
    assert "T-1" in tracker.resolved and tracker.closed == {}
    tracker.tick(T0 + 2 * HOUR + 7 * DAY + 1)
    assert tracker.resolved == {}
    assert tracker.closed == {(*KEY, c.CLOSED_AUTO): 1}
    assert tracker.closing[("technical", "general")].total == 2 * HOUR + 7 * DAY  # closed when the window ended
    tracker.consume(rated("T-1", 200, 5))  # a late survey answer still finds its ticket
    assert tracker.rated == {KEY: 1}


def test_a_reopen_after_the_ticket_closed_is_still_counted() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(event("T-1", "closed", 3))
    tracker.consume(event("T-1", "reopened", 30))
    tracker.consume(event("T-1", "resolved", 31))
    tracker.consume(event("T-1", "closed", 32))
    assert tracker.reopened == {KEY: 1}
    assert tracker.closed == {(*KEY, c.CLOSED_CONFIRMED): 2}
    assert tracker.loop_stages[(*KEY, c.LOOP_CLOSED)] == 1 and tracker.closed_loop == {KEY: 1}
    assert tracker.closing[("technical", "general")].count == 1  # time to close: once, at the first close


def test_a_closed_event_after_a_resolution_is_a_confirmation_and_closes_the_loop() -> None:
    tracker = TicketTracker(source(), FakeClock())
    resolved_ticket(tracker)
    tracker.consume(event("T-1", "closed", 3))
    tracker.consume(event("T-1", "closed", 4))
    assert tracker.closed == {(*KEY, c.CLOSED_CONFIRMED): 1}
    assert tracker.closed_loop == {KEY: 1}
    assert [tracker.loop_stages[(*KEY, stage)] for stage in c.LOOP_STAGES] == [1, 1, 1, 1, 1]
    assert tracker.events[c.EVENT_DUPLICATE] == 1
    assert tracker.tick(T0 + 30 * DAY) == 0 and tracker.closed == {(*KEY, c.CLOSED_CONFIRMED): 1}


def test_a_ticket_closed_before_any_resolution_is_closed_unresolved_outside_the_loop() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, category="technical", service="shop", channel="app"))
    tracker.consume(event("T-1", "closed", 1))
    assert tracker.open == {} and sum(tracker.open_counts.values()) == 0
    assert tracker.closed == {(*KEY, c.CLOSED_UNRESOLVED): 1}
    assert tracker.closed_loop == {} and tracker.loop_stages[(*KEY, c.LOOP_CLOSED)] == 0
    assert tracker.closing == {}  # not a close after a resolution
    assert tracker.tick(T0 + 100 * HOUR) == 0  # its deadlines no longer run


def test_a_ticket_that_was_never_classified_closes_outside_the_loop() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "opened", 0, service="shop", channel="app"))  # no category: the default
    tracker.consume(event("T-1", "resolved", 1))
    tracker.consume(event("T-1", "closed", 2))
    key = ("shop", "other", "app")
    assert tracker.closed == {(*key, c.CLOSED_CONFIRMED): 1} and tracker.closed_loop == {}
    stages = [tracker.loop_stages[(*key, stage)] for stage in c.LOOP_STAGES]
    assert stages == [1, 0, 1, 1, 1]


def test_later_steps_of_a_ticket_not_opened_yet_are_applied_when_it_is() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(event("T-1", "resolved", 2))
    tracker.consume(event("T-1", "closed", 3))
    tracker.consume(event("T-1", "opened", 0, category="technical", service="shop", channel="app"))
    assert tracker.closed == {(*KEY, c.CLOSED_CONFIRMED): 1}
    assert tracker.events == {c.EVENT_APPLIED: 1, c.EVENT_OUT_OF_ORDER: 2}


# ---------------------------------------------------------------------------- repeats


def opened_by(ticket: str, customer: str, days: float, **fields: str) -> dict[str, object]:
    labels = {"category": "technical", "service": "shop", "channel": "app", **fields}
    return {"id": ticket, "event": "opened", "time": T0 + days * DAY, "customer": customer, **labels}


def test_the_same_customer_about_the_same_service_and_category_within_the_window_is_a_repeat() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(opened_by("A", "alice", 0))
    tracker.consume(opened_by("B", "alice", 3))
    tracker.consume(opened_by("C", "alice", 4, category="service"))  # another category: not a repeat
    tracker.consume(opened_by("D", "bob", 4))
    tracker.consume(opened_by("E", "alice", 5, channel="sms"))  # another channel: still the same matter
    assert tracker.repeats == {KEY: 1, ("shop", "technical", "sms"): 1}


def test_a_repeat_is_counted_up_to_the_window_edge_and_not_past_it() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(opened_by("A", "alice", 0))
    tracker.consume(opened_by("B", "alice", 7))  # exactly 7 days later: within
    tracker.consume(opened_by("C", "alice", 14 + 1 / DAY))  # 7 days and a second after B: past it
    assert tracker.repeats == {KEY: 1}


def test_a_ticket_replayed_after_a_crash_is_not_a_repeat_of_itself() -> None:
    tracker = TicketTracker(source(), FakeClock())
    tracker.consume(opened_by("A", "alice", 0))
    tracker.consume(opened_by("A", "alice", 0))
    assert tracker.repeats == {} and tracker.events[c.EVENT_DUPLICATE] == 1


def test_repeats_are_found_across_a_restart_without_the_customer_id_in_the_state(tmp_path: Path) -> None:
    state = tmp_path / "tickets.json"
    before = TicketTracker(source(), FakeClock())
    before.consume(opened_by("A", "alice@example.com", 0))
    before.save(state)
    assert b"alice" not in state.read_bytes()
    after = TicketTracker(source(), FakeClock())
    assert after.load(state)
    after.consume(opened_by("B", "alice@example.com", 2))
    assert after.repeats == {KEY: 1}


def test_a_salt_changes_every_customer_hash() -> None:
    plain = customer_key(b"", "alice", "shop", "technical")
    assert customer_key(b"install-1", "alice", "shop", "technical") != plain
    assert customer_key(b"", "alice", "shop", "service") != plain


def test_the_repeat_window_remembers_a_million_customers_within_its_limit() -> None:
    window = RepeatWindow(7 * DAY, limit=10_000)
    for i in range(1_000_000):
        window.visit(i, T0 + i * 0.01)  # a million customers within three hours
    assert len(window) == 10_000 and window.forgotten == 990_000
    assert window.visit(999_999, T0 + 10_001) and not window.visit(0, T0 + 10_001)


def test_customers_last_seen_before_the_window_are_forgotten_as_the_log_moves_on() -> None:
    window = RepeatWindow(7 * DAY, limit=100)
    window.visit(1, T0)
    window.visit(2, T0 + 7 * DAY + 1)
    assert len(window) == 1 and window.forgotten == 0


def test_a_state_file_of_the_previous_version_is_taken_over(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "source": "tickets",
        "open": [["A", T0, "technical", "general", "shop", "mail", None, False, False]],
        "closed": ["C"],
        "pending": [],
    }
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps(old))
    tracker = TicketTracker(source(), FakeClock())
    assert tracker.load(path)
    assert tracker.open["A"].channel == "mail"
    tracker.consume(event("C", "resolved", 1))
    tracker.consume(event("A", "resolved", 1))
    assert tracker.events == {c.EVENT_DUPLICATE: 1, c.EVENT_APPLIED: 1}


def test_resolved_and_closed_tickets_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    state = tmp_path / "tickets.json"
    before = TicketTracker(source(), clock)
    resolved_ticket(before, "A")
    resolved_ticket(before, "B")
    before.consume(event("B", "closed", 3))
    before.save(state)
    after = TicketTracker(source(), clock)
    assert after.load(state)
    after.consume(event("A", "reopened", 5))
    after.consume(rated("B", 5, 5))
    after.consume(rated("B", 5, 5))
    assert after.reopened == {KEY: 1} and after.rated == {KEY: 1}
    assert after.events == {c.EVENT_APPLIED: 2, c.EVENT_DUPLICATE: 1}


# ---------------------------------------------------------------------------- classification

RULES: list[dict[str, Any]] = [
    {"match": {"text": ["refund", "退款"]}, "set": {"category": "billing", "urgency": "urgent", "service": "pay"}},
    {"match": {"text": r"\b(crash|error)\b", "channel": "^app$"}, "set": {"category": "technical"}},
    {"match": {"text": r"(?i)slow"}, "set": {"category": "technical", "urgency": "urgent"}},
    {"match": {}, "set": {"category": "service"}},
]


def raw(ticket: str, text: str, **fields: str) -> dict[str, object]:
    return {"id": ticket, "event": "opened", "time": T0, "text": text, **fields}


def test_classification_rules_route_raw_text_in_order_and_the_first_match_wins() -> None:
    tracker = TicketTracker(source(service="shop", classify=RULES), FakeClock())
    tracker.consume(raw("A", "I want a REFUND, the app is slow"))  # rules 1 and 3 match: the first wins
    tracker.consume(raw("B", "it shows an error", channel="app"))
    tracker.consume(raw("C", "Slow pages all day"))
    tracker.consume(raw("D", "thank you"))  # the default, last
    assert tracker.tickets == {
        ("pay", "billing", "urgent"): 1,
        ("shop", "technical", "general"): 1,
        ("shop", "technical", "urgent"): 1,
        ("shop", "service", "general"): 1,
    }


def test_every_condition_of_a_rule_must_match_and_a_missing_field_matches_none() -> None:
    tracker = TicketTracker(source(classify=RULES[1:2]), FakeClock())
    tracker.consume(raw("A", "an error", channel="sms"))
    tracker.consume({"id": "B", "event": "opened", "channel": "app"})
    assert tracker.tickets == {("", "other", "general"): 2}


def test_keywords_match_anywhere_with_case_ignored_and_special_characters_literally() -> None:
    rules = [{"match": {"text": ["c++", "Charged Twice"]}, "set": {"category": "billing"}}]
    tracker = TicketTracker(source(classify=rules), FakeClock())
    tracker.consume(raw("A", "I was charged twice"))
    tracker.consume(raw("B", "my c++ sdk"))
    tracker.consume(raw("C", "cxx"))
    assert tracker.tickets == {("", "billing", "general"): 2, ("", "other", "general"): 1}


def test_keywords_ignore_case_by_casefolding_both_sides_and_read_numbers_as_text() -> None:
    rules = [
        {"match": {"text": ["STRASSE"]}, "set": {"category": "operations"}},
        {"match": {"order": ["404"]}, "set": {"category": "technical"}},
    ]
    tracker = TicketTracker(source(classify=rules), FakeClock())
    tracker.consume(raw("A", "Lieferung in die Hauptstraße"))
    tracker.consume({"id": "B", "event": "opened", "order": 40412})
    assert tracker.tickets == {("", "operations", "general"): 1, ("", "technical", "general"): 1}


def test_what_the_event_gives_itself_is_kept_and_the_rules_fill_the_gaps() -> None:
    tracker = TicketTracker(source(classify=RULES), FakeClock())
    tracker.consume(raw("A", "refund please", category="operations"))
    assert tracker.tickets == {("pay", "operations", "urgent"): 1}


def test_a_ticket_classified_by_a_rule_is_held_to_the_deadlines_of_its_category_and_urgency() -> None:
    tracker = TicketTracker(source(classify=RULES), FakeClock())
    tracker.consume(raw("A", "the app is slow"))  # technical, urgent: first response within 24 h
    assert tracker.tick(T0 + 24 * HOUR + 1) == 1
    assert tracker.breaches == {("technical", "urgent", c.STAGE_FIRST_RESPONSE): 1}
    assert tracker.loop_stages[("", "technical", "unknown", c.LOOP_CLASSIFIED)] == 1


def test_the_free_text_a_rule_reads_is_never_kept() -> None:
    tracker = TicketTracker(source(classify=RULES), FakeClock())
    tracker.consume(raw("A", "my phone number is 555-0100, refund", customer="alice"))
    text = json.dumps(tracker.state())
    assert "555-0100" not in text and "alice" not in text


def test_a_classifier_without_rules_leaves_every_ticket_to_its_event_and_the_defaults() -> None:
    assert Classifier().classify({"text": "refund"}) == (None, None, None)
    assert not Classifier()


def config_issues(feedback: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: v1\nfeedback:\n  - name: t\n    path: /tmp/t.jsonl\n" + feedback)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        (
            "    classify:\n      - {match: {text: '(refund'}, set: {category: billing}}\n",
            "feedback[0].classify[0].match.text: not a valid regular expression: "
            "missing ), unterminated subpattern at position 0 (line 6)",
        ),
        (
            "    classify:\n      - {match: {text: 3}, set: {category: billing}}\n",
            "feedback[0].classify[0].match.text: must be a regex or a list of keywords (line 6)",
        ),
        (
            "    classify:\n      - {match: {}, set: {}}\n",
            "feedback[0].classify[0].set: set at least one of category, urgency, service (line 6)",
        ),
        (
            "    classify:\n      - {match: {}, set: {priority: P1}}\n",
            "feedback[0].classify[0].set.priority: unknown key 'priority' (line 6)",
        ),
        ("    satisfied: {5: 6}\n", "feedback[0]: satisfied: 6 is above the top of scale 5 (line 3)"),
        ("    scale: 7\n", "feedback[0]: scale: 7 is not a scale of satisfied (2, 5, 10) (line 3)"),
        ("    repeat_window: 0s\n", "feedback[0].repeat_window: Input should be greater than 0 (line 5)"),
        (
            "    events: {resolved: [done], closed: [done]}\n",
            "feedback[0].events: 'done' names more than one step (line 5)",
        ),
    ],
)
def test_a_bad_feedback_setting_is_a_config_error_naming_its_key_path(feedback: str, message: str) -> None:
    assert config_issues(feedback) == [message]


def test_an_older_config_that_calls_a_resolution_closed_keeps_its_meaning() -> None:
    src = source(events={"resolved": ["closed", "done"]})
    assert src.events.closed == [] and src.events.reopened == ["reopened"]
    tracker = TicketTracker(src, FakeClock())
    tracker.consume(event("T-1", "opened", 0))
    tracker.consume(event("T-1", "closed", 1))
    assert "T-1" in tracker.resolved and tracker.closed == {}


def test_a_configured_minimum_and_scale_are_what_the_tracker_counts_by() -> None:
    tracker = TicketTracker(source(satisfied={5: 3, 10: 7}, scale=10), FakeClock())
    tracker.consume(rated("A", 0, 7))  # no scale: the source's, 0-10
    tracker.consume(rated("B", 0, 3, 5))
    tracker.consume(rated("C", 0, "up"))  # the source has no thumbs scale
    assert tracker.rated == {("", "other", "unknown"): 2} and tracker.satisfied == {("", "other", "unknown"): 2}
    assert tracker.events[c.EVENT_INVALID] == 1


def test_a_configured_repeat_window_and_field_name_are_used() -> None:
    tracker = TicketTracker(source(repeat_window="1d", fields={"customer": "user"}), FakeClock())
    for ticket, day in (("A", 0), ("B", 0.5), ("C", 2)):
        tracker.consume({"id": ticket, "event": "opened", "time": T0 + day * DAY, "user": "u1"})
    assert tracker.repeats == {("", "other", "unknown"): 1}


# ---------------------------------------------------------------------------- the example desk

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_desk_log_gives_the_figures_its_comments_promise() -> None:
    desk = load_config(EXAMPLES / "feedback.yaml").feedback[0]
    tracker = TicketTracker(desk, FakeClock())
    for line in (EXAMPLES / "feedback" / "tickets.jsonl").read_text().splitlines():
        tracker.consume(json.loads(line))
    assert tracker.events == {c.EVENT_APPLIED: 25}
    assert tracker.tickets == {
        ("shop", "technical", "general"): 3,  # T-1 and T-6 name it, T-3's text has "error"
        ("pay", "billing", "urgent"): 1,  # T-2: "charged twice"
        ("shop", "operations", "general"): 1,  # T-4: STOP by sms
        ("shop", "service", "general"): 1,  # T-5: the default rule
    }
    assert sum(tracker.rated.values()) == 6 and sum(tracker.satisfied.values()) == 4
    app = ("shop", "technical", "app")
    assert tracker.rated[app] == 3 and tracker.satisfied[app] == 2  # T-1 twice (down, then 4), S-9 up
    assert tracker.repeats == {app: 1} and tracker.reopened == {app: 1}  # T-6 after T-1; T-1 reopened
    assert tracker.closed == {
        (*app, c.CLOSED_CONFIRMED): 1,
        ("pay", "billing", "sms", c.CLOSED_CONFIRMED): 1,
        ("shop", "operations", "sms", c.CLOSED_UNRESOLVED): 1,
    }
    assert tracker.breaches == {
        ("service", "general", c.STAGE_FIRST_RESPONSE): 1,
        ("service", "general", c.STAGE_RESOLUTION): 1,
    }
    tracker.tick(parse_ticket_time("2026-03-11T00:00:00Z"))  # T-3 and T-5 were not reopened within 7 days
    assert sum(n for key, n in tracker.closed.items() if key[3] == c.CLOSED_AUTO) == 2
    assert sum(tracker.closed_loop.values()) == 4


def survey(**fields: object) -> dict[str, object]:
    return {"event": "survey", "time": T0, **fields}


def test_survey_results_count_into_satisfaction_per_service_and_channel_without_a_ticket() -> None:
    tracker = TicketTracker(source(service="shop"), FakeClock())
    tracker.consume(survey(score=5, channel="phone"))
    tracker.consume(survey(score=2, channel="phone"))
    tracker.consume(survey(score=9, scale=10, service="pay", channel="sms"))
    tracker.consume(survey(rating="up", channel="app"))  # no score: the rating field
    assert tracker.rated == {
        ("shop", "other", "phone"): 2,
        ("pay", "other", "sms"): 1,
        ("shop", "other", "app"): 1,
    }
    assert tracker.satisfied == {("shop", "other", "phone"): 1, ("pay", "other", "sms"): 1, ("shop", "other", "app"): 1}
    assert tracker.ratings[("pay", "other", "sms", 10)].counts[9] == 1
    assert tracker.surveys == 4 and tracker.tickets == {} and not tracker.open


def test_a_survey_with_an_id_counts_once_even_across_a_restart_and_a_bad_score_is_invalid(tmp_path: Path) -> None:
    tracker = TicketTracker(source(service="shop"), FakeClock())
    tracker.consume(survey(id="S-1", score=4))
    tracker.consume(survey(id="S-1", score=4))
    tracker.consume(survey(score=7))  # above the top of the default scale, 5
    tracker.consume(survey())
    assert tracker.events == {c.EVENT_APPLIED: 1, c.EVENT_DUPLICATE: 1, c.EVENT_INVALID: 2}
    tracker.save(tmp_path / "state.json")
    again = TicketTracker(source(service="shop"), FakeClock())
    assert again.load(tmp_path / "state.json")
    again.consume(survey(id="S-1", score=4))
    assert again.events == {c.EVENT_DUPLICATE: 1}


def test_a_survey_log_is_a_feedback_source_of_its_own_with_its_own_word_for_the_event() -> None:
    surveys = source(service="shop", events={"survey": ["nps_result"]}, fields={"score": "nps"})
    tracker = TicketTracker(surveys, FakeClock())
    tracker.consume({"event": "nps_result", "nps": 10, "scale": 10, "channel": "email"})
    assert tracker.satisfied == {("shop", "other", "email"): 1}
