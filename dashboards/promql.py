"""PromQL the boards and the report share: the SLIs of ``slaprobe.sli`` over a window, ratios
that survive zero failures, on the builders of ``slaprobe.promql``.

Every metric and label name comes from ``slaprobe.conventions``. A ``window`` is a
PromQL range (``30d``, ``$__range``); ``matchers`` are label matchers as PromQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from slaprobe import conventions as c
from slaprobe import sli
from slaprobe.promql import by, equals, increase_sum, matches, quote, rate_sum, regex_of, selector
from slaprobe.units import format_value

__all__ = [
    "LOCATION_VAR",
    "PROBE_VAR",
    "SERVICE_VAR",
    "availability",
    "by",
    "compliance",
    "equals",
    "error_ratio",
    "increase_sum",
    "latency_sli",
    "matches",
    "quantile",
    "quote",
    "rate_sum",
    "regex_of",
    "selector",
    "share",
    "union",
]

SERVICE_VAR = f'{c.LABEL_SERVICE}=~"$service"'
LOCATION_VAR = f'{c.LABEL_LOCATION}=~"$location"'
PROBE_VAR = f'{c.LABEL_PROBE}=~"$probe"'


def share(part: str, whole: str) -> str:
    """``part / whole`` where an absent ``part`` (no event at all yet) counts as 0, not as no data.

    Counters with a reason or code label appear only after their first event, so a
    plain division would show "no data" exactly when everything is fine. A window without
    any event (a cron or ``during`` probe, a long interval) gives 0, not NaN, as the rules'
    ratios do (``slaprobe.alerts.slos.guarded_ratio``).
    """
    return f"((({part} or {whole} * 0) / ({whole} > 0)) or {whole} * 0)"


def _sli_ratio(indicator: sli.SLI, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """An SLI's bad (or good) events over its total events in ``window``, from ``increase()``.

    Not exact: ``increase()`` extrapolates to the window's edges (the report counts exactly,
    with ``slaprobe.sli.Events.count``); a board's trend over ``$__range`` does not need it.
    """
    scope = tuple(matchers)
    total = indicator.total.increase(window, scope, labels)
    part = indicator.bad if indicator.bad is not None else indicator.good
    assert part is not None
    return share(part.increase(window, scope, labels), total)


def error_ratio(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Failed runs over all runs of scheduled probes in ``window`` (the availability SLI's errors)."""
    return _sli_ratio(sli.availability(), window, matchers, labels)


def availability(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Share of scheduled runs that succeeded in ``window``."""
    return f"1 - {error_ratio(window, matchers, labels)}"


def compliance(window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Dial-test compliance rate: runs that succeeded within the latency threshold, over all runs."""
    return _sli_ratio(sli.compliance(), window, matchers, labels)


def latency_sli(threshold: float, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """Share of runs not slower than ``threshold`` seconds (a bucket bound by construction)."""
    indicator = sli.latency(threshold)
    assert indicator.good is not None
    scope = tuple(matchers)
    return f"{indicator.good.increase(window, scope, labels)} / {indicator.total.increase(window, scope, labels)}"


def quantile(q: float, metric: str, window: str, matchers: Sequence[str], labels: Sequence[str]) -> str:
    """``histogram_quantile`` of a histogram's buckets, rated over ``window``."""
    keep = [*labels, "le"]
    return f"histogram_quantile({format_value(q)}, {rate_sum(metric + '_bucket', window, matchers, keep)})"


def union(parts: Iterable[str]) -> str:
    """Several expressions with disjoint series as one (``a or b``)."""
    found = [p for p in parts if p]
    return found[0] if len(found) == 1 else " or ".join(f"({p})" for p in found)
