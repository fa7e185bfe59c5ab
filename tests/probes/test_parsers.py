"""Log line parsers on real-format lines, odd ones included: every format, every documented field."""

from __future__ import annotations

import calendar
import dataclasses
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaprobe.config import LogSource
from slaprobe.probes.logevent import Event
from slaprobe.probes.parsers import (
    PARSERS,
    TALLIES,
    JsonlTally,
    LazyFields,
    make_regex_parser,
    parse_apache_combined,
    parse_clf_time,
    parse_duration_text,
    parse_envoy,
    parse_ingress_nginx,
    parse_iso_time,
    parse_jsonl,
    parse_logfmt,
    parse_nginx_combined,
    parse_time_value,
    parser_for,
    sum_upstream_times,
)
from slaprobe.probes.wrappers import Unwrapper
from tests.conftest import free_port

T_2023 = calendar.timegm((2023, 10, 10, 13, 55, 36))  # 10/Oct/2023:13:55:36 +0000

NGINX = (
    b'203.0.113.9 - - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/orders?id=7 HTTP/1.1" 200 2326 '
    b'"https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0" 0.123 0.120'
)


def parsed(parser: object, line: bytes) -> Event:
    event = parser(line)  # type: ignore[operator]
    assert event is not None, line
    return event


# ---------------------------------------------------------------------------- nginx


def test_an_nginx_line_gives_status_duration_time_and_every_field() -> None:
    event = parsed(parse_nginx_combined, NGINX)
    assert (event.status, event.duration, event.time) == (200, 0.123, T_2023)
    assert dict(event.fields) == {
        "remote_addr": "203.0.113.9",
        "remote_user": "-",
        "time_local": "10/Oct/2023:13:55:36 +0000",
        "request": "GET /api/v1/orders?id=7 HTTP/1.1",
        "method": "GET",
        "path": "/api/v1/orders?id=7",
        "protocol": "HTTP/1.1",
        "status": "200",
        "body_bytes_sent": "2326",
        "http_referer": "https://shop.example/cart",
        "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        "request_time": "0.123",
        "upstream_response_time": "0.120",
        "upstream_response_time_sum": "0.12",
    }


def test_plain_nginx_combined_without_request_time_has_no_duration() -> None:
    line = b'10.0.0.1 - bob [10/Oct/2023:13:55:36 +0000] "POST /login HTTP/2.0" 302 0 "-" "curl/8.4.0"'
    event = parsed(parse_nginx_combined, line)
    assert (event.status, event.duration) == (302, None)
    assert "request_time" not in event.fields
    assert event.fields["remote_user"] == "bob"


@pytest.mark.parametrize(
    ("tail", "request_time", "upstream", "upstream_sum", "duration"),
    [
        (b" 0.000 -", "0.000", "-", None, 0.0),
        (b" - -", "-", "-", None, None),
        (b" 0.503 0.250, 0.251", "0.503", "0.250, 0.251", "0.501", 0.503),
        (b" 1.010 0.500, 0.004 : 0.500", "1.010", "0.500, 0.004 : 0.500", "1.004", 1.01),
        (b" 0.002 -, 0.001", "0.002", "-, 0.001", "0.001", 0.002),
        (b" 12.5", "12.5", None, None, 12.5),
    ],
)
def test_nginx_request_time_and_upstream_time_lists(
    tail: bytes, request_time: str, upstream: str | None, upstream_sum: str | None, duration: float | None
) -> None:
    line = b'::1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 502 157 "-" "kube-probe/1.28"' + tail
    event = parsed(parse_nginx_combined, line)
    assert event.duration == duration
    assert event.fields["request_time"] == request_time
    assert event.fields.get("upstream_response_time") == upstream
    assert event.fields.get("upstream_response_time_sum") == upstream_sum


def test_an_ipv6_client_and_a_zone_offset_are_read() -> None:
    line = b'2001:db8::5:1 - - [10/Oct/2023:21:55:36 +0800] "GET /x HTTP/1.1" 404 12 "-" "-" 0.001'
    event = parsed(parse_nginx_combined, line)
    assert event.fields["remote_addr"] == "2001:db8::5:1"
    assert event.time == T_2023
    assert event.status == 404


def test_nginx_escaped_bytes_stay_as_written() -> None:
    # nginx's default escaping writes " as \x22 and bytes >= 0x7f as \xNN.
    line = (
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /q?a=\\x22b\\x22 HTTP/1.1" 200 5 "-" "say \\x22hi\\x22" 0.010'
    )
    event = parsed(parse_nginx_combined, line)
    assert event.fields["path"] == "/q?a=\\x22b\\x22"
    assert event.fields["http_user_agent"] == "say \\x22hi\\x22"
    assert event.duration == 0.01


