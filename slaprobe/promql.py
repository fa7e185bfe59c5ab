"""PromQL text builders for the rules, the boards and the report: one way to write a literal,
a selector, a regex of names, a number and a sum over a window.

Core: imports the core only. Matchers are PromQL text (``service=~"$service"``) or a mapping of
equality matchers; numbers are formatted as the exporter writes sample values and ``le``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from slaprobe.units import format_value

_RATIO_DIGITS = 12  # 99.9 / 100 is 0.9990000000000001 in binary; objectives need no more digits
_RE2_SPECIAL = frozenset(r".^$*+?()[]{}|\\")

Matcher = str | Mapping[str, str]


def quote(value: str) -> str:
    """A PromQL (and Alertmanager matcher) string literal: double quotes, backslash escapes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def equals(label: str, value: str) -> str:
    """``label="value"``."""
    return f"{label}={quote(value)}"


def any_of(values: Iterable[str]) -> str:
    """An RE2 alternation matching exactly one of ``values``, in their order (PromQL anchors ``=~``)."""
    return "|".join("".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in value) for value in values)


def regex_of(values: Iterable[str]) -> str:
    """``any_of`` the distinct values, sorted (stable text whatever the config's order)."""
    return any_of(sorted(set(values)))


def matches(label: str, values: Iterable[str]) -> str:
    """``label=~"a|b"`` matching exactly these values."""
    return f"{label}=~{quote(regex_of(values))}"


def selector(metric: str, *matchers: Matcher, **regex: str) -> str:
    """``metric{...}``: text matchers as given (empty ones skipped), a mapping's pairs as
    equality matchers, then ``k=~"re"`` for each keyword; the bare name without matchers."""
    parts: list[str] = []
    for matcher in matchers:
        if isinstance(matcher, str):
            if matcher:
                parts.append(matcher)
        else:
            parts.extend(equals(k, v) for k, v in matcher.items())
    parts += [f"{k}=~{quote(v)}" for k, v in regex.items()]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def by(labels: Sequence[str]) -> str:
    """`` by (a, b)`` or nothing."""
    return f" by ({', '.join(labels)})" if labels else ""


def increase_sum(metric: str, window: str, matchers: Sequence[Matcher], labels: Sequence[str] = ()) -> str:
    """``sum by (labels) (increase(metric{matchers}[window]))``."""
    return f"sum{by(labels)} (increase({selector(metric, *matchers)}[{window}]))"


def rate_sum(metric: str, window: str, matchers: Sequence[Matcher], labels: Sequence[str] = ()) -> str:
    """``sum by (labels) (rate(metric{matchers}[window]))``."""
    return f"sum{by(labels)} (rate({selector(metric, *matchers)}[{window}]))"


def ratio(percent: float) -> float:
    """A percentage as a ratio without binary noise (``99.9`` -> ``0.999``)."""
    return round(percent / 100, _RATIO_DIGITS)


def budget(percent: float) -> float:
    """The error budget of an objective in percent (``99.9`` -> ``0.001``)."""
    return round((100 - percent) / 100, _RATIO_DIGITS)


def number(value: float) -> str:
    """A number for an expression or label, as the exporter formats sample values and ``le`` bounds."""
    return format_value(round(value, _RATIO_DIGITS))
