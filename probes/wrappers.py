"""Container runtime log wrappers: CRI and Docker json-file lines unwrapped to the application's own.

On a Kubernetes node every line a container writes is stored wrapped by its runtime:

- CRI (containerd, CRI-O): ``<RFC 3339 nano time> <stdout|stderr> <tags> <text>``, where the
  first ``:``-separated tag is ``F`` (the line ends here) or ``P`` (a partial line: the runtime
  split a long line, at 16 KiB by default; the chunks that follow on the same stream complete
  it). ``2016-10-20T18:39:20.57606443Z stdout F GET /``.
- Docker's json-file driver: ``{"log":"<text>\\n","stream":"stdout","time":"<RFC 3339 nano>"}``;
  a ``log`` that does not end in ``\\n`` is a partial line, completed by the next lines of the
  same stream.

:func:`split_cri` and :func:`split_docker` take one line apart (pure, bytes in, bytes out).
An :class:`Unwrapper` applies a source's ``wrapper:`` setting to the lines of one poll: it joins
partial lines per log file and stream (a ``P`` chunk of stderr never joins a stdout line, nor
a line of another container's file), keeps the unfinished ones for the next poll (at most
``max_line_bytes`` per stream: a longer line is dropped and counted in ``too_long``), and
returns the application's lines with the runtime's timestamp of each. Lines that are not in
the configured wrapper are counted in ``malformed`` and dropped; never an error.

``auto`` decides per line by its shape: a JSON object starting ``{"log":`` with ``stream`` text is
Docker's, ``<time> stdout|stderr F|P`` is CRI, anything else is taken as written (a file
that is not wrapped at all, e.g. nginx's own access.log, reads as with ``none``).

Partial lines still pending when the exporter stops are lost (their bytes are committed with
the rest of the batch): at most one line per stream and file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import get_args

from slaprobe.config import LogWrapper as Wrapper
from slaprobe.probes.logevent import Event
from slaprobe.probes.parsers import LineParser, parse_iso_time

WRAPPERS: tuple[Wrapper, ...] = get_args(Wrapper)
DEFAULT_MAX_LINE_BYTES = 64 * 1024  # the tailer's default line bound; a joined line may not exceed it
# Unfinished lines held across polls, at most: this many (file, stream) pairs and this many bytes
# in all (containerd splits at 16 KiB, so 512 containers each in the middle of a long line fit).
# Beyond either, the line left waiting longest is dropped (counted as malformed).
MAX_PENDING = 4096
MAX_PENDING_BYTES = 8 << 20

# The parts of one wrapped line: (runtime time, stream, partial, text).
Split = tuple[bytes, bytes, bool, bytes]
# The application's lines and the runtime's time of each (None: no line was wrapped).
Unwrapped = tuple[Sequence[bytes], "list[bytes] | None"]
# (path, end): lines[previous end:end] came from the file at path.
Span = tuple[str, int]

_STREAMS = (b"stdout", b"stderr")
# Docker's json-file driver writes its fields in this order (its JSONLog struct's), so auto reads
# only such lines as Docker's: an application's own JSON lines are not decoded twice.
_DOCKER_START = b'{"log":'
_json_loads = json.loads
# kubelet's rotation renames 0.log to 0.log.20240102-150405 (and compresses older ones); the
# Docker driver renames <id>-json.log to <id>-json.log.1. A partial line joins across them.
_ROTATED_SUFFIX = re.compile(r"(\.log)\.[^/]+\Z")


def split_cri(line: bytes) -> Split | None:
    """(time, stream, partial, text) of a CRI log line, or None when it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tags = parts[0], parts[1], parts[2]
    if stream not in _STREAMS or len(ts) < 20 or ts[4:5] != b"-" or ts[10:11] != b"T":
        return None
    tag = tags if len(tags) == 1 else tags.split(b":", 1)[0]
    if tag == b"F":
        partial = False
    elif tag == b"P":
        partial = True
    else:
        return None
    text = parts[3] if len(parts) == 4 else b""
    if text[-1:] == b"\r":
        text = text[:-1]
    return ts, stream, partial, text


def split_docker(line: bytes) -> Split | None:
    """(time, stream, partial, text) of a Docker json-file log line, or None when it is not one."""
    try:
        obj = _json_loads(line)
    except ValueError:  # also UnicodeDecodeError
        return None
    if not isinstance(obj, dict):
        return None
    log, stream, ts = obj.get("log"), obj.get("stream"), obj.get("time", "")
    if not isinstance(log, str) or stream not in ("stdout", "stderr") or not isinstance(ts, str):
        return None
    partial = not log.endswith("\n")
    if not partial:
        log = log[:-2] if log.endswith("\r\n") else log[:-1]
    # Docker writes bytes it could not decode as U+FFFD already; a lone surrogate that a
    # writer escaped as \udxxx must not raise here (the parser decodes with replacement).
    return ts.encode("utf-8", "surrogatepass"), stream.encode(), partial, log.encode("utf-8", "surrogatepass")