def test_nginx_escape_json_quotes_do_not_end_a_field() -> None:
    line = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "say \\"hi\\"" 0.010'
    event = parsed(parse_nginx_combined, line)
    assert event.fields["http_user_agent"] == 'say \\"hi\\"'
    assert (event.status, event.duration) == (200, 0.01)


def test_a_request_line_that_is_not_http_keeps_only_request() -> None:
    line = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "\\x16\\x03\\x01\\x02\\x00" 400 150 "-" "-" 0.001'
    event = parsed(parse_nginx_combined, line)
    assert event.status == 400
    assert event.fields["request"] == "\\x16\\x03\\x01\\x02\\x00"
    assert "method" not in event.fields and "path" not in event.fields
    dash = parsed(parse_nginx_combined, b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "-" 408 0 "-" "-"')
    assert (dash.status, dash.fields["request"]) == (408, "-")


def test_invalid_utf8_never_raises_and_becomes_replacement_characters() -> None:
    line = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /caf\xe9 HTTP/1.1" 200 5 "-" "\xff\xfe agent" 0.010'
    event = parsed(parse_nginx_combined, line)
    assert event.fields["path"] == "/caf\ufffd"
    assert event.fields["http_user_agent"] == "\ufffd\ufffd agent"
    assert event.status == 200


def test_a_trailing_newline_or_crlf_is_ignored() -> None:
    for ending in (b"\n", b"\r\n"):
        event = parsed(parse_nginx_combined, NGINX + ending)
        assert (event.status, event.duration) == (200, 0.123)
        assert event.fields["upstream_response_time"] == "0.120"


@pytest.mark.parametrize("cut", [1, 20, 47, 60, 83, 88, 93, 120, -1])
def test_a_truncated_nginx_line_does_not_parse(cut: int) -> None:
    line = b'203.0.113.9 - - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/orders?id=7 HTTP/1.1" 200 2326 "https://shop.example/cart" "Mozilla/5.0 Firefox/121.0"'
    assert parse_nginx_combined(line[:cut]) is None


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"hello world",
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" OK 5 "-" "-"',
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 2000 5 "-" "-"',
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-" slow',
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-"0.1',
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-" nan',
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-" -1.5',
        b'[10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-"',
    ],
)
def test_lines_that_are_not_nginx_combined_give_none(line: bytes) -> None:
    assert parse_nginx_combined(line) is None


def test_an_unreadable_timestamp_leaves_time_unset_but_the_line_counts() -> None:
    line = b'10.0.0.1 - - [yesterday at noon] "GET / HTTP/1.1" 200 5 "-" "-" 0.2'
    event = parsed(parse_nginx_combined, line)
    assert (event.time, event.status, event.duration) == (None, 200, 0.2)


def test_status_000_is_kept() -> None:
    line = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/2.0" 000 0 "-" "-" 0.000'
    assert parsed(parse_nginx_combined, line).status == 0


# ---------------------------------------------------------------------------- apache


def test_an_apache_line_with_microseconds() -> None:
    line = b'192.0.2.7 - frank [10/Oct/2023:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 1534'
    event = parsed(parse_apache_combined, line)
    assert (event.status, event.duration, event.time) == (200, 0.001534, T_2023 + 7 * 3600)
    assert event.fields["ident"] == "-"
    assert event.fields["remote_user"] == "frank"
    assert event.fields["request_time_us"] == "1534"
    assert event.fields["http_user_agent"] == "Mozilla/4.08 [en] (Win98; I ;Nav)"


def test_apache_backslash_escaped_quotes_are_unescaped() -> None:
    line = (
        b'2001:db8::1 - - [10/Oct/2023:13:55:36 +0000] "GET /say?\\"hi\\" HTTP/1.1" 404 - "-" "curl \\"7\\" \\\\o/" 99'
    )
    event = parsed(parse_apache_combined, line)
    assert event.fields["path"] == '/say?"hi"'
    assert event.fields["http_user_agent"] == 'curl "7" \\o/'
    assert event.fields["body_bytes_sent"] == "0"
    assert (event.status, event.duration) == (404, 99e-6)


def test_apache_without_d_has_no_duration_and_bad_d_does_not_parse() -> None:
    base = b'192.0.2.7 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 500 10 "-" "-"'
    assert parsed(parse_apache_combined, base).duration is None
    assert parse_apache_combined(base + b" 1.5") is None
    assert parse_apache_combined(base + b" -") is None


