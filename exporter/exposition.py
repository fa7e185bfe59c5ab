"""Prometheus text format (0.0.4): metric families that render their own lines.

A ``MetricFamily`` is a metric's name, type, help and label names. It writes its
``# HELP``/``# TYPE`` header and its sample lines, escapes every label value (the one
place where text becomes a label value: code points that UTF-8 cannot encode, such as
lone surrogates from a JSON string, are replaced here) and raises ``LabelCountError``
when a sample has more or fewer label values than the family has label names.

Label values shared by many samples (a probe's service, probe and location) are escaped
once into a ``LabelSet`` and passed as ``base``; the family checks that their names are
the first of its own. Stores keep each series' text keyed by family
(``Mapping[MetricFamily, str]``) and write a family's header once above all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from slaprobe.probes.tally import Histogram
from slaprobe.text import sanitize_text
from slaprobe.units import format_value

__all__ = [
    "CONTENT_TYPE",
    "EMPTY_LABELS",
    "LabelCountError",
    "LabelSet",
    "MetricFamily",
    "escape_label",
    "family_texts",
    "format_labels",
    "format_value",
    "label_set",
    "render_text",
    "sanitize_text",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


_ESCAPED: dict[str, str] = {}  # recent short values, escaped: label values repeat (reasons, phases, codes)
_MAX_ESCAPED = 4096


def escape_label(value: str) -> str:
    """A label value as written between the quotes: backslash, double quote and newline escaped,
    unencodable code points replaced."""
    escaped = _ESCAPED.get(value)
    if escaped is not None:
        return escaped
    escaped = value
    if "\\" in value or '"' in value or "\n" in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    escaped = sanitize_text(escaped)
    if len(value) <= 64 and len(_ESCAPED) < _MAX_ESCAPED:
        _ESCAPED[value] = escaped
    return escaped


class LabelCountError(ValueError):
    """A sample was given more or fewer label values than its family has label names."""


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Label values escaped once: their names and the text ``a="1",b="2"`` (without braces)."""

    names: tuple[str, ...]
    text: str


EMPTY_LABELS = LabelSet((), "")


