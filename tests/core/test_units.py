"""One table of time units: Prometheus durations, Go durations and log fields read units alike."""

from __future__ import annotations

import re

import pytest

from slaprobe.gosyntax import go_duration_seconds, parse_go_duration
from slaprobe.probes.parsers import parse_duration_text
from slaprobe.units import (
    DURATION_PATTERN,
    GO_DURATION_UNITS,
    PROMETHEUS_DURATION_UNITS,
    UNIT_SECONDS,
    format_duration,
    parse_duration,
)


def test_every_unit_of_either_syntax_is_in_the_one_table() -> None:
    assert set(PROMETHEUS_DURATION_UNITS) | set(GO_DURATION_UNITS) == set(UNIT_SECONDS)


@pytest.mark.parametrize("unit", sorted(set(PROMETHEUS_DURATION_UNITS) & set(GO_DURATION_UNITS)))
def test_a_unit_both_syntaxes_know_means_the_same_in_each(unit: str) -> None:
    assert parse_duration(f"3{unit}") == parse_go_duration(f"3{unit}") == parse_duration_text(f"3{unit}")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1y2w3d4h5m6s7ms", 365 * 86400 + 14 * 86400 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6.007), ("0", 0.0), ("90s", 90)],
)
def test_a_prometheus_duration_is_read_by_the_schema_pattern_and_the_parser_alike(text: str, seconds: float) -> None:
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text) == pytest.approx(seconds)


def test_durations_format_back_to_their_shortest_text() -> None:
    assert format_duration(90) == "1m30s"
    assert format_duration(86400 + 0.25) == "1d250ms"


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("1m30s", 90.0), ("300µs", 3e-4), ("300μs", 3e-4), ("1.5h", 5400.0)]
)
def test_a_go_duration_in_a_log_field_is_read_in_seconds(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == pytest.approx(seconds)
    assert parse_duration_text(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-1s", "1x", "s", "1s ", "1m30"])
def test_a_log_field_that_is_no_go_duration_reads_as_none(text: str) -> None:
    assert go_duration_seconds(text) is None
