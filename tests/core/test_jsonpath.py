"""The JSONPath subset used by JSON assertions and flow extraction."""

from __future__ import annotations

import pytest

from slaprobe.jsonpath import JsonPathError, Wildcard, find, json_equal, parse_path

DOC = {
    "status": "up",
    "count": 2,
    "nothing": None,
    "items": [{"id": 1, "ok": True}, {"id": 2, "ok": False}],
    "odd key.with dots": {"x": 1},
    "it's": "quoted",
}


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.a.b", ("a", "b")),
        ("$.a[0]", ("a", 0)),
        ("$.a[-1]", ("a", -1)),
        ("$['a b']", ("a b",)),
        ('$["a"]["b"]', ("a", "b")),
        ("$['it\\'s']", ("it's",)),
        ("$.list[*].id", ("list", Wildcard.ALL, "id")),
        ("$.map.*", ("map", Wildcard.ALL)),
        ("$[ 2 ]", (2,)),
    ],
)
def test_a_supported_path_parses_into_its_steps(path: str, steps: tuple[object, ...]) -> None:
    assert parse_path(path) == steps


@pytest.mark.parametrize(
    "path",
    ["a.b", "$..a", "$.a[1:2]", "$.a[?(@.x)]", "$.a[0,1]", "$.", "$[", "$['open]", "$ .a"],
)
def test_a_path_outside_the_subset_is_rejected_with_a_message(path: str) -> None:
    with pytest.raises(JsonPathError, match=r"path starts with|unsupported syntax|member name"):
        parse_path(path)


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("$", [DOC]),
        ("$.status", ["up"]),
        ("$.items[0].id", [1]),
        ("$.items[-1].ok", [False]),
        ("$.items[*].id", [1, 2]),
        ("$['odd key.with dots'].x", [1]),
        ("$['it\\'s']", ["quoted"]),
        ("$.nothing", [None]),
        ("$.missing", []),
        ("$.items[5]", []),
        ("$.status[0]", []),
        ("$.items.id", []),
        ("$.count.*", []),
    ],
)
def test_find_returns_every_value_the_path_addresses(path: str, values: list[object]) -> None:
    assert find(DOC, path) == values


def test_a_null_member_is_found_but_a_missing_one_is_not() -> None:
    assert find({"a": None}, "$.a") == [None]
    assert find({"a": None}, "$.b") == []


def test_a_wildcard_walks_the_members_of_an_object() -> None:
    assert sorted(find({"m": {"x": 1, "y": 2}}, "$.m.*")) == [1, 2]


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        ("1", 1, False),
        (None, None, True),
        (None, 0, False),
        ([1, {"a": True}], [1.0, {"a": True}], True),
        ([1, 2], [1], False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1}, [1], False),
    ],
)
def test_json_equality_does_not_confuse_booleans_with_numbers(left: object, right: object, equal: bool) -> None:
    assert json_equal(left, right) is equal
