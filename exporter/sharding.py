"""Split probes between replicas: ``--shard I/N`` owns the probes whose stable hash is I mod N."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/5"`` -> Shard(2, 5); raises ValueError with a usable message."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise ValueError(f"--shard: expected I/N such as 0/3, got {text!r}") from None
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard: index must be in 0..{shard.count - 1}, got {text!r}")
        return shard

    def owns(self, service: str, probe: str) -> bool:
        """Whether this replica runs the probe ``service/probe``."""
        if self.count == 1:
            return True
        digest = hashlib.sha256(f"{service}/{probe}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


ALL = Shard()  # a single replica owns every probe
