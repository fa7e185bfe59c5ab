"""Per-service runs and failures by hour and by day, from the exporter's own results (status page).

One ``ServiceHours`` per service: a ring of hourly (runs, failed) counts covering the
longest SLA window (at most ``MAX_HOURS``), and today's counts. A run counts as failed
when its first attempt failed, as the availability SLI counts it; runs in a maintenance
window are not counted (every SLI excludes them). Recording a run is O(1); the page reads
the last 24 hours as a strip and the SLA window (as far as the exporter has run) as one
figure. Counts live in arrays: no garbage-collected objects per hour.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

HOUR = 3600.0
STRIP_HOURS = 24
MAX_HOURS = 31 * 24  # the longest SLA window kept (longer windows are counted over 31 days)


@dataclass(frozen=True, slots=True)
class Tally:
    """Runs and failed runs over some span."""

    runs: int = 0
    failed: int = 0

    @property
    def availability(self) -> float | None:
        """Share of runs that did not fail (0..1); None without runs."""
        return (self.runs - self.failed) / self.runs if self.runs else None


class ServiceHours:
    """Hourly and daily tallies of one service."""

    __slots__ = ("_failed", "_hour", "_runs", "day", "day_failed", "day_runs", "size")

    def __init__(self, hours: int) -> None:
        self.size = max(STRIP_HOURS, min(int(hours), MAX_HOURS))
        self._hour = array("q", [-1] * self.size)  # the hour number (unix seconds // 3600) a slot holds
        self._runs = array("q", bytes(8 * self.size))
        self._failed = array("q", bytes(8 * self.size))
        self.day = 0  # local date ordinal of the day counters
        self.day_runs = 0
        self.day_failed = 0

    def record(self, failed: bool, now: float, day: int) -> None:
        """Count one run that ended at unix time ``now`` on local date ordinal ``day``."""
        hour = int(now // HOUR)
        slot = hour % self.size
        if self._hour[slot] != hour:
            self._hour[slot], self._runs[slot], self._failed[slot] = hour, 0, 0
        self._runs[slot] += 1
        self._failed[slot] += int(failed)
        if day != self.day:
            self.day, self.day_runs, self.day_failed = day, 0, 0
        self.day_runs += 1
        self.day_failed += int(failed)

    def hour(self, hour: int) -> Tally:
        """The tally of hour number ``hour`` (empty when not kept)."""
        slot = hour % self.size
        if self._hour[slot] != hour:
            return Tally()
        return Tally(self._runs[slot], self._failed[slot])

    def strip(self, now: float, hours: int = STRIP_HOURS) -> list[tuple[int, Tally]]:
        """(hour number, tally) of the last ``hours`` hours, oldest first, the current hour last."""
        current = int(now // HOUR)
        return [(h, self.hour(h)) for h in range(current - hours + 1, current + 1)]

    def over(self, seconds: float, now: float) -> Tally:
        """The tally of the whole hours that overlap the last ``seconds`` (at most the ring)."""
        current = int(now // HOUR)
        span = min(self.size, max(1, int(-(-seconds // HOUR))))
        runs = failed = 0
        for h in range(current - span + 1, current + 1):
            t = self.hour(h)
            runs += t.runs
            failed += t.failed
        return Tally(runs, failed)

    def today(self, day: int) -> Tally:
        """Today's tally (empty before the first run of ``day``)."""
        return Tally(self.day_runs, self.day_failed) if day == self.day else Tally()


class Hours:
    """The ``ServiceHours`` of every service; a reload keeps the tallies of the services it keeps."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceHours] = {}

    def sync(self, windows: Iterable[tuple[str, float]]) -> None:
        """Keep exactly these (service, SLA window in seconds); a longer window starts afresh."""
        fresh = {}
        for name, window in windows:
            hours = int(-(-window // HOUR))
            old = self._services.get(name)
            wanted = max(STRIP_HOURS, min(hours, MAX_HOURS))
            fresh[name] = old if old is not None and old.size == wanted else ServiceHours(hours)
        self._services = fresh

    def record(self, service: str, failed: bool, now: float, day: int) -> None:
        """Count one run of ``service`` (a service not synced is made with a day's ring)."""
        hours = self._services.get(service)
        if hours is None:
            hours = self._services[service] = ServiceHours(STRIP_HOURS)
        hours.record(failed, now, day)

    def get(self, service: str) -> ServiceHours | None:
        """The tallies of one service, if it has any."""
        return self._services.get(service)

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)