# ---------------------------------------------------------------------------- envoy

ENVOY = (
    b'[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" '
    b'"nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80"'
)


def test_an_envoy_default_line() -> None:
    event = parsed(parse_envoy, ENVOY)
    assert (event.status, event.duration) == (204, 0.226)
    assert event.time == pytest.approx(calendar.timegm((2016, 4, 15, 20, 17, 0)) + 0.31)
    assert dict(event.fields) == {
        "start_time": "2016-04-15T20:17:00.310Z",
        "method": "POST",
        "path": "/api/v1/locations",
        "protocol": "HTTP/2",
        "response_code": "204",
        "response_flags": "-",
        "bytes_received": "154",
        "bytes_sent": "0",
        "duration": "226",
        "upstream_service_time": "100",
        "x_forwarded_for": "10.0.35.28",
        "user_agent": "nsq2http",
        "request_id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
        "authority": "locations",
        "upstream_host": "tcp://10.0.2.1:80",
    }


def test_envoy_no_response_and_unset_values() -> None:
    line = b'[2024-01-02T03:04:05.000Z] "GET /slow HTTP/1.1" 0 UF,URX 0 0 - - "-" "-" "1-2-3" "svc.local" "[2001:db8::7]:8080"\n'
    event = parsed(parse_envoy, line)
    assert (event.status, event.duration) == (0, None)
    assert event.fields["response_flags"] == "UF,URX"
    assert event.fields["upstream_service_time"] == "-"
    assert event.fields["upstream_host"] == "[2001:db8::7]:8080"


def test_envoy_lines_that_do_not_fit() -> None:
    assert parse_envoy(ENVOY[:80]) is None
    assert parse_envoy(ENVOY.replace(b" 204 ", b" OK ")) is None
    assert parse_envoy(ENVOY.replace(b" 226 ", b" fast ")) is None
    assert parse_envoy(NGINX) is None


# ---------------------------------------------------------------------------- jsonl


def test_a_jsonl_object_gives_text_fields_and_typed_values() -> None:
    line = json.dumps(
        {
            "time": "2024-01-02T03:04:05.250+01:00",
            "status": 503,
            "duration_ms": 12.5,
            "ok": False,
            "user": None,
            "tags": ["a", "b"],
            "ctx": {"region": "eu"},
            "msg": 'caf\u00e9 "quoted"',
        }
    ).encode()
    event = parsed(parse_jsonl, line)
    assert event.status == 503
    assert event.duration == pytest.approx(0.0125)
    assert event.time == calendar.timegm((2024, 1, 2, 2, 4, 5)) + 0.25
    assert event.fields == {
        "time": "2024-01-02T03:04:05.250+01:00",
        "status": "503",
        "duration_ms": "12.5",
        "ok": "false",
        "user": "",
        "tags": '["a","b"]',
        "ctx": '{"region":"eu"}',
        "msg": 'café "quoted"',
    }


@pytest.mark.parametrize(
    ("obj", "status", "duration", "time"),
    [
        ({"status_code": "404", "latency": "250ms", "ts": 1_700_000_000_123}, 404, 0.25, 1_700_000_000.123),
        ({"http_status": 200, "request_time": 0.5, "timestamp": 1_700_000_000}, 200, 0.5, 1_700_000_000.0),
        ({"status": "ok", "duration_us": 1500, "@timestamp": "2024-01-02 03:04:05"}, None, 0.0015, 1704164645.0),
        ({"status": True, "duration": "1m30s", "time": "10/Oct/2023:13:55:36 +0000"}, None, 90.0, T_2023),
        ({"duration": -1, "latency_ms": 5, "time": "soon"}, None, None, None),
    ],
)
def test_jsonl_typed_values_come_from_the_documented_keys(
    obj: dict[str, object], status: int | None, duration: float | None, time: float | None
) -> None:
    event = parsed(parse_jsonl, json.dumps(obj).encode())
    assert event.status == status
    assert event.duration == (pytest.approx(duration) if duration is not None else None)
    assert event.time == (pytest.approx(time) if time is not None else None)


@pytest.mark.parametrize("line", [b"", b"[1, 2]", b'"text"', b'{"a": 1', b"{'a': 1}", b"not json"])
def test_jsonl_lines_that_are_not_one_object_give_none(line: bytes) -> None:
    assert parse_jsonl(line) is None


def test_jsonl_survives_invalid_utf8_inside_a_string() -> None:
    event = parsed(parse_jsonl, b'{"msg": "bad \xff byte", "status": 200}\n')
    assert event.fields["msg"] == "bad \ufffd byte"


