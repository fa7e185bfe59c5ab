"""Ticket events per second through TicketTracker with classification rules on, and the
memory of 1,000,000 customers in the repeat window.

    python bench/feedback_rate.py [--tickets 100000] [--customers 1000000]

Each ticket is a raw-text ``opened`` (routed by 8 classification rules, the last a
default; a customer id, so the repeat window is used), a ``first_response``, a
``resolved`` and a ``rated`` event: four events per ticket, in one thread, fields already
parsed (the parsers are measured by logs_vs_mtail.py). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from slaprobe.config import FeedbackSource
from slaprobe.probes.feedback import TicketTracker
from slaprobe.probes.repeats import RepeatWindow, customer_key

RULES = [
    {"match": {"text": ["refund", "charged twice", "退款"]}, "set": {"category": "billing", "urgency": "urgent"}},
    {"match": {"text": r"(?i)\b(crash|error|bug)\b"}, "set": {"category": "technical"}},
    {"match": {"text": ["slow", "timeout", "卡顿"]}, "set": {"category": "technical", "urgency": "urgent"}},
    {"match": {"channel": "^sms$", "text": ["stop", "unsubscribe"]}, "set": {"category": "operations"}},
    {"match": {"text": ["rude", "waited", "no answer"]}, "set": {"category": "service"}},
    {"match": {"text": ["password", "login"]}, "set": {"category": "technical", "service": "account"}},
    {"match": {"text": ["delivery", "parcel"]}, "set": {"category": "operations", "service": "logistics"}},
    {"match": {}, "set": {"category": "other"}},
]
TEXTS = [
    "I was charged twice for my order",
    "the app shows an error when I pay",
    "checkout is so slow today",
    "STOP",
    "I waited an hour on the phone",
    "cannot login since yesterday",
    "where is my parcel",
    "thanks for the help",
]
CHANNELS = ["sms", "email", "phone", "app", "social"]
CHUNK = 250  # tickets (1,000 events) made, then consumed, at a time


def events(tickets: int, t0: float, first: int = 0, total: int = 0) -> list[dict[str, object]]:
    """Four events per ticket (``first`` to ``first + tickets`` of ``total``), a customer back every 50."""
    returning = (total or tickets) // 50 or 1
    out: list[dict[str, object]] = []
    for i in range(first, first + tickets):
        tid, when = f"T-{i}", t0 + i
        out.append(
            {
                "id": tid,
                "event": "opened",
                "time": when,
                "text": TEXTS[i % len(TEXTS)],
                "channel": CHANNELS[i % len(CHANNELS)],
                "customer": f"customer-{i % returning if i % 50 == 0 else i}",
                "service": "shop",
            }
        )
        out.append({"id": tid, "event": "first_response", "time": when + 60})
        out.append({"id": tid, "event": "resolved", "time": when + 600})
        out.append({"id": tid, "event": "rated", "time": when + 700, "rating": 1 + i % 5})
    return out


def measure_rate(tickets: int, *, rules: bool = True, customers: bool = True) -> tuple[float, int]:
    """Events per second of CPU time, and the repeats found.

    The events are made CHUNK tickets at a time, untimed, then consumed, timed: as from a
    parser, each event's fields were just made (not 400,000 dicts made up front, which
    measures cache misses on the bench's own input rather than the tracker).
    """
    src = FeedbackSource.model_validate({"name": "bench", "path": "/dev/null", "classify": RULES if rules else []})
    t0 = 1_700_000_000.0
    tracker = TicketTracker(src, clock=lambda: t0 + tickets + 1000)
    consume = tracker.consume
    elapsed, count = 0.0, 0
    gc.collect()
    for first in range(0, tickets, CHUNK):
        batch = events(min(CHUNK, tickets - first), t0, first, tickets)
        if not customers:
            batch = [{k: v for k, v in fields.items() if k != "customer"} for fields in batch]
        start = time.process_time()  # CPU time: the machine is shared
        for fields in batch:
            consume(fields)
        elapsed += time.process_time() - start
        count += len(batch)
    return count / elapsed, sum(tracker.repeats.values())


def measure_customers(customers: int) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    window = RepeatWindow(7 * 86400.0, limit=customers)
    for i in range(customers):
        window.visit(customer_key(b"salt", f"customer-{i}", "shop", "technical"), 1_700_000_000.0 + i * 0.1)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    window = RepeatWindow(7 * 86400.0, limit=customers)
    start = time.process_time()  # again without tracemalloc, which slows every allocation
    for i in range(customers):
        window.visit(customer_key(b"salt", f"customer-{i}", "shop", "technical"), 1_700_000_000.0 + i * 0.1)
    elapsed = time.process_time() - start
    return size / 1e6, customers / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    rate, repeats = measure_rate(args.tickets)
    plain, _ = measure_rate(args.tickets, rules=False, customers=False)
    memory, visits = measure_customers(args.customers)
    print("| measure | figure |\n|---|---|")
    print(f"| ticket events/s, 8 classification rules, {args.tickets:,} tickets x 4 events, CPU time | {rate:,.0f} |")
    print(f"| the same without rules and customer ids | {plain:,.0f} |")
    print(f"| repeats found | {repeats:,} |")
    print(f"| memory of {args.customers:,} customers in the repeat window (tracemalloc) | {memory:.1f} MB |")
    print(f"| customer hashes remembered per second (SHA-256 + window), CPU time | {visits:,.0f} |")


if __name__ == "__main__":
    main()
