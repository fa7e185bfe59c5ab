"""A small JSONPath subset for assertions and extraction: ``$.a.b[0]``, ``$['key']``, ``$.list[*]``.

Supported: the root ``$``; member access ``.name`` or ``['name']`` / ``["name"]`` (with
``\\'``, ``\\"`` and ``\\\\`` escapes); array indexes ``[0]`` and ``[-1]``; the wildcard
``.*`` / ``[*]`` over the members of an object or the items of an array. No filters,
slices, unions or recursive descent: a path that needs them is rejected, not guessed.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any


class JsonPathError(ValueError):
    """A path outside the supported subset or with a syntax error."""


class Wildcard(enum.Enum):
    """The ``*`` step: every member of an object, every item of an array."""

    ALL = "*"


Step = str | int | Wildcard

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_STAR = re.compile(r"\[\s*\*\s*\]")
_ESCAPE = re.compile(r"\\(.)")


@functools.lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of ``path`` (``$.a[0]`` -> ``('a', 0)``); raises JsonPathError."""
    if not path.startswith("$"):
        raise JsonPathError(f"{path!r}: a path starts with $")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        if path.startswith(".*", pos):
            steps.append(Wildcard.ALL)
            pos += 2
            continue
        if path[pos] == ".":
            match = _NAME.match(path, pos + 1)
            if match is None:
                raise JsonPathError(f"{path!r}: expected a member name at position {pos + 1}")
            steps.append(match.group())
            pos = match.end()
            continue
        if match := _INDEX.match(path, pos):
            steps.append(int(match.group(1)))
        elif match := _QUOTED.match(path, pos):
            quoted = match.group(1) if match.group(1) is not None else match.group(2)
            steps.append(_ESCAPE.sub(r"\1", quoted))
        elif match := _STAR.match(path, pos):
            steps.append(Wildcard.ALL)
        else:
            raise JsonPathError(
                f"{path!r}: unsupported syntax at position {pos} (supported: .name, ['name'], [index], [*], .*)"
            )
        pos = match.end()
    return tuple(steps)


def find(document: Any, path: str) -> list[Any]:
    """Every value ``path`` addresses in ``document``; empty when nothing is there.

    A member that holds ``null`` is found (``[None]``); a missing member is not (``[]``).
    """
    values = [document]
    for step in parse_path(path):
        found: list[Any] = []
        for value in values:
            if step is Wildcard.ALL:
                if isinstance(value, Mapping):
                    found.extend(value.values())
                elif _is_array(value):
                    found.extend(value)
            elif isinstance(step, str):
                if isinstance(value, Mapping) and step in value:
                    found.append(value[step])
            elif _is_array(value) and -len(value) <= step < len(value):
                found.append(value[step])
        values = found
        if not values:
            break
    return values


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: like ``==`` but ``true`` is not ``1`` and ``1`` equals ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if _is_array(left) and _is_array(right):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
