"""Pure, fast log line parsers: ``parse_<format>(line: bytes) -> Event | None``.

Every parser takes one line (without or with its trailing ``\\n``/``\\r\\n``) and returns
an :class:`~slaprobe.probes.logevent.Event`, or ``None`` when the line is not in the
format (the caller counts it as unparsed). Parsers never raise on input: invalid UTF-8
is decoded with U+FFFD replacement characters, truncated lines return ``None``.

Field names per format (``Event.fields``, all text, values as written unless noted):

- ``nginx_combined``: ``remote_addr remote_user time_local request method path protocol
  status body_bytes_sent http_referer http_user_agent`` and, when the line has them,
  ``request_time`` and ``upstream_response_time`` (as written, e.g. ``0.120, 0.003 :
  0.001`` or ``-``) plus ``upstream_response_time_sum`` (seconds, the sum of every
  attempt, absent when all are ``-``). ``method path protocol`` are absent when the
  request line is not ``METHOD TARGET PROTOCOL`` (e.g. ``-`` or TLS garbage).
  ``duration`` = ``request_time`` in seconds.
- ``apache_combined``: the same names (``ident`` for ``%l``) plus ``request_time_us``
  for a trailing ``%D``; ``body_bytes_sent`` ``-`` is read as ``0``; ``duration`` =
  ``%D`` / 1e6.
- ``ingress_nginx`` (ingress-nginx's default ``log-format-upstream``): the ``nginx_combined``
  names up to ``http_user_agent``, then ``request_length request_time proxy_upstream_name
  proxy_alternative_upstream_name upstream_addr upstream_response_length
  upstream_response_time upstream_status req_id`` (upstream values as written, lists
  included) and ``upstream_response_time_sum``. ``proxy_upstream_name`` names the backend
  Service as ``<namespace>-<service>-<port>`` (``upstream-default-backend`` when no Ingress
  matched; empty brackets give an empty value). ``duration`` = ``request_time`` in seconds.
- ``envoy`` (default format): ``start_time method path protocol response_code
  response_flags bytes_received bytes_sent duration upstream_service_time
  x_forwarded_for user_agent request_id authority upstream_host``; ``duration`` is the
  ``%DURATION%`` milliseconds as seconds; ``status`` 0 means no response was sent.
- ``jsonl`` / ``logfmt`` / ``regex``: keys or group names as written (see
  :data:`STATUS_KEYS`, :data:`DURATION_KEYS`, :data:`TIME_KEYS` for the typed values).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any, Protocol

from slaprobe.gosyntax import go_duration_seconds
from slaprobe.probes.logevent import Event
from slaprobe.text import sanitize_text

LineParser = Callable[[bytes], "Event | None"]

# ---------------------------------------------------------------------------- timestamps

_MONTHS = {
    m: i
    for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)
}
_CACHE_MAX = 4096
_clf_cache: dict[str, float | None] = {}


def parse_clf_time(text: str) -> float | None:
    """Unix seconds of a ``10/Oct/2000:13:55:36 -0700`` timestamp (nginx/apache), else None."""
    cached = _clf_cache.get(text, _clf_cache)
    if cached is not _clf_cache:
        return cached  # type: ignore[return-value]
    value = _parse_clf_time(text)
    if len(_clf_cache) >= _CACHE_MAX:
        _clf_cache.clear()
    _clf_cache[text] = value
    return value


def _parse_clf_time(s: str) -> float | None:
    # Hand-parsed: strptime is ~20x slower, and the cache above makes this once a second.
    if len(s) != 26 or s[2] != "/" or s[6] != "/" or s[11] != ":" or s[20] != " ":
        return None
    month = _MONTHS.get(s[3:6])
    sign = s[21]
    if month is None or sign not in "+-":
        return None
    try:
        day, year = int(s[0:2]), int(s[7:11])
        hour, minute, second = int(s[12:14]), int(s[15:17]), int(s[18:20])
        offset = int(s[22:24]) * 3600 + int(s[24:26]) * 60
    except ValueError:
        return None
    if not (1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60 and year >= 1):
        return None  # int() takes " 000" and "0_1" too: year 0 would reach timegm
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return float(epoch - offset if sign == "+" else epoch + offset)


_iso_cache: dict[str, float | None] = {}


def parse_iso_time(text: str) -> float | None:
    """Unix seconds of an ISO 8601 / RFC 3339 timestamp (no zone = UTC), else None."""
    # Cache on the part up to the seconds; the fraction and the zone are added here.
    head = text[:19]
    if len(head) != 19 or head[4] != "-" or head[10] not in "T ":
        return None
    base = _iso_cache.get(head, _iso_cache)
    if base is _iso_cache:
        try:
            parsed = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
            base = parsed.timestamp()
        except ValueError:
            base = None
        if len(_iso_cache) >= _CACHE_MAX:
            _iso_cache.clear()
        _iso_cache[head] = base
    if base is None:
        return None
    rest = text[19:]
    if not rest:
        return base  # type: ignore[return-value]
    fraction = 0.0
    if rest[0] in ".,":
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        if i == 1:
            return None
        fraction = float("0." + rest[1:i])
        rest = rest[i:]
    if rest in ("", "Z", "z"):
        return base + fraction  # type: ignore[operator]
    if len(rest) in (5, 6) and rest[0] in "+-":
        digits = rest[1:].replace(":", "")
        if len(digits) != 4 or not digits.isdigit():
            return None
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        return base + fraction - offset if rest[0] == "+" else base + fraction + offset  # type: ignore[operator]
    return None


def parse_time_value(value: object) -> float | None:
    """Unix seconds from a number (seconds; above 1e11 read as milliseconds) or a text timestamp."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value)
        if text[:1].isdigit() and len(text) >= 19 and text[4:5] == "-":
            return parse_iso_time(text)
        if len(text) == 26 and text[2:3] == "/":
            return parse_clf_time(text)
        try:
            number = float(text)
        except ValueError:
            return None
    if number != number or number < 0:
        return None
    return number / 1000.0 if number > 1e11 else number


