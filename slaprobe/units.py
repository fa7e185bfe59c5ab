"""Prometheus durations and byte sizes: parsing and formatting, in seconds and bytes."""

from __future__ import annotations

import math
import re

DURATION_PATTERN = r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$"
_DURATION_RE = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_UNIT_SECONDS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}

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
    return sum(int(v) * _UNIT_SECONDS[unit] for unit, v in match.groupdict().items() if v)


def format_duration(seconds: float) -> str:
    """Format seconds as the shortest Prometheus duration (``90`` -> ``1m30s``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
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
