"""Maintenance windows: planned work that the SLA excludes and the alerts keep quiet about.

A window is one-off (``{name, start, end}``, RFC 3339, end excluded) or recurring
(``{name, time_intervals: [...]}``: Alertmanager time-interval entries, or names of the
config's ``time_intervals``). It belongs to a service (``services.<s>.maintenance``) or to
every service (``global.maintenance``).

What a window does, one answer for the exporter, the rules and the routing:

- A run that *starts* inside a window still runs and is shown (last result, history, the
  success gauge), but it is counted only in ``slaprobe_probe_maintenance_runs_total``: not in
  runs, failures, within-SLA, the duration histogram, planned runs or first-attempt
  failures. So ``1 - increase(failures) / increase(runs)``, the compliance rate and the
  latency SLI are over the runs outside windows, exactly, and the rules need no subtraction.
  A heartbeat's pings and missed periods in a window are maintenance runs too.
- The exporter exports ``slaprobe_maintenance_active{service} = 1`` while any window of the
  service is open (0 otherwise); every level-1 alert of the service is withheld by it
  (``unless on (service)``), and with it every escalation level.
- Recurring windows also become Alertmanager ``time_intervals`` (named by
  ``alertmanager_name``) muting that service's routes, so a notification already on its way
  when a window opens is held back too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from slaprobe.fields import Model, Name
from slaprobe.schedule import TimeInterval

ALERTMANAGER_PREFIX = "slaprobe-maintenance"


def _rfc3339(value: Any) -> dt.datetime:
    """An RFC 3339 time with its UTC offset: text, or the timestamp YAML read unquoted."""
    when = value
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
    if not isinstance(when, dt.datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"not an RFC 3339 time with a UTC offset: {value!r} (e.g. 2026-11-20T22:00:00Z)")
    return when


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class MaintenanceWindow(Model):
    """Planned work: one-off (``start``, ``end``: RFC 3339) or recurring (``time_intervals``)."""

    name: Name
    start: Rfc3339 | None = Field(None, description="RFC 3339 with a UTC offset, e.g. 2026-11-20T22:00:00Z")
    end: Rfc3339 | None = Field(None, description="RFC 3339; the window ends just before it")
    time_intervals: list[str | dict[str, Any]] | None = Field(
        None,
        description="Alertmanager time-interval entries (weekdays, times, days_of_month, months, years, "
        "location), or names of the config's time_intervals",
    )

    @model_validator(mode="after")
    def _one_style(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        if one_off == (self.time_intervals is not None):
            raise ValueError("a maintenance window needs start and end (RFC 3339), or time_intervals")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off maintenance window needs both start and end")
            if self.end <= self.start:
                raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        elif not self.time_intervals:
            raise ValueError("time_intervals: give at least one entry or name")
        return self

    @property
    def recurring(self) -> bool:
        """Whether the window is made of time intervals (else it is one-off)."""
        return self.time_intervals is not None


def alertmanager_name(service: str | None, window: MaintenanceWindow) -> str:
    """The Alertmanager time interval of a recurring window (``service`` None: a global one)."""
    scope = "global" if service is None else f"service-{service}"
    return f"{ALERTMANAGER_PREFIX}-{scope}-{window.name}"


def alertmanager_entries(window: MaintenanceWindow, named: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Any]:
    """A recurring window's entries in Alertmanager syntax, names replaced by what they name."""
    entries: list[Any] = []
    for item in window.time_intervals or ():
        entries.extend(named.get(item, ()) if isinstance(item, str) else [item])
    return entries


@dataclass(frozen=True, slots=True)
class Calendar:
    """When one service is in maintenance: its windows and the global ones, parsed."""

    ranges: tuple[tuple[float, float], ...] = ()  # unix seconds [start, end)
    intervals: tuple[TimeInterval, ...] = ()

    @classmethod
    def of(cls, windows: Iterable[MaintenanceWindow], named: Mapping[str, Sequence[Mapping[str, Any]]]) -> Calendar:
        """The calendar of these windows (validated at load: every entry parses, every name exists)."""
        ranges, intervals = [], []
        for window in windows:
            if window.start is not None and window.end is not None:
                ranges.append((window.start.timestamp(), window.end.timestamp()))
            intervals += [TimeInterval.parse(entry) for entry in alertmanager_entries(window, named)]
        return cls(tuple(ranges), tuple(intervals))

    def __bool__(self) -> bool:
        return bool(self.ranges or self.intervals)

    def active(self, now: float) -> bool:
        """Whether a window is open at unix time ``now``."""
        return any(start <= now < end for start, end in self.ranges) or any(i.contains(now) for i in self.intervals)


def window_issues(
    path: str, windows: Sequence[MaintenanceWindow], named: Mapping[str, object], did_you_mean: Callable[..., str]
) -> list[tuple[str, str]]:
    """(path, message) for each duplicate name, unknown interval name or bad entry of ``windows``."""
    issues: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, window in enumerate(windows):
        where = f"{path}[{i}]"
        if window.name in seen:
            issues.append((f"{where}.name", f"duplicate maintenance window name {window.name!r}"))
        seen.add(window.name)
        for j, item in enumerate(window.time_intervals or ()):
            if isinstance(item, str):
                if item not in named:
                    issues.append(
                        (f"{where}.time_intervals[{j}]", f"unknown time interval {item!r}{did_you_mean(item, named)}")
                    )
                continue
            try:
                TimeInterval.parse(item)
            except ValueError as exc:
                issues.append((f"{where}.time_intervals[{j}]", str(exc)))
    return issues
