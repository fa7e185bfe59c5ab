"""Keep secrets (values interpolated from ``${env:}``/``${file:}``) out of every output.

Text is redacted after it is formatted, so a secret must be found in every form formatting
gives it: as it is, inside a Python ``repr()`` (either quote style: ``\\t``, ``\\n``,
``\\'``, ``\\u2028``) and inside a JSON string. YAML folds and escapes long or unusual
strings in ways no pattern follows, so data bound for a YAML (or any) dump is redacted
before it is formatted: ``Redactor.data``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

PLACEHOLDER = "<secret>"


class Redactor:
    """Replaces every known secret value in a text with ``<secret>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        values = sorted({form for s in secrets if s for form in formatted_forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(PLACEHOLDER, text)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def data(self, value: Any) -> Any:
        """A copy of ``value`` (dicts, lists, tuples, strings) with every string redacted: for dumps."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def formatted_forms(secret: str) -> set[str]:
    """``secret`` as it appears in text: itself, inside a ``repr()`` of either quote style, inside JSON."""
    forms = {
        secret,
        repr("'\"" + secret)[4:-1],  # repr of a text holding both quotes: single-quoted, \' escaped
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    if '"' not in secret:
        forms.add(repr("'" + secret)[2:-1])  # repr of a text holding ' only: double-quoted
    return forms


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from each record's final message."""

    def __init__(self, current: Callable[[], Redactor]) -> None:
        super().__init__()
        self.current = current  # the redactor of the config running now

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, redact it, and drop the arguments (they may hold secrets)."""
        redactor = self.current()
        if redactor:
            record.msg = redactor(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = redactor(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            elif record.exc_text:
                record.exc_text = redactor(record.exc_text)
        return True
