"""One-line failure details from the exceptions that sockets, TLS and parsers raise."""

from __future__ import annotations

import os
import ssl


def first_line(text: str) -> str:
    """The first line of ``text`` without surrounding space ("" for blank text)."""
    text = text.strip()
    return text.splitlines()[0] if text else ""


def describe(exc: BaseException) -> str:
    """The first line of the exception's message, or its type name when it has none."""
    return first_line(str(exc)) or type(exc).__name__


def os_reason(exc: BaseException) -> str:
    """Why a socket call failed: ``connection refused`` from the errno when there is one.

    asyncio's messages read "Connect call failed ('10.0.0.1', 80)"; the errno says why.
    """
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return describe(exc)


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind ``exc`` in its cause/context chain, if any (8 links at most)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None