# ---------------------------------------------------------------------------- logfmt


def test_logfmt_quoted_values_escapes_and_bare_keys() -> None:
    line = b'ts=2024-01-02T03:04:05Z level=warn msg="disk \\"sda\\" at 91%\\n" path=/a=b retry empty= status=429 duration=1.5s'
    event = parsed(parse_logfmt, line)
    assert event.fields == {
        "ts": "2024-01-02T03:04:05Z",
        "level": "warn",
        "msg": 'disk "sda" at 91%\n',
        "path": "/a=b",
        "retry": "true",
        "empty": "",
        "status": "429",
        "duration": "1.5s",
    }
    assert (event.status, event.duration, event.time) == (429, 1.5, calendar.timegm((2024, 1, 2, 3, 4, 5)))


def test_logfmt_unicode_escape_and_invalid_utf8() -> None:
    event = parsed(parse_logfmt, b'msg="caf\\u00e9" who=\xff')
    assert event.fields == {"msg": "café", "who": "\ufffd"}


@pytest.mark.parametrize("line", [b"", b"   ", b"just some words", b'msg="unterminated', b'a="x"y b=1', b'a=x"y'])
def test_logfmt_lines_without_pairs_or_with_broken_quotes_give_none(line: bytes) -> None:
    assert parse_logfmt(line) is None


# ---------------------------------------------------------------------------- regex


def test_a_regex_parser_types_status_and_duration_groups() -> None:
    parse = make_regex_parser(
        r"(?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\d+) in (?P<duration_ms>\d+)ms(?: user=(?P<user>\w+))?"
    )
    event = parsed(parse, b"2024-01-02 app: GET /x -> 502 in 340ms\n")
    assert event.fields == {"method": "GET", "path": "/x", "status": "502", "duration_ms": "340"}
    assert (event.status, event.duration) == (502, pytest.approx(0.34))
    assert parse(b"nothing to see") is None
    assert parsed(parse, b"GET /y -> 200 in 1ms user=ann").fields["user"] == "ann"


def test_a_regex_parser_reads_time_and_duration_with_units() -> None:
    parse = make_regex_parser(r"^(?P<time>\S+) took (?P<duration>\S+)$")
    event = parsed(parse, b"2024-01-02T03:04:05Z took 250ms")
    assert event.duration == 0.25
    assert event.time == calendar.timegm((2024, 1, 2, 3, 4, 5))


# ---------------------------------------------------------------------------- ingress-nginx

# Modelled on ingress-nginx's default log-format-upstream (its controller config):
# ... "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
# [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
# $upstream_response_time $upstream_status $req_id
INGRESS = (
    b'203.0.113.9 - - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/orders?id=7 HTTP/2.0" 200 2326 '
    b'"https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0" 512 0.123 '
    b"[shop-checkout-8080] [] 10.244.1.17:8080 2326 0.120 200 4f6c1e0a9d2b7c3e8f1a5b6d7e8f9a0b"
)


def test_an_ingress_nginx_line_gives_status_request_time_and_every_field() -> None:
    event = parsed(parse_ingress_nginx, INGRESS)
    assert (event.status, event.duration, event.time) == (200, 0.123, T_2023)
    assert dict(event.fields) == {
        "remote_addr": "203.0.113.9",
        "remote_user": "-",
        "time_local": "10/Oct/2023:13:55:36 +0000",
        "request": "GET /api/v1/orders?id=7 HTTP/2.0",
        "method": "GET",
        "path": "/api/v1/orders?id=7",
        "protocol": "HTTP/2.0",
        "status": "200",
        "body_bytes_sent": "2326",
        "http_referer": "https://shop.example/cart",
        "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        "request_length": "512",
        "request_time": "0.123",
        "proxy_upstream_name": "shop-checkout-8080",
        "proxy_alternative_upstream_name": "",
        "upstream_addr": "10.244.1.17:8080",
        "upstream_response_length": "2326",
        "upstream_response_time": "0.120",
        "upstream_status": "200",
        "req_id": "4f6c1e0a9d2b7c3e8f1a5b6d7e8f9a0b",
        "upstream_response_time_sum": "0.12",
    }