# ---------------------------------------------------------------------------- numbers


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value >= 0 else None


def parse_duration_text(text: str, unit: float = 1.0) -> float | None:
    """Seconds from ``0.25`` (times ``unit``) or a duration with units (``250ms``, ``1m30s``, ``300µs``)."""
    try:
        value = float(text)
    except ValueError:
        return go_duration_seconds(text)
    return value * unit if value == value and value >= 0 else None


def sum_upstream_times(text: str) -> float | None:
    """Total seconds of an nginx ``$upstream_response_time`` list (``, `` and `` : `` joined), ``-`` skipped."""
    if "," not in text and ":" not in text:
        return _float_or_none(text)
    total, any_value = 0.0, False
    for part in text.replace(":", ",").split(","):
        value = _float_or_none(part.strip())
        if value is not None:
            total += value
            any_value = True
    return total if any_value else None


def _decode(line: bytes) -> str:
    # U+FFFD for invalid bytes: text that can always be re-encoded (metric labels).
    text = line.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return text


# ---------------------------------------------------------------------------- lazy fields


class LazyFields(Mapping[str, str]):
    """The text fields of an access-log line, split out on first use.

    Access-log parsers fill ``Event.status``, ``duration`` and ``time`` at once and leave
    the other fields to this mapping, so counting requests by status and latency (the
    default metrics) never pays for them. It behaves as a read-only ``dict``.
    """

    __slots__ = ("_fields", "_line")
    _build: Callable[[bytes], dict[str, str]]  # set per format

    def __init__(self, line: bytes) -> None:
        self._line = line
        self._fields: dict[str, str] | None = None

    def _get(self) -> dict[str, str]:
        fields = self._fields
        if fields is None:
            fields = self._fields = type(self)._build(self._line)
        return fields

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def get(self, key: str, default: Any = None) -> Any:
        """The field's text, or ``default``."""
        return self._get().get(key, default)

    def __repr__(self) -> str:
        return repr(self._get())


# ---------------------------------------------------------------------------- nginx / apache

# The fast paths below work on bytes and split on the quotes of the known layout
# (REFERENCE: str.split beats re; measured 0.4 us against 1.2 us per line). They are
# written out per format rather than shared, because a helper call per line costs ~10%.
# Lines they cannot take (quotes escaped as \" inside fields, as Apache writes them and
# nginx with escape=json/none; spaces in remote_user) go through _CLF_RE.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_CLF_RE = re.compile(
    r"(\S+) (\S+) (.*?) \[([^\]]*)\] " + _QUOTED + r" (\d{3}) (\S+) " + _QUOTED + " " + _QUOTED + r"(.*)\Z"
)
_UNESCAPE = re.compile(r'\\(["\\\\])')
_STATUS_BYTES = {f"{code:03d}".encode(): code for code in range(1000)}
_clf_bytes_cache: dict[bytes, float | None] = {}


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def _clf_time_bytes(raw: bytes) -> float | None:
    value = parse_clf_time(raw.decode("ascii", "replace"))
    if len(_clf_bytes_cache) >= _CACHE_MAX:
        _clf_bytes_cache.clear()
    _clf_bytes_cache[raw] = value
    return value


