"""Prometheus text format (0.0.4) building blocks: label escaping and number formatting."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from slaprobe.probes.tally import Histogram
from slaprobe.units import format_value

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "escape_label",
    "family_header",
    "family_texts",
    "format_labels",
    "format_value",
    "histogram_lines",
]

Family = tuple[str, str, str]  # (name, type, help)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and newline."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``[("a", "1")]`` -> ``a="1"`` (without braces)."""
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)


def family_header(name: str, kind: str, help_text: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of a metric family."""
    escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"


def family_texts(families: Sequence[Family], parts: Sequence[tuple[str, ...]], chunk: int = 1000) -> Iterator[str]:
    """Each family's header once, then every part's text for it (``parts[i][k]``: part i's text
    of family k), in pieces of at most ``chunk`` parts; families without text are left out."""
    for index, (name, kind, help_text) in enumerate(families):
        header = family_header(name, kind, help_text)
        for start in range(0, len(parts), chunk):
            body = "".join(part[index] for part in parts[start : start + chunk])
            if body:
                yield header + body
                header = ""


def histogram_lines(name: str, labels: str, histogram: Histogram) -> str:
    """``_bucket`` (cumulative), ``_sum`` and ``_count`` lines of one histogram series."""
    sep = "," if labels else ""
    lines = []
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{{labels}{sep}le="{format_value(bound)}"}} {cumulative}\n')
    cumulative += histogram.counts[-1]
    lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}\n')
    braces = f"{{{labels}}}" if labels else ""
    lines.append(f"{name}_sum{braces} {format_value(histogram.total)}\n")
    lines.append(f"{name}_count{braces} {cumulative}\n")
    return "".join(lines)
