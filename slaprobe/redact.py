"""Keep secrets (values interpolated from ``${env:}``/``${file:}``) out of every output."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

PLACEHOLDER = "<secret>"


class Redactor:
    """Replaces every known secret value in a text with ``<secret>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(PLACEHOLDER, text)

    def __bool__(self) -> bool:
        return self._pattern is not None


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