def test_ingress_nginx_upstream_lists_of_retries_and_internal_redirects_are_kept_whole() -> None:
    line = (
        b'10.0.0.1 - alice [10/Oct/2023:13:55:36 +0000] "POST /pay HTTP/1.1" 502 150 "-" "curl/8.5.0" '
        b"1200 3.010 [shop-pay-80] [shop-pay-canary-80] 10.244.1.7:8080, 10.244.2.9:8080 : 10.244.3.1:80 "
        b"0, 0 : 150 1.500, 1.501 : 0.004 502, 502 : 502 9a0b"
    )
    event = parsed(parse_ingress_nginx, line)
    assert (event.status, event.duration) == (502, 3.01)
    fields = event.fields
    assert fields["proxy_alternative_upstream_name"] == "shop-pay-canary-80"
    assert fields["upstream_addr"] == "10.244.1.7:8080, 10.244.2.9:8080 : 10.244.3.1:80"
    assert fields["upstream_status"] == "502, 502 : 502"
    assert fields["upstream_response_time_sum"] == "3.005"
    assert fields["req_id"] == "9a0b"


def test_an_ingress_nginx_request_without_upstream_has_dashes_and_the_default_backend() -> None:
    line = (
        b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /nothing HTTP/1.1" 404 146 "-" "-" 71 0.000 '
        b"[upstream-default-backend] [] - - - - 1b2c"
    )
    event = parsed(parse_ingress_nginx, line)
    assert (event.status, event.duration) == (404, 0.0)
    assert event.fields["proxy_upstream_name"] == "upstream-default-backend"
    assert event.fields["upstream_addr"] == event.fields["upstream_status"] == "-"
    assert "upstream_response_time_sum" not in event.fields


def test_ingress_nginx_escaped_quotes_and_crlf_take_the_slower_path_to_the_same_fields() -> None:
    escaped = INGRESS.replace(b"Firefox/121.0", b'say \\"hi\\"')
    for line in (escaped, INGRESS + b"\r", INGRESS.replace(b" - - ", b" - a b ")):
        event = parsed(parse_ingress_nginx, line)
        assert (event.status, event.duration) == (200, 0.123)
        assert event.fields["proxy_upstream_name"] == "shop-checkout-8080"
        assert event.fields["req_id"] == "4f6c1e0a9d2b7c3e8f1a5b6d7e8f9a0b"


@pytest.mark.parametrize(
    "line",
    [
        NGINX,  # plain combined with request_time: not ingress-nginx
        INGRESS.split(b" [shop")[0],
        INGRESS.replace(b" 0.123 ", b" slow "),
        INGRESS.replace(b"[shop-checkout-8080]", b"shop-checkout-8080"),
        INGRESS.replace(b" 200 2326 ", b" OK 2326 "),
        b"",
    ],
)
def test_lines_that_are_not_ingress_nginx_give_none(line: bytes) -> None:
    assert parse_ingress_nginx(line) is None


# ingress-nginx's default format, as its controller writes it into nginx.conf.
INGRESS_LOG_FORMAT = (
    '\'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id'"
)


