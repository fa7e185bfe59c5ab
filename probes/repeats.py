"""Repeat feedback: the same customer about the same service and category again within a window.

A customer id is personal data. It is hashed the moment it is read (SHA-256 of the
per-install salt, the id, the service and the category, cut to 64 bits) and only the hash
is kept: never exported, logged or written in the clear. The hash of a ticket is
remembered with when it was last seen, for as long as the window needs (by the time of
the events, so replaying an old log finds the same repeats), and at most ``limit``
hashes: past the limit the least recently seen are forgotten first (counted).

In memory a remembered hash costs about 150 bytes (measured with tracemalloc: 1,000,000
hashes in an ``OrderedDict`` of int -> float, 151 MB); in the state file 16 bytes
(base64 of two packed arrays), so a restart keeps finding repeats. No prometheus code.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

SWEEP_EVERY = 60.0  # seconds of log time between sweeps of expired hashes (whether one is a repeat is exact)


def customer_key(salt: bytes, customer: str, service: str, category: str) -> int:
    """The 64-bit hash a (customer, service, category) is remembered by."""
    digest = hashlib.sha256(salt + f"\0{customer}\0{service}\0{category}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class RepeatWindow:
    """Hashes of recent (customer, service, category) keys and when each was last seen."""

    __slots__ = ("forgotten", "latest", "limit", "seen", "swept", "window")

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self.seen: OrderedDict[int, float] = OrderedDict()  # least recently seen first
        self.latest = float("-inf")  # the latest event time seen: expiry follows the log, not the clock
        self.swept = float("-inf")  # the latest time expired hashes were swept out at
        self.forgotten = 0  # hashes dropped before their window ended, to stay under the limit

    def __len__(self) -> int:
        return len(self.seen)

    def visit(self, key: int, when: float) -> bool:
        """Remember ``key`` as seen at ``when``; True if it was seen before within the window."""
        seen = self.seen
        before = seen.get(key)
        repeat = before is not None and abs(when - before) <= self.window
        if before is not None:
            seen.move_to_end(key)
            when = max(when, before)
        seen[key] = when
        if when > self.latest:
            self.latest = when
            if when - self.swept >= SWEEP_EVERY:
                self.expire()
        if len(seen) > self.limit:
            seen.popitem(last=False)
            self.forgotten += 1
        return repeat

    def expire(self) -> None:
        """Forget the hashes last seen longer than the window before the latest event."""
        seen, horizon = self.seen, self.latest - self.window
        self.swept = self.latest
        while seen:
            key, when = next(iter(seen.items()))
            if when >= horizon:
                break
            del seen[key]

    def state(self) -> dict[str, Any]:
        """The remembered hashes and times as JSON-able data (base64 of packed little-endian arrays)."""
        keys, times = array("Q", self.seen.keys()), array("d", self.seen.values())
        if sys.byteorder != "little":
            keys.byteswap()
            times.byteswap()
        return {"keys": base64.b64encode(keys.tobytes()).decode(), "times": base64.b64encode(times.tobytes()).decode()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the hashes of ``state()``, oldest first, within this window's limit."""
        keys, times = array("Q"), array("d")
        keys.frombytes(base64.b64decode(state.get("keys", "")))
        times.frombytes(base64.b64decode(state.get("times", "")))
        if len(keys) != len(times):
            raise ValueError("repeat window state: keys and times differ in length")
        if sys.byteorder != "little":
            keys.byteswap()
            times.byteswap()
        for key, when in zip(keys, times, strict=True):
            self.visit(key, when)