def _clf_parts(text: str, apache: bool) -> ClfParts | None:
    """(addr, ident, user, time, request, status, bytes, referer, agent, rest) of a combined line.

    Apache escapes ``"`` and ``\\`` with a backslash: those are unescaped. nginx writes
    ``\\xNN`` (default) or ``\\"`` (escape=json): its fields stay as written.
    """
    parts = text.split('"')
    if len(parts) == 7 and parts[4] == " " and ("\\" if apache else '\\"') not in text:
        head, request, middle, referer, _, agent, rest = parts
        lb = head.find(" [")
        who = head[:lb].split(" ", 2)
        mid = middle.split()
        if lb > 0 and head.endswith("] ") and len(who) == 3 and len(mid) == 2:
            return (who[0], who[1], who[2], head[lb + 2 : -2], request, mid[0], mid[1], referer, agent, rest)
    m = _CLF_RE.match(text)
    if m is None:
        return None
    g = m.groups()
    if not apache:
        return g  # type: ignore[return-value]
    return (g[0], g[1], g[2], g[3], _unescape(g[4]), g[5], g[6], _unescape(g[7]), _unescape(g[8]), g[9])


def _request_fields(fields: dict[str, str], request: str) -> None:
    req = request.split(" ")
    if len(req) == 3:
        fields["method"], fields["path"], fields["protocol"] = req


ClfParts = tuple[str, str, str, str, str, str, str, str, str, str]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _clf_parts_fast(line: bytes) -> ClfParts:
    """The parts of a line the bytes fast path accepted, split exactly as it split them."""
    head, request, middle, referer, _, agent, rest = line.split(b'"')
    lb = head.find(b" [")
    addr, ident, user = head[:lb].split(b" ", 2)
    status, body = middle.split()
    t = _text
    return (
        t(addr),
        t(ident),
        t(user),
        t(head[lb + 2 : -2]),
        t(request),
        t(status),
        t(body),
        t(referer),
        t(agent),
        t(rest),
    )


def _nginx_fields(parts: ClfParts) -> dict[str, str]:
    addr, _, user, time_local, request, status, body_bytes, referer, agent, rest = parts
    fields = {
        "remote_addr": addr,
        "remote_user": user,
        "time_local": time_local,
        "request": request,
        "status": status,
        "body_bytes_sent": body_bytes,
        "http_referer": referer,
        "http_user_agent": agent,
    }
    _request_fields(fields, request)
    tokens = rest.split(None, 1)
    if tokens:
        fields["request_time"] = tokens[0]
    upstream = tokens[1].strip() if len(tokens) == 2 else ""
    if upstream:
        fields["upstream_response_time"] = upstream
        total = sum_upstream_times(upstream)
        if total is not None:
            fields["upstream_response_time_sum"] = _number_text(total)
    return fields


def _apache_fields(parts: ClfParts) -> dict[str, str]:
    addr, ident, user, time_local, request, status, body_bytes, referer, agent, rest = parts
    fields = {
        "remote_addr": addr,
        "ident": ident,
        "remote_user": user,
        "time_local": time_local,
        "request": request,
        "status": status,
        "body_bytes_sent": "0" if body_bytes == "-" else body_bytes,
        "http_referer": referer,
        "http_user_agent": agent,
    }
    _request_fields(fields, request)
    micros = rest.strip()
    if micros:
        fields["request_time_us"] = micros
    return fields


