"""Satisfaction ratings: a rating on its scale, read from a ticket event, and whether it satisfies.

Three scales are usual on a feedback desk, and each is a number from 0 to its top:

- ``5``: one to five stars;
- ``2``: a thumbs up or down, written ``up``/``down`` (or 1/0; ``up`` alone implies scale 2);
- ``10``: a 0-10 score (NPS: 9-10 promoters, 0-6 detractors).

A rating is *satisfied* (counted in CSAT) from a minimum per scale, 4 of 5, 9 of 10 and 1
(up) of 2 unless configured. A rating outside its scale, or on a scale without a minimum,
is invalid. The rating histogram's bounds are the whole numbers 0-10, so every scale's
values are buckets and NPS follows from two of them: promoters are the count above
``le="8"``, detractors the count at ``le="6"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

RATING_BOUNDS: tuple[float, ...] = tuple(float(i) for i in range(11))
DEFAULT_SATISFIED: Mapping[int, float] = {2: 1.0, 5: 4.0, 10: 9.0}  # scale -> minimum satisfied rating
THUMBS: Mapping[str, float] = {"up": 1.0, "down": 0.0}
THUMBS_SCALE = 2
NPS_PROMOTER_ABOVE = 8.0  # scale 10: promoters rate 9-10 (above the le="8" bucket)
NPS_DETRACTOR_AT_MOST = 6.0  # scale 10: detractors rate 0-6


class Rating(NamedTuple):
    """One rating: its value, its scale, and whether it counts as satisfied (a tuple: quick to make)."""

    value: float
    scale: int
    satisfied: bool


def read_rating(
    rating: object, scale: object, *, satisfied: Mapping[int, float] = DEFAULT_SATISFIED, default_scale: int = 5
) -> Rating | None:
    """The ``Rating`` of an event's ``rating`` and ``scale`` fields; None if they are not a valid rating."""
    if scale is None and (rating.__class__ is int or rating.__class__ is float):  # the usual case, first
        value = float(rating)
        minimum = satisfied.get(default_scale)
        if minimum is None or not 0 <= value <= default_scale:  # NaN fails the comparison too
            return None
        return Rating(value, default_scale, value >= minimum)
    if isinstance(rating, bool) or rating is None:
        return None
    words = rating.strip().lower() if isinstance(rating, str) else None
    top = _scale(scale)
    if words is not None and words in THUMBS:
        if top not in (None, THUMBS_SCALE):
            return None  # up/down on a scale of stars or points
        value, top = THUMBS[words], THUMBS_SCALE
    else:
        try:
            value = float(rating)  # type: ignore[arg-type]  # str or number; anything else is invalid
        except (TypeError, ValueError):
            return None
    if top is None:
        if scale not in (None, ""):
            return None  # a scale was given and it is not a number
        top = default_scale
    minimum = satisfied.get(top)
    if minimum is None or not math.isfinite(value) or not 0 <= value <= top:
        return None
    return Rating(value, top, value >= minimum)


def _scale(scale: object) -> int | None:
    if scale is None or isinstance(scale, bool):
        return None
    try:
        number = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None
