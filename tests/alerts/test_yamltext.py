"""The YAML emitter of generated files reads back as what was written, whatever the strings hold."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from slaprobe.alerts.yamltext import HEADER, dump_yaml

scalars = st.one_of(
    st.text(),
    st.sampled_from(["yes", "No", "on", "~", "null", "09:00", "1e3", "0x1F", ".inf", "- a", "a: b", "x #y", "|", ">"]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), documents, max_size=5))
def test_any_document_reads_back_unchanged(document: dict[str, Any]) -> None:
    text = dump_yaml(document)
    assert text.startswith(HEADER)
    assert yaml.safe_load(text) == document


def test_expressions_are_literal_blocks_and_labels_stay_readable() -> None:
    text = dump_yaml({"expr": "a\n/\nb", "labels": {"window": "5m", "le": "0.3", "x": 'q="1"'}}, header="")
    assert text == "expr: |-\n  a\n  /\n  b\nlabels:\n  window: '5m'\n  le: '0.3'\n  x: 'q=\"1\"'\n"