def _number_text(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


# Building the objects of a line is a third of the parse time. The slot descriptors set the
# same attributes as LazyFields() and the frozen dataclass Event() (whose __init__ goes through
# object.__setattr__ four times), at half the cost: measured 2.8 against 3.3 us per nginx line.
_new = object.__new__
_set_line = LazyFields.__dict__["_line"].__set__
_set_fields = LazyFields.__dict__["_fields"].__set__


def _lazy(cls: type[LazyFields], line: bytes) -> LazyFields:
    """``cls(line)``, faster."""
    fields = _new(cls)
    _set_line(fields, line)
    _set_fields(fields, None)
    return fields


def _make_event_factory() -> Callable[[Mapping[str, str], float | None, int | None, float | None], Event]:
    try:
        setters = [getattr(Event, name).__set__ for name in ("fields", "time", "status", "duration")]
    except AttributeError:  # an Event without __slots__: the ordinary way
        return Event
    set_fields, set_time, set_status, set_duration = setters

    def make_event(fields: Mapping[str, str], time: float | None, status: int | None, duration: float | None) -> Event:
        """``Event(fields, time, status, duration)``, faster."""
        event = _new(Event)
        set_fields(event, fields)
        set_time(event, time)
        set_status(event, status)
        set_duration(event, duration)
        return event

    return make_event


_event = _make_event_factory()


class _NginxFields(LazyFields):
    __slots__ = ()
    _build = staticmethod(lambda line: _nginx_fields(_clf_parts_fast(line)))


class _ApacheFields(LazyFields):
    __slots__ = ()
    _build = staticmethod(lambda line: _apache_fields(_clf_parts_fast(line)))


def _clf_slow(line: bytes, apache: bool) -> Event | None:
    """The regex path of both combined formats: escaped quotes, odd remote_user, CRLF."""
    text = _decode(line)
    parts = _clf_parts(text, apache)
    if parts is None:
        return None
    status = _STATUS_BYTES.get(parts[5].encode())
    if status is None:
        return None
    rest = parts[9]
    duration = None
    if rest.strip():
        if rest[0] != " ":
            return None
        first = rest.split()[0]
        if apache:
            if len(rest.split()) != 1 or not first.isdigit():
                return None
            duration = int(first) / 1e6
        elif first != "-":
            duration = _float_or_none(first)
            if duration is None:
                return None
    fields = _apache_fields(parts) if apache else _nginx_fields(parts)
    return Event(fields, parse_clf_time(parts[3]), status, duration)


def parse_nginx_combined(line: bytes) -> Event | None:
    """nginx ``combined`` with optional trailing ``$request_time`` and ``$upstream_response_time``."""
    parts = line.split(b'"')
    if len(parts) != 7 or parts[4] != b" ":
        return _clf_slow(line, False)
    head = parts[0]
    lb = head.find(b" [")
    mid = parts[2].split()
    if lb < 0 or head[-2:] != b"] " or len(mid) != 2 or head.count(b" ", 0, lb) != 2 or b'\\"' in line:
        return _clf_slow(line, False)
    status = _STATUS_BYTES.get(mid[0])
    if status is None:
        return None
    rest = parts[6]
    duration = None
    if rest:
        if rest[0] != 32:  # b" "
            return _clf_slow(line, False) if rest[0] in b"\r\n" else None
        end = rest.find(b" ", 1)
        try:
            duration = float(rest if end < 0 else rest[:end])
        except ValueError:  # "-", nothing, or other whitespace: the slower way
            first = rest.split(None, 1)[:1]
            if first and first[0] != b"-":
                try:
                    duration = float(first[0])
                except ValueError:
                    return None
        if duration is not None and not duration >= 0:  # also NaN
            return None
    raw_time = head[lb + 2 : -2]
    time = _clf_bytes_cache.get(raw_time, _clf_bytes_cache)
    if time is _clf_bytes_cache:
        time = _clf_time_bytes(raw_time)
    return _event(_lazy(_NginxFields, line), time, status, duration)  # type: ignore[arg-type]


def parse_apache_combined(line: bytes) -> Event | None:
    """Apache ``combined`` (``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``) with optional ``%D``."""
    parts = line.split(b'"')
    if len(parts) != 7 or parts[4] != b" ":
        return _clf_slow(line, True)
    head = parts[0]
    lb = head.find(b" [")
    mid = parts[2].split()
    if lb < 0 or head[-2:] != b"] " or len(mid) != 2 or head.count(b" ", 0, lb) != 2 or b"\\" in line:
        return _clf_slow(line, True)
    status = _STATUS_BYTES.get(mid[0])
    if status is None:
        return None
    rest = parts[6]
    duration = None
    if rest:
        micros = rest[1:]
        if rest[0] != 32 or not micros.isdigit():
            return _clf_slow(line, True)  # e.g. trailing spaces
        duration = int(micros) / 1e6
    raw_time = head[lb + 2 : -2]
    time = _clf_bytes_cache.get(raw_time, _clf_bytes_cache)
    if time is _clf_bytes_cache:
        time = _clf_time_bytes(raw_time)
    return _event(_lazy(_ApacheFields, line), time, status, duration)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- counting whole blocks

# Counting requests by status and duration needs neither an Event nor the other fields of a
# line. A tally reads a block of lines (joined by \n) with one regex call and counts its
# (status, duration) pairs in C. Its pattern accepts only lines the line parser reads the
# same way (a strict subset of its fast path); when any line of the block is not in that
# form, the tally returns None and the caller parses the block line by line, as before.
# Whether every line matched is told by the counts: n lines give n line starts, and a match
# that crossed a newline would cover one, so n matches mean every line matched whole. The
# per-character classes are single-byte negations (the regex engine's fastest loop); the
# quotes are checked for the whole block instead: 6 per line (so no field holds one) and
# no \" (the slow path's case).
_CLF_TALLY_BODY = (
    rb'[^ ]+ [^ \[][^ ]* [^ \[][^ ]* \[[^"]*\] "[^"]*" ([0-9]{3}) (?:[0-9]+|-) "[^"]*" "[^"]*"'
    rb"(?: ([0-9]+(?:\.[0-9]+)?|-)(?: [^\n]*)?)?$"
)
# Plain lines (wrapper none or auto): never one that ``auto`` would unwrap as CRI or Docker's.
_NGINX_TALLY = re.compile(rb'^(?![0-9].{3}-.{5}T)(?!\{"log":)' + _CLF_TALLY_BODY, re.M)
# CRI lines, whole (tag F): ``<time> <stream> F[:tags] <nginx line>``, as wrappers.split_cri reads them.
_NGINX_CRI_TALLY = re.compile(rb"^[^ ]{4}-[^ ]{5}T[^ ]{9,} std(?:out|err) F(?::[^ ]*)? " + _CLF_TALLY_BODY, re.M)
_first = itemgetter(0)
_second = itemgetter(1)
_duration_cache: dict[bytes, float | None] = {b"": None, b"-": None}

Tally = tuple[dict[int, int], dict[float, int]]
"""Requests by status and by duration (seconds; lines without one are in the first only)."""
BlockTally = Callable[[bytes, int], "Tally | None"]


def _tally(pattern: re.Pattern[bytes], quotes: int) -> BlockTally:
    findall = pattern.findall

    def tally(block: bytes, lines: int) -> Tally | None:
        """The counts of ``lines`` lines joined by \\n, or None if one is not in the strict form."""
        if block.count(b'"') != quotes * lines or b'\\"' in block:
            return None
        found = findall(block)
        if len(found) != lines:
            return None
        codes = {_STATUS_BYTES[raw]: n for raw, n in Counter(map(_first, found)).items()}
        durations: dict[float, int] = {}
        cache = _duration_cache
        for raw, n in Counter(map(_second, found)).items():
            value = cache.get(raw, -1.0)
            if value == -1.0:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                    cache[b""] = cache[b"-"] = None
                value = cache[raw] = float(raw)
            if value is not None:
                durations[value] = durations.get(value, 0) + n
        return codes, durations

    return tally


#: ``(format, wrapper)`` -> the tally of a block of such lines; formats not listed are parsed per line.
TALLIES: Mapping[tuple[str, str], BlockTally] = {
    ("nginx_combined", "none"): _tally(_NGINX_TALLY, 6),
    ("nginx_combined", "auto"): _tally(_NGINX_TALLY, 6),
    ("nginx_combined", "cri"): _tally(_NGINX_CRI_TALLY, 6),
}


# ---------------------------------------------------------------------------- ingress-nginx

# The default log-format-upstream of ingress-nginx (internal/ingress/controller/config):
#   $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
#   "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
#   [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
#   $upstream_response_time $upstream_status $req_id
# The upstream values are lists when nginx tried several servers (``a, b``) or redirected
# internally (``a : b``); an item is ``-`` when unknown.
# Values are split on single spaces, as the fast path splits them.
_INGRESS_LIST = r"[^ ,]+(?:(?:, | : )[^ ,]+)*"
_INGRESS_REST = re.compile(
    r" ([^ ]+) ([^ ]+) \[([^\]]*)\] \[([^\]]*)\] " + " ".join([f"({_INGRESS_LIST})"] * 4) + r" ([^ \r]+)\r?\Z"
)
_INGRESS_NAMES = (
    "request_length",
    "request_time",
    "proxy_upstream_name",
    "proxy_alternative_upstream_name",
    "upstream_addr",
    "upstream_response_length",
    "upstream_response_time",
    "upstream_status",
    "req_id",
)


def _ingress_fields(parts: ClfParts) -> dict[str, str]:
    addr, _, user, time_local, request, status, body_bytes, referer, agent, rest = parts
    fields = {
        "remote_addr": addr,
        "remote_user": user,
        "time_local": time_local,
        "request": request,
        "status": status,
        "body_bytes_sent": body_bytes,
        "http_referer": referer,
        "http_user_agent": agent,
    }
    _request_fields(fields, request)
    m = _INGRESS_REST.match(rest)
    if m is not None:
        fields.update(zip(_INGRESS_NAMES, m.groups(), strict=True))
        total = sum_upstream_times(fields["upstream_response_time"])
        if total is not None:
            fields["upstream_response_time_sum"] = _number_text(total)
    return fields


class _IngressFields(LazyFields):
    __slots__ = ()
    _build = staticmethod(lambda line: _ingress_fields(_clf_parts_fast(line)))


def _ingress_slow(line: bytes) -> Event | None:
    """The regex path: escaped quotes (escape=json), odd remote_user, CRLF."""
    text = _decode(line)
    parts = _clf_parts(text, False)
    if parts is None:
        return None
    status = _STATUS_BYTES.get(parts[5].encode())
    m = _INGRESS_REST.match(parts[9])
    if status is None or m is None:
        return None
    duration = None
    if m.group(2) != "-":
        duration = _float_or_none(m.group(2))
        if duration is None:
            return None
    return Event(_ingress_fields(parts), parse_clf_time(parts[3]), status, duration)


def parse_ingress_nginx(line: bytes) -> Event | None:
    """ingress-nginx's default ``log-format-upstream``; ``duration`` = ``$request_time``."""
    parts = line.split(b'"')
    if len(parts) != 7 or parts[4] != b" ":
        return _ingress_slow(line)
    head = parts[0]
    lb = head.find(b" [")
    mid = parts[2].split()
    if lb < 0 or head[-2:] != b"] " or len(mid) != 2 or head.count(b" ", 0, lb) != 2 or b'\\"' in line:
        return _ingress_slow(line)
    status = _STATUS_BYTES.get(mid[0])
    if status is None:
        return None
    # " <request_length> <request_time> [<upstream name>] [<alternative>] <upstream values...>"
    rest = parts[6].split(b" ", 5)
    if len(rest) != 6 or rest[0] or rest[3][:1] != b"[" or rest[3][-1:] != b"]" or rest[4][:1] != b"[":
        return _ingress_slow(line) if parts[6][-1:] in b"\r\n" else None
    duration = None
    if rest[2] != b"-":
        try:
            duration = float(rest[2])
        except ValueError:
            return None
        if not duration >= 0:  # also NaN
            return None
    raw_time = head[lb + 2 : -2]
    time = _clf_bytes_cache.get(raw_time, _clf_bytes_cache)
    if time is _clf_bytes_cache:
        time = _clf_time_bytes(raw_time)
    return _event(_lazy(_IngressFields, line), time, status, duration)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- envoy

_ENVOY_NUMBERS = (
    "response_code",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
)
_ENVOY_QUOTED = ("x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host")
_ENVOY_RE = re.compile(
    r"\[([^\]]*)\] " + _QUOTED + r" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) " + " ".join([_QUOTED] * 5) + r"\s*\Z"
)


def _envoy_parts(text: str) -> tuple[str, str, list[str], tuple[str, ...]] | None:
    """(start_time, request, six unquoted values, five quoted values) of an envoy default line."""
    parts = text.split('"')
    if (
        len(parts) == 13
        and parts[0][:1] == "["
        and parts[0][-2:] == "] "
        and parts[4] == parts[6] == parts[8] == parts[10] == " "
        and not parts[12].strip()
        and '\\"' not in text
    ):
        numbers = parts[2].split()
        if len(numbers) == 6 and parts[2][:1] == " " and parts[2][-1:] == " ":
            return parts[0][1:-2], parts[1], numbers, (parts[3], parts[5], parts[7], parts[9], parts[11])
    m = _ENVOY_RE.match(text)
    if m is None:
        return None
    g = m.groups()
    return g[0], g[1], list(g[2:8]), tuple(g[8:13])


def _envoy_fields(text: str) -> dict[str, str]:
    parts = _envoy_parts(text)
    if parts is None:
        return {}
    start_time, request, numbers, quoted = parts
    fields = dict(zip(_ENVOY_NUMBERS, numbers, strict=True))
    fields.update(zip(_ENVOY_QUOTED, quoted, strict=True))
    fields["start_time"] = start_time
    _request_fields(fields, request)
    return fields


class _EnvoyFields(LazyFields):
    __slots__ = ()
    _build = staticmethod(lambda line: _envoy_fields(_decode(line)))


def parse_envoy(line: bytes) -> Event | None:
    """Envoy's default access log format; durations in ms, ``-`` unset, RESPONSE_CODE 0 = no response."""
    text = _decode(line)
    parts = _envoy_parts(text)
    if parts is None:
        return None
    start_time, _, numbers, _ = parts
    code, duration_ms = numbers[0], numbers[4]
    if not code.isdigit() or len(code) > 3:
        return None
    duration = None
    if duration_ms != "-":
        duration = _float_or_none(duration_ms)
        if duration is None:
            return None
        duration /= 1000.0
    return _event(_lazy(_EnvoyFields, line), parse_iso_time(start_time), int(code), duration)


# ---------------------------------------------------------------------------- structured: jsonl, logfmt, regex

#: Keys read as the HTTP status (first present wins; an integer 0-999 or its text).
STATUS_KEYS = ("status", "status_code", "http_status")
#: Keys read as the request duration, with the unit of a bare number (first present wins).
#: A text value may carry its own unit (``250ms``, ``1.5s``, ``300us``), which then wins.
DURATION_KEYS: tuple[tuple[str, float], ...] = (
    ("duration", 1.0),
    ("duration_seconds", 1.0),
    ("request_time", 1.0),
    ("latency", 1.0),
    ("duration_ms", 1e-3),
    ("latency_ms", 1e-3),
    ("response_time_ms", 1e-3),
    ("duration_us", 1e-6),
    ("latency_us", 1e-6),
)
#: Keys read as the event time: ISO 8601 text, CLF text, or unix seconds (numbers above
#: 1e11 are read as milliseconds).
TIME_KEYS = ("time", "timestamp", "ts", "@timestamp")


def _typed(src: Mapping[str, object]) -> tuple[float | None, int | None, float | None]:
    """(time, status, duration) from the well-known keys of a structured line."""
    status = None
    for key in STATUS_KEYS:
        value = src.get(key)
        if value is not None:
            if isinstance(value, int) and not isinstance(value, bool):
                status = value if 0 <= value <= 999 else None
            elif isinstance(value, str) and value.isdigit() and len(value) <= 3:
                status = int(value)
            break
    duration = None
    for key, unit in DURATION_KEYS:
        value = src.get(key)
        if value is not None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                duration = float(value) * unit if value >= 0 else None
            elif isinstance(value, str):
                duration = parse_duration_text(value, unit)
            break
    time = None
    for key in TIME_KEYS:
        value = src.get(key)
        if value is not None:
            time = parse_time_value(value)
            break
    return time, status, duration


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_json_loads = json.loads


def parse_jsonl(line: bytes) -> Event | None:
    """One JSON object per line; values as text (nested values as JSON, null as empty text)."""
    text = _decode(line).strip()
    if not text.startswith("{"):
        return None
    try:
        obj = _json_loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    fields = {k: v if isinstance(v, str) else _json_text(v) for k, v in obj.items()}
    if "\\u" in text:  # only a \u escape makes a lone surrogate, which no label value may carry
        fields = {sanitize_text(k): sanitize_text(v) for k, v in fields.items()}
    time, status, duration = _typed(obj)
    return Event(fields, time, status, duration)


# A jsonl block tally reads only the fields a source's metrics ask for, by a pattern made for
# the shape of the log's lines (learnt from a line that fails it): a flat object, keys in the
# learnt order, no whitespace, each value of the learnt kind (string, number, or one of true,
# false, null), the fields asked for as strings without escapes. Such a line is valid JSON
# whose asked fields json.loads and _json_text give exactly as the tally does (the others
# are not read: their escapes, and so their lone surrogates, never reach a label). One kind
# per value, and strings as an unrolled loop: alternatives per character are 4x slower.
_J_STRING = rb'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
_J_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_J_CONSTANT = rb"(?:true|false|null)"
_J_PLAIN_STRING = rb'"[^"\\\x00-\x1f]*"'
_J_KEY = re.compile(r"[A-Za-z0-9_@.$-]+\Z")
_J_TEMPLATE_KEYS = 64  # keys at most in a learnt line shape
_DOCKER_LINE = b'{"log":'


def _json_raw_text(raw: bytes) -> str:
    """The field text of a scalar as written (``_J_WANTED``), as ``_json_text(json.loads(raw))`` gives it."""
    first = raw[:1]
    if first == b'"':
        return raw[1:-1].decode("utf-8", "replace")
    if raw == b"true" or raw == b"false":
        return raw.decode()
    if raw == b"null":
        return ""
    if b"." in raw or b"e" in raw or b"E" in raw:
        return repr(float(raw))
    return repr(int(raw))


class JsonlTally:
    """Counts the (field texts) combinations of a jsonl block, for the fields in ``wanted``.

    ``tally(block, lines)`` returns ``[(fields, count)]`` in the order each combination first
    appears (label caps keep the first values seen), or None when a line is not in the learnt
    shape: the caller parses that block line by line and the next block tries the shape of
    the first line that failed. One per source; driven by one thread at a time.
    """

    def __init__(self, wanted: tuple[str, ...], *, docker: bool = False) -> None:
        self.wanted = wanted
        self.docker = docker  # refuse blocks with a line of Docker's json-file (wrapper: auto unwraps those)
        self._pattern: re.Pattern[bytes] | None = None
        self._names: tuple[str, ...] = ()  # the wanted fields the pattern captures, in its order
        self._texts: dict[bytes, str] = {}

    def __call__(self, block: bytes, lines: int) -> list[tuple[dict[str, str], int]] | None:
        pattern = self._pattern
        if self.docker and (block.startswith(_DOCKER_LINE) or b"\n" + _DOCKER_LINE in block):
            return None
        found = pattern.findall(block) if pattern is not None else []
        if len(found) != lines:
            self._learn(block)
            return None
        names, texts = self._names, self._texts
        if len(texts) > 4 * _CACHE_MAX:
            texts.clear()
        out = []
        for raw, n in Counter(found).items():
            values = (raw,) if len(names) == 1 else raw
            fields = {}
            for name, value in zip(names, values, strict=True):
                text = texts.get(value)
                if text is None:
                    text = texts[value] = _json_raw_text(value)
                fields[name] = text
            out.append((fields, n))
        return out

    def _learn(self, block: bytes) -> None:
        """The shape of the first line of ``block`` that the current one does not take, if flat."""
        pattern = self._pattern
        for line in block.split(b"\n"):
            if pattern is not None and pattern.fullmatch(line):
                continue
            try:
                obj = _json_loads(line)
            except ValueError:
                return
            if isinstance(obj, dict) and 0 < len(obj) <= _J_TEMPLATE_KEYS:
                self._shape(obj)
            return

    def _shape(self, obj: dict[str, object]) -> None:
        parts, names = [], []
        for key, value in obj.items():
            if not _J_KEY.match(key):
                return
            wanted = key in self.wanted
            if isinstance(value, str):
                kind = _J_PLAIN_STRING if wanted else _J_STRING
            elif value is None or isinstance(value, bool):
                kind = _J_CONSTANT
            elif isinstance(value, int | float):
                kind = _J_NUMBER
            else:
                return  # nested: parsed line by line
            parts.append(b'"' + re.escape(key.encode()) + b'":' + (b"(" + kind + b")" if wanted else kind))
            if wanted:
                names.append(key)
        if not names:
            return
        self._pattern = re.compile(rb"^\{" + b",".join(parts) + rb"\}$", re.M)
        self._names = tuple(names)


_LOGFMT_PAIR = re.compile(r'\s*([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?')
_LOGFMT_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_LOGFMT_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def _logfmt_unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if len(code) == 5:
        return sanitize_text(chr(int(code[1:], 16)))  # a lone surrogate becomes U+FFFD
    return _LOGFMT_ESCAPES.get(code, code)


def parse_logfmt(line: bytes) -> Event | None:
    """``key=value key="quoted \\"value\\"" bare`` (a bare key is ``true``); None if no ``key=value``."""
    text = _decode(line)
    fields: dict[str, str] = {}
    pos, end, pairs = 0, len(text.rstrip()), 0
    match = _LOGFMT_PAIR.match
    while pos < end:
        m = match(text, pos)
        if m is None or m.end() == pos:
            return None
        key, value = m.group(1), m.group(2)
        pos = m.end()
        if pos < end and not text[pos].isspace():
            return None  # e.g. an unterminated quote, or a quote inside a bare value
        if value is None:
            fields[key] = "true"
            continue
        pairs += 1
        if value[:1] == '"':
            value = value[1:-1]
            if "\\" in value:
                value = _LOGFMT_ESCAPE.sub(_logfmt_unescape, value)
        fields[key] = value
    if not pairs:
        return None
    time, status, duration = _typed(fields)
    return Event(fields, time, status, duration)


def make_regex_parser(pattern: str) -> LineParser:
    """A parser that searches ``pattern``; named groups become fields (unmatched groups are absent)."""
    search = re.compile(pattern).search

    def parse_regex(line: bytes) -> Event | None:
        """Fields from the named groups of the first match, or None."""
        m = search(_decode(line))
        if m is None:
            return None
        fields = {k: v for k, v in m.groupdict().items() if v is not None}
        time, status, duration = _typed(fields)
        return Event(fields, time, status, duration)

    return parse_regex


# ---------------------------------------------------------------------------- lookup

PARSERS: Mapping[str, LineParser] = {
    "nginx_combined": parse_nginx_combined,
    "apache_combined": parse_apache_combined,
    "envoy": parse_envoy,
    "ingress_nginx": parse_ingress_nginx,
    "jsonl": parse_jsonl,
    "logfmt": parse_logfmt,
}


class FormatSpec(Protocol):
    """What :func:`parser_for` reads: ``LogSource`` and ``FeedbackSource`` both fit."""

    @property
    def format(self) -> str:
        """The format name: a key of :data:`PARSERS`, or ``regex``."""
        ...

    @property
    def regex(self) -> str | None:
        """The pattern, for ``format: regex``."""
        ...


def parser_for(source: FormatSpec) -> LineParser:
    """The line parser of a log source (``format``, and ``regex`` for ``format: regex``)."""
    if source.format == "regex":
        if not source.regex:
            raise ValueError("format: regex needs a regex")
        return make_regex_parser(source.regex)
    try:
        return PARSERS[source.format]
    except KeyError:
        raise ValueError(f"unknown log format {source.format!r}") from None
