"""Small PromQL text builders: label matchers and numbers exactly as the exporter writes them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from slaprobe.units import format_value

_RATIO_DIGITS = 12  # 99.9 / 100 is 0.9990000000000001 in binary; objectives need no more digits


def quote(value: str) -> str:
    """A PromQL string literal (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(metric: str, matchers: Mapping[str, str] | Iterable[tuple[str, str]] = (), **regex: str) -> str:
    """``metric{k="v", ...}``: equality matchers, then ``k=~"re"`` for each keyword."""
    pairs = matchers.items() if isinstance(matchers, Mapping) else matchers
    parts = [f"{k}={quote(v)}" for k, v in pairs]
    parts += [f"{k}=~{quote(v)}" for k, v in regex.items()]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def any_of(values: Iterable[str]) -> str:
    """A regex matching exactly one of ``values`` (PromQL regexes are anchored)."""
    return "|".join(re.escape(v) for v in values)


def ratio(percent: float) -> float:
    """A percentage as a ratio without binary noise (``99.9`` -> ``0.999``)."""
    return round(percent / 100, _RATIO_DIGITS)


def budget(percent: float) -> float:
    """The error budget of an objective in percent (``99.9`` -> ``0.001``)."""
    return round((100 - percent) / 100, _RATIO_DIGITS)


def number(value: float) -> str:
    """A number for an expression or label, as the exporter formats sample values and ``le`` bounds."""
    return format_value(round(value, _RATIO_DIGITS))
