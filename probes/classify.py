"""Classification rules: a ticket's category, urgency and service chosen from its own fields.

Channels that deliver raw text (SMS, email, social media) open tickets that name no
category, urgency or service; the ordered ``classify:`` rules of a feedback source route
them, so their deadlines are chosen without a human. A rule matches when every field it
names matches: a regex (``re.search``, as written: add ``(?i)`` to ignore case) or a list
of keywords (any of them as a substring, case ignored: both casefolded). A field the event lacks matches
nothing; a rule with no conditions matches every ticket (a default, put it last). The
first rule that matches wins and sets what it names; what the event gives itself is kept
(the rules only fill the gaps); what neither gives takes the source's ``defaults:``.

The free-text fields rules read are never exported or logged: only the values a rule
sets become labels. No prometheus code here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from slaprobe.config import ClassifyRule

TARGETS = ("category", "urgency", "service")  # what a rule may set
Values = tuple[str | None, str | None, str | None]  # (category, urgency, service) a rule sets, None: not set
NOTHING: Values = (None, None, None)


# A compiled condition: (field, a compiled regex's search or None, casefolded keywords or None).
Condition = tuple[str, Callable[[str], object] | None, tuple[str, ...] | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: conditions that must all match, and the values it sets.

    A regex condition is ``re.search`` of its pattern; a keyword condition is a substring
    test of each keyword on the casefolded value (about seven times faster than the same
    keywords as a case-ignoring regex alternation, which the regex engine scans for at
    every position).
    """

    conditions: tuple[Condition, ...]
    values: Values

    def matches(self, fields: Mapping[str, object]) -> bool:
        """Whether every condition holds for ``fields``."""
        return _matches(self.conditions, fields.get, {})


def _matches(conditions: tuple[Condition, ...], get: Callable[[str], object], folded: dict[str, str]) -> bool:
    """Whether every condition holds; ``folded`` caches casefolded values across the rules of one ticket."""
    for name, search, words in conditions:
        value = get(name)
        if value is None:
            return False
        if words is None:
            if search(value if value.__class__ is str else str(value)) is None:  # type: ignore[misc]
                return False
            continue
        text = folded.get(name)
        if text is None:
            text = folded[name] = (value if value.__class__ is str else str(value)).casefold()
        for word in words:
            if word in text:
                break
        else:
            return False
    return True


def keywords_of(keywords: Iterable[str]) -> tuple[str, ...]:
    """Keywords as they are searched for: casefolded, without empty ones or duplicates, longest first."""
    return tuple(sorted({w.casefold() for w in keywords if w}, key=len, reverse=True))


def compile_rule(match: Mapping[str, str | Sequence[str]], values: Mapping[str, str | None]) -> Rule:
    """A ``Rule`` from a rule's ``match`` (field -> regex or keyword list) and ``set`` tables."""
    conditions: list[Condition] = []
    for name, spec in match.items():
        if isinstance(spec, str):
            conditions.append((name, re.compile(spec).search, None))
        else:
            conditions.append((name, None, keywords_of(spec)))  # an empty list matches nothing
    unknown = sorted(set(values) - set(TARGETS))
    if unknown:
        raise ValueError(f"a rule sets only {', '.join(TARGETS)}, not {', '.join(unknown)}")
    category, urgency, service = (values.get(t) or None for t in TARGETS)
    return Rule(tuple(conditions), (category, urgency, service))


class Classifier:
    """Ordered rules; ``classify(fields)`` gives the values of the first rule that matches."""

    __slots__ = ("_plan", "rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self._plan = tuple((rule.conditions, rule.values) for rule in self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def classify(self, fields: Mapping[str, object]) -> Values:
        """(category, urgency, service) of the first rule that matches ``fields`` (None: not set)."""
        # _matches, inlined: this runs for every raw-text ticket, on every rule until one matches.
        get = fields.get
        folded: dict[str, str] = {}
        for conditions, values in self._plan:
            for name, search, words in conditions:
                value = get(name)
                if value is None:
                    break
                if words is None:
                    if search(value if value.__class__ is str else str(value)) is None:  # type: ignore[misc]
                        break
                    continue
                text = folded.get(name)
                if text is None:
                    text = folded[name] = (value if value.__class__ is str else str(value)).casefold()
                for word in words:
                    if word in text:
                        break
                else:
                    break  # no keyword found: the rule does not match
            else:
                return values
        return NOTHING


def classifier_for(rules: Iterable[ClassifyRule]) -> Classifier:
    """A ``Classifier`` of a feedback source's ``classify:`` rules, in their order."""
    return Classifier(compile_rule(rule.match, rule.set_.model_dump()) for rule in rules)
