"""Split probes between replicas: ``--shard I/N`` owns the probes whose stable hash is I mod N.

``--shard auto/N`` takes I from the trailing ordinal of the host name, which a Kubernetes
StatefulSet sets to ``<name>-<ordinal>``: the chart runs every pod with the same arguments.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass

_ORDINAL = re.compile(r"-(\d+)$")


def hostname_ordinal(hostname: str) -> int:
    """The ordinal of a StatefulSet pod name: ``"slaprobe-2"`` -> 2; raises ValueError otherwise."""
    match = _ORDINAL.search(hostname)
    if match is None:
        raise ValueError(
            f"--shard auto/N: host name {hostname!r} does not end in -<ordinal> (run in a StatefulSet, or give I/N)"
        )
    return int(match.group(1))


def _hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str, *, hostname: str | None = None) -> Shard:
        """``"2/5"`` -> Shard(2, 5); ``"auto/5"`` takes I from the host name; ValueError says what is wrong."""
        index_text, slash, count_text = text.partition("/")
        if not slash or not count_text.isdigit() or not (index_text == "auto" or index_text.isdigit()):
            raise ValueError(f"--shard: expected I/N or auto/N such as 0/3, got {text!r}")
        count = int(count_text)
        if count < 1:
            raise ValueError(f"--shard: N must be at least 1, got {text!r}")
        if index_text == "auto":
            index = hostname_ordinal(hostname if hostname is not None else _hostname())
        else:
            index = int(index_text)
        if not index < count:
            raise ValueError(f"--shard: index must be in 0..{count - 1}, got {index} from {text!r}")
        return cls(index, count)

    def owns(self, service: str, probe: str) -> bool:
        """Whether this replica runs the probe ``service/probe``."""
        if self.count == 1:
            return True
        digest = hashlib.sha256(f"{service}/{probe}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


ALL = Shard()  # a single replica owns every probe
