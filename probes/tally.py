"""Pure counting helpers shared by the log and ticket sources: a histogram and a label cap."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from slaprobe.conventions import OVERFLOW_LABEL_VALUE


@dataclass(slots=True)
class Histogram:
    """Observations counted into buckets by upper bound (``le`` semantics); no prometheus code."""

    bounds: tuple[float, ...]  # ascending; +Inf is implied
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last = above every bound
    total: float = 0.0  # sum of observations

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one value; a value equal to a bound belongs to that bound's bucket, 0 to the first."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)


class LabelCap:
    """Keeps at most ``limit`` distinct values of one label; later new values become ``__other__``.

    ``known`` values (from the config) always pass and count toward the limit.
    """

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self.limit = limit
        self.seen: set[str] = set(known)

    def __call__(self, value: str) -> str:
        """``value`` itself while there is room for it, else the overflow value."""
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OVERFLOW_LABEL_VALUE
