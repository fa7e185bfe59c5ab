"""Classification rules: a ticket's category, urgency and service chosen from its own fields.

Channels that deliver raw text (SMS, email, social media) open tickets that name no
category, urgency or service; the ordered ``classify:`` rules of a feedback source route
them, so their deadlines are chosen without a human. A rule matches when every field it
names matches: a regex (``re.search``, as written: add ``(?i)`` to ignore case) or a list
of keywords (any of them as a substring, case ignored). A field the event lacks matches
nothing; a rule with no conditions matches every ticket (a default, put it last). The
first rule that matches wins and sets what it names; what the event gives itself is kept
(the rules only fill the gaps); what neither gives takes the source's ``defaults:``.

The free-text fields rules read are never exported or logged: only the values a rule
sets become labels. No prometheus code here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slaprobe.config import ClassifyRule

TARGETS = ("category", "urgency", "service")  # what a rule may set
Values = tuple[str | None, str | None, str | None]  # (category, urgency, service) a rule sets, None: not set
NOTHING: Values = (None, None, None)


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: (field, pattern) conditions that must all match, and the values it sets."""

    conditions: tuple[tuple[str, re.Pattern[str]], ...]
    values: Values

    def matches(self, fields: Mapping[str, object]) -> bool:
        """Whether every condition holds for ``fields``."""
        for name, pattern in self.conditions:
            value = fields.get(name)
            if value is None:
                return False
            if pattern.search(value if value.__class__ is str else str(value)) is None:
                return False
        return True


def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str]:
    """A pattern that finds any of ``keywords`` as a substring, case ignored."""
    words = sorted({w for w in keywords if w}, key=len, reverse=True)
    if not words:
        return re.compile(r"(?!)")  # an empty list matches nothing
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


def compile_rule(match: Mapping[str, str | Sequence[str]], values: Mapping[str, str | None]) -> Rule:
    """A ``Rule`` from a rule's ``match`` (field -> regex or keyword list) and ``set`` tables."""
    conditions = tuple(
        (name, re.compile(spec) if isinstance(spec, str) else keyword_pattern(spec)) for name, spec in match.items()
    )
    unknown = sorted(set(values) - set(TARGETS))
    if unknown:
        raise ValueError(f"a rule sets only {', '.join(TARGETS)}, not {', '.join(unknown)}")
    category, urgency, service = (values.get(t) or None for t in TARGETS)
    return Rule(conditions, (category, urgency, service))


class Classifier:
    """Ordered rules; ``classify(fields)`` gives the values of the first rule that matches."""

    __slots__ = ("rules",)

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def classify(self, fields: Mapping[str, object]) -> Values:
        """(category, urgency, service) of the first rule that matches ``fields`` (None: not set)."""
        for rule in self.rules:
            if rule.matches(fields):
                return rule.values
        return NOTHING


def classifier_for(rules: Iterable[ClassifyRule]) -> Classifier:
    """A ``Classifier`` of a feedback source's ``classify:`` rules, in their order."""
    return Classifier(compile_rule(rule.match, rule.set_.model_dump()) for rule in rules)
