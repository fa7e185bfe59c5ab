"""Each SLI once: which events it counts, which of them are errors, and how they are selected.

The rules (``alerts/slos.py``), the boards (``dashboards/``) and the report all build their
PromQL from these definitions, so a failure counted by an alert is the failure drawn on a
board and the one the report counts. An SLI counts ``total`` events and either the ``bad``
ones (errors directly) or the ``good`` ones (errors are ``total - good``).

- availability: probe runs whose first attempt failed (retries do not hide what users saw);
- latency: probe runs slower than the threshold (histogram bucket at the threshold, written
  as the exporter writes ``le``, so the threshold is always a bucket bound);
- compliance: probe runs not within SLA (failed, or slower than the threshold);
- log availability: logged requests answered with a 5xx, or not at all (envoy logs code 0);
- log latency: logged requests slower than the threshold;
- satisfaction: feedback ratings below the satisfied minimum of their scale (CSAT's complement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slaprobe import conventions as c
from slaprobe.config import ACCESS_LOG_FORMATS, Service
from slaprobe.promql import Matcher, by, increase_sum, number, selector
from slaprobe.units import format_duration, format_value

SERVER_ERROR_CODES = "5..|0"  # a 5xx answer, or none at all (envoy logs 0)
SERVER_ERROR = f'{c.LABEL_CODE}=~"{SERVER_ERROR_CODES}"'

__all__ = ["ACCESS_LOG_FORMATS", "SERVER_ERROR", "SERVER_ERROR_CODES", "SLI", "Events", "has_access_logs"]


@dataclass(frozen=True, slots=True)
class Events:
    """A counter (or a histogram's bucket or count) and the matchers that pick the events it counts."""

    metric: str
    matchers: tuple[str, ...] = ()

    def selector(self, *scope: Matcher) -> str:
        """The series of these events within ``scope`` (e.g. one service): scope first, then own matchers."""
        return selector(self.metric, *scope, *self.matchers)

    def increase(self, window: str, scope: Sequence[Matcher], labels: Sequence[str] = ()) -> str:
        """``sum by (labels) (increase(...[window]))`` of these events within ``scope``."""
        return increase_sum(self.metric, window, (*scope, *self.matchers), labels)

    def count(self, window: str, scope: Sequence[Matcher], labels: Sequence[str] = ()) -> str:
        """How many of these events happened in ``window``, exactly (to the scrape), summed by ``labels``.

        ``increase()`` extrapolates to the window's edges and misses what a series counted
        before its first sample (a failure series appears with 1 at the first failure), so
        over 60 runs with 26 failures it gives 55.556% availability instead of 56.667%. The
        counter's last value in the window minus its value at the window's start (0 for a
        series that did not exist yet) is exact; a series that was reset in the window (a
        restart) falls back to ``increase()``, and so does one whose difference is negative:
        a restart between the window's start and its first sample, without a stale marker,
        is no drop ``resets()`` sees, and the difference would subtract the old process's count.
        """
        sel = self.selector(*scope)
        last = f"last_over_time({sel}[{window}])"
        return (
            f"sum{by(labels)} (\n"
            f"  ({last} - ({sel} offset {window} or {last} * 0) >= 0)\n"
            f"  unless (resets({sel}[{window}]) > 0)\n"
            f"  or increase({sel}[{window}])\n"
            ")"
        )


@dataclass(frozen=True, slots=True)
class SLI:
    """One service level indicator: ``total`` events, of which ``bad`` are errors (or ``good`` are not)."""

    name: str  # a conventions SLO_* value
    total: Events
    bad: Events | None = None
    good: Events | None = None
    events: str = "probe runs"  # what is counted, for alert texts
    bad_text: str = "failed"  # what makes an event an error, for alert texts


def _le(threshold: float) -> str:
    return f'le="{format_value(threshold)}"'


def availability() -> SLI:
    """Probe runs whose first attempt failed, over all runs."""
    return SLI(c.SLO_AVAILABILITY, Events(c.PROBE_RUNS), bad=Events(c.PROBE_FIRST_ATTEMPT_FAILURES))


def latency(threshold: float) -> SLI:
    """Probe runs slower than ``threshold`` seconds, over all runs with a duration."""
    return SLI(
        c.SLO_LATENCY,
        Events(f"{c.PROBE_DURATION}_count"),
        good=Events(f"{c.PROBE_DURATION}_bucket", (_le(threshold),)),
        bad_text=f"took longer than {format_duration(threshold)}",
    )


def compliance() -> SLI:
    """Probe runs not within SLA (the compliance rate, 达标率, is its complement), over all runs."""
    return SLI(c.SLO_COMPLIANCE, Events(c.PROBE_RUNS), good=Events(c.PROBE_WITHIN_SLA), bad_text="were not within SLA")


def log_availability() -> SLI:
    """Logged requests answered with a 5xx or not at all, over all logged requests."""
    return SLI(
        c.SLO_LOG_AVAILABILITY,
        Events(c.HTTP_REQUESTS),
        bad=Events(c.HTTP_REQUESTS, (SERVER_ERROR,)),
        events="logged requests",
        bad_text="were answered with 5xx or not at all",
    )


def log_latency(threshold: float) -> SLI:
    """Logged requests slower than ``threshold`` seconds, over all logged requests with a duration."""
    return SLI(
        c.SLO_LOG_LATENCY,
        Events(f"{c.HTTP_REQUEST_DURATION}_count"),
        good=Events(f"{c.HTTP_REQUEST_DURATION}_bucket", (_le(threshold),)),
        events="logged requests",
        bad_text=f"took longer than {format_duration(threshold)}",
    )


def satisfaction() -> SLI:
    """Ratings below the satisfied minimum of their scale (CSAT is the complement), over all ratings."""
    return SLI(
        c.SLO_SATISFACTION,
        Events(c.FEEDBACK_RATED),
        good=Events(c.FEEDBACK_SATISFIED),
        events="ratings",
        bad_text="were not satisfied",
    )


def has_access_logs(service: Service) -> bool:
    """Whether the service has an access log (the formats that yield requests and durations)."""
    return any(source.format in ACCESS_LOG_FORMATS for source in service.logs)


# ---------------------------------------------------------------- locations and quorum
PROBER_LOOKBACK = "1d"  # how long a vanished prober (no longer scraped) still reads as "down", not as absent


def per_location(expr: str) -> str:
    """``max by (service, probe, location)``: one series per probe and location, whichever replica
    (shard, pod, instance) reported it; a re-shard moves a probe to another replica, not to another series."""
    return f"max by ({', '.join(c.PROBE_LABELS)}) ({expr})"


def prober_stale(scope: Sequence[Matcher], stale_after: float, *, vanished: bool = False) -> str:
    """Probe series (by service, probe, location) whose prober has not run within ``stale_after`` seconds.

    With ``vanished``, a prober that is no longer scraped at all (its series gone) also reads
    as stale for ``PROBER_LOOKBACK``: its last run timestamp is the last one it reported. The
    newest run of any replica counts, so a probe that moved to another shard is not stale.
    """
    last = selector(c.PROBE_LAST_RUN, *scope)
    if vanished:
        last = f"last_over_time({last}[{PROBER_LOOKBACK}])"
    return f"time() - {per_location(last)} > {number(stale_after)}"


def failing_locations(scope: Sequence[Matcher], stale_after: float) -> str:
    """Probe series whose last run failed, one per location (whichever replica ran it; while two
    replicas run it during a re-shard, one success is enough); a location whose prober is stale
    (``prober_stale``) is no data there, not a failure, and is left out."""
    on = ", ".join(c.PROBE_LABELS)
    success = per_location(selector(c.PROBE_SUCCESS, *scope))
    return f"{success} == 0 unless on ({on}) {prober_stale(scope, stale_after)}"


def failing_location_count(scope: Sequence[Matcher], stale_after: float) -> str:
    """How many locations fail each probe at once (``failing_locations`` counted by service and probe)."""
    return f"count by ({c.LABEL_SERVICE}, {c.LABEL_PROBE}) (\n  {failing_locations(scope, stale_after)}\n)"


def reporting_location_count(scope: Sequence[Matcher], stale_after: float) -> str:
    """How many locations report each probe with fresh results (the locations a quorum share is of)."""
    last = per_location(selector(c.PROBE_LAST_RUN, *scope))
    return f"count by ({c.LABEL_SERVICE}, {c.LABEL_PROBE}) (\n  time() - {last} <= {number(stale_after)}\n)"


def failing_location_share(scope: Sequence[Matcher], stale_after: float) -> str:
    """The share of the reporting locations that fail each probe at once (0 to 1)."""
    return f"{failing_location_count(scope, stale_after)}\n/\n{reporting_location_count(scope, stale_after)}"
