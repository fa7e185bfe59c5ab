"""Prometheus text format (0.0.4) building blocks: label escaping and number formatting."""

from __future__ import annotations

from collections.abc import Iterable

from slaprobe.units import format_value

__all__ = ["CONTENT_TYPE", "escape_label", "family_header", "format_labels", "format_value"]

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
