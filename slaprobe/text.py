"""Text that can always be encoded: the one replacement of code points UTF-8 refuses.

A JSON string may carry a lone surrogate (``"\\udcff"``): Python decodes it into a ``str``
that ``.encode()`` then refuses. Every place where outside text becomes a label value or
a page (the JSON readers, the exposition, the status page) passes it through here.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "sanitize_text"]

REPLACEMENT = "\ufffd"
_UNENCODABLE = re.compile("[\ud800-\udfff]")  # lone surrogates: the only str code points UTF-8 refuses


def sanitize_text(value: str) -> str:
    """``value`` with every code point UTF-8 cannot encode (lone surrogates) replaced by U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return _UNENCODABLE.sub(REPLACEMENT, value)
    return value
