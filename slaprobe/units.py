"""Prometheus durations and byte sizes: parsing and formatting, in seconds and bytes.

``UNIT_SECONDS`` is the one table of time units; Go durations (``gosyntax``) and log
fields with a unit use it too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

UNIT_SECONDS: Mapping[str, float] = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,  # MICRO SIGN
    "μs": 1e-6,  # GREEK SMALL LETTER MU: Go accepts both
    "ns": 1e-9,
}
"""Seconds per time unit: the one table of Prometheus, Go and log-field units."""
PROMETHEUS_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")  # in the order a duration writes them
GO_DURATION_UNITS = ("h", "m", "s", "ms", "us", "µs", "μs", "ns")

DURATION_PATTERN = "^(0|" + "".join(f"([0-9]+{unit})?" for unit in PROMETHEUS_DURATION_UNITS) + ")$"
_DURATION_RE = re.compile("^" + "".join(f"(?:(?P<{unit}>\\d+){unit})?" for unit in PROMETHEUS_DURATION_UNITS) + "$")

SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)?$"
_SIZE_RE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_FACTOR = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration such as ``1h30m`` or ``250ms`` into seconds.

    Raises ValueError with a message suitable for a config error.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"not a duration: {text!r} (use Prometheus syntax such as 30s, 5m, 1h30m, 250ms)")
    return sum(int(v) * UNIT_SECONDS[unit] for unit, v in match.groupdict().items() if v)


def format_duration(seconds: float) -> str:
    """Format seconds as the shortest Prometheus duration (``90`` -> ``1m30s``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, ms = divmod(ms, round(UNIT_SECONDS[unit] * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(text: str | int) -> int:
    """Parse a byte size such as ``10MiB`` or ``512`` into bytes."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"size must not be negative: {text}")
        return text
    match = _SIZE_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (use bytes or a unit: KiB, MiB, GiB, KB, MB, GB)")
    return int(float(match["n"]) * _SIZE_FACTOR[match["unit"]])


def format_value(value: float) -> str:
    """A number as slaprobe writes sample values and ``le`` bounds (``+Inf``, ``NaN``, ``1`` not ``1.0``).

    Rules that select a histogram bucket (``le="0.3"``) format the bound with this too,
    so the label value they match is the one exported.
    """
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