def label_set(names: Sequence[str], values: Sequence[str]) -> LabelSet:
    """``names`` with ``values``, escaped (LabelCountError when their numbers differ)."""
    if len(names) != len(values):
        raise LabelCountError(f"{len(values)} label values for {len(names)} label names {tuple(names)}")
    text = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return LabelSet(tuple(names), text)


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``[("a", "1")]`` -> ``a="1"`` (without braces), escaped."""
    pairs = list(pairs)
    return label_set([n for n, _ in pairs], [v for _, v in pairs]).text


_LE_CACHE: dict[tuple[float, ...], tuple[str, ...]] = {}


def _le_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """``le="<bound>"`` of every bound, then ``le="+Inf"`` (formatted once per set of bounds)."""
    labels = _LE_CACHE.get(bounds)
    if labels is None:
        labels = (*(f'le="{format_value(b)}"' for b in bounds), 'le="+Inf"')
        if len(_LE_CACHE) < 1000:
            _LE_CACHE[bounds] = labels
    return labels


class MetricFamily:
    """One metric family: name, type, help and label names; renders its header and samples."""

    __slots__ = ("_base_ok", "_base_one", "header", "header_bytes", "help", "labels", "name", "type")

    def __init__(self, name: str, kind: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.type = kind
        self.help = help_text
        self.labels = tuple(labels)
        escaped = sanitize_text(help_text).replace("\\", "\\\\").replace("\n", "\\n")
        self.header = f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"
        self.header_bytes = self.header.encode()
        self._base_ok: tuple[str, ...] = ()  # the base names last found to lead self.labels
        self._base_one: tuple[str, ...] | None = None  # base names found to be all labels but the last

    def __repr__(self) -> str:
        return f"MetricFamily({self.name!r}, {self.type!r}, labels={self.labels!r})"

    def _labels_text(self, values: Sequence[str], base: LabelSet) -> str:
        """``base`` followed by ``values`` for the remaining label names, escaped; checks the count."""
        names = self.labels
        if base.names is not self._base_ok:  # checked once per distinct base, not per sample
            if len(base.names) > len(names) or names[: len(base.names)] != base.names:
                raise LabelCountError(f"{self.name}: labels {base.names} given where {names} are expected")
            self._base_ok = base.names
            if base.names and len(base.names) == len(names) - 1:
                self._base_one = base.names
        if len(base.names) + len(values) != len(names):
            raise LabelCountError(f"{self.name}: {len(base.names) + len(values)} label values for the labels {names}")
        if not values:
            return base.text
        if len(values) == 1:
            rest = f'{names[-1]}="{escape_label(values[0])}"'
        else:
            rest = ",".join([f'{n}="{escape_label(v)}"' for n, v in zip(names[len(base.names) :], values, strict=True)])
        return f"{base.text},{rest}" if base.text else rest

    def sample(self, value: float, *values: str, base: LabelSet = EMPTY_LABELS) -> str:
        """One sample line: ``name{labels} value``; ``values`` label the names after ``base``'s."""
        if not values and base.names is self.labels:
            labels = base.text  # the base holds every label: the common case, kept lean
        elif len(values) == 1 and base.names is self._base_one:  # the base and one more, as checked before
            value_text = values[0]
            labels = f'{base.text},{self.labels[-1]}="{_ESCAPED.get(value_text) or escape_label(value_text)}"'
        elif not base.names and len(values) == 1 == len(self.labels):  # one label, no base (blackbox phases)
            value_text = values[0]
            labels = f'{self.labels[0]}="{_ESCAPED.get(value_text) or escape_label(value_text)}"'
        else:
            labels = self._labels_text(values, base)
        number = str(value) if type(value) is int else format_value(value)
        if labels:
            return f"{self.name}{{{labels}}} {number}\n"
        return f"{self.name} {number}\n"

    def plain(self, value: float) -> str:
        """The one sample line of a family without labels (``/probe`` writes a dozen per answer)."""
        if self.labels:
            raise LabelCountError(f"{self.name}: 0 label values for the labels {self.labels}")
        return f"{self.name} {str(value) if type(value) is int else format_value(value)}\n"

    def histogram(self, histogram: Histogram, *values: str, base: LabelSet = EMPTY_LABELS) -> str:
        """``_bucket`` (cumulative), ``_sum`` and ``_count`` lines of one histogram series."""
        return self.histogram_of(histogram.bounds, histogram.counts, histogram.total, *values, base=base)

    def histogram_of(
        self,
        bounds: tuple[float, ...],
        counts: Iterable[int],
        total: float,
        *values: str,
        base: LabelSet = EMPTY_LABELS,
    ) -> str:
        """``histogram`` from its parts: ``counts`` per bucket (not cumulative, +Inf last), ``total`` the sum."""
        if self.type != "histogram":
            raise TypeError(f"{self.name} is a {self.type}, not a histogram")
        labels = self._labels_text(values, base)
        name = self.name
        bucket = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
        lines = []
        cumulative = 0
        for le, count in zip(_le_labels(bounds), counts, strict=True):
            cumulative += count
            lines.append(f"{bucket}{le}}} {cumulative}\n")
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{braces} {format_value(total)}\n")
        lines.append(f"{name}_count{braces} {cumulative}\n")
        return "".join(lines)


def family_texts(
    families: Sequence[MetricFamily], parts: Sequence[Mapping[MetricFamily, str]], chunk: int = 1000
) -> Iterator[str]:
    """Each family's header once, then every part's text for it, in pieces of at most ``chunk``
    parts; families without text are left out."""
    for family in families:
        header = family.header
        for start in range(0, len(parts), chunk):
            body = "".join([text for part in parts[start : start + chunk] if (text := part.get(family))])
            if body:
                yield header + body
                header = ""


def render_text(families: Sequence[MetricFamily], parts: Iterable[Mapping[MetricFamily, str]]) -> str:
    """Each family's header once, followed by every part's text for it; empty families left out."""
    return "".join(family_texts(families, list(parts)))
