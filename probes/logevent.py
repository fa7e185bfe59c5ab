"""What a log parser yields for one line: named fields plus the typed values SLIs need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed log line.

    ``fields`` holds every field by name as text (format-specific names, documented per
    parser: nginx ``remote_addr``, ``method``, ``path``, ``status``, ``request_time``...;
    jsonl/logfmt/regex: the keys or group names as written). The typed attributes are
    filled where the format has them, so access-log SLIs need no per-line lookups.
    """

    fields: Mapping[str, str] = field(default_factory=dict)
    time: float | None = None  # unix seconds of the event, if the line has a timestamp
    status: int | None = None  # HTTP status code (access logs); 0 = no response (envoy)
    duration: float | None = None  # request duration in seconds (access logs that log it)
