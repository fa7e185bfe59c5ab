"""PromQL the boards and the report share: selectors, ratios that survive zero failures.

Every metric and label name comes from ``slaprobe.conventions``. A ``window`` is a
PromQL range (``30d``, ``$__range``); ``matchers`` are label matchers as PromQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from slaprobe import conventions as c
from slaprobe.units import format_value

SERVICE_VAR = f'{c.LABEL_SERVICE}=~"$service"'
LOCATION_VAR = f'{c.LABEL_LOCATION}=~"$location"'
PROBE_VAR = f'{c.LABEL_PROBE}=~"$probe"'


def selector(metric: str, *matchers: str) -> str:
    """``metric{m1, m2}``, or the bare name without matchers."""
    found = [m for m in matchers if m]
    return f"{metric}{{{', '.join(found)}}}" if found else metric


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def regex_of(values: Iterable[str]) -> str:
    """An RE2 alternation matching exactly these values (as PromQL anchors ``=~``)."""
    escaped = []
    for value in sorted(set(values)):
        escaped.append("".join("\\" + ch if ch in r".^$*+?()[]{}|\\" else ch for ch in value))
    return "|".join(escaped)


def equals(label: str, value: str) -> str:
    """``label="value"``."""
    return f"{label}={quote(value)}"


def matches(label: str, values: Iterable[str]) -> str:
    """``label=~"a|b"`` matching exactly these values."""
    return f"{label}=~{quote(regex_of(values))}"


def by(labels: Sequence[str]) -> str:
    """``by (a, b)`` or nothing."""
    return f" by ({', '.join(labels)})" if labels else ""


def increase_sum(metric: str, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """``sum by (labels) (increase(metric{matchers}[window]))``."""
    return f"sum{by(labels)} (increase({selector(metric, *matchers)}[{window}]))"


def rate_sum(metric: str, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """``sum by (labels) (rate(metric{matchers}[window]))``."""
    return f"sum{by(labels)} (rate({selector(metric, *matchers)}[{window}]))"


def share(part: str, whole: str) -> str:
    """``part / whole`` where an absent ``part`` (no event at all yet) counts as 0, not as no data.

    Counters with a reason or code label appear only after their first event, so a
    plain division would show "no data" exactly when everything is fine.
    """
    return f"({part} or {whole} * 0) / {whole}"


def error_ratio(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Failed runs over all runs of scheduled probes in ``window`` (exact: from counters)."""
    runs = increase_sum(c.PROBE_RUNS, window, matchers, labels)
    failures = increase_sum(c.PROBE_FIRST_ATTEMPT_FAILURES, window, matchers, labels)  # retries do not hide failures
    return share(failures, runs)


def availability(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Share of scheduled runs that succeeded in ``window``."""
    return f"1 - {error_ratio(window, matchers, labels)}"


def compliance(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Dial-test compliance rate: runs that succeeded within the latency threshold, over all runs."""
    runs = increase_sum(c.PROBE_RUNS, window, matchers, labels)
    within = increase_sum(c.PROBE_WITHIN_SLA, window, matchers, labels)
    return share(within, runs)


def latency_sli(threshold: float, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Share of runs not slower than ``threshold`` seconds (a bucket bound by construction)."""
    bucket = f"{c.PROBE_DURATION}_bucket{{{', '.join([*matchers, f'le={quote(format_value(threshold))}'])}}}"
    faster = f"sum{by(labels)} (increase({bucket}[{window}]))"
    runs = increase_sum(f"{c.PROBE_DURATION}_count", window, matchers, labels)
    return f"{faster} / {runs}"


def quantile(q: float, metric: str, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """``histogram_quantile`` of a histogram's buckets, rated over ``window``."""
    keep = [*labels, "le"]
    return f"histogram_quantile({format_value(q)}, {rate_sum(metric + '_bucket', window, matchers, keep)})"


def union(parts: Iterable[str]) -> str:
    """Several expressions with disjoint series as one (``a or b``)."""
    found = [p for p in parts if p]
    return found[0] if len(found) == 1 else " or ".join(f"({p})" for p in found)
