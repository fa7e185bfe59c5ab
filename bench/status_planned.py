"""CPU of the status page's "runs planned today" for 1,000 every-minute cron probes at 23:59.

Before: every page view walked each probe's slots since midnight (the first view here, with
nothing remembered, does exactly that). After: a view 30 s later extends each remembered
count by the slots since the last view. In-process, one invocation: ``python bench/status_planned.py``.
"""

from __future__ import annotations

import datetime as dt
import time

from slaprobe.exporter.status import _PLANNED, planned_today
from slaprobe.schedule import CronExpression, Schedule

PROBES = 1000


def main() -> None:
    cron = CronExpression.parse("* * * * *")
    schedules = [Schedule(interval=60.0, offset=i * 0.05, cron=cron) for i in range(PROBES)]
    now = dt.datetime(2026, 12, 4, 23, 59, tzinfo=dt.UTC).timestamp()
    _PLANNED.clear()
    began = time.process_time()
    first = sum(planned_today(s, 0.0, now) for s in schedules)
    cold = time.process_time() - began
    rounds = 20
    began = time.process_time()
    for i in range(1, rounds + 1):
        later = sum(planned_today(s, 0.0, now + 30 * i / rounds) for s in schedules)
    warm = (time.process_time() - began) / rounds
    print("| page view | CPU for 1,000 cron probes | slots counted |")
    print("|---|---|---|")
    print(f"| uncached (before: every view) | {cold * 1000:.0f} ms | {first} |")
    print(f"| remembered, ≤30 s later (after) | {warm * 1000:.2f} ms | {later} |")


if __name__ == "__main__":
    main()