def _looks_cri(line: bytes) -> bool:
    return line[4:5] == b"-" and line[10:11] == b"T" and (b" stdout " in line[:48] or b" stderr " in line[:48])


def log_name(path: str) -> str:
    """The log a file belongs to: its path without the rotation suffix (``0.log.20240102-150405`` -> ``0.log``)."""
    return _ROTATED_SUFFIX.sub(r"\1", path)


class Unwrapper:
    """The unwrapped lines of one log source, partial lines joined per file and stream across polls."""

    def __init__(self, wrapper: Wrapper = "auto", *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if wrapper not in WRAPPERS:
            raise ValueError(f"wrapper must be one of {', '.join(WRAPPERS)}, not {wrapper!r}")
        self.wrapper = wrapper
        self.max_line_bytes = max_line_bytes
        self.malformed = 0  # lines not in the configured wrapper, dropped
        self.too_long = 0  # joined lines longer than max_line_bytes, dropped
        # (log name, stream) -> chunks of the unfinished line and the time of its first chunk;
        # None chunks: the line grew too long, its remaining chunks are skipped up to its end.
        self._pending: dict[tuple[str, bytes], tuple[list[bytes] | None, int, bytes]] = {}
        self._pending_bytes = 0  # of the chunks held in _pending

    def pending(self) -> tuple[int, int]:
        """The unfinished lines held (one at most per file and stream) and their bytes."""
        return len(self._pending), self._pending_bytes

    def unwrap_files(
        self, lines: Sequence[bytes], spans: Sequence[Span]
    ) -> tuple[Sequence[bytes], list[bytes] | None, list[Span]]:
        """:meth:`unwrap` over one poll of a tailer: ``spans`` says which file each line came from.

        ``spans`` is :attr:`Tailer.last_spans`: ``(path, end)`` per file, ``lines[previous end:end]``
        read from ``path``. Returns the lines, their times and the same spans of the lines returned.
        """
        if len(spans) <= 1:
            path = spans[0][0] if spans else ""
            out, times = self.unwrap(lines, path)
            return out, times, [(path, len(out))]
        collected: list[bytes] = []
        all_times: list[bytes] = []
        out_spans: list[Span] = []
        start = 0
        for path, end in spans:
            part, part_times = self.unwrap(lines[start:end], path)
            collected += part
            all_times += part_times if part_times is not None else [b""] * len(part)
            out_spans.append((path, len(collected)))
            start = end
        return collected, all_times, out_spans

    def unwrap(self, lines: Sequence[bytes], path: str = "") -> Unwrapped:
        """The application's complete lines among ``lines`` (all of one file) and their runtime times.

        The times list is None when no line was wrapped (``none``, or ``auto`` on a plain file):
        then the lines are returned as they came, at no cost. A time is ``b""`` for a line
        taken as written in ``auto`` mode.
        """
        wrapper = self.wrapper
        if wrapper == "none":
            return lines, None
        if wrapper == "auto":
            for line in lines:
                c = line[:1]
                if (c == b"{" and line[:7] == _DOCKER_START) or (c.isdigit() and _looks_cri(line)):
                    break
            else:
                return lines, None  # a plain file (or batch): nothing to unwrap
        out: list[bytes] = []
        times: list[bytes] = []
        name = log_name(path)
        pending = self._pending
        for line in lines:
            if wrapper == "cri":
                split = split_cri(line)
            elif wrapper == "docker":
                split = split_docker(line)
            else:
                c = line[:1]
                if c == b"{":
                    split = split_docker(line) if line[:7] == _DOCKER_START else None
                else:
                    split = split_cri(line) if c.isdigit() else None
                if split is None:
                    out.append(line)
                    times.append(b"")
                    continue
            if split is None:
                self.malformed += 1
                continue
            ts, stream, partial, text = split
            key = (name, stream)
            held = pending.pop(key, None) if pending else None
            if held is not None and held[0] is not None:
                self._pending_bytes -= held[1]
            if held is None and not partial:
                out.append(text)  # the common case: a whole line
                times.append(ts)
                continue
            if held is None:
                chunks: list[bytes] | None = []
                size, first = 0, ts
            else:
                chunks, size, first = held
            if chunks is not None:
                size += len(text)
                if size > self.max_line_bytes:
                    self.too_long += 1
                    chunks = None
                else:
                    chunks.append(text)
            if partial:
                pending[key] = (chunks, size, first)
                if chunks is not None:
                    self._pending_bytes += size
                    if len(pending) > MAX_PENDING or self._pending_bytes > MAX_PENDING_BYTES:
                        self._drop_oldest()
            elif chunks is not None:
                out.append(b"".join(chunks))
                times.append(first)
        return out, times

    def _drop_oldest(self) -> None:
        """Drop the unfinished lines left waiting longest until the bounds hold again (never the newest)."""
        pending = self._pending
        while len(pending) > 1 and (len(pending) > MAX_PENDING or self._pending_bytes > MAX_PENDING_BYTES):
            chunks, size, _ = pending.pop(next(iter(pending)))
            if chunks is not None:
                self._pending_bytes -= size
            self.malformed += 1


# /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restarts>.log (and its rotations), and the
# /var/log/containers/<pod>_<namespace>_<container>-<container id>.log links to them. Namespace and
# pod names are DNS labels and subdomains: they hold no "_".
_PODS_PATH = re.compile(r"/([a-z0-9][a-z0-9-]*)_([a-z0-9][a-z0-9.-]*)_([0-9a-fA-F-]+)/([a-z0-9][a-z0-9-]*)/[^/]+\Z")
_CONTAINERS_PATH = re.compile(r"/([a-z0-9][a-z0-9.-]*)_([a-z0-9][a-z0-9-]*)_([a-z0-9][a-z0-9-]*)-[0-9a-f]{64}\.log\Z")
#: The fields a line of a Kubernetes container log gets from its file's path.
KUBERNETES_FIELDS = ("k8s_namespace", "k8s_pod", "k8s_container")
_kubernetes_cache: dict[str, Mapping[str, str] | None] = {}


def kubernetes_fields(path: str) -> Mapping[str, str] | None:
    """``k8s_namespace``, ``k8s_pod``, ``k8s_container`` of a kubelet log path, else None."""
    found = _kubernetes_cache.get(path, _kubernetes_cache)
    if found is not _kubernetes_cache:
        return found  # type: ignore[return-value]
    fields: Mapping[str, str] | None = None
    m = _PODS_PATH.search(path)
    if m is not None:
        fields = dict(zip(KUBERNETES_FIELDS, (m.group(1), m.group(2), m.group(4)), strict=True))
    elif (m := _CONTAINERS_PATH.search(path)) is not None:
        fields = dict(zip(KUBERNETES_FIELDS, (m.group(2), m.group(1), m.group(3)), strict=True))
    if len(_kubernetes_cache) >= 4096:
        _kubernetes_cache.clear()
    _kubernetes_cache[path] = fields
    return fields


class FieldsWithPath(Mapping[str, str]):
    """A line's fields and those of its file's path (the path's win: they name where the line was written)."""

    __slots__ = ("_extra", "_fields")

    def __init__(self, fields: Mapping[str, str], extra: Mapping[str, str]) -> None:
        self._fields = fields
        self._extra = extra

    def __getitem__(self, key: str) -> str:
        extra = self._extra.get(key)
        return extra if extra is not None else self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._extra or key in self._fields

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (k for k in self._fields if k not in self._extra)

    def __len__(self) -> int:
        return len(self._extra) + sum(1 for k in self._fields if k not in self._extra)

    def __repr__(self) -> str:
        return repr(dict(self))


def parse_unwrapped(
    parse: LineParser, lines: Sequence[bytes], times: list[bytes] | None, spans: Sequence[Span] = ()
) -> list[Event]:
    """The events of unwrapped lines; a line without a time of its own takes the runtime's.

    With ``spans`` (from :meth:`Unwrapper.unwrap_files`), the lines of a kubelet log file also
    get the :data:`KUBERNETES_FIELDS` of its path, usable in ``match`` and as labels.
    """
    metas = [(kubernetes_fields(path), end) for path, end in spans if path]
    if times is None and not any(meta for meta, _ in metas):
        return [e for e in map(parse, lines) if e is not None]
    events = []
    meta_at = iter(metas)
    meta, meta_end = next(meta_at, (None, len(lines)))
    for i, line in enumerate(lines):
        while i >= meta_end:
            meta, meta_end = next(meta_at, (None, len(lines)))
        event = parse(line)
        if event is None:
            continue
        ts = times[i] if times is not None else b""
        if meta is not None or (ts and event.time is None):
            event = Event(
                FieldsWithPath(event.fields, meta) if meta is not None else event.fields,
                parse_iso_time(ts.decode("ascii", "replace")) if ts and event.time is None else event.time,
                event.status,
                event.duration,
            )
        events.append(event)
    return events
