"""The PromQL builders of the rules: ``slaprobe.promql`` (one vocabulary for rules, boards and report)."""

from __future__ import annotations

from slaprobe.promql import any_of, budget, equals, number, quote, ratio, selector

__all__ = ["any_of", "budget", "equals", "number", "quote", "ratio", "selector"]
