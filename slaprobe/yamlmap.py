"""YAML read once with the line of every path, so each config error can name its line.

A path is a tuple of keys and indexes (``('services', 'x', 'probes', 2, 'url')``), written
``services.x.probes[2].url`` in messages (``format_path``; ``parse_path`` reads it back).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from slaprobe.configerror import ConfigIssue

# libyaml's parser when PyYAML was built with it (about 3x faster on a 10,000-probe file)
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_ALIAS_NODES = 250_000
"""Nodes that aliases may add to a document (each use of ``*a`` adds the nodes of ``&a``).

A 395-byte "billion laughs" document expands to 387 million nodes; reading it took 9.6 s
and 486 MB before this limit. 250,000 is 25 shared nodes (an ``expect:`` block, say) in
each of 10,000 probes.
"""
MAX_DEPTH = 100
"""Nesting deeper than this is refused (a config needs about 10 levels)."""


class YamlLimitError(yaml.YAMLError):
    """A YAML document past the limits: aliases that expand it too far, or nesting too deep."""

    def __init__(self, problem: str, node: yaml.Node) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = node.start_mark


def yaml_document(text: str) -> tuple[Any, dict[tuple[str | int, ...], int], list[ConfigIssue]]:
    """Parse YAML once: the data, each path's 1-based line, and duplicate-key issues."""
    loader = _YamlLoader(text)
    try:
        root = loader.get_single_node()
        check_size(root)
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    lines, issues = _lines_of(root)
    return data, lines, issues


def invalid_yaml(exc: yaml.YAMLError) -> ConfigIssue:
    """The issue of a text that does not parse as YAML (or is past ``check_size``'s limits), with its line."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigIssue("", f"invalid YAML: {problem}", line)


def yaml_lines(text: str) -> tuple[dict[tuple[str | int, ...], int], list[ConfigIssue]]:
    """Map each YAML path (tuple of keys/indexes) to its 1-based line; find duplicate keys."""
    root = yaml.compose(text, Loader=_YamlLoader)
    check_size(root)
    return _lines_of(root)


def check_size(root: yaml.Node | None) -> None:
    """Raise ``YamlLimitError`` if aliases add more than ``MAX_ALIAS_NODES`` nodes to the document.

    Counted without expanding: each collection's expanded size once, so a bomb is refused at once.
    """
    if root is not None:
        _Sizes().of(root, 0)


class _Sizes:
    """Expanded sizes of a document's collections, memoized; ``added`` counts what aliases add."""

    __slots__ = ("added", "known", "open")

    def __init__(self) -> None:
        self.known: dict[int, int] = {}
        self.open: set[int] = set()
        self.added = 0

    def of(self, node: yaml.Node, depth: int) -> int:
        """Nodes under ``node`` (itself included) with every alias expanded."""
        if isinstance(node, yaml.ScalarNode):
            return 1  # an alias of a scalar adds one node: not worth a lookup per scalar
        key = id(node)
        known = self.known.get(key)
        if known is not None:  # a second use: an alias
            self.added += known
            if self.added > MAX_ALIAS_NODES:
                raise YamlLimitError(
                    f"aliases add more than {MAX_ALIAS_NODES:,} nodes to the document (an alias bomb?)", node
                )
            return known
        if key in self.open:
            raise YamlLimitError("an alias refers to a node that contains it", node)
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep", node)
        self.open.add(key)
        size = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                size += self.of(key_node, depth + 1) + self.of(value_node, depth + 1)
        else:
            for item in node.value:
                size += self.of(item, depth + 1)
        self.open.discard(key)
        self.known[key] = size
        return size


def _lines_of(root: yaml.Node | None) -> tuple[dict[tuple[str | int, ...], int], list[ConfigIssue]]:
    lines: dict[tuple[str | int, ...], int] = {}
    issues: list[ConfigIssue] = []
    if root is not None:
        _walk(root, (), lines, issues)
    return lines, issues


def _walk(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int], issues: list[ConfigIssue]
) -> None:
    # A module function, not a closure: a closure that calls itself is a cycle, and would
    # keep the line map alive until a full collection (the exporter avoids those on reload).
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                issues.append(ConfigIssue(format_path((*path, key)), "duplicate key", key_node.start_mark.line + 1))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, issues)


def format_path(loc: Iterable[str | int]) -> str:
    """``('services', 'x', 'probes', 2, 'url')`` -> ``services.x.probes[2].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(lines: Mapping[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def parse_path(path: str) -> tuple[str | int, ...]:
    """``services.x.probes[2].url`` -> ``('services', 'x', 'probes', 2, 'url')``."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return tuple(parts)
