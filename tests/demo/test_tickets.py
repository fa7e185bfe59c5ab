"""The demo's ticket log: ratings, a reopen, repeats, raw text the rules route, and a complaint spike."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from slaprobe.config import load_config
from slaprobe.demo.shop import CYCLE_SECONDS, SPIKE_CYCLE, SPIKE_EVERY, SPIKE_TICKETS, ticket_events_between
from slaprobe.probes.feedback import TicketTracker

DEMO = Path(__file__).parents[2] / "demo" / "demo.yaml"
HOUR = 12  # cycles


def replay(first_cycle: int, cycles: int) -> TicketTracker:
    cfg = load_config(DEMO)
    end = (first_cycle + cycles) * CYCLE_SECONDS
    tracker = TicketTracker(cfg.feedback[0], clock=lambda: end)
    for event in ticket_events_between(first_cycle * CYCLE_SECONDS - 1, end - 1):
        tracker.consume(event)
    return tracker


def test_two_cycles_rate_reopen_repeat_and_route_raw_text() -> None:
    tracker = replay(SPIKE_EVERY * 10 + SPIKE_CYCLE + 1, 2)  # two cycles without a spike
    assert sum(tracker.rated.values()) == 2 * 5
    assert sum(tracker.reopened.values()) == 2
    assert sum(tracker.repeats.values()) == 4  # A, B, D and F again in the second cycle
    assert tracker.tickets[("billing", "billing", "urgent")] == 2  # "charged twice", by the rules
    assert tracker.tickets[("shop", "operations", "general")] == 4  # B, and G's "parcel"
    ratings = tracker.ratings
    assert any(scale == 10 for *_, scale in ratings) and any(scale == 2 for *_, scale in ratings)


def test_the_spike_is_the_only_category_past_the_minimum_count_in_an_hour() -> None:
    cfg = load_config(DEMO)
    spike = cfg.alerting.feedback.spike
    assert spike is not None
    tracker = replay(SPIKE_EVERY * 10 + SPIKE_CYCLE - 1, HOUR)  # an hour with the spike in it
    per_category = Counter[str]()
    for (_service, category, _urgency), n in tracker.tickets.items():
        per_category[category] += n
    assert per_category["outage"] == SPIKE_TICKETS >= spike.min_count
    assert all(n < spike.min_count for category, n in per_category.items() if category != "outage")