def nginx_conf(tmp: Path, front: int, backend: int, dead: int) -> str:
    """An nginx that logs like ingress-nginx: one Service upstream, one with a failed first try, a 404."""
    temp = " ".join(f"{k}_temp_path {tmp}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""
master_process off;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
  {temp}
  log_format upstreaminfo {INGRESS_LOG_FORMAT};
  upstream shop-cart-80 {{ server 127.0.0.1:{backend}; }}
  upstream shop-pay-80 {{ server 127.0.0.1:{dead} max_fails=0; server 127.0.0.1:{backend} backup; }}
  server {{
    listen 127.0.0.1:{backend};
    access_log off;
    location / {{ return 200 "ok\\n"; }}
    location ~ /broken$ {{ return 503; }}
  }}
  server {{
    listen 127.0.0.1:{front};
    access_log {tmp}/access.log upstreaminfo;
    set $proxy_alternative_upstream_name "";
    set $req_id $request_id;
    location /cart {{ set $proxy_upstream_name "shop-cart-80"; proxy_pass http://shop-cart-80; }}
    location /pay {{ set $proxy_upstream_name "shop-pay-80"; proxy_pass http://shop-pay-80; }}
    location / {{ set $proxy_upstream_name "upstream-default-backend"; return 404; }}
  }}
}}
"""


def get_status(url: str, agent: str) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": agent})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs the nginx binary")
def test_lines_written_by_a_real_nginx_with_the_ingress_nginx_format_parse(tmp_path: Path) -> None:
    front, backend, dead = free_port(), free_port(), free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, front, backend, dead), encoding="utf-8")
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get_status(f"http://127.0.0.1:{front}/ready", "ready")
                break
            except OSError:
                assert nginx.poll() is None, nginx.communicate()[1]
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        asked = [
            ("/cart/items?id=1", 'curl "quoted" \u00e9', 200),
            ("/cart/broken", "probe", 503),
            ("/pay", "probe", 200),
            ("/nothing", "-", 404),
        ]
        for path, agent, status in asked:
            assert get_status(f"http://127.0.0.1:{front}{path}", agent) == status
    finally:
        nginx.terminate()
        nginx.communicate(timeout=10)  # waits, and closes the stderr pipe
    lines = (tmp_path / "access.log").read_bytes().splitlines()[1:]  # after the readiness request
    events = [parsed(parse_ingress_nginx, line) for line in lines]
    assert [(e.fields["path"], e.status) for e in events] == [(p, s) for p, _, s in asked]
    assert all(e.time is not None and e.duration is not None and e.duration >= 0 for e in events)
    cart, broken, pay, nothing = (e.fields for e in events)
    assert cart["proxy_upstream_name"] == "shop-cart-80"
    assert cart["http_user_agent"].startswith("curl \\x22quoted\\x22")
    assert cart["upstream_addr"] == f"127.0.0.1:{backend}"
    assert broken["upstream_status"] == "503"
    assert pay["upstream_addr"] == f"127.0.0.1:{dead}, 127.0.0.1:{backend}"
    assert pay["upstream_status"] == "502, 200"
    assert nothing["proxy_upstream_name"] == "upstream-default-backend"
    assert nothing["upstream_addr"] == "-"
    assert all(len(e.fields["req_id"]) == 32 for e in events)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_the_ingress_nginx_parser_never_raises_on_mangled_lines(prefix: bytes, suffix: bytes) -> None:
    event = parse_ingress_nginx(prefix + INGRESS[len(prefix) :] + suffix)
    if event is not None:
        dict(event.fields)


# ---------------------------------------------------------------------------- block tallies

CRI_PREFIX = b"2023-10-10T13:55:36.123456789Z stdout F "
# Bytes that make or break the layout: quotes, brackets, escapes, other whitespace, CRI tags.
LAYOUT_BYTES = b' "[]\\-\t\r\x0b0123456789.:FPTZ{}x'


def line_by_line(wrapper: str, lines: list[bytes]) -> tuple[dict[int, int], dict[float, int]] | None:
    """What the per-line path counts for ``lines``: requests by status and by duration; None if one fails."""
    unwrapper = Unwrapper(wrapper)  # type: ignore[arg-type]
    inner, _ = unwrapper.unwrap(lines)
    if len(inner) != len(lines) or unwrapper.pending()[0]:
        return None
    if wrapper == "auto" and any(a is not b for a, b in zip(inner, lines, strict=True)):
        return None  # auto unwrapped some: not plain lines
    codes: dict[int, int] = {}
    durations: dict[float, int] = {}
    for line in inner:
        event = parse_nginx_combined(line)
        if event is None or event.status is None:
            return None
        codes[event.status] = codes.get(event.status, 0) + 1
        if event.duration is not None:
            durations[event.duration] = durations.get(event.duration, 0) + 1
    return codes, durations


def test_a_block_tally_counts_nginx_lines_by_status_and_duration() -> None:
    tally = TALLIES["nginx_combined", "none"]
    lines = [NGINX, NGINX.replace(b" 200 ", b" 503 "), NGINX.replace(b" 0.123 0.120", b""), NGINX]
    assert tally(b"\n".join(lines), 4) == ({200: 3, 503: 1}, {0.123: 3})
    assert tally(b"\n".join(lines), 4) == line_by_line("none", lines)


@pytest.mark.parametrize(
    "odd",
    [
        b"",  # a blank line
        NGINX.replace(b'cart"', b'cart\\"'),  # an escaped quote: the slow path reads it
        NGINX.replace(b" 0.123 0.120", b" 0.123\r"),  # CRLF
        NGINX.replace(b" - - ", b" - al ice "),  # a space in remote_user
        NGINX.replace(b" 0.123 ", b" 1e3 "),
        b"not an access log line",
    ],
)
def test_a_block_tally_declines_a_block_with_one_line_it_does_not_take(odd: bytes) -> None:
    assert TALLIES["nginx_combined", "none"](b"\n".join([NGINX, odd, NGINX]), 3) is None


def test_the_auto_tally_declines_lines_that_auto_would_unwrap() -> None:
    assert TALLIES["nginx_combined", "auto"](CRI_PREFIX + NGINX, 1) is None
    assert TALLIES["nginx_combined", "cri"](CRI_PREFIX + NGINX, 1) == ({200: 1}, {0.123: 1})
    assert TALLIES["nginx_combined", "cri"](CRI_PREFIX.replace(b" F ", b" P ") + NGINX, 1) is None


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["none", "auto", "cri"]),
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(st.tuples(st.integers(0, 400), st.sampled_from(LAYOUT_BYTES), st.booleans()), max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_a_block_tally_counts_as_the_line_parser_does_or_declines(
    wrapper: str, specs: list[tuple[bool, list[tuple[int, int, bool]]]]
) -> None:
    lines = []
    for cri, edits in specs:
        line = bytearray(CRI_PREFIX + NGINX if cri else NGINX)
        for at, byte, insert in edits:
            at %= len(line) + 1
            if insert or at == len(line):
                line[at:at] = bytes([byte])
            else:
                line[at] = byte
        lines += bytes(line).split(b"\n")
    counted = TALLIES["nginx_combined", wrapper](b"\n".join(lines), len(lines))
    if counted is not None:
        assert counted == line_by_line(wrapper, lines)


WANTED = ("status", "route", "ms")


def wanted_fields(line: bytes) -> tuple[str | None, ...] | None:
    """The wanted fields' texts of a jsonl line as parse_jsonl gives them; None if it does not parse."""
    event = parse_jsonl(line)
    return None if event is None else tuple(event.fields.get(name) for name in WANTED)


def test_a_jsonl_tally_learns_the_shape_then_counts_field_combinations_in_order() -> None:
    tally = JsonlTally(WANTED)
    lines = [
        json.dumps({"ts": "x", "route": "/b", "status": 200, "ms": 1.5, "ok": True}, separators=(",", ":")).encode(),
        json.dumps({"ts": "y", "route": "/a", "status": 500, "ms": 2, "ok": None}, separators=(",", ":")).encode(),
        json.dumps({"ts": "z\u00e9", "route": "/b", "status": 200, "ms": 1.5, "ok": False}).encode(),
    ]
    assert tally(b"\n".join(lines[:2]), 2) is None  # nothing learnt yet: parsed line by line, shape learnt
    assert tally(b"\n".join(lines[:2] * 2), 4) == [
        ({"route": "/b", "status": "200", "ms": "1.5"}, 2),
        ({"route": "/a", "status": "500", "ms": "2"}, 2),
    ]
    assert tally(b"\n".join(lines), 3) is None  # spaces after the separators: another shape


JSON_SCALARS = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\\x00\n\t/\ud800'), max_size=6),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, False, None, 0, -0.0, 1.0, 1e100]),
)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from(["ts", *WANTED, "x"]), min_size=1, max_size=5, unique=True),
    st.lists(
        st.tuples(
            st.lists(JSON_SCALARS | st.lists(st.integers(), max_size=1), min_size=5, max_size=5),
            st.booleans(),
            st.lists(st.tuples(st.integers(0, 200), st.sampled_from(LAYOUT_BYTES)), max_size=2),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_a_jsonl_tally_counts_the_fields_parse_jsonl_gives_or_declines(
    keys: list[str], rows: list[tuple[list[object], bool, list[tuple[int, int]]]]
) -> None:
    lines: list[bytes] = []
    for values, ascii_only, edits in rows:
        line = bytearray(
            json.dumps(dict(zip(keys, values, strict=False)), separators=(",", ":"), ensure_ascii=ascii_only).encode(
                "utf-8", "surrogatepass"
            )
        )
        for at, byte in edits:
            line[at % (len(line) + 1) : at % (len(line) + 1)] = bytes([byte])
        lines += bytes(line).split(b"\n")
    tally = JsonlTally(WANTED)
    for block in (lines, lines):  # the first learns the shape of the first line it does not take
        counted = tally(b"\n".join(block), len(block))
    if counted is None:
        return
    want: dict[tuple[str | None, ...], int] = {}
    for one in lines:
        texts = wanted_fields(one)
        assert texts is not None, one
        want[texts] = want.get(texts, 0) + 1
    got: dict[tuple[str | None, ...], int] = {}
    for fields, n in counted:
        key = tuple(fields.get(name) for name in WANTED)
        got[key] = got.get(key, 0) + n
    assert got == want
    assert list(got) == list(want)  # in the order each first appears


# ---------------------------------------------------------------------------- lookup, helpers


def test_parser_for_picks_the_format_of_a_log_source() -> None:
    for name, fn in PARSERS.items():
        assert parser_for(LogSource(path="/x", format=name)) is fn
    regex = parser_for(LogSource(path="/x", format="regex", regex=r"(?P<status>\d{3})"))
    assert parsed(regex, b"got 201").status == 201
    with pytest.raises(ValueError, match="unknown log format"):
        parser_for(type("Spec", (), {"format": "syslog", "regex": None})())


def test_lazy_fields_behave_like_a_read_only_dict() -> None:
    fields = parsed(parse_nginx_combined, NGINX).fields
    assert isinstance(fields, LazyFields)
    assert fields == dict(fields)
    assert "path" in fields and "nope" not in fields
    assert fields.get("nope", "x") == "x"
    assert len(fields) == len(list(fields)) == len(dict(fields.items()))
    with pytest.raises(KeyError):
        fields["nope"]
    assert "remote_addr" in repr(fields)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10/Oct/2023:13:55:36 +0000", T_2023),
        ("10/Oct/2023:13:55:36 -0130", T_2023 + 5400),
        ("29/Feb/2024:00:00:00 +0000", calendar.timegm((2024, 2, 29, 0, 0, 0))),
        ("10/Foo/2023:13:55:36 +0000", None),
        ("10/Oct/2023:13:55:36", None),
        ("aa/Oct/2023:13:55:36 +0000", None),
        ("10/Oct/\t000:13:55:36 -0700", None),  # year 0 (int() takes the tab): found by bench/fuzz.py
    ],
)
def test_clf_timestamps(text: str, seconds: float | None) -> None:
    assert parse_clf_time(text) == seconds
    assert parse_clf_time(text) == seconds  # cached


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2023-10-10T13:55:36Z", T_2023),
        ("2023-10-10T13:55:36.5Z", T_2023 + 0.5),
        ("2023-10-10 13:55:36,25", T_2023 + 0.25),
        ("2023-10-10T15:55:36+02:00", T_2023),
        ("2023-10-10T12:55:36.000-0100", T_2023),
        ("2023-10-10T13:55:36 UTC", None),
        ("2023-13-10T13:55:36Z", None),
    ],
)
def test_iso_timestamps(text: str, seconds: float | None) -> None:
    assert parse_iso_time(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_duration_and_time_helpers() -> None:
    assert parse_duration_text("250ms") == 0.25
    assert parse_duration_text("1h2m3.5s") == 3723.5
    assert parse_duration_text("300µs") == pytest.approx(0.0003)
    assert parse_duration_text("12", 1e-3) == 0.012
    assert parse_duration_text("fast") is None
    assert parse_duration_text("5ms later") is None
    assert sum_upstream_times("-") is None
    assert sum_upstream_times("0.1, 0.2 : 0.3") == pytest.approx(0.6)
    assert parse_time_value(1_700_000_000) == 1_700_000_000
    assert parse_time_value("1700000000500") == 1_700_000_000.5
    assert parse_time_value(True) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_no_parser_raises_on_arbitrary_bytes(data: bytes) -> None:
    for parse in [*PARSERS.values(), make_regex_parser(r"(?P<status>\d+) (?P<duration>\S+)")]:
        event = parse(data)
        if event is not None:
            dict(event.fields)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_no_parser_raises_on_mangled_access_lines(prefix: bytes, suffix: bytes) -> None:
    for line in (NGINX, ENVOY):
        for parse in PARSERS.values():
            event = parse(prefix + line[len(prefix) :] + suffix)
            if event is not None:
                dict(event.fields)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b" ", b"\t", b"\x1c", b"\xc2\xa0", b"\xff", b'"', b"\\", b"-", b"0.5", b"200", b"[", b"]", b"x"]
        ),
        max_size=12,
    ),
    st.integers(min_value=0, max_value=len(NGINX)),
)
def test_the_typed_values_and_the_lazy_fields_of_a_line_agree(noise: list[bytes], at: int) -> None:
    line = NGINX[:at] + b"".join(noise) + NGINX[at:]
    for parse in (parse_nginx_combined, parse_apache_combined):
        event = parse(line)
        if event is not None:
            assert int(event.fields["status"]) == event.status
            if "request_time" in event.fields and event.fields["request_time"] != "-":
                assert float(event.fields["request_time"]) == event.duration


def test_odd_ascii_whitespace_between_fields_keeps_fields_and_values_in_step() -> None:
    line = b'10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1\x1c2 "-" "-" 0.5\t0.25'
    event = parsed(parse_nginx_combined, line)
    assert event.fields["body_bytes_sent"] == "1\x1c2"
    assert (event.fields["request_time"], event.duration) == ("0.5", 0.5)
    assert event.fields["upstream_response_time"] == "0.25"


def test_events_of_the_fast_paths_are_ordinary_frozen_events() -> None:
    for parse, line in ((parse_nginx_combined, NGINX), (parse_envoy, ENVOY)):
        event = parsed(parse, line)
        assert type(event) is Event
        assert event == Event(event.fields, event.time, event.status, event.duration)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.status = 500  # type: ignore[misc]
