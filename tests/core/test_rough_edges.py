"""Rough edges of issue 17: timeouts default like Prometheus', a ${name} outside a flow is an error."""

from __future__ import annotations

import pytest

from slaprobe.config import ConfigError, parse_config

PROBE = "services:\n  a:\n    probes:\n      - {name: p, tcp: {address: '127.0.0.1:1'}}\n"


@pytest.mark.parametrize("interval", ["1s", "5s"])
def test_a_short_global_interval_without_a_timeout_gets_the_interval_as_its_timeout(interval: str) -> None:
    cfg = parse_config(f"version: v1\nglobal: {{interval: {interval}}}\n{PROBE}")
    assert [cfg.timeout_of(p) for _, _, p in cfg.probes()] == [float(interval[:-1])]


def test_a_global_timeout_given_above_the_interval_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match=r"global: timeout must not exceed interval \(line 2\)"):
        parse_config(f"version: v1\nglobal: {{interval: 5s, timeout: 10s}}\n{PROBE}")


def test_a_flow_variable_in_a_plain_probe_is_an_error_not_sent_literally() -> None:
    text = (
        "version: v1\nservices:\n  a:\n    probes:\n      - name: p\n"
        "        http: {url: 'http://127.0.0.1:1/', headers: {Authorization: 'Bearer ${tokn}'}}\n"
        "      - name: t\n"
        "        tcp: {address: '127.0.0.1:1', dialogue: [{expect: '(?P<g>x)'}, {send: '${g} ${1}'}]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(i) for i in caught.value.issues] == [
        "services.a.probes[0].http.headers.Authorization: ${tokn} is not defined: only the steps of a flow "
        "have variables (did you mean ${env:tokn}?) (line 6)"
    ]


def test_check_lists_duplicate_names_and_unknown_intervals_with_the_other_errors() -> None:
    text = (
        "version: v1\n"
        "escalation:\n  P1: [{after: 0m, notify: oncall, during: bizhours}]\n"
        "time_intervals:\n  business-hours: [{weekdays: ['monday:friday']}]\n"
        "receivers: {oncall: {}}\n"
        "services:\n  a:\n    probes:\n"
        "      - {name: p, interval: nope, tcp: {address: '127.0.0.1:1'}}\n"
        "      - {name: p, during: [business-hour], tcp: {address: '127.0.0.1:1'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(i) for i in caught.value.issues] == [
        "escalation.P1[0].during: unknown time interval 'bizhours' (did you mean 'business-hours'?) (line 3)",
        "services.a.probes[0].interval: not a duration: 'nope' "
        "(use Prometheus syntax such as 30s, 5m, 1h30m, 250ms) (line 10)",
        "services.a.probes[1].during: unknown time interval 'business-hour' (did you mean 'business-hours'?) (line 11)",
        "services.a.probes[1].name: duplicate probe name 'p' (line 11)",
    ]
